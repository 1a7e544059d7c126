/*
 * rebuild: a new local database from the store alone (reference 6.6,
 * done properly).  Only descriptors and metadata objects are read, never
 * file data segments.
 *
 * Every snapshot of the store, oldest first, becomes a snapshots row with
 * its segment_utilization; every object its metadata references becomes
 * a block_index row.  Data objects carry no checksum in our references,
 * so a block's checksum is known only when a file is exactly one whole
 * object (then it is the file's checksum); other blocks are recorded
 * without one: never found by content, but "available", so the statcache
 * can reuse them.  The statcache of each scheme is regenerated from the
 * newest snapshot of that scheme (the stanza text and where it lives are
 * both in the metadata log), so the next backup of an unchanged tree
 * reads no file whose stat data is unchanged and stores no file data.
 */
#ifndef CUMULUS_REBUILD_H
#define CUMULUS_REBUILD_H

#include <stdint.h>

struct store;
struct localdb;

struct rebuild_stats {
	uint64_t snapshots;
	uint64_t segments;
	uint64_t objects;            /* block_index rows */
	uint64_t checksums;          /* of which with a checksum */
	uint64_t statcache_entries;
	unsigned warnings;           /* snapshots skipped */
};

/*
 * Fill the empty database ${db} (directory ${dbdir}, for the statcache
 * files) from ${st}.  A snapshot that cannot be read is skipped with a
 * warning.  0 or -1 (then the database is left empty).
 */
int rebuild_db(struct store *st, struct localdb *db, const char *dbdir,
    void (*warn)(void *arg, const char *msg), void *arg,
    struct rebuild_stats *stats);

#endif
