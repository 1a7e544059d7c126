/*
 * hasher: helper threads that hash, and cut into chunks, the blocks of a
 * file while the caller reads the next block and stores the one before.
 *
 * A file too large for read-ahead (prefetch.h) is read in line by the
 * backup's main thread, one block at a time.  Each block is hashed into
 * the file's running SHA-256 and on its own (the block's object
 * checksum, when the caller may look it up whole), and, when it is new,
 * cut into Gear chunks, each hashed too.
 * None of that needs anything but the bytes, so the main thread hands
 * every block to the helper as soon as it is read, and stores a block
 * once its job is done.  Up to HASHER_DEPTH jobs wait in order, so the
 * helper goes on to block k + 1 while the caller stores block k: two
 * threads, one for the hashes of each block, one for its chunks.
 *
 * Chunk boundaries depend on every byte since the file's start (or since
 * the caller last restarted its chunker): the helper keeps its own Gear
 * chunker, and the hash of the chunk in progress, from one job of a file
 * to the next, and records the state it cut each block from.  The
 * caller uses the cuts only if its own chunker is in that state when it
 * reaches the block, and chunks in line otherwise.
 */
#ifndef CUMULUS_HASHER_H
#define CUMULUS_HASHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunker.h"
#include "hash.h"

struct hasher;

/* One Gear chunk that ends in a block cut ahead. */
struct hasher_chunk {
	uint32_t end; /* offset in the block just after it */
	unsigned char digest[32]; /* SHA-256 of the whole chunk */
};

/*
 * A block's chunks.  The first one starts start.len bytes before the
 * block, at the end of the block before it (which the caller holds as a
 * partial chunk); the others start where the one before ends.
 */
struct hasher_cuts {
	bool valid; /* false: cut nothing (chunk in line) */
	struct chunker start; /* the chunker's state at the block's start */
	struct chunker end; /* and at its end */
	size_t n; /* chunks ending in the block */
	struct hasher_chunk *chunk; /* n of them; room for cap */
	size_t cap; /* at least block / CHUNKER_GEAR_MIN + 1 */
	/* Digest of the bytes after the last cut (with those before the
	 * block if none), computed for the file's last block (job.last). */
	bool tail_valid;
	unsigned char tail_digest[32];
};

/* Jobs started and not yet waited for, at most. */
#define HASHER_DEPTH 2

/* A block to hash. */
struct hasher_job {
	const unsigned char *p;
	size_t n;
	struct hash *running; /* updated with the block, or NULL */
	char *sum; /* gets its SHA-256, "sha256=<hex>", or NULL: not wanted */
	/* Cut it into Gear chunks too, if not NULL: from a fresh chunker if
	 * first (the file's first block), else continuing the job started
	 * just before, which must have cut too (otherwise this one cuts
	 * nothing).  last: the file ends with this block, so the chunk in
	 * progress at its end is the file's last (tail_digest). */
	struct hasher_cuts *cuts;
	bool first;
	bool last;
};

/* Start the helper threads.  0 or -1 (error recorded). */
int hasher_create(struct hasher **out);

/* Stop the threads (after the jobs started, if any).  NULL-safe. */
void hasher_destroy(struct hasher *h);

/*
 * Queue ${job}: the buffers it points to belong to the helper until it
 * is waited for.  Jobs are done in the order started.  0, or -1 if
 * HASHER_DEPTH jobs wait already (error recorded).
 */
int hasher_start(struct hasher *h, const struct hasher_job *job);

/* Wait for the oldest job not waited for (at once if none).  0, or -1
 * (error recorded) if that job failed. */
int hasher_wait(struct hasher *h);

/* Wait for every job started, dropping their errors: the error recorded
 * before, if any, stays.  NULL-safe. */
void hasher_drain(struct hasher *h);

#endif
