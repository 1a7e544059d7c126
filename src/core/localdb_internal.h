/*
 * localdb_internal: the database handle, shared by localdb.c (backups) and
 * localdb_space.c (cleaning, pruning, rebuilding).  Not part of the
 * public interface: only those two files include it, and only they may
 * use sqlite3 directly.
 */
#ifndef CUMULUS_LOCALDB_INTERNAL_H
#define CUMULUS_LOCALDB_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <sqlite3.h>

#include "ref.h"

/* Cached statements, prepared on first use and reset after each use. */
enum st {
	ST_SEG_ID,
	ST_SEG_INSERT,
	ST_SEG_UPDATE,
	ST_FIND,
	ST_FIND_M,
	ST_OLD,
	ST_BLOCK_INSERT,
	ST_BLOCK_SIZE,
	ST_SEGREF_PUT,
	ST_SEG_OBJECTS,
	ST_SEG_MISSING,
	ST_UNKNOWN_PUT,
	ST_SNAP_INSERT,
	ST_SEGLIST,
	ST_UTIL,
	ST_ALG,
	ST_SIG_GET,
	ST_SIG_PUT,
	ST_CHUNK_FIND,
	ST_CHUNK_FIND_M,
	ST_CHUNK_ADD,
	ST_BLOCK_ID,
	ST_AVAIL_SIZE,
	ST_AVAIL_SIZE_M,
	ST_COUNT
};

/* localdb_space.c's cached statements (rebuilding runs them per object). */
enum sp_st {
	SP_SEG_INSERT,
	SP_SEG_ID,
	SP_BLOCK_GET,
	SP_BLOCK_INSERT,
	SP_BLOCK_FILL,
	SP_COUNT
};

struct localdb {
	sqlite3 *h;
	char *dir;
	bool in_tx;           /* a backup transaction is open */
	bool has_missing;     /* table missing_segments exists */
	bool has_chunks;      /* chunk_index ensured (localdb_add_chunks) */
	int64_t snapshotid;
	/* last segment name -> id, valid only inside the backup transaction */
	bool seg_cached;
	int64_t seg_cache_id;
	char seg_cache[REF_SEGMENT_MAX + 1];
	/*
	 * The objects the running backup references, in memory: for each,
	 * the bytes referenced so far (the original's snapshot_refs) and
	 * what block_index said of it (size, usable).  Unchanged files
	 * re-reference their objects without touching SQLite; the per-segment
	 * sums reach the temp table snapshot_segrefs in localdb_ref_flush().
	 */
	struct localdb_objref *refs;
	size_t refs_len, refs_cap;  /* cap: 0 or a power of two */
	/* Segments whose usable objects are all in refs (sorted ids). */
	int64_t *loaded;
	size_t nloaded, loaded_cap;
	size_t last_loaded;         /* index of the segment last asked for */
	sqlite3_stmt *st[ST_COUNT];
	sqlite3_stmt *sp[SP_COUNT];  /* finalized by localdb_close() too */
};

/* Record an SQLite error of ${db} (localdb.c); a damaged database gets the
 * rebuild hint. */
void localdb_err(struct localdb *db, const char *what, const char *msg);
/* localdb_err() with SQLite's message for the handle; returns -1. */
int localdb_dberr(struct localdb *db, const char *what);
/* Run ${sql} (no results); 0, or -1 with ${what} in the error. */
int localdb_exec(struct localdb *db, const char *sql, const char *what);
/* Write the per-segment sums of the references counted so far into the
 * temp table snapshot_segrefs(segmentid, size) before it is read.  0 or -1. */
int localdb_ref_flush(struct localdb *db);
/* Forget the references counted (a new snapshot's accounting starts). */
void localdb_refs_reset(struct localdb *db);

#endif
