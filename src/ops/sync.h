/*
 * sync: copy snapshots between stores (cumulus-sync).
 *
 * For each snapshot: every segment its descriptor lists, its .sha1sums
 * file, and then its descriptor, last, once every other file is stored
 * (remote: confirmed).  A file the destination already holds is skipped
 * when its size matches and, where a checksum can be computed cheaply
 * (the destination is a local directory), its SHA-1 matches the
 * .sha1sums entry or the source file; otherwise it is copied again.
 * Copies are checked against the .sha1sums entry as they stream, so a
 * damaged source segment is never copied.  Interrupted, a sync leaves no
 * descriptor whose segments are missing; run again, it copies the rest.
 * Nothing is deleted at the destination.
 */
#ifndef CUMULUS_SYNC_H
#define CUMULUS_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

struct sync_stats {
	uint64_t snapshots;
	uint64_t required; /* files the snapshots need */
	uint64_t present;  /* already at the destination, verified */
	uint64_t copied; /* stored, confirmed by the destination */
	uint64_t bytes_copied;
};

/* How the copy reports progress, and how it decides what DST has. */
struct sync_callbacks {
	/* A file about to be copied (store-relative path). */
	void (*copying)(void *arg, const char *path, uint64_t size);
	void *arg;
	/*
	 * A file of the right size at a remote DST counts as present without
	 * reading it back.  Off by default: then a remote file of the right
	 * size is downloaded and its sha1 compared, like a local one.
	 */
	bool size_only;
};

/*
 * Copy ${n} snapshots ${names} (NULL: every snapshot of ${src}) from
 * ${src} to ${dst}.  0, or -1 (error recorded; what was completed stays).
 */
int sync_snapshots(struct store *src, struct store *dst,
    const char *const *names, size_t n, const struct sync_callbacks *cb,
    struct sync_stats *stats);

#endif
