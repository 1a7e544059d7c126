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
	/* The job. */
	const void *p;
	size_t n;
	struct hash *running;
	char *sum;
	int rc;
	char msg[256]; /* the helper's error, passed to the caller */
};

static void *
hasher_main(void *arg)
{
	struct hasher *h = arg;

	pthread_mutex_lock(&h->lock);
	for (;;) {
		while (h->state != QUEUED && h->state != QUIT)
			pthread_cond_wait(&h->cond, &h->lock);
		if (h->state == QUIT)
			break;
		pthread_mutex_unlock(&h->lock);
		/* The job's fields are ours until DONE. */
		if (h->running != NULL)
			hash_update(h->running, h->p, h->n);
		h->rc = hash_buffer(HASH_SHA256, h->p, h->n, h->sum);
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
hasher_start(struct hasher *h, const void *p, size_t n, struct hash *running,
    char sum[HASH_STR_MAX])
{
	pthread_mutex_lock(&h->lock);
	if (h->state != IDLE) {
		pthread_mutex_unlock(&h->lock);
		err_set("hasher: the last job was not waited for");
		return -1;
	}
	h->p = p;
	h->n = n;
	h->running = running;
	h->sum = sum;
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
