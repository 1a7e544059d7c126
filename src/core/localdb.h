/*
 * localdb: the local database DIR/localdb.sqlite (reference 3.2-3.4).
 *
 * The layout is the original's 0.11 schema (schema.sql at the top of the
 * tree; the same text is compiled in, see localdb_schema_sql()).  A 0.9
 * database is migrated in place when opened; anything else is refused.
 * One extension table may appear: missing_segments(segment), created only
 * by localdb_mark_segment_missing(); the original's tools ignore it.
 *
 * A backup is one transaction, from localdb_begin_snapshot() to
 * localdb_commit_snapshot(), which the caller runs only once the store
 * durably holds the snapshot; a crash or localdb_abort() before that leaves
 * the database as it was.  All functions return -1 with the error recorded
 * (err.h) on failure.  Object sequence numbers are stored as the original
 * does, as at least 8 lowercase hex digits.  Zero references ("zero[N]")
 * are no objects: never pass them here.
 */
#ifndef CUMULUS_LOCALDB_H
#define CUMULUS_LOCALDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct localdb;
struct ref;

/* File name of the database inside the localdb directory. */
#define LOCALDB_FILE "localdb.sqlite"
/* Copy of a 0.9 database made before it is migrated. */
#define LOCALDB_BACKUP_FILE "localdb.sqlite.pre-0.11-backup"
/* localdb_use_object(): "whole object of unknown size". */
#define LOCALDB_SIZE_UNKNOWN UINT64_MAX

/* The compiled-in schema, identical to schema.sql. */
const char *localdb_schema_sql(void);

/*
 * Open ${dir}/localdb.sqlite, creating it with the schema if the file does
 * not exist or holds no table.  A 0.9 database (no schema_version table,
 * segments_used present) is first copied to ${dir}/LOCALDB_BACKUP_FILE
 * (fsynced, published atomically) and then converted to 0.11 in one
 * transaction:
 *   snapshots: rows kept, the intent column dropped (0.11 has none);
 *   segments: timestamp = mtime, data_size = size, disk_size and type NULL,
 *     path and checksum kept, expire_time dropped (the expired state lives
 *     on in block_index.expired);
 *   segment_utilization: bytes_referenced = CAST(utilization * size AS
 *     INTEGER) per segments_used row (the 0.9 segment_info "used" value);
 *   block_index, subblock_signatures: unchanged, ids kept;
 *   the segment_info view is dropped.
 * Any other schema_version than 0.11 is an error.  Synchronous=FULL, busy
 * timeout 10 s.  On success *${out} is a handle to release with
 * localdb_close().  0 or -1.
 */
int localdb_open(const char *dir, struct localdb **out);
/* Roll back anything uncommitted and close.  NULL-safe. */
void localdb_close(struct localdb *db);
/*
 * Let a backup write its batches of new rows on a thread of their own
 * while it fills the next (off by default: written in line).  Set before
 * localdb_begin_snapshot().
 */
void localdb_set_background(struct localdb *db, bool on);

/*
 * Start a backup: BEGIN IMMEDIATE (a second backup on the same database
 * waits for the busy timeout, then fails), insert the snapshots row
 * (${name}, ${scheme} or '' when NULL, timestamp now) and empty the
 * per-snapshot reference accounting.  ${intent} is accepted for callers
 * ported from 0.9 and ignored: the 0.11 schema does not store it.  0 or -1.
 */
int localdb_begin_snapshot(struct localdb *db, const char *name,
    const char *scheme, double intent);
/* The snapshotid of the running (or last) backup; 0 if none. */
int64_t localdb_snapshot_id(const struct localdb *db);
/*
 * Record segment_utilization for the snapshot (sum of the bytes referenced
 * per segment, reference 3.3 "Close") and COMMIT.  0 or -1 (the transaction
 * is then rolled back).
 */
int localdb_commit_snapshot(struct localdb *db);
/* Roll back the running backup, if any. */
void localdb_abort(struct localdb *db);

/*
 * Look for a reusable block: not expired, same ${checksum} and ${size}, and
 * not in a segment marked missing.  1 and *${out} set to
 * "<segment>/<seq>[<size>]" (REF_OBJECT, no checksum, REF_RANGE_BARE with
 * length ${size}), 0 if none, -1 on error.
 */
int localdb_find_block(struct localdb *db, const char *checksum,
    uint64_t size, struct ref *out);
/*
 * Whether any row, expired or not, has ${checksum} and ${size} (reference
 * 3.3 "Is old object").  1 with *${timestamp} (julianday the data was first
 * stored) and *${expired} (the repack group; 0 for NULL) set, 0 if none,
 * -1 on error.  Either output pointer may be NULL.
 */
int localdb_find_old_block(struct localdb *db, const char *checksum,
    uint64_t size, double *timestamp, int *expired);
/*
 * Whether object ${seq} of ${segment} is still usable: a non-expired row
 * exists and its segment is not marked missing.  1, 0, or -1 on error.
 */
int localdb_block_available(struct localdb *db, const char *segment,
    uint64_t seq);
/*
 * Record a newly written object.  The segments row is created if needed.
 * ${timestamp} is its age as a julianday (inherited from an expired copy),
 * or <= 0 for now.  0 or -1 (e.g. the object is already recorded).
 */
int localdb_store_block(struct localdb *db, const char *segment,
    uint64_t seq, const char *checksum, uint64_t size, double timestamp);
