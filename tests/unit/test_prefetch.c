/*
 * test_prefetch: the read-ahead workers (prefetch.h) read and hash every
 * job's file, whatever order the caller waits for them in: newest first,
 * oldest first, or each job as it comes.  A job's result is the whole
 * file with its SHA-256 and, when asked, its Gear chunks as one chunker in
 * line cuts them; a file longer than its size hint comes back incomplete
 * and still open where it stopped; a descriptor opened with O_NONBLOCK
 * whose read says EAGAIN (a pipe whose writer pauses) is read whole; an
 * unreadable descriptor is a read error of the job, not a failure.  A wait that
 * is never woken would hang: an alarm fails the test instead.
 */
#include <fcntl.h>
#include <pthread.h>
#include <time.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chunker.h"
#include "err.h"
#include "fileio.h"
#include "hash.h"
#include "prefetch.h"
#include "tap.h"
#include "task_stat.h"

#define NFILES 300
#define MAXLEN 70000

static char dir[] = "/tmp/cumulus-prefetch-XXXXXX";

static size_t
len_of(int i)
{
	/* Empty, tiny, and a few larger than the 16 KiB chunking bound. */
	return (size_t)((i * 7919) % MAXLEN) * (i % 5 == 0 ? 1 : 0)
	    + (size_t)(i % 97);
}

static void
fill(unsigned char *p, size_t n, int seed)
{
	uint32_t x = (uint32_t)seed * 2654435761u + 1;

	for (size_t k = 0; k < n; k++) {
		x = x * 1103515245u + 12345u;
		p[k] = (unsigned char)(x >> 16);
	}
}

static int
open_file(int i)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/f%d", dir, i);
	return open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
}

/* The chunks of ${p} as one chunker in line cuts them, compared with the
 * job's. */
static int
chunks_match(const unsigned char *p, size_t n, const struct prefetch_job *j)
{
	struct chunker ck;
	size_t pos = 0, i = 0;

	chunker_init(&ck, CHUNKER_GEAR);
	while (pos < n) {
		size_t k = 0;
		bool cut = false;
		unsigned char d[32];
		struct hash h;

		while (pos + k < n && !cut)
			k += chunker_scan(&ck, p + pos + k, n - pos - k, &cut);
		if (i >= j->nchunks || j->chunks[i].offset != pos
		    || j->chunks[i].length != k || hash_init(&h, HASH_SHA256))
			return 0;
		hash_update(&h, p + pos, k);
		if (hash_final_raw(&h, d) < 0
		    || memcmp(d, j->chunks[i].digest, 32) != 0)
			return 0;
		pos += k;
		i++;
	}
	return i == j->nchunks;
}

/* Submit every file, wait for them in ${order} (0: newest first, 1:
 * oldest first, 2: every job right after it is submitted), and check each
 * result.  The number of bad results. */
static int
run(struct prefetch *p, int order, unsigned char *data)
{
	static struct prefetch_job jobs[NFILES];
	int bad = 0;

	for (int i = 0; i < NFILES; i++) {
		memset(&jobs[i], 0, sizeof(jobs[i]));
		jobs[i].fd = open_file(i);
		jobs[i].size_hint = len_of(i);
		/* Small ones too, now and then: a file of one chunk (or
		 * none), whose hash and chunk digest share one pass. */
		jobs[i].chunk = len_of(i) >= 16384 || i % 3 == 0;
		if (jobs[i].fd < 0 || prefetch_submit(p, &jobs[i]))
			return -1;
		if (order == 2 && prefetch_wait(p, &jobs[i]))
			return -1;
	}
	for (int n = 0; n < NFILES; n++) {
		int i = order == 0 ? NFILES - 1 - n : n;
		struct prefetch_job *j = &jobs[i];
		char want[HASH_STR_MAX];
		size_t len = len_of(i);

		if (prefetch_wait(p, j))
			return -1;
		fill(data, len, i);
		if (hash_buffer(HASH_SHA256, data, len, want) || !j->complete
		    || j->len != len || j->fd != -1 || j->read_error[0]
		    || strcmp(j->sum, want) != 0
		    || (len && memcmp(j->data, data, len) != 0)
		    || (j->chunk && !chunks_match(data, len, j))) {
			printf("# file %d (%zu bytes): bad result\n", i, len);
			bad++;
		}
		prefetch_job_release(j);
	}
	return bad;
}

static void
on_alarm(int sig)
{
	(void)sig;
	printf("not ok - a wait was never woken\n");
	fflush(stdout);
	_exit(1);
}

