/*
 * localdb_space: the local database's space management (reference 3.5-3.8):
 * pruning it to what the store still holds, choosing segments to clean,
 * checking it, and rebuilding it from the store.
 *
 * Same handle and conventions as localdb.h: 0 (or a count) on success,
 * -1 with the error recorded.  Nothing here runs inside a backup: every
 * function that writes takes the write lock (BEGIN IMMEDIATE) itself, so
 * it waits for a running backup (busy timeout), then fails.
 */
#ifndef CUMULUS_LOCALDB_SPACE_H
#define CUMULUS_LOCALDB_SPACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct localdb;

/* What localdb_prune() did (or, with dry_run, would do). */
struct localdb_prune_stats {
	uint64_t snapshots_dropped;  /* snapshots rows the store lacks */
	uint64_t segments_missing;   /* segments newly marked missing */
	uint64_t segments_dropped;   /* segments rows no snapshot uses */
	uint64_t blocks_dropped;     /* block_index rows removed */
};

/*
 * Make the database agree with the store.  ${snapshots} are the names of
 * the store's snapshots (as listed, "scheme-YYYYmmddTHHMMSS" or the bare
 * timestamp), ${segments} the UUIDs of the store's segment files; both
 * sorted by strcmp.  Snapshots rows whose name is not in the store are
 * deleted; every segment with rows in block_index that is not in the store
 * is marked missing (so no backup reuses its objects); then the database is
 * garbage-collected as the original's HEAD does (utilization rows of
 * deleted snapshots, segments without utilization rows and their objects,
 * orphan signatures).  ${cb}, if not NULL, is called once per change with
 * a line of text.  With ${dry_run} everything is rolled back.  0 or -1.
 */
int localdb_prune(struct localdb *db, char *const *snapshots, size_t nsnap,
    char *const *segments, size_t nseg, bool dry_run,
    void (*cb)(void *arg, const char *msg), void *arg,
    struct localdb_prune_stats *stats);

/*
 * Mark ${segment} missing inside a write transaction that stays open
 * until localdb_space_commit() or localdb_space_rollback(): garbage
 * collection holds it while deleting, so a backup on this database cannot
 * pick objects from a segment being deleted.  localdb_space_begin()
 * starts the transaction.  0 or -1.
 */
int localdb_space_begin(struct localdb *db);
int localdb_space_mark_missing(struct localdb *db, const char *segment);
int localdb_space_commit(struct localdb *db);
void localdb_space_rollback(struct localdb *db);

/* Default benefit threshold of cleaning (reference 3.5, step 3). */
#define LOCALDB_CLEAN_THRESHOLD 7.0

/* One segment chosen by localdb_clean(). */
struct localdb_clean_segment {
	char segment[64];
	char type[32];       /* group, "" if unknown */
	double utilization;  /* 0..1 */
	double age;          /* days */
	double benefit;
	uint64_t data_size;  /* object bytes */
	uint64_t disk_size;  /* stored bytes (0 if unknown) */
	uint64_t live_bytes; /* max bytes referenced by a kept snapshot */
};

struct localdb_clean_report {
	uint64_t segments;     /* segments expired now */
	uint64_t rewrite;      /* live bytes a future backup rewrites */
	uint64_t reclaimable;  /* stored bytes of those segments */
	double cutoffs[16];    /* age bucket cutoffs (days), ascending */
	size_t ncutoffs;
	unsigned buckets;      /* highest repack group assigned */
};

/*
 * The 0.9 cleaner on the 0.11 schema.  For every segment with at least one
 * unexpired object, that some snapshot in the database references and
 * that is not missing: utilization u = max(bytes_referenced over the
 * database's snapshots) / data_size (data_size NULL or 0: the sum of its
 * objects' sizes; still 0: skipped), clamped to [0, 1]; age = days since
 * segments.timestamp (NULL or future: 0); benefit = (1 - u) * age /
 * (u + 0.1).  Metadata segments are ranked like data segments.  In
 * descending benefit, segments above ${threshold} have all their objects
 * expired; ${cb} sees each.  Then every expired object gets a repack group
 * by the age-bucket balancing of reference 3.5 step 4 (group k is written
 * to segments "compacted-k"; 0 goes with new data).  With ${dry_run}
 * everything is rolled back.  0 or -1.
 */
int localdb_clean(struct localdb *db, double threshold, bool dry_run,
    void (*cb)(void *arg, const struct localdb_clean_segment *seg),
    void *arg, struct localdb_clean_report *report);

/*
 * PRAGMA integrity_check plus consistency checks (objects of unknown
 * segments, utilization rows of unknown snapshots or segments, bytes
 * referenced beyond the segment's size, missing schema version).  ${cb}
 * gets one line per problem.  The number of problems (0: healthy), or -1
 * when the checks could not run (the database is unreadable).
 */
int localdb_check(struct localdb *db,
    void (*cb)(void *arg, const char *msg), void *arg);

/*
 * Rebuilding from the store (localdb_rebuild_* run inside one transaction
 * from localdb_rebuild_begin() to localdb_rebuild_commit(); the database
 * must be new and empty).  A snapshot is replayed with
 * localdb_begin_snapshot()-like accounting: localdb_rebuild_snapshot()
 * inserts its row (${julian} its time), localdb_rebuild_object() records
 * one referenced object and accounts the reference, and
 * localdb_rebuild_snapshot_end() writes its segment_utilization rows.
 */
int localdb_rebuild_begin(struct localdb *db);
int localdb_rebuild_snapshot(struct localdb *db, const char *name,
    const char *scheme, double julian);
/*
 * Object ${seq} of ${segment}, ${size} bytes (whole object;
 * LOCALDB_SIZE_UNKNOWN when the reference does not say), with content
 * ${checksum} (NULL when unknown: the object is then available to the
 * statcache but never found by content).  A known checksum fills in a
 * NULL one of an existing row.  ${whole}: the reference covers the whole
 * object, else ${length} bytes at ${start}.  0 or -1.
 */
int localdb_rebuild_object(struct localdb *db, const char *segment,
    uint64_t seq, const char *checksum, uint64_t size, uint64_t start,
    uint64_t length, bool whole);
int localdb_rebuild_snapshot_end(struct localdb *db);
/* The segments row: store ${path}, stored size, group ${type} (may be
 * NULL), time ${julian} (the first call's wins).  0 or -1. */
int localdb_rebuild_segment(struct localdb *db, const char *segment,
    const char *path, uint64_t disk_size, const char *type, double julian);
/* Derive segment sizes and object ages, then COMMIT.  0 or -1. */
int localdb_rebuild_commit(struct localdb *db);

#endif
