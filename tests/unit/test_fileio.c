/*
 * test_fileio: complete reads and writes (fileio.h).  fileio_read_full()
 * returns every byte asked for, fewer only at end of file, whether the
 * descriptor is a regular file or a pipe whose writer pauses; a
 * descriptor with O_NONBLOCK that says EAGAIN is made blocking, while a
 * regular file keeps its flags (it never says EAGAIN).
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "fileio.h"
#include "tap.h"

#define LEN 5000

static unsigned char pattern[LEN];

/* Write the first 1000 bytes of the pattern, wait until the reader has
 * made the pipe blocking (so it must have seen EAGAIN, whatever the
 * scheduling: a fixed pause let a late reader find all the data and end of
 * file), then the rest, and close.  ${arg}: the pipe's two descriptors. */
static void *
slow_writer(void *arg)
{
	const int *fds = arg;
	struct timespec pause = { 0, 1000 * 1000 };
	bool ok_w = fileio_write_full(fds[1], pattern, 1000) == 0;

	for (int ms = 0; ms < 10000; ms++) {
		int fl = fcntl(fds[0], F_GETFL);

		if (fl < 0 || (fl & O_NONBLOCK) == 0)
			break;
		nanosleep(&pause, NULL);
	}
	ok_w = ok_w
	    && fileio_write_full(fds[1], pattern + 1000, LEN - 1000) == 0;
	close(fds[1]);
	return ok_w ? arg : NULL;
}

int
main(void)
{
	char path[] = "/tmp/cumulus-fileio-XXXXXX";
	unsigned char got[LEN + 100];
	int fds[2] = { -1, -1 }, fd;
	pthread_t t;
	void *res = NULL;
	bool started;
	ssize_t n;

	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (size_t i = 0; i < LEN; i++)
		pattern[i] = (unsigned char)(i * 131 + 7);

	/* A regular file, opened as the backup opens files. */
	fd = mkstemp(path);
	ok(fd >= 0 && fileio_write_full(fd, pattern, LEN) == 0
	        && close(fd) == 0,
	    "a file of %d bytes written", LEN);
	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	n = fd >= 0 ? fileio_read_full(fd, got, sizeof(got)) : -1;
	ok(n == LEN && memcmp(got, pattern, LEN) == 0,
	    "read whole, short only at end of file (%zd bytes)", n);
	ok(fd >= 0 && (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0,
	    "a regular file keeps O_NONBLOCK: it never says EAGAIN");
	ok(fd >= 0 && fileio_pread_full(fd, got, 100, LEN - 50) == 50
	        && memcmp(got, pattern + LEN - 50, 50) == 0,
	    "pread from an offset, short at end of file");
	if (fd >= 0)
		close(fd);
	unlink(path);

	/* A pipe with O_NONBLOCK whose writer pauses. */
	started = pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0
	    && pthread_create(&t, NULL, slow_writer, fds) == 0;
	ok(started, "a pipe whose writer pauses after 1000 bytes");
	n = started ? fileio_read_full(fds[0], got, sizeof(got)) : -1;
	if (started)
		pthread_join(t, &res);
	ok(res != NULL && n == LEN && memcmp(got, pattern, LEN) == 0,
	    "read whole across the pause (%zd bytes%s%s)", n, n < 0 ? ": " : "",
	    n < 0 ? err_msg() : "");
	ok(started && (fcntl(fds[0], F_GETFL) & O_NONBLOCK) == 0,
	    "the pipe was made blocking when it said EAGAIN");
	if (fds[0] >= 0)
		close(fds[0]);
	return tap_done();
}
