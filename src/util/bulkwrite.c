/*
 * bulkwrite: write one large new file through a helper thread, with
 * direct I/O where allowed (bulkwrite.h).
 *
 * Two buffers: the caller fills one while the helper writes the other.
 * Every write starts at a multiple of 4096 bytes in the file and in an
 * aligned buffer, and the last buffer is padded to 4096 bytes with zeros
 * (the size is set afterwards), which is what direct I/O needs on the
 * usual filesystems; one that still refuses a direct write (EINVAL) gets
 * it, and the rest of the file, through the page cache.
 */
#include "bulkwrite.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"

#define BLOCK 4096

struct bulkwrite {
	int fd;
	size_t cap; /* bytes per buffer */
	unsigned char *bufs[2];
	int fill; /* the buffer the caller fills */
	size_t len; /* bytes in it */
	uint64_t base; /* file offset of its first byte */
	uint64_t total; /* bytes added */
	bool threaded, started;
	pthread_t th;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* Under lock: the one buffer handed to the helper, if any. */
	int job; /* buffer index, or -1 */
	size_t job_len;
	uint64_t job_off;
	bool stop;
	bool failed;
	char msg[256];
	/* The helper's (or, without one, the caller's) own. */
	bool direct;
	uint64_t end; /* where the last write ended */
	int flags; /* the file's status flags before start */
};

static bool
zero_block(const unsigned char *p)
{
	return p[0] == 0 && memcmp(p, p + 1, BLOCK - 1) == 0;
}

/* pwrite all of ${p}; a direct write refused with EINVAL is retried
 * through the page cache.  0, or -1 with error set. */
