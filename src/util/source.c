/* source: pull-based byte streams (see source.h). */
#include "source.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "err.h"

ssize_t
source_read_full(struct source *s, void *p, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = s->read(s->ctx, (char *)p + got, n - got);

		if (r < 0)
			return -1;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

int
source_close(struct source *s)
{
	int rc = 0;

	if (s->close)
		rc = s->close(s->ctx);
	s->close = NULL;
	s->read = NULL;
	s->ctx = NULL;
	return rc;
}

static ssize_t
fd_read(void *ctx, void *p, size_t n)
{
	int fd = (int)(intptr_t)ctx;

	for (;;) {
		ssize_t r = read(fd, p, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			err_setp("read");
		return r;
	}
}

static int
fd_close(void *ctx)
{
	close((int)(intptr_t)ctx);
	return 0;
}

int
source_from_fd(struct source *s, int fd)
{
	s->read = fd_read;
	s->close = fd_close;
	s->ctx = (void *)(intptr_t)fd;
	return 0;
}
