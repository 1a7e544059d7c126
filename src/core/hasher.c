/*
 * hasher: see hasher.h.
 */
#include "hasher.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

enum { IDLE, QUEUED, DONE, QUIT };

struct hasher {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	int state;
	struct hasher_job job;
	/* The Gear chunker where the last job that cut a block left it;
	 * ck_valid false when that job failed or did not cut. */
	struct chunker ck;
	bool ck_valid;
	int rc;
	char msg[256]; /* the helper's error, passed to the caller */
};

/* Cut ${j}'s block into Gear chunks and hash them (hasher.h). */
static int
cut_block(struct hasher *h, const struct hasher_job *j)
{
	struct hasher_cuts *c = j->cuts;
	const unsigned char *carry;
	size_t carry_n, pos = 0;
	struct hash hs;
	bool cut = false;

	c->valid = c->tail_valid = false;
	c->n = 0;
	if (j->prev_first) {
		chunker_init(&h->ck, CHUNKER_GEAR);
		for (size_t k = 0; k < j->prev_n;)
			k += chunker_scan(
			    &h->ck, j->prev + k, j->prev_n - k, &cut);
		h->ck_valid = true;
	}
	/* The chunk in progress must lie in the block before: a chunk is
	 * shorter than a block. */
	if (!h->ck_valid || h->ck.kind != CHUNKER_GEAR || h->ck.len > j->prev_n)
		return 0;
	h->ck_valid = false;
	c->start = h->ck;
	carry_n = c->start.len;
	carry = j->prev + j->prev_n - carry_n;
	while (pos < j->n) {
		size_t k = chunker_scan(&h->ck, j->p + pos, j->n - pos, &cut);

		if (!cut)
			break;
		if (c->n == c->cap)
			return 0; /* cannot happen with the room asked for */
		if (hash_init(&hs, HASH_SHA256))
			return -1;
		hash_update(&hs, carry, carry_n);
		hash_update(&hs, j->p + pos, k);
		if (hash_final_raw(&hs, c->chunk[c->n].digest) < 0)
			return -1;
		carry_n = 0;
		pos += k;
		c->chunk[c->n++].end = (uint32_t)pos;
	}
	/* A short block ends the file: its last chunk too. */
	if (j->n < j->prev_n && carry_n + (j->n - pos) > 0) {
		if (hash_init(&hs, HASH_SHA256))
			return -1;
		hash_update(&hs, carry, carry_n);
		hash_update(&hs, j->p + pos, j->n - pos);
		if (hash_final_raw(&hs, c->tail_digest) < 0)
			return -1;
		c->tail_valid = true;
	}
	c->end = h->ck;
	c->valid = h->ck_valid = true;
	return 0;
}

static void *
hasher_main(void *arg)
{
	struct hasher *h = arg;

	(void)pthread_setname_np(pthread_self(), "cumulus-hash");
	pthread_mutex_lock(&h->lock);
	for (;;) {
		while (h->state != QUEUED && h->state != QUIT)
			pthread_cond_wait(&h->cond, &h->lock);
		if (h->state == QUIT)
			break;
		pthread_mutex_unlock(&h->lock);
		/* The job's fields are ours until DONE. */
		if (h->job.running != NULL)
			hash_update(h->job.running, h->job.p, h->job.n);
		h->rc
		    = hash_buffer(HASH_SHA256, h->job.p, h->job.n, h->job.sum);
		if (h->rc == 0 && h->job.cuts != NULL)
			h->rc = cut_block(h, &h->job);
		else if (h->job.cuts == NULL)
			h->ck_valid = false;
		if (h->rc != 0)
			snprintf(h->msg, sizeof(h->msg), "%s", err_msg());
		pthread_mutex_lock(&h->lock);
		h->state = DONE;
		pthread_cond_broadcast(&h->cond);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
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
	h->state = IDLE;
	if (pthread_mutex_init(&h->lock, NULL) != 0) {
		free(h);
		err_set("cannot create a mutex");
		return -1;
	}
	if (pthread_cond_init(&h->cond, NULL) != 0) {
		pthread_mutex_destroy(&h->lock);
		free(h);
		err_set("cannot create a condition variable");
		return -1;
	}
	if (pthread_create(&h->thread, NULL, hasher_main, h) != 0) {
		pthread_cond_destroy(&h->cond);
		pthread_mutex_destroy(&h->lock);
		free(h);
		err_set("cannot start a hashing thread");
		return -1;
	}
	*out = h;
	return 0;
}

void
hasher_destroy(struct hasher *h)
{
	if (h == NULL)
		return;
	pthread_mutex_lock(&h->lock);
	while (h->state == QUEUED)
		pthread_cond_wait(&h->cond, &h->lock);
	h->state = QUIT;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->lock);
	pthread_join(h->thread, NULL);
	pthread_cond_destroy(&h->cond);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

int
hasher_start(struct hasher *h, const struct hasher_job *job)
{
	pthread_mutex_lock(&h->lock);
	if (h->state != IDLE) {
		pthread_mutex_unlock(&h->lock);
		err_set("hasher: the last job was not waited for");
		return -1;
	}
	h->job = *job;
	h->rc = 0;
	h->msg[0] = '\0';
	h->state = QUEUED;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->lock);
	return 0;
}

int
hasher_wait(struct hasher *h)
{
	int rc;

	pthread_mutex_lock(&h->lock);
	while (h->state == QUEUED)
		pthread_cond_wait(&h->cond, &h->lock);
	rc = h->state == DONE ? h->rc : 0;
	h->state = IDLE;
	pthread_mutex_unlock(&h->lock);
	if (rc != 0)
		err_set("%s", h->msg[0] ? h->msg : "hashing failed");
	return rc;
}