/*
 * Fill in the segments row of a finished segment (created if needed) with
 * its store ${path}, file ${checksum}, sizes and group ${type}; timestamp
 * now.  ${path}, ${checksum}, ${type} may be NULL.  0 or -1.
 */
int localdb_add_segment(struct localdb *db, const char *segment,
    const char *path, const char *checksum, uint64_t data_size,
    uint64_t disk_size, const char *type);
/*
 * Account one reference written into the snapshot (reference 3.3 "Use
 * object", HEAD rules).  With ${whole}, the reference covers the whole
 * object and ${length} is its size (LOCALDB_SIZE_UNKNOWN: look it up);
 * otherwise it selects ${length} bytes at ${start} and the object size comes
 * from block_index.  The bytes referenced per object grow by the
 * referenced length but reach the object size only if one reference (or
 * the total before) covered it all.  1 when accounted, 0 when the object is
 * unknown to block_index (nothing accounted, but its segment still appears
 * in localdb_snapshot_segments()), -1 on error.  Only inside a backup.
 */
int localdb_use_object(struct localdb *db, const char *segment,
    uint64_t seq, uint64_t start, uint64_t length, bool whole);
/*
 * The distinct segment UUIDs referenced by the running (or last) backup
 * through localdb_use_object(), sorted by strcmp.  *${list} is an array of
 * *${n} strings; free it with localdb_free_list().  0 or -1.
 */
int localdb_snapshot_segments(struct localdb *db, char ***list, size_t *n);
/* Free a list from localdb_snapshot_segments().  NULL-safe. */
void localdb_free_list(char **list, size_t n);
/*
 * Which checksum algorithms occur in block_index, as a bitmask of
 * 1 << HASH_SHA1, 1 << HASH_SHA224, 1 << HASH_SHA256 (index lookups only,
 * cheap).  0 or -1.
 */
int localdb_legacy_algorithms(struct localdb *db, unsigned *mask);
/*
 * Whether block_index has any row, expired or not, of ${size} bytes,
 * staged rows included (they are written first).  A scan of the table:
 * for a question asked once, such as whether any aligned whole block
 * could be found.  1, 0, or -1 on error.
 */
int localdb_any_block_of_size(struct localdb *db, uint64_t size);
/*
 * Remember that ${segment} is gone from the store: its blocks are no longer
 * found or available.  Creates the extension table missing_segments on
 * first use.  0 or -1.
 */
int localdb_mark_segment_missing(struct localdb *db, const char *segment);
/*
 * Mark missing every segment with usable objects whose UUID is not in
 * ${present} (${n} UUIDs sorted by strcmp: the segments the store holds),
 * so this backup reuses nothing of a segment that a gc deleted without
 * this database.  Inside a backup.  The number marked, or -1.
 */
int64_t localdb_mark_absent_segments(struct localdb *db,
    char *const *present, size_t n);

/*
 * The sub-block signatures of object ${seq} of ${segment}.  1 with
 * *${algorithm} (e.g. "lbfs-4096/sha224"), *${sig} and *${len} set, both
 * allocated (free() them), 0 if the object or its signatures are unknown,
 * -1 on error.
 */
int localdb_get_signatures(struct localdb *db, const char *segment,
    uint64_t seq, char **algorithm, void **sig, size_t *len);
/*
 * Store (replace) the signatures of object ${seq} of ${segment}, which
 * must be in block_index.  0 or -1.
 */
int localdb_put_signatures(struct localdb *db, const char *segment,
    uint64_t seq, const char *algorithm, const void *sig, size_t len);

/*
 * Sub-file incrementals.  The extension table chunk_index(hash, length,
 * blockid, offset) maps the SHA-256 of a content-defined chunk (the
 * "gear-8k/sha256" signatures) to where it lies inside a stored object; it
 * is created on first use, and a trigger removes a block's chunks and
 * signatures when its block_index row is deleted.  The original's tools
 * ignore it.
 */
#define LOCALDB_CHUNK_DIGEST 32
struct localdb_chunk {
	unsigned char digest[LOCALDB_CHUNK_DIGEST];
	uint32_t offset; /* inside the object */
	uint32_t length;
};
/*
 * Whether object ${seq} of ${segment} is usable (as
 * localdb_block_available()) and has a known size: 1 with *${size} set, 0
 * if not, -1 on error.
 */
int localdb_block_size(struct localdb *db, const char *segment, uint64_t seq,
    uint64_t *size);
/* Index the ${n} chunks ${c} of object ${seq} of ${segment}, which must be
 * in block_index.  0 or -1. */
int localdb_add_chunks(struct localdb *db, const char *segment, uint64_t seq,
    const struct localdb_chunk *c, size_t n);
/*
 * Find a usable object (not expired, segment not missing) holding a chunk
 * with ${digest} and ${length}: 1 with *${out} set to the slice
 * "<segment>/<seq>[<offset>+<length>]" and *${objsize} to the object's
 * size, 0 if none, -1 on error.
 */
int localdb_find_chunk(struct localdb *db,
    const unsigned char digest[LOCALDB_CHUNK_DIGEST], uint32_t length,
    struct ref *out, uint64_t *objsize);

/*
 * The stored file name and file checksum recorded for ${segment}: 1 with
 * *${path} and *${checksum} set (each NULL when unrecorded; the caller
 * frees them), 0 if the segment is unknown, -1 on error.
 */
int localdb_segment_file(struct localdb *db, const char *segment,
    char **path, char **checksum);

#endif
