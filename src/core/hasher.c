/*
 * hasher: see hasher.h.
 *
 * Two threads share each job: one hashes the block into the file's
 * running hash and on its own, the other cuts it into chunks and hashes
 * those; about the same work each.  With the cutting on a single helper,
 * the main thread of a backup of a changed large file (whose chunks are
 * mostly found, so it has little else to do) waited for the helper with
 * the other core idle: 2.9 s for 1 GiB against 1.6 s when the main
 * thread cut it itself.
 *
 * Jobs wait in a ring of HASHER_DEPTH, each thread taking its part of
 * each in turn: with one job at a time, the helper slept while the
 * caller read the next block and stored the last, and each block cost
 * two wake-ups, which on a machine whose scheduler leaves a woken thread
 * queued behind a busy core meant the 84 large files of the linux tree
 * kept 1.3 of 2 cores busy.
 */
#include "hasher.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

/* The two parts of a job, one per thread. */
enum { PART_HASH, PART_CUT, PARTS };

struct slot {
	struct hasher_job job;
	bool pending[PARTS]; /* the part is not done yet */
	int rc[PARTS];
	char msg[PARTS][256]; /* a part's error, passed to the caller */
};

struct hasher {
	pthread_mutex_t lock;
	pthread_cond_t work; /* a job started, or quit */
	pthread_cond_t done; /* the job waited for is done */
	pthread_t threads[PARTS];
	int nthreads;
	struct slot slot[HASHER_DEPTH]; /* job number i in slot[i % DEPTH] */
	uint64_t started; /* jobs started */
	uint64_t waited; /* jobs waited for: the oldest is number waited */
	uint64_t next[PARTS]; /* the job each part does next */
	int idle; /* threads waiting for work */
	bool waiting; /* the caller waits for job number waited */
	bool quit;
	/* PART_CUT's thread only: the Gear chunker where job number ck_seq
	 * left it, valid when that job cut its block, and the hash of the
	 * chunk in progress there. */
	struct chunker ck;
	bool ck_valid;
	uint64_t ck_seq;
	struct hash carry;
	struct part_arg {
		struct hasher *h;
		int part;
	} args[PARTS]; /* each thread's argument */
};

/* Cut job number ${seq}'s block into Gear chunks and hash them. */
static int
cut_block(struct hasher *h, const struct hasher_job *j, uint64_t seq)
{
	struct hasher_cuts *c = j->cuts;
	size_t pos = 0;
	bool cut = false;

	c->valid = c->tail_valid = false;
	c->n = 0;
	if (j->first) {
		chunker_init(&h->ck, CHUNKER_GEAR);
		if (hash_init(&h->carry, HASH_SHA256))
			return -1;
	} else if (!h->ck_valid || h->ck_seq + 1 != seq
	    || h->ck.kind != CHUNKER_GEAR) {
		h->ck_valid = false;
		return 0;
	}
	h->ck_valid = false;
	c->start = h->ck;
	while (pos < j->n) {
		size_t k = chunker_scan(&h->ck, j->p + pos, j->n - pos, &cut);

		if (!cut)
			break;
		if (c->n == c->cap)
			return 0; /* cannot happen with the room asked for */
		hash_update(&h->carry, j->p + pos, k);
		if (hash_final_raw(&h->carry, c->chunk[c->n].digest) < 0
		    || hash_init(&h->carry, HASH_SHA256))
			return -1;
		pos += k;
		c->chunk[c->n++].end = (uint32_t)pos;
	}
	/* The chunk in progress goes on into the next block, or ends the
	 * file with this one. */
	hash_update(&h->carry, j->p + pos, j->n - pos);
	if (j->last && h->ck.len > 0) {
		struct hash tail = h->carry;

		if (hash_final_raw(&tail, c->tail_digest) < 0)
			return -1;
		c->tail_valid = true;
	}
	c->end = h->ck;
	c->valid = h->ck_valid = true;
	h->ck_seq = seq;
	return 0;
}

static int
run_part(struct hasher *h, int part, const struct hasher_job *j, uint64_t seq)
{
	if (part == PART_HASH) {
		if (j->running != NULL)
			hash_update(j->running, j->p, j->n);
		return j->sum == NULL ? 0
				      : hash_buffer(HASH_SHA256, j->p, j->n, j->sum);
	}
	return cut_block(h, j, seq);
}

