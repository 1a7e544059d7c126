/*
 * localdb_internal: the database handle, shared by localdb.c (backups),
 * localdb_stage.c (a backup's new rows, batched), localdb_space.c
 * (cleaning, pruning, rebuilding) and localdb_scrub.c.  Not part of the
 * public interface: only those files include it, and only they may use
 * sqlite3 directly.
 */
#ifndef CUMULUS_LOCALDB_INTERNAL_H
#define CUMULUS_LOCALDB_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
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
	ST_ANY_SIZE,
	ST_SIG_GET,
	ST_SIG_GET_ID,
	ST_SIG_PUT_ID,
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
	bool background;      /* a writer thread for the stage's batches */
	int64_t snapshotid;
	/* last segment name -> id (localdb_space.c) */
	bool seg_cached;
	int64_t seg_cache_id;
	char seg_cache[REF_SEGMENT_MAX + 1];
	/* Segment name -> id during a backup (localdb.c): a direct-mapped
	 * cache, since references alternate between segments.  id 0: empty;
	 * emptied when a backup begins or ends. */
	struct {
		int64_t id;
		char name[REF_SEGMENT_MAX + 1];
	} segids[64];
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
	/* The running backup's staged rows and filter (localdb_stage.c). */
	struct localdb_stage *stage;
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
/* Step ${s} once: 1 row, 0 done (reset), -1 error (recorded, reset). */
int localdb_step(struct localdb *db, sqlite3_stmt *s, const char *what);
/* Reset ${s} and clear its bindings after use. */
void localdb_done(sqlite3_stmt *s);
/* Whether chunk_index exists: 1, 0, or -1 on error. */
int localdb_chunks_known(struct localdb *db);
/* Insert one chunk_index row (the table exists).  0 or -1. */
int localdb_chunk_row(struct localdb *db, const unsigned char *digest,
    uint32_t length, int64_t blockid, uint32_t offset);
/* Insert the chunks of block ${segid}/${seq}, found by SQL.  0 or -1. */
struct localdb_chunk;
int localdb_chunks_sql(struct localdb *db, int64_t segid, uint64_t seq,
    const struct localdb_chunk *c, size_t n);

/*
 * localdb_stage.c: during a backup, new block_index and chunk_index rows
 * wait in memory and reach SQLite in batches sorted by checksum, written
 * by a thread of their own while the next batch fills; a filter says
 * which checksums SQLite surely lacks.  Keys: stage_key_text() of a
 * block checksum, stage_key_digest() of a chunk digest.
 */
uint64_t stage_key_text(const char *checksum);
uint64_t stage_key_digest(const unsigned char *digest);
/* The next blockid of this backup (rows written directly take one too). */
int stage_next_id(struct localdb *db, int64_t *id);
/* Stage a block (segid and seq fit 32 bits, size fits objref). */
int stage_put_block(struct localdb *db, int64_t segid, const char *segment,
    uint64_t seq, const char *checksum, uint64_t size, double timestamp);
/* A staged block with this checksum and size: 1 (fills ${out} and
 * ${timestamp} when not NULL), or 0. */
int stage_find_block(struct localdb *db, const char *checksum,
    uint64_t size, uint64_t key, struct ref *out, double *timestamp);
/* Whether ${segid}/${seq} is staged: 1 with its blockid and size, or 0. */
int stage_block_of(struct localdb *db, int64_t segid, uint64_t seq,
    int64_t *blockid, uint64_t *size);
/* Stage the signatures of ${segid}/${seq} if it is in the batch being
 * filled and they fit: 1.  0: the caller writes them by SQL (a staged
 * block's rows are in SQL by then); -1 error. */
int stage_put_signatures(struct localdb *db, int64_t segid, uint64_t seq,
    const char *algorithm, const void *sig, size_t len);
/* Staged signatures of ${segid}/${seq}: 1 with copies the caller frees,
 * 0 none staged (ask SQL), -1 out of memory. */
int stage_get_signatures(struct localdb *db, int64_t segid, uint64_t seq,
    char **algorithm, void **sig, size_t *len);
/* Stage chunks of the staged block ${segid}/${seq}. */
int stage_put_chunks(struct localdb *db, int64_t segid, uint64_t seq,
    const struct localdb_chunk *c, size_t n);
int stage_find_chunk(struct localdb *db, const unsigned char *digest,
    uint32_t length, struct ref *out, uint64_t *objsize);
/* 1 when no row of block_index or chunk_index has key ${key}; 0 maybe
 * (or no filter yet); -1 error. */
int stage_absent(struct localdb *db, uint64_t key);
/* Tell the filter of a key written directly. */
void stage_note_key(struct localdb *db, uint64_t key);
/* Write the staged rows and wait until every one is in SQL.  0 or -1 (the
 * batch is dropped either way; an error of the writer thread reported
 * since the last wait is returned here too). */
int stage_flush(struct localdb *db);
/* Wait for the writer thread, then drop the stage and the filter (end of
 * the backup's transaction, before COMMIT or ROLLBACK).  The caller's
 * error message is kept. */
void stage_reset(struct localdb *db);

#endif
