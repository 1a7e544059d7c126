/*
 * hasher: a helper thread that hashes, and cuts into chunks, one block of
 * a file while the caller works on the block before it.
 *
 * A file too large for read-ahead (prefetch.h) is read in line by the
 * backup's main thread, one block at a time.  Each block is hashed into
 * the file's running SHA-256 and on its own (the block's object
 * checksum), and, when it is new, cut into Gear chunks, each hashed too.
 * None of that needs anything but the bytes, so the main thread hands
 * block k + 1 to the helper and processes block k meanwhile.  One job at
 * a time, shared by two threads (the hashes of the block, and its
 * chunks); the caller waits for it before the next.
 *
 * Chunk boundaries depend on every byte since the file's start (or since
 * the caller last restarted its chunker): the helper keeps its own Gear
 * chunker across the jobs of a file and records the state it cut each
 * block from.  The caller uses the cuts only if its own chunker is in
 * that state when it reaches the block, and chunks in line otherwise.
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
	 * block if none), computed for a short block: the file's last. */
	bool tail_valid;
	unsigned char tail_digest[32];
};

/* A block to hash. */
struct hasher_job {
	const unsigned char *p;
	size_t n;
	struct hash *running; /* updated with the block, or NULL */
	char *sum; /* gets its SHA-256, "sha256=<hex>" */
	/* Cut it into Gear chunks too, if not NULL. */
	struct hasher_cuts *cuts;
	/* The file's block before it (readable until hasher_wait()); and
	 * whether that is the file's first block, which the helper then
	 * scans from a fresh chunker.  Otherwise the helper starts where its
	 * last job for the file ended. */
	const unsigned char *prev;
	size_t prev_n;
	bool prev_first;
};

/* Start the helper threads.  0 or -1 (error recorded). */
int hasher_create(struct hasher **out);

/* Stop the threads (after the job in progress, if any).  NULL-safe. */
void hasher_destroy(struct hasher *h);

/*
 * Start ${job}: the buffers it points to belong to the helper until
 * hasher_wait() (the previous block only for reading).  0, or -1 if the
 * last job was not waited for (error recorded).
 */
int hasher_start(struct hasher *h, const struct hasher_job *job);

/* Wait for the job started last.  0, or -1 (error recorded). */
int hasher_wait(struct hasher *h);

#endif