int
main(void)
{
	unsigned char *data = malloc(MAXLEN + 200);
	struct prefetch *p = NULL;
	struct prefetch_job grown, broken;
	char path[128], cmd[200];
	FILE *f;
	int ok_files = 1;

	if (data == NULL || mkdtemp(dir) == NULL)
		return 1;
	/* A failed pipe job must fail a check, not kill the writer. */
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGALRM, on_alarm);
	alarm(60);
	for (int i = 0; i < NFILES && ok_files; i++) {
		size_t len = len_of(i);

		fill(data, len, i);
		snprintf(path, sizeof(path), "%s/f%d", dir, i);
		ok_files = (f = fopen(path, "wb")) != NULL
		    && fwrite(data, 1, len, f) == len && fclose(f) == 0;
	}
	ok(ok_files, "%d files written", NFILES);

	for (int nthreads = 1; nthreads <= 3; nthreads += 2) {
		ok(prefetch_create(nthreads, &p) == 0, "%d workers", nthreads);
		if (p == NULL)
			return tap_done();
		ok(run(p, 0, data) == 0,
		    "%d workers, waited for newest first: every result right",
		    nthreads);
		ok(run(p, 1, data) == 0,
		    "%d workers, waited for oldest first: every result right",
		    nthreads);
		ok(run(p, 2, data) == 0,
		    "%d workers, each waited for at once: every result right",
		    nthreads);
		prefetch_destroy(p);
		p = NULL;
	}

	/* A file longer than its size hint: incomplete, left open. */
	ok(prefetch_create(2, &p) == 0, "workers again");
	{
		int self_policy, nbatch = count_batch_wait(&self_policy, 2);

		ok(nbatch == 2 && self_policy == SCHED_OTHER,
		    "the two workers are batch threads (%d), this thread is "
		    "not (policy %d)",
		    nbatch, self_policy);
	}
	memset(&grown, 0, sizeof(grown));
	grown.fd = open_file(5); /* len_of(5) bytes */
	grown.size_hint = len_of(5) - 100;
	ok(grown.fd >= 0 && prefetch_submit(p, &grown) == 0
	        && prefetch_wait(p, &grown) == 0,
	    "a file longer than its hint: read");
	ok(!grown.complete && grown.len == grown.size_hint + 1 && grown.fd >= 0,
	    "it is incomplete (%zu bytes of %zu) and still open", grown.len,
	    len_of(5));
	ok(grown.fd >= 0
	        && fileio_read_full(grown.fd, data, MAXLEN)
	            == (ssize_t)(len_of(5) - grown.len),
	    "the caller reads the rest from where the job stopped");
	if (grown.fd >= 0)
		close(grown.fd);
	prefetch_job_release(&grown);

	/* O_NONBLOCK and a read that says EAGAIN (a pipe with half its data
	 * and its writer still open): an error, as for /proc/kmsg, never a
	 * wait that could last forever. */
	{
		int fds[2] = { -1, -1 };
		bool made = false;
		struct prefetch_job piped;

		memset(&piped, 0, sizeof(piped));
		fill(data, 2000, 7);
		made = pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0
		    && write(fds[1], data, 2000) == 2000;
		ok(made, "a pipe with 2000 bytes and its writer open");
		piped.fd = fds[0];
		piped.size_hint = 4000;
		ok(made && prefetch_submit(p, &piped) == 0
		        && prefetch_wait(p, &piped) == 0,
		    "read from it: the job ends");
		ok(strstr(piped.read_error, "would block") != NULL
		        && piped.fd == -1,
		    "with an error ('%s'), the descriptor closed",
		    piped.read_error);
		if (fds[1] >= 0)
			close(fds[1]);
		prefetch_job_release(&piped);
	}

	/* A descriptor that cannot be read: the job says why. */
	memset(&broken, 0, sizeof(broken));
	snprintf(path, sizeof(path), "%s/w", dir);
	broken.fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	broken.size_hint = 10;
	ok(broken.fd >= 0 && prefetch_submit(p, &broken) == 0
	        && prefetch_wait(p, &broken) == 0,
	    "a write-only descriptor: the job ends");
	ok(broken.read_error[0] != '\0' && broken.len == 0 && broken.fd == -1,
	    "with a read error (%s), no data, the descriptor closed",
	    broken.read_error);
	prefetch_job_release(&broken);
	prefetch_destroy(p);

	free(data);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return tap_done();
}
