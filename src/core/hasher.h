/*
 * hasher: a helper thread that hashes one block of a file while the
 * caller works on the block before it.
 *
 * A file too large for read-ahead (prefetch.h) is read in line by the
 * backup's main thread, one block at a time, and each block is hashed
 * twice: into the file's running SHA-256 and on its own (the block's
 * object checksum).  Neither needs anything but the bytes, so the main
 * thread hands block k + 1 to the helper and processes block k meanwhile.
 * One job at a time; the caller waits for it before the next.
 */
#ifndef CUMULUS_HASHER_H
#define CUMULUS_HASHER_H

#include <stddef.h>

#include "hash.h"

struct hasher;

/* Start the helper thread.  0 or -1 (error recorded). */
int hasher_create(struct hasher **out);

/* Stop the thread (after the job in progress, if any).  NULL-safe. */
void hasher_destroy(struct hasher *h);

/*
 * Start hashing ${p}[0, ${n}): update ${running} (may be NULL) with it
 * and put its own SHA-256 ("sha256=<hex>") in ${sum}.  ${p}, ${running}
 * and ${sum} belong to the helper until hasher_wait().  0, or -1 if the last
 * job was not waited for (error recorded).
 */
int hasher_start(struct hasher *h, const void *p, size_t n,
    struct hash *running, char sum[HASH_STR_MAX]);

/* Wait for the job started last.  0, or -1 (error recorded). */
int hasher_wait(struct hasher *h);

#endif
