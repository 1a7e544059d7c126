/*
 * segment: packs objects into segments and hands finished segments to the
 * store.
 *
 * A segment is a tar stream of objects "<uuid>/<seq>" (format/tar.h),
 * compressed in the process with zstd (extension ".zst", the default) or
 * piped through a user filter ("/bin/sh -c CMD").  Objects of different
 * groups ("metadata", "data", "compacted-N") never share a segment.  A
 * segment is closed when its estimated stored size reaches the target; it
 * is then durable in the store (temp file, fsync, link, directory fsync)
 * before the close callback reports it, so anything the caller records
 * about it describes data the store really holds.
 *
 * zstd runs with worker threads, so compression overlaps the caller's
 * reading and hashing.
 */
#ifndef CUMULUS_SEGMENT_H
#define CUMULUS_SEGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "hash.h"

struct store;
struct segment_writer;

#define SEGMENT_UUID_LEN 36
#define SEGMENT_DEFAULT_TARGET ((uint64_t)4 << 20)

struct segment_config {
	const char *filter;    /* NULL: in-process zstd */
	const char *extension; /* after ".tar"; NULL: ".zst" (or ".bz2"...) */
	uint64_t target_size;  /* stored bytes; 0: SEGMENT_DEFAULT_TARGET */
	int zstd_level;        /* 0: 3 */
	int threads;           /* zstd workers per open segment; <= 1: none */
};

/* What a closed (durably stored) segment is. */
struct segment_info {
	char uuid[SEGMENT_UUID_LEN + 1];
	const char *name;  /* store file name "<uuid>.tar<ext>" */
	const char *group;
	uint64_t objects;
	uint64_t data_size; /* sum of object sizes */
	uint64_t disk_size; /* stored file size */
	/* sha1 of the stored file: what .sha1sums lists, "sha1sum -c"
	 * checks, and the local database records (as the original 0.9). */
	char sha1[HASH_STR_MAX];
};

/* Called once per durably stored segment; non-zero fails the writer. */
typedef int segment_closed_fn(void *arg, const struct segment_info *info);

/* Start a writer over ${st} (borrowed).  0 or -1 (error recorded). */
int segment_writer_open(struct store *st, const struct segment_config *cfg,
    segment_closed_fn *cb, void *arg, struct segment_writer **out);
/*
 * Append an object of ${len} bytes to the open segment of ${group},
 * opening one if needed, and return its name in ${uuid} and ${seq}.  The
 * segment may be closed (and reported) afterwards.  0 or -1.
 */
int segment_add(struct segment_writer *w, const char *group, const void *data,
    size_t len, char uuid[SEGMENT_UUID_LEN + 1], uint64_t *seq);
/* Close every open segment.  0 or -1. */
int segment_writer_finish(struct segment_writer *w);
/* Abandon open segments (their temp files are removed) and free. */
void segment_writer_free(struct segment_writer *w);
/* Stored and uncompressed bytes written so far per group, for the
 * summary: calls ${fn} once per group seen. */
void segment_writer_stats(const struct segment_writer *w,
    void (*fn)(void *arg, const char *group, uint64_t raw, uint64_t stored),
    void *arg);

#endif
