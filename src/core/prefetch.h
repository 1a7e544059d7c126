/*
 * prefetch: worker threads that read small files and hash them ahead of
 * the backup's main thread.
 *
 * Reading a file, its SHA-256 and its content-defined chunks are most of
 * an initial backup's work and need nothing but the file, so workers do
 * them while the main thread does what must stay in order (database,
 * segments, metadata log).  A job is one open file whose whole content is
 * expected to fit in ${size_hint} + 1 bytes; the result says whether it
 * did.  Jobs run in submission order, several at a time.
 */
#ifndef CUMULUS_PREFETCH_H
#define CUMULUS_PREFETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "hash.h"

struct prefetch;

/* A Gear chunk of the data (chunker.h), with its SHA-256 digest. */
struct prefetch_chunk {
	uint32_t offset, length;
	unsigned char digest[32];
};

struct prefetch_job {
	/* Set by the caller before prefetch_submit(). */
	/* An open regular file, read from its current offset with
	 * fileio_read_full().  Closed (and set to -1) once read to the end
	 * or on a read error; else left open for the caller. */
	int fd;
	size_t size_hint; /* the file's size when it was opened */
	struct timespec mtim, ctim; /* its times when it was opened */
	bool chunk; /* also cut the data into Gear chunks */

	/* Results, valid after prefetch_wait() returned 0. */
	unsigned char *data;
	size_t len;
	bool complete; /* data is the whole file: end of file was read */
	bool changed; /* complete, but its times moved while it was read */
	char
	    read_error[256]; /* "" or why reading failed (data is then empty) */
	char sum[HASH_STR_MAX]; /* "sha256=<hex>" of data */
	struct prefetch_chunk *chunks; /* when chunk and complete */
	size_t nchunks;

	/* Private. */
	struct prefetch_job *next;
	int state;
	char fail[256]; /* a failure of the job itself (out of memory) */
};

/* Start ${nthreads} (>= 1) workers.  0 or -1. */
int prefetch_create(int nthreads, struct prefetch **out);

/* Allocate ${job}'s buffers and queue it; it must stay in place until
 * prefetch_wait() or prefetch_destroy().  0, or -1 (out of memory: not
 * queued, nothing to release). */
int prefetch_submit(struct prefetch *p, struct prefetch_job *job);

/* Whether ${job} has finished (then prefetch_wait() does not block). */
bool prefetch_ready(struct prefetch *p, struct prefetch_job *job);

/* Wait for ${job}: one caller thread waits at a time, woken only when
 * that job ends.  0, or -1 if the job itself failed (error set). */
int prefetch_wait(struct prefetch *p, struct prefetch_job *job);

/* Free a job's results (not its fd).  The job must be finished. */
void prefetch_job_release(struct prefetch_job *job);

/* Drop the jobs not started, wait for the running ones, stop the workers.
 * Every submitted job is then finished or never will be; release them
 * all.  NULL-safe. */
void prefetch_destroy(struct prefetch *p);

#endif