static void *
hasher_main(void *arg)
{
	const struct part_arg *pa = arg;
	struct hasher *h = pa->h;
	int part = pa->part;

	(void)pthread_setname_np(pthread_self(), "cumulus-hash");
	pthread_mutex_lock(&h->lock);
	for (;;) {
		uint64_t seq = h->next[part];
		struct slot *s = &h->slot[seq % HASHER_DEPTH];
		int rc;

		if (seq == h->started) {
			if (h->quit)
				break;
			h->idle++;
			pthread_cond_wait(&h->work, &h->lock);
			h->idle--;
			continue;
		}
		h->next[part]++;
		/* A job with nothing for this part may have been waited for,
		 * and its slot given to a later job, before we got here. */
		if (seq < h->waited || !s->pending[part])
			continue;
		pthread_mutex_unlock(&h->lock);
		/* The job is ours to read, and our part's outputs to write,
		 * until our part is marked done. */
		if ((rc = run_part(h, part, &s->job, seq)) != 0)
			snprintf(s->msg[part], sizeof(s->msg[part]), "%s",
			    err_msg());
		err_clear();
		pthread_mutex_lock(&h->lock);
		s->rc[part] = rc;
		s->pending[part] = false;
		if (h->waiting && h->waited == seq && !s->pending[PART_HASH]
		    && !s->pending[PART_CUT])
			pthread_cond_signal(&h->done);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

/* Stop and join the threads started (the jobs started done first). */
static void
stop_threads(struct hasher *h)
{
	pthread_mutex_lock(&h->lock);
	h->quit = true;
	pthread_cond_broadcast(&h->work);
	pthread_mutex_unlock(&h->lock);
	for (int i = 0; i < h->nthreads; i++)
		pthread_join(h->threads[i], NULL);
}

int
hasher_create(struct hasher **out)
{
	struct hasher *h = calloc(1, sizeof(*h));

	*out = NULL;
	if (h == NULL) {
		err_set("out of memory");
		return -1;
	}
	if (pthread_mutex_init(&h->lock, NULL) != 0) {
		free(h);
		err_set("cannot create a mutex");
		return -1;
	}
	if (pthread_cond_init(&h->work, NULL) != 0) {
		pthread_mutex_destroy(&h->lock);
		free(h);
		err_set("cannot create a condition variable");
		return -1;
	}
	if (pthread_cond_init(&h->done, NULL) != 0) {
		pthread_cond_destroy(&h->work);
		pthread_mutex_destroy(&h->lock);
		free(h);
		err_set("cannot create a condition variable");
		return -1;
	}
	for (; h->nthreads < PARTS; h->nthreads++) {
		struct part_arg *pa = &h->args[h->nthreads];

		pa->h = h;
		pa->part = h->nthreads;
		if (pthread_create(
		        &h->threads[h->nthreads], NULL, hasher_main, pa)
		    != 0) {
			hasher_destroy(h);
			err_set("cannot start a hashing thread");
			return -1;
		}
	}
	*out = h;
	return 0;
}

void
hasher_destroy(struct hasher *h)
{
	if (h == NULL)
		return;
	stop_threads(h);
	hash_abort(&h->carry);
	pthread_cond_destroy(&h->done);
	pthread_cond_destroy(&h->work);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

int
hasher_start(struct hasher *h, const struct hasher_job *job)
{
	struct slot *s;

	pthread_mutex_lock(&h->lock);
	if (h->started - h->waited == HASHER_DEPTH) {
		pthread_mutex_unlock(&h->lock);
		err_set("hasher: %d jobs wait already", HASHER_DEPTH);
		return -1;
	}
	s = &h->slot[h->started % HASHER_DEPTH];
	s->job = *job;
	s->pending[PART_HASH] = true;
	s->pending[PART_CUT] = job->cuts != NULL;
	s->rc[PART_HASH] = s->rc[PART_CUT] = 0;
	h->started++;
	if (h->idle > 0)
		pthread_cond_broadcast(&h->work);
	pthread_mutex_unlock(&h->lock);
	return 0;
}

/* Wait for the oldest job not waited for; its failing part, or -1. */
static int
wait_oldest(struct hasher *h, struct slot **out)
{
	struct slot *s;
	int part = -1;

	pthread_mutex_lock(&h->lock);
	if (h->waited == h->started) {
		pthread_mutex_unlock(&h->lock);
		*out = NULL;
		return -1;
	}
	s = &h->slot[h->waited % HASHER_DEPTH];
	h->waiting = true;
	while (s->pending[PART_HASH] || s->pending[PART_CUT])
		pthread_cond_wait(&h->done, &h->lock);
	h->waiting = false;
	h->waited++;
	for (int i = 0; i < PARTS; i++)
		if (s->rc[i] != 0 && part < 0)
			part = i;
	pthread_mutex_unlock(&h->lock);
	*out = s;
	return part;
}

int
hasher_wait(struct hasher *h)
{
	struct slot *s;
	int part = wait_oldest(h, &s);

	if (part < 0)
		return 0;
	err_set("%s", s->msg[part][0] ? s->msg[part] : "hashing failed");
	return -1;
}

void
hasher_drain(struct hasher *h)
{
	struct slot *s;

	if (h == NULL)
		return;
	/* The caller's error, which made it drain, stays recorded. */
	do
		(void)wait_oldest(h, &s);
	while (s != NULL);
}
