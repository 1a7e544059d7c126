/*
 * source: a pull-based byte stream (a file, a decompressor, a filter's
 * output).  Readers of store data are written against this interface so
 * that decoding stays streaming and memory stays bounded.
 */
#ifndef CUMULUS_SOURCE_H
#define CUMULUS_SOURCE_H

#include <stddef.h>
#include <sys/types.h>

struct source {
	/* Read up to n bytes; count (0 at end), or -1 (error recorded). */
	ssize_t (*read)(void *ctx, void *p, size_t n);
	/* Release; returns 0, or -1 if the stream ended badly (a filter's
	 * non-zero exit, say; error recorded).  May be NULL. */
	int (*close)(void *ctx);
	void *ctx;
};

/* Read exactly n bytes unless EOF comes first.  Count or -1. */
ssize_t source_read_full(struct source *s, void *p, size_t n);
/* Close and release ${s}; returns what its close returned. */
int source_close(struct source *s);
/* A source over a file descriptor, taking ownership of ${fd}. */
int source_from_fd(struct source *s, int fd);

#endif
