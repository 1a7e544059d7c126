/*
 * gc: garbage collection of a store (reference 3.8).
 *
 * The referenced set is the union of the Segments lists of every
 * descriptor in the store (our writer lists every segment a snapshot
 * reaches); data segments are never read.  Deleted, in the store's
 * segment directories and its root: segment files "<uuid>.tar*" whose UUID
 * no descriptor lists, .sha1sums and .meta files of snapshots without a
 * descriptor, and ".tmp.*" files.  Nothing younger than ${min_age} seconds
 * (file mtime) is deleted: a backup running meanwhile publishes its
 * segments and .sha1sums before its descriptor, and they must survive.
 * If any descriptor cannot be read, nothing is deleted.
 *
 * A backup running on the store meanwhile (on any host, with any
 * database) is seen through the lease protocol of lease.h: gc takes a
 * "gc" lease, and if a fresh "backup" lease exists it deletes nothing
 * (that backup may be reusing an old segment no descriptor lists yet);
 * ${force} ignores backup leases.  Stale leases (LEASE_TTL) are deleted.
 *
 * With a local database (${db}), gc first marks every segment it is about
 * to delete missing there and commits (under the database's write lock, so
 * it waits for a backup running on that database): no later backup reuses
 * objects of a deleted segment.
 */
#ifndef CUMULUS_GC_H
#define CUMULUS_GC_H

#include <stdbool.h>
#include <stdint.h>

struct store;
struct localdb;

struct gc_options {
	bool dry_run;
	bool force;         /* ignore the leases of running backups */
	int64_t min_age;    /* seconds */
	struct localdb *db; /* may be NULL */
	/* Each file deleted (or, dry run, to delete): ${why} is "segment",
	 * "side file" or "temp file". */
	void (*deleted)(void *arg, const char *path, uint64_t size,
	    const char *why);
	/* A referenced segment absent from the store (snapshot, uuid). */
	void (*missing)(void *arg, const char *snapshot, const char *uuid);
	/* A garbage file kept because it is younger than min_age. */
	void (*young)(void *arg, const char *path);
	/* Nothing deleted: ${n} running backups, the first holding lease
	 * ${lease}, refreshed ${age} seconds ago. */
	void (*busy)(void *arg, const char *lease, int64_t age, unsigned n);
	void *arg;
};

struct gc_stats {
	uint64_t snapshots;        /* descriptors read */
	uint64_t referenced;       /* distinct segments referenced */
	uint64_t deleted;          /* files deleted */
	uint64_t reclaimed;        /* their bytes */
	uint64_t young;            /* garbage kept for min_age */
	uint64_t missing;          /* referenced segments not in the store */
	uint64_t busy;             /* fresh backup leases: nothing deleted */
	uint64_t stale_leases;     /* leases of dead processes (deleted) */
};

/* Run (or with dry_run, plan) a collection.  0 or -1; missing segments
 * are reported through the callback and counted, not an error. */
int gc_run(struct store *st, const struct gc_options *o,
    struct gc_stats *stats);

#endif