static int
pwrite_full(struct bulkwrite *w, const unsigned char *p, size_t n, uint64_t off)
{
	while (n > 0) {
		ssize_t r = pwrite(w->fd, p, n, (off_t)off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EINVAL && w->direct) {
			int fl = fcntl(w->fd, F_GETFL);

			if (fl < 0 || fcntl(w->fd, F_SETFL, fl & ~O_DIRECT)) {
				err_setp("write");
				return -1;
			}
			w->direct = false;
			continue;
		}
		if (r <= 0) {
			if (r == 0)
				errno = ENOSPC;
			err_setp("write");
			return -1;
		}
		p += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

/* Write ${n} bytes (a multiple of BLOCK) at ${off}, leaving all-zero
 * blocks as holes.  0, or -1 with error set. */
static int
write_out(struct bulkwrite *w, const unsigned char *p, size_t n, uint64_t off)
{
	size_t at = 0;

	while (at < n) {
		size_t run = at;

		while (run < n && !zero_block(p + run))
			run += BLOCK;
		if (run > at) {
			if (pwrite_full(w, p + at, run - at, off + at))
				return -1;
			w->end = off + run;
		}
		while (run < n && zero_block(p + run))
			run += BLOCK;
		at = run;
	}
	return 0;
}

static void *
helper_main(void *arg)
{
	struct bulkwrite *w = arg;

	(void)pthread_setname_np(pthread_self(), "cumulus-bulk");
	pthread_mutex_lock(&w->lock);
	for (;;) {
		int rc;

		while (w->job < 0 && !w->stop)
			pthread_cond_wait(&w->cond, &w->lock);
		if (w->job < 0)
			break;
		pthread_mutex_unlock(&w->lock);
		rc = w->failed
		    ? 0
		    : write_out(w, w->bufs[w->job], w->job_len, w->job_off);
		pthread_mutex_lock(&w->lock);
		if (rc) {
			w->failed = true;
			snprintf(w->msg, sizeof(w->msg), "%s", err_msg());
		}
		w->job = -1;
		pthread_cond_broadcast(&w->cond);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* Wait until the helper is idle.  0, or -1 with error set if one of its
 * writes failed.  Called with the lock held. */
static int
wait_idle(struct bulkwrite *w)
{
	while (w->job >= 0)
		pthread_cond_wait(&w->cond, &w->lock);
	if (w->failed) {
		err_set("%s", w->msg);
		return -1;
	}
	return 0;
}

/* Write the filled buffer (${n} bytes) and switch to the other one. */
static int
submit(struct bulkwrite *w, size_t n)
{
	int rc = 0;

	if (!w->threaded) {
		rc = write_out(w, w->bufs[w->fill], n, w->base);
	} else {
		pthread_mutex_lock(&w->lock);
		rc = wait_idle(w);
		if (rc == 0) {
			w->job = w->fill;
			w->job_len = n;
			w->job_off = w->base;
			pthread_cond_broadcast(&w->cond);
		}
		pthread_mutex_unlock(&w->lock);
	}
	if (rc)
		return -1;
	w->fill ^= 1;
	w->base += n;
	w->len = 0;
	return 0;
}

struct bulkwrite *
bulkwrite_start(int fd, size_t bufsize, bool threaded)
{
	struct bulkwrite *w;
	int fl, e;

	if (bufsize == 0 || bufsize % BLOCK != 0) {
		err_set("bulkwrite: buffer size %zu is not a multiple of %d",
		    bufsize, BLOCK);
		return NULL;
	}
	if ((w = calloc(1, sizeof(*w))) == NULL) {
		err_set("out of memory");
		return NULL;
	}
	w->fd = fd;
	w->cap = bufsize;
	w->job = -1;
	w->threaded = threaded;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	for (int i = 0; i < 2; i++) {
		void *p = NULL;

		if (posix_memalign(&p, BLOCK, bufsize)) {
			err_set("out of memory");
			bulkwrite_free(w);
			return NULL;
		}
		w->bufs[i] = p;
	}
	/* Refused (no direct I/O on this filesystem): the page cache. */
	fl = fcntl(fd, F_GETFL);
	w->flags = fl;
	w->direct = fl >= 0 && fcntl(fd, F_SETFL, fl | O_DIRECT) == 0;
	if (threaded) {
		e = pthread_create(&w->th, NULL, helper_main, w);
		if (e) {
			/* Still correct without it, only slower. */
			w->threaded = false;
		} else {
			w->started = true;
		}
	}
	return w;
}

/*
 * Give the file its flags from before bulkwrite_start(): later reads and
 * writes through the caller's descriptor need no alignment.  Only while
 * no write is in flight.  0, or -1 with errno set.
 */
static int
restore_flags(struct bulkwrite *w)
{
	if (!w->direct)
		return 0;
	w->direct = false;
	return fcntl(w->fd, F_SETFL, w->flags) ? -1 : 0;
}

int
bulkwrite_add(struct bulkwrite *w, const void *p, size_t n)
{
	const unsigned char *c = p;
	uint64_t added = n;

	while (n > 0) {
		size_t k = w->cap - w->len;

		if (c == NULL && w->len == 0 && n >= w->cap) {
			/* A whole buffer of zeros: a hole, nothing to
			 * copy or write. */
			w->base += w->cap;
			n -= w->cap;
			continue;
		}
		if (k > n)
			k = n;
		if (c) {
			memcpy(w->bufs[w->fill] + w->len, c, k);
			c += k;
		} else {
			memset(w->bufs[w->fill] + w->len, 0, k);
		}
		w->len += k;
		n -= k;
		if (w->len == w->cap && submit(w, w->cap))
			return -1;
	}
	w->total += added;
	return 0;
}

int
bulkwrite_finish(struct bulkwrite *w)
{
	size_t n = w->len;
	int rc = 0;

	if (n % BLOCK) {
		size_t pad = BLOCK - n % BLOCK;

		memset(w->bufs[w->fill] + n, 0, pad);
		n += pad;
	}
	if (n > 0)
		rc = submit(w, n);
	if (rc == 0 && w->threaded) {
		pthread_mutex_lock(&w->lock);
		rc = wait_idle(w);
		pthread_mutex_unlock(&w->lock);
	}
	/* The helper is idle now, whatever happened. */
	if (restore_flags(w) && rc == 0) {
		err_setp("fcntl");
		rc = -1;
	}
	/* The padding, or a hole at the end. */
	if (rc == 0 && w->end != w->total
	    && ftruncate(w->fd, (off_t)w->total)) {
		err_setp("truncate");
		rc = -1;
	}
	return rc;
}

void
bulkwrite_free(struct bulkwrite *w)
{
	if (w == NULL)
		return;
	if (w->started) {
		pthread_mutex_lock(&w->lock);
		w->stop = true;
		pthread_cond_broadcast(&w->cond);
		pthread_mutex_unlock(&w->lock);
		pthread_join(w->th, NULL);
	}
	(void)restore_flags(w);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	free(w->bufs[0]);
	free(w->bufs[1]);
	free(w);
}

uint64_t
bulkwrite_size(const struct bulkwrite *w)
{
	return w->total;
}
