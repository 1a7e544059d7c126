/*
 * lease: how a backup and garbage collection running at the same time on
 * one store stay out of each other's way, through small files in the
 * store ("leases/<kind>-<uuid>", format.md), so that it works without a
 * shared local database and on every backend that can list.
 *
 * The race: gc decides from the descriptors which segments are garbage; a
 * backup that is running has no descriptor yet, and may be reusing objects
 * of an old segment that no remaining snapshot references (after a
 * forget).  The protocol (both sides write their lease, then look for the
 * other's):
 *
 *   backup: take "backup" lease; wait while a fresh "gc" lease exists;
 *           if it waited, or "leases/last-gc" changed since this database
 *           last looked, list the store's segments and never reuse
 *           objects of one that is absent; ...; check own lease;
 *           descriptor; release.
 *   gc:     take "gc" lease; read descriptors; if a fresh "backup" lease
 *           exists, delete nothing; else write "leases/last-gc", delete;
 *           release.
 *
 * If the backup's lease was written before gc looked for leases, gc sees
 * it and deletes nothing.  Otherwise gc wrote its lease before the backup
 * looked: either the backup sees that lease and waits until gc has
 * finished deleting, or gc had already finished, and wrote last-gc
 * before deleting; in both cases the backup then lists what is really
 * there, so a gc run without this backup's database is harmless too.
 * Stores answer in order (local files; S3's read-after-write
 * consistency).  Without a gc, the store is not listed: segments that are
 * out of reach otherwise (moved away) are still reused.
 *
 * A lease carries the time it was last refreshed; one older than
 * LEASE_TTL belongs to a process that died and is ignored (gc deletes
 * it).  So is one written on this node (same boot and pid namespace)
 * by a process that no longer exists.  A backup refreshes its lease every LEASE_REFRESH seconds and
 * refuses to publish its descriptor when its last refresh is older than
 * LEASE_TTL (it may have been stopped for that long).  The clocks of the
 * hosts must agree to well within LEASE_TTL.
 */
#ifndef CUMULUS_LEASE_H
#define CUMULUS_LEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct store;
struct lease;

#define LEASE_DIR "leases"
#define LEASE_TTL 3600      /* seconds without refresh: dead */
#define LEASE_REFRESH 300   /* seconds between refreshes */
#define LEASE_GC_WAIT 900   /* how long a backup waits for a gc */

/* Whether ${st} takes part (it can list; the write-only upload-script
 * store cannot). */
bool lease_supported(const struct store *st);

/* Write a new lease of ${kind} ("backup" or "gc") in ${st}.  *out is
 * NULL (and 0 returned) when the store does not take part.  0 or -1. */
int lease_take(struct store *st, const char *kind, struct lease **out);
/* Rewrite the lease if its last refresh is LEASE_REFRESH old (cheap
 * otherwise).  A failure is remembered, not fatal: lease_check() decides.
 * NULL-safe. */
void lease_refresh(struct lease *l);
/* 0 if the lease is still valid: refreshed less than LEASE_TTL ago and
 * still in the store; else -1 with the reason recorded.  NULL-safe. */
int lease_check(struct lease *l);
/* Delete the lease from the store (best effort) and free it. */
void lease_release(struct lease *l);

/* What lease_scan() found. */
struct lease_scan {
	unsigned fresh;      /* leases of the kind, not stale */
	unsigned stale;      /* older than LEASE_TTL, or its process is
				known dead (deleted if asked) */
	char first[256];     /* name of the first fresh one */
	int64_t first_age;   /* seconds since its refresh */
};

/*
 * Look at the leases of ${kind} other than ${self} (may be NULL).  A
 * lease that cannot be read or parsed counts as fresh.  With
 * ${delete_stale}, stale leases are deleted.  0 or -1.
 */
int lease_scan(struct store *st, const char *kind, const struct lease *self,
    bool delete_stale, struct lease_scan *out);
/*
 * Wait (polling once a second) until no fresh lease of ${kind} exists,
 * at most ${max_wait} seconds; then fail naming the lease.  *${waited}
 * tells whether there was one.  0 or -1.
 */
int lease_wait(struct store *st, const char *kind, int64_t max_wait,
    bool *waited);

/* Name of the record a deleting gc leaves (LEASE_DIR/last-gc). */
#define LEASE_LAST_GC "last-gc"
/* Write that record (a unique text).  0 or -1. */
int lease_mark_gc(struct store *st);
/* Its text into ${out} (at most ${size} - 1 bytes; "" when absent).
 * 0 or -1. */
int lease_last_gc(struct store *st, char *out, size_t size);

#endif
