/*
 * localdb: the local database.  See localdb.h; the SQL follows the
 * original's HEAD LocalDb so both programs keep the database consistent.
 */
#include "localdb.h"

#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "buf.h"
#include "err.h"
#include "fileio.h"
#include "hash.h"
#include "localdb_internal.h"
#include "ref.h"

/* Keep identical to schema.sql (test_localdb compares them). */
static const char schema_sql[] =
	"-- Schema of the Cumulus local database, localdb.sqlite, 0.11.\n"
	"--\n"
	"-- The layout of the original program's last release, so that its\n"
	"-- tools and ours can share one database.  cumulus creates it by\n"
	"-- itself; by hand: sqlite3 DIR/localdb.sqlite and .read schema.sql\n"
	"-- All timestamps are UTC Julian day numbers (julianday()).\n"
	"\n"
	"-- Which layout this database has; checked on every open.\n"
	"create table schema_version(\n"
	"    version text,               -- dotted version string\n"
	"    major integer,\n"
	"    minor integer\n"
	");\n"
	"insert into schema_version values ('0.11', 0, 11);\n"
	"\n"
	"-- Snapshots still tracked.  The store may hold more, never fewer:\n"
	"-- a new snapshot may reuse data of any snapshot listed here.\n"
	"create table snapshots (\n"
	"    snapshotid integer primary key,\n"
	"    name text not null,         -- e.g. 20261126T123430\n"
	"    scheme text not null,       -- '' when the backup has no scheme\n"
	"    timestamp datetime          -- when the backup started\n"
	");\n"
	"\n"
	"-- Segments written (or referenced) by some snapshot.\n"
	"create table segments (\n"
	"    segmentid integer primary key,\n"
	"    segment text unique not null,   -- segment UUID\n"
	"    timestamp datetime,         -- when the segment was written\n"
	"    path text,                  -- file name in the store\n"
	"    checksum text,              -- checksum of the stored file\n"
	"    data_size integer,          -- sum of the sizes of its objects\n"
	"    disk_size integer,          -- size of the stored file\n"
	"    type text                   -- metadata, data or compacted-N\n"
	");\n"
	"create unique index segment_name_index on segments(segment);\n"
	"\n"
	"-- Every object stored in a segment, by content checksum, for\n"
	"-- block-level de-duplication.  expired is NULL for objects that may\n"
	"-- be reused; an integer k marks an object of a segment chosen for\n"
	"-- cleaning (repack group k).\n"
	"create table block_index (\n"
	"    blockid integer primary key,\n"
	"    segmentid integer not null,\n"
	"    object text not null,       -- sequence number, 8 hex digits\n"
	"    checksum text,\n"
	"    size integer,\n"
	"    timestamp datetime,         -- when this data was first stored\n"
	"    expired integer\n"
	");\n"
	"create index block_content_index on block_index(checksum);\n"
	"create unique index block_name_index\n"
	"    on block_index(segmentid, object);\n"
	"\n"
	"-- Chunk checksums of an object, for sub-file incrementals.\n"
	"create table subblock_signatures (\n"
	"    blockid integer primary key,\n"
	"    algorithm text not null,    -- e.g. lbfs-4096/sha224\n"
	"    signatures blob not null    -- (16-bit length, digest) records\n"
	");\n"
	"\n"
	"-- Bytes of each segment that a snapshot references: a lower bound\n"
	"-- of the live bytes, equal to segments.data_size only if every\n"
	"-- object is fully used.\n"
	"create table segment_utilization (\n"
	"    snapshotid integer not null,\n"
	"    segmentid integer not null,\n"
	"    bytes_referenced integer not null\n"
	");\n"
	"create unique index segment_utilization_index\n"
	"    on segment_utilization(snapshotid, segmentid);\n";

/*
 * Conversion of a 0.9 database (reference 3.1) to 0.11, run inside the
 * migration transaction: the old tables are renamed away, the 0.11 schema
 * is created from schema_sql (so a migrated database has exactly the
 * layout of a new one), the rows are copied over with their ids, and the
 * old tables are dropped.  The index names are reused by the new schema,
 * hence dropped first; the view would block the renames.
 */
static const char migrate_pre_sql[] =
	"DROP VIEW IF EXISTS segment_info;\n"
	"DROP INDEX IF EXISTS block_content_index;\n"
	"DROP INDEX IF EXISTS block_name_index;\n"
	"DROP INDEX IF EXISTS segments_used_index;\n"
	"DROP INDEX IF EXISTS segment_name_index;\n"
	"ALTER TABLE snapshots RENAME TO v09_snapshots;\n"
	"ALTER TABLE segments RENAME TO v09_segments;\n"
	"ALTER TABLE block_index RENAME TO v09_block_index;\n"
	"ALTER TABLE subblock_signatures RENAME TO v09_subblock_signatures;\n";
static const char migrate_post_sql[] =
	"INSERT INTO snapshots(snapshotid, name, scheme, timestamp)\n"
	"    SELECT snapshotid, name, coalesce(scheme, ''), timestamp\n"
	"    FROM v09_snapshots;\n"
	"INSERT INTO segments(segmentid, segment, timestamp, path, checksum,\n"
	"    data_size, disk_size, type)\n"
	"    SELECT segmentid, segment, mtime, path, checksum, size,\n"
	"    NULL, NULL\n"
	"    FROM v09_segments;\n"
	"INSERT INTO block_index(blockid, segmentid, object, checksum, size,\n"
	"    timestamp, expired)\n"
	"    SELECT blockid, segmentid, object, checksum, size, timestamp,\n"
	"    expired FROM v09_block_index;\n"
	"INSERT INTO subblock_signatures(blockid, algorithm, signatures)\n"
	"    SELECT blockid, algorithm, signatures\n"
	"    FROM v09_subblock_signatures;\n"
	"INSERT INTO segment_utilization(snapshotid, segmentid,\n"
	"    bytes_referenced)\n"
	"    SELECT u.snapshotid, u.segmentid,\n"
	"    CAST(coalesce(s.size, 0) * coalesce(u.utilization, 0)\n"
	"    AS INTEGER)\n"
	"    FROM segments_used u LEFT JOIN v09_segments s\n"
	"    ON s.segmentid = u.segmentid;\n"
	"DROP TABLE v09_snapshots;\n"
	"DROP TABLE v09_segments;\n"
	"DROP TABLE v09_block_index;\n"
	"DROP TABLE v09_subblock_signatures;\n"
	"DROP TABLE segments_used;\n";

/*
 * Per-connection scratch tables of the running backup: the bytes
 * referenced per segment (summed from the per-object accounting kept in
 * memory, the original's snapshot_refs) and the segments of referenced
 * objects that block_index does not know.  Created once at open, outside
 * any transaction, so the cached statements stay valid.
 */
static const char temp_sql[] =
	"CREATE TEMP TABLE IF NOT EXISTS snapshot_segrefs (\n"
	"    segmentid INTEGER PRIMARY KEY, size INTEGER NOT NULL);\n"
	"CREATE TEMP TABLE IF NOT EXISTS snapshot_unknown (\n"
	"    segment TEXT PRIMARY KEY);\n";

#define FIND_SQL \
	"SELECT s.segment, b.object FROM block_index b JOIN segments s" \
	" ON s.segmentid = b.segmentid" \
	" WHERE b.checksum = ?1 AND b.size = ?2 AND b.expired IS NULL"
/* Chunks of objects still usable (sub-file incrementals). */
#define CHUNK_FIND_SQL \
	"SELECT s.segment, b.object, c.offset, b.size FROM chunk_index c" \
	" JOIN block_index b ON b.blockid = c.blockid" \
	" JOIN segments s ON s.segmentid = b.segmentid" \
	" WHERE c.hash = ?1 AND c.length = ?2 AND b.expired IS NULL" \
	" AND c.offset + c.length <= b.size"
#define AVAIL_SIZE_SQL \
	"SELECT b.size FROM block_index b JOIN segments s" \
	" ON s.segmentid = b.segmentid" \
	" WHERE s.segment = ?1 AND b.object = ?2 AND b.expired IS NULL"
#define NOT_MISSING_SQL \
	" AND s.segment NOT IN (SELECT segment FROM missing_segments)"

static const char *const st_sql[ST_COUNT] = {
	[ST_SEG_ID] = "SELECT segmentid FROM segments WHERE segment = ?1",
	[ST_SEG_INSERT] = "INSERT OR IGNORE INTO segments(segment) VALUES (?1)",
	[ST_SEG_UPDATE] = "UPDATE segments SET path = ?2, checksum = ?3,"
	    " data_size = ?4, disk_size = ?5, type = ?6,"
	    " timestamp = julianday('now') WHERE segmentid = ?1",
	[ST_FIND] = FIND_SQL " LIMIT 1",
	[ST_FIND_M] = FIND_SQL NOT_MISSING_SQL " LIMIT 1",
	[ST_OLD] = "SELECT timestamp, expired FROM block_index"
	    " WHERE checksum = ?1 AND size = ?2 LIMIT 1",
	[ST_BLOCK_INSERT] = "INSERT INTO block_index(blockid, segmentid,"
	    " object, checksum, size, timestamp)"
	    " VALUES (?6, ?1, ?2, ?3, ?4, coalesce(?5, julianday('now')))",
	[ST_BLOCK_SIZE] = "SELECT size FROM block_index"
	    " WHERE segmentid = ?1 AND object = ?2",
	[ST_SEG_OBJECTS] = "SELECT object, size FROM block_index"
	    " WHERE segmentid = ?1 AND expired IS NULL",
	[ST_SEG_MISSING] = "SELECT 1 FROM missing_segments WHERE segment = ?1",
	[ST_SEGREF_PUT] = "INSERT INTO snapshot_segrefs(segmentid, size)"
	    " VALUES (?1, ?2)",
	[ST_UNKNOWN_PUT] = "INSERT OR IGNORE INTO snapshot_unknown(segment)"
	    " VALUES (?1)",
	[ST_SNAP_INSERT] = "INSERT INTO snapshots(name, scheme, timestamp)"
	    " VALUES (?1, ?2, julianday('now'))",
	[ST_SEGLIST] = "SELECT segment FROM segments WHERE segmentid IN"
	    " (SELECT segmentid FROM snapshot_segrefs)"
	    " UNION SELECT segment FROM snapshot_unknown ORDER BY 1",
	[ST_UTIL] = "INSERT OR REPLACE INTO segment_utilization(snapshotid,"
	    " segmentid, bytes_referenced)"
	    " SELECT ?1, segmentid, size FROM snapshot_segrefs",
	[ST_ALG] = "SELECT 1 FROM block_index"
	    " WHERE checksum >= ?1 AND checksum < ?2 LIMIT 1",
	/* No index on size: a scan, run once per backup at most. */
	[ST_ANY_SIZE] = "SELECT 1 FROM block_index WHERE size = ?1 LIMIT 1",
	[ST_SIG_GET] = "SELECT g.algorithm, g.signatures"
	    " FROM subblock_signatures g"
	    " JOIN block_index b ON b.blockid = g.blockid"
	    " JOIN segments s ON s.segmentid = b.segmentid"
	    " WHERE s.segment = ?1 AND b.object = ?2",
	/* Blocks the running backup staged (localdb_stage.c) have no row
	 * to join yet, only their id. */
	[ST_SIG_GET_ID] = "SELECT algorithm, signatures"
	    " FROM subblock_signatures WHERE blockid = ?1",
	[ST_SIG_PUT_ID] = "INSERT OR REPLACE INTO subblock_signatures(blockid,"
	    " algorithm, signatures) VALUES (?1, ?3, ?4)",
	[ST_CHUNK_FIND] = CHUNK_FIND_SQL " LIMIT 1",
	[ST_CHUNK_FIND_M] = CHUNK_FIND_SQL NOT_MISSING_SQL " LIMIT 1",
	[ST_CHUNK_ADD] = "INSERT OR IGNORE INTO chunk_index(hash, length,"
	    " blockid, offset) VALUES (?1, ?2, ?3, ?4)",
	[ST_BLOCK_ID] = "SELECT blockid FROM block_index"
	    " WHERE segmentid = ?1 AND object = ?2",
	[ST_AVAIL_SIZE] = AVAIL_SIZE_SQL,
	[ST_AVAIL_SIZE_M] = AVAIL_SIZE_SQL NOT_MISSING_SQL,
};

/*
 * Record "local database: ${what}: ${msg}"; when SQLite found the file
 * damaged (or not a database at all), say that it is a cache and how to
 * rebuild it, since that is the only repair.
 */
void
localdb_err(struct localdb *db, const char *what, const char *msg)
{
	int code = sqlite3_errcode(db->h) & 0xff;

	int sys = sqlite3_system_errno(db->h);

	if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB)
		err_set("local database: %s: %s; the database in '%s' is"
		    " damaged.  It is only a cache: move %s/" LOCALDB_FILE
		    "* away and rebuild it from the store with"
		    " 'cumulus-util --store=STORE --localdb=%s rebuild-db'",
		    what, msg, db->dir, db->dir, db->dir);
	else if ((code == SQLITE_IOERR || code == SQLITE_FULL ||
	    code == SQLITE_CANTOPEN) && sys != 0)
		/* "disk I/O error" alone hides the cause (a full disk
		 * under the WAL's shared-memory file, say). */
		err_set("local database: %s: %s (%s)", what, msg,
		    strerror(sys));
	else
		err_set("local database: %s: %s", what, msg);
}

int
localdb_dberr(struct localdb *db, const char *what)
{
	localdb_err(db, what, sqlite3_errmsg(db->h));
	return -1;
}

int
localdb_exec(struct localdb *db, const char *sql, const char *what)
{
	char *msg = NULL;

	if (sqlite3_exec(db->h, sql, NULL, NULL, &msg) != SQLITE_OK) {
		localdb_err(db, what, msg ? msg : sqlite3_errmsg(db->h));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

/* The cached statement ${id}, ready for binding; NULL on error. */
static sqlite3_stmt *
stmt(struct localdb *db, enum st id)
{
	if (db->st[id] == NULL && sqlite3_prepare_v3(db->h, st_sql[id], -1,
	    SQLITE_PREPARE_PERSISTENT, &db->st[id], NULL) != SQLITE_OK) {
		localdb_dberr(db, "prepare");
		db->st[id] = NULL;
		return NULL;
	}
	return db->st[id];
}

/* Reset after use, so that no read transaction stays open. */
static void
done(sqlite3_stmt *s)
{
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
}

/*
 * Step once: 1 row (the caller reads it, then calls done()), 0 no more
 * rows, -1 error (recorded).  In the last two cases the statement is
 * already reset.
 */
static int
step(struct localdb *db, sqlite3_stmt *s, const char *what)
{
	int rc;

	/* After out-of-memory or an I/O error SQLite may roll back the open
	 * transaction by itself; a backup must then stop rather than carry
	 * on writing rows in autocommit mode (its descriptor would list
	 * segments from a state the database no longer has). */
	if (db->in_tx && sqlite3_get_autocommit(db->h)) {
		err_set("local database: %s: the backup's transaction was rolled "
			"back after an earlier error",
		    what);
		sqlite3_reset(s);
		return -1;
	}
	rc = sqlite3_step(s);

	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE) {
		done(s);
		return 0;
	}
	localdb_dberr(db, what);
	done(s);
	return -1;
}

int
localdb_step(struct localdb *db, sqlite3_stmt *s, const char *what)
{
	return step(db, s, what);
}

void
localdb_done(sqlite3_stmt *s)
{
	done(s);
}

static int
check_u63(uint64_t v, const char *what)
{
	if (v > (uint64_t)INT64_MAX) {
		err_set("local database: %s %" PRIu64 " too large", what, v);
		return -1;
	}
	return 0;
}

static int
check_segment(const char *segment)
{
	if (segment == NULL || *segment == '\0' ||
	    strlen(segment) > REF_SEGMENT_MAX) {
		err_set("local database: bad segment name");
		return -1;
	}
	return 0;
}

/* The block_index.object spelling of a sequence number. */
static void
object_name(uint64_t seq, char out[24])
{
	snprintf(out, 24, "%08" PRIx64, seq);
}

static int
parse_object(const unsigned char *s, uint64_t *seq)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; s != NULL && s[i] != '\0'; i++) {
		int d;

		if (s[i] >= '0' && s[i] <= '9')
			d = s[i] - '0';
		else if (s[i] >= 'a' && s[i] <= 'f')
			d = s[i] - 'a' + 10;
		else if (s[i] >= 'A' && s[i] <= 'F')
			d = s[i] - 'A' + 10;
		else
			break;
		if (v >> 60)
			break;
		v = v << 4 | (uint64_t)d;
	}
	if (s == NULL || i == 0 || s[i] != '\0') {
		err_set("local database: bad object name '%s'",
		    s ? (const char *)s : "(null)");
		return -1;
	}
	*seq = v;
	return 0;
}

/*
 * The segmentid of ${segment}, creating the row when ${create}.  1 found
 * (or created), 0 absent, -1 error.  Answers are cached during a backup
 * (db->segids): a tree's references alternate between a few segments.
 */
static size_t
segid_slot(const char *segment)
{
	uint32_t h = 2166136261u;

	for (; *segment; segment++)
		h = (h ^ (unsigned char)*segment) * 16777619u;
	return h % (sizeof(((struct localdb *)0)->segids) /
		       sizeof(((struct localdb *)0)->segids[0]));
}

static void
segids_reset(struct localdb *db)
{
	for (size_t i = 0; i < sizeof(db->segids) / sizeof(db->segids[0]); i++)
		db->segids[i].id = 0;
}

static int
segment_id(struct localdb *db, const char *segment, bool create,
    int64_t *id)
{
	sqlite3_stmt *s;
	size_t slot = segid_slot(segment);
	int r;

	if (db->in_tx && db->segids[slot].id != 0 &&
	    strcmp(db->segids[slot].name, segment) == 0) {
		*id = db->segids[slot].id;
		return 1;
	}
	if (create) {
		if ((s = stmt(db, ST_SEG_INSERT)) == NULL)
			return -1;
		sqlite3_bind_text(s, 1, segment, -1, SQLITE_STATIC);
		if (step(db, s, "insert segment") < 0)
			return -1;
		done(s);
	}
	if ((s = stmt(db, ST_SEG_ID)) == NULL)
		return -1;
	sqlite3_bind_text(s, 1, segment, -1, SQLITE_STATIC);
	if ((r = step(db, s, "look up segment")) < 0)
		return -1;
	if (r == 1) {
		*id = sqlite3_column_int64(s, 0);
		if (db->in_tx && *id != 0 &&
		    strlen(segment) < sizeof(db->segids[slot].name)) {
			strcpy(db->segids[slot].name, segment);
			db->segids[slot].id = *id;
		}
	}
	done(s);
	return r;
}

static int
table_exists(struct localdb *db, const char *name)
{
	sqlite3_stmt *s;
	int r;

	if (sqlite3_prepare_v2(db->h, "SELECT 1 FROM sqlite_master"
	    " WHERE type = 'table' AND name = ?1", -1, &s, NULL) != SQLITE_OK)
		return localdb_dberr(db, "read schema");
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	r = step(db, s, "read schema");
	sqlite3_finalize(s);
	return r;
}

enum layout { LAYOUT_EMPTY, LAYOUT_V09, LAYOUT_V011 };

/* Which schema the database has; -1 (error recorded) if none we accept. */
static int
classify(struct localdb *db)
{
	static const char *const v09[] = { "snapshots", "segments",
	    "block_index", "subblock_signatures", "segments_used" };
	sqlite3_stmt *s;
	int r;

	if (sqlite3_prepare_v2(db->h, "SELECT count(*) FROM sqlite_master",
	    -1, &s, NULL) != SQLITE_OK)
		return localdb_dberr(db, "read schema");
	r = step(db, s, "read schema");
	if (r == 1 && sqlite3_column_int64(s, 0) == 0)
		r = 2;
	sqlite3_finalize(s);
	if (r < 0)
		return -1;
	if (r == 2)
		return LAYOUT_EMPTY;

	if ((r = table_exists(db, "schema_version")) < 0)
		return -1;
	if (r == 1) {
		int64_t major = -1, minor = -1;
		char version[64] = "(none)";

		if (sqlite3_prepare_v2(db->h, "SELECT version, major, minor"
		    " FROM schema_version LIMIT 1", -1, &s, NULL) != SQLITE_OK)
			return localdb_dberr(db, "read schema version");
		if ((r = step(db, s, "read schema version")) == 1) {
			const unsigned char *v = sqlite3_column_text(s, 0);

			if (v != NULL)
				snprintf(version, sizeof(version), "%s", v);
			major = sqlite3_column_int64(s, 1);
			minor = sqlite3_column_int64(s, 2);
		}
		sqlite3_finalize(s);
		if (r < 0)
			return -1;
		if (major == 0 && minor == 11)
			return LAYOUT_V011;
		err_set("local database has schema version %s"
		    " (%" PRId64 ".%" PRId64 "); only 0.11 and 0.9 are"
		    " supported",
		    version, major, minor);
		return -1;
	}
	for (size_t i = 0; i < sizeof(v09) / sizeof(v09[0]); i++) {
		if ((r = table_exists(db, v09[i])) < 0)
			return -1;
		if (r == 0) {
			err_set("local database has no schema_version and no"
			    " table %s: not a Cumulus 0.9 or 0.11 database",
			    v09[i]);
			return -1;
		}
	}
	return LAYOUT_V09;
}

/*
 * Copy the database file to LOCALDB_BACKUP_FILE through the publish
 * protocol.  Called while holding the write lock, after a read, so the
 * file is consistent (no hot journal, no other writer).
 */
static int
backup_file(struct localdb *db, const char *path)
{
	struct fileio_tmp t;
	char *chunk = NULL;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		err_setp("cannot open '%s'", path);
		return -1;
	}
	if (fileio_tmp_open(&t, db->dir, LOCALDB_BACKUP_FILE))
		goto fail_fd;
	if ((chunk = malloc(65536)) == NULL) {
		err_set("out of memory");
		goto fail;
	}
	for (;;) {
		ssize_t n = fileio_read_full(fd, chunk, 65536);

		if (n < 0)
			goto fail;
		if (n == 0)
			break;
		if (fileio_write_full(t.fd, chunk, (size_t)n))
			goto fail;
	}
	free(chunk);
	close(fd);
	if (fileio_tmp_commit(&t, false)) {
		err_prefix("backing up the 0.9 database");
		fileio_tmp_abort(&t);
		return -1;
	}
	return 0;
fail:
	free(chunk);
	fileio_tmp_abort(&t);
fail_fd:
	close(fd);
	err_prefix("backing up the 0.9 database");
	return -1;
}

static void
rollback(struct localdb *db)
{
	/* First: its writer thread must be done with the transaction. */
	stage_reset(db);
	if (!sqlite3_get_autocommit(db->h))
		(void)sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
	db->in_tx = false;
	db->seg_cached = false;
	segids_reset(db);
	localdb_refs_reset(db);
}

/*
 * Create the schema in an empty database or migrate a 0.9 one.  Runs
 * under BEGIN IMMEDIATE and classifies again there, since another process
 * may have done the same meanwhile.
 */
static int
setup_schema(struct localdb *db, const char *path)
{
	int layout;

	/* A WAL database would have committed pages outside the file. */
	if (localdb_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", "checkpoint"))
		return -1;
	if (localdb_exec(db, "BEGIN IMMEDIATE", "lock for setup"))
		return -1;
	if ((layout = classify(db)) < 0)
		goto fail;
	if (layout == LAYOUT_EMPTY) {
		if (localdb_exec(db, schema_sql, "create schema"))
			goto fail;
	} else if (layout == LAYOUT_V09) {
		if (backup_file(db, path) ||
		    localdb_exec(db, migrate_pre_sql, "migrate 0.9 database") ||
		    localdb_exec(db, schema_sql, "migrate 0.9 database") ||
		    localdb_exec(db, migrate_post_sql, "migrate 0.9 database"))
			goto fail;
	}
	if (localdb_exec(db, "COMMIT", "commit schema"))
		goto fail;
	return 0;
fail:
	rollback(db);
	return -1;
}

const char *
localdb_schema_sql(void)
{
	return schema_sql;
}

int
localdb_open(const char *dir, struct localdb **out)
{
	struct localdb *db;
	struct buf path;
	int layout, r;

	*out = NULL;
	buf_init(&path, BUF_UNLIMITED);
	if ((db = calloc(1, sizeof(*db))) == NULL ||
	    (db->dir = strdup(dir)) == NULL) {
		err_set("out of memory");
		free(db);
		return -1;
	}
	if (buf_printf(&path, "%s/%s", dir, LOCALDB_FILE))
		goto fail;
	/* Serialized: a backup's batches of new rows are written by a thread
	 * of their own (localdb_stage.c). */
	if (sqlite3_open_v2(buf_str(&path), &db->h, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
		if (db->h == NULL)
			err_set("cannot open '%s': out of memory",
			    buf_str(&path));
		else
			err_set("cannot open '%s': %s", buf_str(&path),
			    sqlite3_errmsg(db->h));
		goto fail;
	}
	sqlite3_extended_result_codes(db->h, 1);
	sqlite3_busy_timeout(db->h, 10000);
	/* A backup is one transaction; in WAL mode a cache smaller than what
	 * it changes spills pages to the log without a sync.  Its new rows
	 * come in sorted batches (localdb_stage.c), which visit each page of
	 * the random indexes once per batch: 1 MiB is enough. */
	if (localdb_exec(db, "PRAGMA synchronous = FULL; PRAGMA cache_size = -1024",
		"set synchronous"))
		goto fail;
	if ((layout = classify(db)) < 0)
		goto fail;
	if (layout != LAYOUT_V011 && setup_schema(db, buf_str(&path)))
		goto fail;
	/*
	 * Write-ahead logging: readers never block the backup's long write
	 * transaction, and with synchronous = FULL each COMMIT (a commit
	 * point of the backup, of gc's missing marks) is durable when it
	 * returns.  Set after the schema, so a 0.9 database is copied as it
	 * was.  The mode is persistent; SQLite >= 3.7 (the original's tools)
	 * reads such a database (readers need write access to the
	 * directory, for the -shm file).  A VFS without shared memory
	 * keeps the rollback journal, which is as safe.
	 */
	if (localdb_exec(db, "PRAGMA journal_mode = WAL", "set journal mode"))
		goto fail;
	if (localdb_exec(db, temp_sql, "create temporary tables"))
		goto fail;
	if ((r = table_exists(db, "missing_segments")) < 0)
		goto fail;
	db->has_missing = r == 1;
	buf_release(&path);
	*out = db;
	return 0;
fail:
	err_prefix("'%s'", buf_str(&path));
	buf_release(&path);
	localdb_close(db);
	return -1;
}

void
localdb_close(struct localdb *db)
{
	if (db == NULL)
		return;
	if (db->h != NULL) {
		rollback(db);
		for (int i = 0; i < ST_COUNT; i++)
			sqlite3_finalize(db->st[i]);
		for (int i = 0; i < SP_COUNT; i++)
			sqlite3_finalize(db->sp[i]);
		sqlite3_close(db->h);
	}
	free(db->refs);
	free(db->loaded);
	free(db->dir);
	free(db);
}

void
localdb_set_background(struct localdb *db, bool on)
{
	db->background = on;
}

int
localdb_begin_snapshot(struct localdb *db, const char *name,
    const char *scheme, double intent)
{
	sqlite3_stmt *s;

	(void)intent;
	if (db->in_tx) {
		err_set("local database: a backup is already running");
		return -1;
	}
	if (localdb_exec(db, "BEGIN IMMEDIATE", "begin backup"))
		return -1;
	db->in_tx = true;
	db->seg_cached = false;
	segids_reset(db);
	localdb_refs_reset(db);
	if (localdb_exec(db, "DELETE FROM snapshot_segrefs; DELETE FROM snapshot_unknown",
	    "reset reference accounting"))
		goto fail;
	if ((s = stmt(db, ST_SNAP_INSERT)) == NULL)
		goto fail;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, scheme ? scheme : "", -1, SQLITE_STATIC);
	if (step(db, s, "insert snapshot") < 0)
		goto fail;
	done(s);
	db->snapshotid = sqlite3_last_insert_rowid(db->h);
	return 0;
fail:
	rollback(db);
	return -1;
}

int64_t
localdb_snapshot_id(const struct localdb *db)
{
	return db->snapshotid;
}

int
localdb_commit_snapshot(struct localdb *db)
{
	sqlite3_stmt *s;

	if (!db->in_tx) {
		err_set("local database: no backup running");
		return -1;
	}
	if (stage_flush(db) || localdb_ref_flush(db) ||
	    (s = stmt(db, ST_UTIL)) == NULL)
		goto fail;
	sqlite3_bind_int64(s, 1, db->snapshotid);
	if (step(db, s, "record segment utilization") < 0)
		goto fail;
	done(s);
	if (localdb_exec(db, "COMMIT", "commit backup"))
		goto fail;
	db->in_tx = false;
	db->seg_cached = false;
	segids_reset(db);
	localdb_refs_reset(db);
	stage_reset(db);
	return 0;
fail:
	rollback(db);
	return -1;
}

void
localdb_abort(struct localdb *db)
{
	int r;

	if (db == NULL)
		return;
	rollback(db);
	/* The rollback may have undone the creation of chunk_index, too. */
	db->has_chunks = false;
	/* The rollback may have undone the creation of missing_segments. */
	if ((r = table_exists(db, "missing_segments")) >= 0)
		db->has_missing = r == 1;
}

int
localdb_find_block(struct localdb *db, const char *checksum, uint64_t size,
    struct ref *out)
{
	sqlite3_stmt *s;
	uint64_t seq;
	const unsigned char *seg;
	int r;

	if (check_u63(size, "size"))
		return -1;
	if (db->in_tx) {
		uint64_t key = stage_key_text(checksum);

		if ((r = stage_find_block(db, checksum, size, key, out, NULL)))
			return r;
		if ((r = stage_absent(db, key)))
			return r < 0 ? -1 : 0;
	}
	if ((s = stmt(db, db->has_missing ? ST_FIND_M : ST_FIND)) == NULL)
		return -1;
	sqlite3_bind_text(s, 1, checksum, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (int64_t)size);
	if ((r = step(db, s, "find block")) <= 0)
		return r;
	seg = sqlite3_column_text(s, 0);
	if (seg == NULL || check_segment((const char *)seg) ||
	    parse_object(sqlite3_column_text(s, 1), &seq)) {
		done(s);
		return -1;
	}
	ref_set_object(out, (const char *)seg, seq);
	out->range = REF_RANGE_BARE;
	out->length = size;
	done(s);
	return 1;
}

int
localdb_find_old_block(struct localdb *db, const char *checksum,
    uint64_t size, double *timestamp, int *expired)
{
	sqlite3_stmt *s;
	int r;

	if (check_u63(size, "size"))
		return -1;
	if (db->in_tx) {
		uint64_t key = stage_key_text(checksum);
		double ts;

		/* Stored by this backup: find_block finds it first, but
		 * answer as SQL would. */
		if (stage_find_block(db, checksum, size, key, NULL, &ts)) {
			if (timestamp != NULL)
				*timestamp = ts > 0 ? ts
				    : (double)time(NULL) / 86400.0 + 2440587.5;
			if (expired != NULL)
				*expired = 0;
			return 1;
		}
		if ((r = stage_absent(db, key)))
			return r < 0 ? -1 : 0;
	}
	if ((s = stmt(db, ST_OLD)) == NULL)
		return -1;
	sqlite3_bind_text(s, 1, checksum, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (int64_t)size);
	if ((r = step(db, s, "find old block")) <= 0)
		return r;
	if (timestamp != NULL)
		*timestamp = sqlite3_column_double(s, 0);
	if (expired != NULL)
		*expired = sqlite3_column_int(s, 1);
	done(s);
	return 1;
}

/* ---- the objects the running backup references (db->refs) ---- */

/*
 * One entry per object the backup asked about or referenced: 16 bytes,
 * since a backup of a large tree holds ~100,000 of them.  Segment ids and
 * sizes our writers (and the original's) produce fit 32 bits, sequence
 * numbers 30 (a segment holds a few thousand objects); an object whose
 * numbers do not is simply not tracked here (see objref_fits): its
 * availability is asked of SQLite and its references count as unknown,
 * which keeps its segment.
 */
#define OBJREF_NONE UINT32_MAX /* refsize: not referenced; objsize: unknown */
#define OBJREF_SEQ_BITS 30
#define OBJREF_SEQ_MASK ((UINT32_C(1) << OBJREF_SEQ_BITS) - 1)

struct localdb_objref {
	uint32_t segid;   /* 0: free slot (segment ids start at 1) */
	uint32_t seq_use; /* sequence number, and in the top two bits
			   * whether it is unexpired in block_index (and
			   * its segment not missing): see usable() */
	uint32_t refsize; /* bytes referenced so far, or OBJREF_NONE */
	uint32_t objsize; /* block_index size, or OBJREF_NONE */
};

/* 1 usable, 0 not, -1 not asked yet. */
static int
usable(const struct localdb_objref *e)
{
	return (int)(e->seq_use >> OBJREF_SEQ_BITS) - 1;
}

static void
set_usable(struct localdb_objref *e, int u)
{
	e->seq_use = (e->seq_use & OBJREF_SEQ_MASK) |
	    (uint32_t)(u + 1) << OBJREF_SEQ_BITS;
}

static bool
objref_fits(int64_t segid, uint64_t seq)
{
	return segid > 0 && segid < (int64_t)UINT32_MAX &&
	    seq <= OBJREF_SEQ_MASK;
}

static bool
objsize_fits(int64_t size)
{
	return size >= 0 && size < (int64_t)OBJREF_NONE;
}

static size_t
objref_slot(uint32_t segid, uint32_t seq, size_t cap)
{
	uint64_t h = (uint64_t)segid * 0x9e3779b97f4a7c15u ^ seq;

	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9u;
	h ^= h >> 32;
	return (size_t)h & (cap - 1);
}

/* The entry of object ${seq} of segment ${segid}, created if needed;
 * NULL when out of memory.  The key must pass objref_fits. */
static struct localdb_objref *
objref_get(struct localdb *db, int64_t segid64, uint64_t seq64)
{
	uint32_t segid = (uint32_t)segid64, seq = (uint32_t)seq64;
	struct localdb_objref *e;
	size_t i;

	if (db->refs_cap != 0) {
		for (i = objref_slot(segid, seq, db->refs_cap);;
		     i = (i + 1) & (db->refs_cap - 1)) {
			e = &db->refs[i];
			if (e->segid == segid &&
			    (e->seq_use & OBJREF_SEQ_MASK) == seq)
				return e;
			if (e->segid == 0)
				break;
		}
	}
	if ((db->refs_len + 1) * 4 > db->refs_cap * 3) { /* load <= 3/4 */
		size_t ncap = db->refs_cap ? db->refs_cap * 2 : 1024;
		struct localdb_objref *n = calloc(ncap, sizeof(*n));

		if (n == NULL) {
			err_set("local database: out of memory");
			return NULL;
		}
		for (size_t j = 0; j < db->refs_cap; j++) {
			if (db->refs[j].segid == 0)
				continue;
			i = objref_slot(db->refs[j].segid,
			    db->refs[j].seq_use & OBJREF_SEQ_MASK, ncap);
			while (n[i].segid != 0)
				i = (i + 1) & (ncap - 1);
			n[i] = db->refs[j];
		}
		free(db->refs);
		db->refs = n;
		db->refs_cap = ncap;
	}
	i = objref_slot(segid, seq, db->refs_cap);
	while (db->refs[i].segid != 0)
		i = (i + 1) & (db->refs_cap - 1);
	e = &db->refs[i];
	*e = (struct localdb_objref){ .segid = segid, .seq_use = seq,
		.refsize = OBJREF_NONE, .objsize = OBJREF_NONE };
	set_usable(e, -1);
	db->refs_len++;
	return e;
}

void
localdb_refs_reset(struct localdb *db)
{
	free(db->refs);
	db->refs = NULL;
	db->refs_len = db->refs_cap = 0;
	free(db->loaded);
	db->loaded = NULL;
	db->nloaded = db->loaded_cap = 0;
}

/* Position of ${segid} in db->loaded, or where it would go; *found. */
static size_t
loaded_pos(const struct localdb *db, int64_t segid, bool *found)
{
	size_t lo = 0, hi = db->nloaded;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (db->loaded[mid] < segid)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = lo < db->nloaded && db->loaded[lo] == segid;
	return lo;
}

/*
 * Learn every usable object of segment ${segid} at once (one query per
 * segment instead of one per object): an object not among them is not
 * usable.  A segment listed in missing_segments has none.  0 or -1.
 */
static int
load_segment(struct localdb *db, int64_t segid, const char *segment,
    size_t pos)
{
	sqlite3_stmt *s;
	bool missing = false;
	int r;

	if (db->has_missing) {
		if ((s = stmt(db, ST_SEG_MISSING)) == NULL)
			return -1;
		sqlite3_bind_text(s, 1, segment, -1, SQLITE_STATIC);
		if ((r = step(db, s, "check missing segment")) < 0)
			return -1;
		done(s);
		missing = r == 1;
	}
	if (!missing) {
		if ((s = stmt(db, ST_SEG_OBJECTS)) == NULL)
			return -1;
		sqlite3_bind_int64(s, 1, segid);
		while ((r = step(db, s, "list segment objects")) == 1) {
			const char *obj = (const char *)sqlite3_column_text(s, 0);
			struct localdb_objref *e;
			char canon[24], *end;
			unsigned long long seq;

			/* Only names object_name() gives can be asked for. */
			if (obj == NULL || obj[0] == '\0' || obj[0] == '-' ||
			    obj[0] == '+' || obj[0] == ' ')
				continue;
			errno = 0;
			seq = strtoull(obj, &end, 16);
			if (errno != 0 || *end != '\0')
				continue;
			object_name(seq, canon);
			if (strcmp(canon, obj) != 0 || !objref_fits(segid, seq))
				continue;
			if ((e = objref_get(db, segid, seq)) == NULL) {
				done(s);
				return -1;
			}
			set_usable(e, 1);
			if (sqlite3_column_type(s, 1) != SQLITE_NULL &&
			    objsize_fits(sqlite3_column_int64(s, 1)))
				e->objsize =
				    (uint32_t)sqlite3_column_int64(s, 1);
		}
		if (r < 0)
			return -1;
		done(s);
	}
	if (db->nloaded == db->loaded_cap) {
		size_t ncap = db->loaded_cap ? db->loaded_cap * 2 : 64;
		int64_t *n = realloc(db->loaded, ncap * sizeof(*n));

		if (n == NULL) {
			err_set("local database: out of memory");
			return -1;
		}
		db->loaded = n;
		db->loaded_cap = ncap;
	}
	memmove(db->loaded + pos + 1, db->loaded + pos,
	    (db->nloaded - pos) * sizeof(*db->loaded));
	db->loaded[pos] = segid;
	db->nloaded++;
	return 0;
}

int
localdb_block_available(struct localdb *db, const char *segment,
    uint64_t seq)
{
	struct localdb_objref *e;
	sqlite3_stmt *s;
	int64_t segid;
	char obj[24];
	int r;

	/* Inside a backup the answer is remembered: nothing expires or goes
	 * missing while the backup holds the write lock. */
	if (db->in_tx) {
		if (check_segment(segment)) {
			err_clear(); /* a name no segment has: not available */
			return 0;
		}
		if ((r = segment_id(db, segment, false, &segid)) <= 0)
			return r;
		if (!objref_fits(segid, seq))
			goto ask;
		if (db->last_loaded >= db->nloaded ||
		    db->loaded[db->last_loaded] != segid) {
			bool found;
			size_t pos = loaded_pos(db, segid, &found);

			if (!found && load_segment(db, segid, segment, pos) < 0)
				return -1;
			db->last_loaded = pos;
		}
		if ((e = objref_get(db, segid, seq)) == NULL)
			return -1;
		if (usable(e) < 0)
			set_usable(e, 0); /* not among the segment's usable objects */
		return usable(e);
	}
ask:
	object_name(seq, obj);
	s = stmt(db, db->has_missing ? ST_AVAIL_SIZE_M : ST_AVAIL_SIZE);
	if (s == NULL)
		return -1;
	sqlite3_bind_text(s, 1, segment, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, obj, -1, SQLITE_STATIC);
	if ((r = step(db, s, "check block")) < 0)
		return -1;
	done(s);
	return r;
}

int
localdb_store_block(struct localdb *db, const char *segment, uint64_t seq,
    const char *checksum, uint64_t size, double timestamp)
{
	sqlite3_stmt *s;
	int64_t segid;
	char obj[24];
	int r;

	if (check_segment(segment) || check_u63(size, "size"))
		return -1;
	if ((r = segment_id(db, segment, true, &segid)) != 1) {
		if (r == 0)
			err_set("local database: segment row vanished");
		return -1;
	}
	if (db->in_tx && checksum != NULL && objref_fits(segid, seq) &&
	    objsize_fits((int64_t)size)) {
		if (stage_put_block(db, segid, segment, seq, checksum, size,
			timestamp))
			return -1;
	} else {
		int64_t id = 0;

		/* Rows written directly are numbered with the staged ones. */
		if (db->in_tx && stage_next_id(db, &id))
			return -1;
		object_name(seq, obj);
		if ((s = stmt(db, ST_BLOCK_INSERT)) == NULL)
			return -1;
		sqlite3_bind_int64(s, 1, segid);
		sqlite3_bind_text(s, 2, obj, -1, SQLITE_STATIC);
		if (checksum != NULL)
			sqlite3_bind_text(s, 3, checksum, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 4, (int64_t)size);
		if (timestamp > 0)
			sqlite3_bind_double(s, 5, timestamp);
		if (id > 0)
			sqlite3_bind_int64(s, 6, id);
		if (step(db, s, "store block") < 0)
			return -1;
		done(s);
		if (db->in_tx && checksum != NULL)
			stage_note_key(db, stage_key_text(checksum));
	}
	if (db->in_tx && objref_fits(segid, seq)) {
		struct localdb_objref *e = objref_get(db, segid, seq);

		if (e == NULL)
			return -1;
		set_usable(e, 1);
		e->objsize = objsize_fits((int64_t)size) ? (uint32_t)size
							 : OBJREF_NONE;
	}
	return 0;
}

int
localdb_add_segment(struct localdb *db, const char *segment,
    const char *path, const char *checksum, uint64_t data_size,
    uint64_t disk_size, const char *type)
{
	sqlite3_stmt *s;
	int64_t segid;
	int r;

	if (check_segment(segment) || check_u63(data_size, "data size") ||
	    check_u63(disk_size, "disk size"))
		return -1;
	if ((r = segment_id(db, segment, true, &segid)) != 1) {
		if (r == 0)
			err_set("local database: segment row vanished");
		return -1;
	}
	if ((s = stmt(db, ST_SEG_UPDATE)) == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, segid);
	if (path != NULL)
		sqlite3_bind_text(s, 2, path, -1, SQLITE_STATIC);
	if (checksum != NULL)
		sqlite3_bind_text(s, 3, checksum, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, (int64_t)data_size);
	sqlite3_bind_int64(s, 5, (int64_t)disk_size);
	if (type != NULL)
		sqlite3_bind_text(s, 6, type, -1, SQLITE_STATIC);
	if (step(db, s, "update segment") < 0)
		return -1;
	done(s);
	return 0;
}

/* Remember a segment whose referenced object block_index lacks. */
static int
note_unknown(struct localdb *db, const char *segment)
{
	sqlite3_stmt *s;

	if ((s = stmt(db, ST_UNKNOWN_PUT)) == NULL)
		return -1;
	sqlite3_bind_text(s, 1, segment, -1, SQLITE_STATIC);
	if (step(db, s, "record unknown object") < 0)
		return -1;
	done(s);
	return 0;
}

int
localdb_use_object(struct localdb *db, const char *segment, uint64_t seq,
    uint64_t start, uint64_t length, bool whole)
{
	struct localdb_objref *e;
	sqlite3_stmt *s;
	int64_t segid, objsize, old, reflen, sum;
	bool known_size = whole && length != LOCALDB_SIZE_UNKNOWN;
	char obj[24];
	int r;

	if (!db->in_tx) {
		err_set("local database: no backup running");
		return -1;
	}
	if (check_segment(segment) ||
	    (length != LOCALDB_SIZE_UNKNOWN && check_u63(length, "length")))
		return -1;
	/* With an asserted size the original records even unknown objects. */
	if ((r = segment_id(db, segment, known_size, &segid)) < 0)
		return -1;
	if (r == 0 || !objref_fits(segid, seq) ||
	    (known_size && !objsize_fits((int64_t)length)))
		return note_unknown(db, segment) < 0 ? -1 : 0;
	if ((e = objref_get(db, segid, seq)) == NULL)
		return -1;
	if (known_size) {
		objsize = (int64_t)length;
	} else if (e->objsize != OBJREF_NONE) {
		/* A known size in block_index never changes. */
		objsize = e->objsize;
	} else {
		object_name(seq, obj);
		if ((s = stmt(db, ST_BLOCK_SIZE)) == NULL)
			return -1;
		sqlite3_bind_int64(s, 1, segid);
		sqlite3_bind_text(s, 2, obj, -1, SQLITE_STATIC);
		if ((r = step(db, s, "look up object size")) < 0)
			return -1;
		if (r == 0 || sqlite3_column_type(s, 0) == SQLITE_NULL) {
			done(s);
			return note_unknown(db, segment) < 0 ? -1 : 0;
		}
		objsize = sqlite3_column_int64(s, 0);
		done(s);
		if (!objsize_fits(objsize))
			return note_unknown(db, segment) < 0 ? -1 : 0;
		e->objsize = (uint32_t)objsize;
	}

	/*
	 * HEAD's rule: partial references add up, but only a reference to
	 * the whole object (now or before) may count it as fully used, since
	 * the pieces may overlap.
	 */
	old = e->refsize != OBJREF_NONE ? e->refsize : 0;
	reflen = whole ? objsize : (int64_t)length;
	sum = old > INT64_MAX - reflen ? INT64_MAX : old + reflen;
	if (old < objsize && reflen < objsize && sum > objsize - 1)
		sum = objsize - 1;
	if (sum > objsize)
		sum = objsize;
	if (sum < 0)
		sum = 0;
	e->refsize = (uint32_t)sum; /* <= objsize, which fits */
	return 1;
}

/* A segment's referenced bytes, in segsum_add()'s open-addressing table. */
struct segsum {
	uint32_t segid; /* 0: empty */
	int64_t sum;
};

static int
segsum_add(struct segsum **tab, size_t *cap, size_t *len, uint32_t segid,
    uint32_t size)
{
	size_t i;

	if ((*len + 1) * 2 > *cap) { /* load <= 1/2 */
		size_t ncap = *cap ? *cap * 2 : 64;
		struct segsum *n = calloc(ncap, sizeof(*n));

		if (n == NULL) {
			err_set("local database: out of memory");
			return -1;
		}
		for (size_t j = 0; j < *cap; j++) {
			if ((*tab)[j].segid == 0)
				continue;
			for (i = (*tab)[j].segid * 2654435761u & (ncap - 1);
			     n[i].segid != 0; i = (i + 1) & (ncap - 1))
				;
			n[i] = (*tab)[j];
		}
		free(*tab);
		*tab = n;
		*cap = ncap;
	}
	for (i = segid * 2654435761u & (*cap - 1);
	     (*tab)[i].segid != 0 && (*tab)[i].segid != segid;
	     i = (i + 1) & (*cap - 1))
		;
	if ((*tab)[i].segid == 0) {
		(*tab)[i].segid = segid;
		(*len)++;
	}
	(*tab)[i].sum += size; /* < 2^32 each, < 2^31 entries */
	return 0;
}

int
localdb_ref_flush(struct localdb *db)
{
	struct segsum *tab = NULL;
	size_t cap = 0, len = 0;
	sqlite3_stmt *s;
	int rc = -1;

	if (localdb_exec(db, "DELETE FROM snapshot_segrefs",
		"reset segment references"))
		return -1;
	/* The referenced objects summed per segment: a table as small as
	 * the number of segments, not a sort of every object. */
	for (size_t i = 0; i < db->refs_cap; i++)
		if (db->refs[i].segid != 0 && db->refs[i].refsize != OBJREF_NONE &&
		    segsum_add(&tab, &cap, &len, db->refs[i].segid,
			db->refs[i].refsize))
			goto out;
	for (size_t i = 0; i < cap; i++) {
		if (tab[i].segid == 0)
			continue;
		if ((s = stmt(db, ST_SEGREF_PUT)) == NULL)
			goto out;
		sqlite3_bind_int64(s, 1, tab[i].segid);
		sqlite3_bind_int64(s, 2, tab[i].sum);
		if (step(db, s, "record references") < 0)
			goto out;
		done(s);
	}
	rc = 0;
out:
	free(tab);
	return rc;
}

void
localdb_free_list(char **list, size_t n)
{
	if (list == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

int
localdb_snapshot_segments(struct localdb *db, char ***list, size_t *n)
{
	sqlite3_stmt *s;
	char **v = NULL;
	size_t len = 0, cap = 0;
	int r;

	*list = NULL;
	*n = 0;
	if (stage_flush(db))
		return -1;
	if (localdb_ref_flush(db) || (s = stmt(db, ST_SEGLIST)) == NULL)
		return -1;
	while ((r = step(db, s, "list segments")) == 1) {
		const unsigned char *seg = sqlite3_column_text(s, 0);

		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			char **nv = realloc(v, ncap * sizeof(*v));

			if (nv == NULL)
				goto oom;
			v = nv;
			cap = ncap;
		}
		if ((v[len] = strdup(seg ? (const char *)seg : "")) == NULL)
			goto oom;
		len++;
	}
	if (r < 0) {
		localdb_free_list(v, len);
		return -1;
	}
	done(s);
	*list = v;
	*n = len;
	return 0;
oom:
	done(s);
	localdb_free_list(v, len);
	err_set("out of memory");
	return -1;
}

int
localdb_legacy_algorithms(struct localdb *db, unsigned *mask)
{
	static const enum hash_alg algs[] = { HASH_SHA1, HASH_SHA224,
	    HASH_SHA256 };
	sqlite3_stmt *s;

	*mask = 0;
	if (stage_flush(db))
		return -1;
	for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
		char lo[16], hi[16];
		int r;

		/* "<alg>=" .. "<alg>>": every "<alg>=<hex>", by the index */
		snprintf(lo, sizeof(lo), "%s=", hash_name(algs[i]));
		snprintf(hi, sizeof(hi), "%s>", hash_name(algs[i]));
		if ((s = stmt(db, ST_ALG)) == NULL)
			return -1;
		sqlite3_bind_text(s, 1, lo, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, hi, -1, SQLITE_STATIC);
		if ((r = step(db, s, "list checksum algorithms")) < 0)
			return -1;
		done(s);
		if (r == 1)
			*mask |= 1u << algs[i];
	}
	return 0;
}

int
localdb_any_block_of_size(struct localdb *db, uint64_t size)
{
	sqlite3_stmt *s;
	int r;

	if (check_u63(size, "size") || stage_flush(db) ||
	    (s = stmt(db, ST_ANY_SIZE)) == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, (int64_t)size);
	if ((r = step(db, s, "look for a block size")) < 0)
		return -1;
	done(s);
	return r;
}

int
localdb_mark_segment_missing(struct localdb *db, const char *segment)
{
	sqlite3_stmt *s;

	if (stage_flush(db))
		return -1;
	if (check_segment(segment))
		return -1;
	if (!db->has_missing) {
		if (localdb_exec(db, "CREATE TABLE IF NOT EXISTS missing_segments"
		    " (segment TEXT PRIMARY KEY)", "create missing_segments"))
			return -1;
		db->has_missing = true;
	}
	if (sqlite3_prepare_v2(db->h, "INSERT OR IGNORE INTO missing_segments"
	    "(segment) VALUES (?1)", -1, &s, NULL) != SQLITE_OK)
		return localdb_dberr(db, "mark segment missing");
	sqlite3_bind_text(s, 1, segment, -1, SQLITE_STATIC);
	if (step(db, s, "mark segment missing") < 0) {
		sqlite3_finalize(s);
		return -1;
	}
	sqlite3_finalize(s);
	return 0;
}

static int
cmp_strp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int64_t
localdb_mark_absent_segments(struct localdb *db, char *const *present,
    size_t n)
{
	sqlite3_stmt *s;
	char **absent = NULL;
	size_t nabsent = 0;
	int64_t rc = -1;
	int r;

	if (!db->in_tx) {
		err_set("local database: no backup running");
		return -1;
	}
	if (stage_flush(db))
		return -1;
	/* Collect first: inserting while the query runs would change it. */
	if (sqlite3_prepare_v2(db->h, db->has_missing ?
	    "SELECT segment FROM segments s WHERE EXISTS (SELECT 1 FROM"
	    " block_index b WHERE b.segmentid = s.segmentid AND"
	    " b.expired IS NULL) AND segment NOT IN"
	    " (SELECT segment FROM missing_segments)" :
	    "SELECT segment FROM segments s WHERE EXISTS (SELECT 1 FROM"
	    " block_index b WHERE b.segmentid = s.segmentid AND"
	    " b.expired IS NULL)", -1, &s, NULL) != SQLITE_OK)
		return localdb_dberr(db, "list segments");
	while ((r = step(db, s, "list segments")) == 1) {
		const char *seg = (const char *)sqlite3_column_text(s, 0);
		char **nv;

		if (seg == NULL || *seg == '\0' || (n > 0 && bsearch(&seg, present, n,
		    sizeof(*present), cmp_strp) != NULL))
			continue;
		if ((nv = realloc(absent, (nabsent + 1) * sizeof(*nv))) ==
		    NULL || (nv[nabsent] = strdup(seg)) == NULL) {
			if (nv)
				absent = nv;
			err_set("out of memory");
			goto out;
		}
		absent = nv;
		nabsent++;
	}
	if (r < 0)
		goto out;
	for (size_t i = 0; i < nabsent; i++)
		if (localdb_mark_segment_missing(db, absent[i]))
			goto out;
	rc = (int64_t)nabsent;
out:
	sqlite3_finalize(s);
	localdb_free_list(absent, nabsent);
	return rc;
}

/*
 * Whether object ${seq} of ${segment} is staged by the running backup: 1
 * with its blockid (and size), 0, or -1 on error.
 */
static int
staged_id(struct localdb *db, const char *segment, uint64_t seq,
    int64_t *blockid, uint64_t *size, int64_t *segidp)
{
	int64_t segid;
	int r;

	if (!db->in_tx || db->stage == NULL)
		return 0;
	if (check_segment(segment)) {
		err_clear();
		return 0;
	}
	if ((r = segment_id(db, segment, false, &segid)) <= 0)
		return r;
	if (segidp != NULL)
		*segidp = segid;
	return stage_block_of(db, segid, seq, blockid, size);
}

int
localdb_get_signatures(struct localdb *db, const char *segment,
    uint64_t seq, char **algorithm, void **sig, size_t *len)
{
	sqlite3_stmt *s;
	const unsigned char *alg;
	const void *blob;
	int64_t blockid, segid;
	char obj[24];
	int n, r;

	*algorithm = NULL;
	*sig = NULL;
	*len = 0;
	if ((r = staged_id(db, segment, seq, &blockid, NULL, &segid)) < 0)
		return -1;
	if (r && (n = stage_get_signatures(db, segid, seq, algorithm, sig,
	              len)) != 0)
		return n;
	if ((s = stmt(db, r ? ST_SIG_GET_ID : ST_SIG_GET)) == NULL)
		return -1;
	if (r) {
		sqlite3_bind_int64(s, 1, blockid);
	} else {
		object_name(seq, obj);
		sqlite3_bind_text(s, 1, segment, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, obj, -1, SQLITE_STATIC);
	}
	if ((r = step(db, s, "read signatures")) <= 0)
		return r;
	alg = sqlite3_column_text(s, 0);
	blob = sqlite3_column_blob(s, 1);
	n = sqlite3_column_bytes(s, 1);
	*algorithm = strdup(alg ? (const char *)alg : "");
	*sig = malloc(n > 0 ? (size_t)n : 1);
	if (*algorithm == NULL || *sig == NULL) {
		done(s);
		free(*algorithm);
		free(*sig);
		*algorithm = NULL;
		*sig = NULL;
		err_set("out of memory");
		return -1;
	}
	if (n > 0)
		memcpy(*sig, blob, (size_t)n);
	*len = (size_t)n;
	done(s);
	return 1;
}

int
localdb_put_signatures(struct localdb *db, const char *segment,
    uint64_t seq, const char *algorithm, const void *sig, size_t len)
{
	sqlite3_stmt *s;
	int64_t blockid, segid;
	char obj[24];
	int r;

	if (len > INT32_MAX) {
		err_set("local database: signatures too large");
		return -1;
	}
	if ((r = staged_id(db, segment, seq, &blockid, NULL, &segid)) < 0)
		return -1;
	if (r == 1) {
		/* Staged with its block, written with it by the stage's
		 * writer; or else by SQL below, once the stage is written
		 * (and the block may have left it). */
		if ((r = stage_put_signatures(db, segid, seq, algorithm, sig,
		         len)) != 0)
			return r < 0 ? -1 : 0;
		if ((r = staged_id(db, segment, seq, &blockid, NULL, NULL)) < 0)
			return -1;
	}
	object_name(seq, obj);
	/* Not staged: its blockid from SQL.  (Not sqlite3_changes() after an
	 * INSERT ... SELECT: the stage's writer thread changes rows on the
	 * same connection meanwhile.) */
	if (r == 0) {
		if (check_segment(segment) ||
		    (r = segment_id(db, segment, false, &segid)) < 0 ||
		    (s = stmt(db, ST_BLOCK_ID)) == NULL)
			return -1;
		if (r == 1) {
			sqlite3_bind_int64(s, 1, segid);
			sqlite3_bind_text(s, 2, obj, -1, SQLITE_STATIC);
			if ((r = step(db, s, "look up block")) < 0)
				return -1;
			if (r == 1) {
				blockid = sqlite3_column_int64(s, 0);
				done(s);
			}
		}
		if (r == 0) {
			err_set("local database: no object %s/%s for "
				"signatures",
			    segment, obj);
			return -1;
		}
	}
	if ((s = stmt(db, ST_SIG_PUT_ID)) == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, blockid);
	sqlite3_bind_text(s, 3, algorithm, -1, SQLITE_STATIC);
	sqlite3_bind_blob(s, 4, len ? sig : "", (int)len, SQLITE_STATIC);
	if (step(db, s, "store signatures") < 0)
		return -1;
	done(s);
	return 0;
}

/* ---- chunk index (sub-file incrementals) ---- */

/*
 * The extension table chunk_index, created on first use.  Rows follow
 * their block: deleting a block_index row (cleaning, or the original's
 * tools) deletes its chunks and signatures, so a reused blockid never
 * inherits another block's chunks.
 */
static const char chunk_sql[] =
	"CREATE TABLE IF NOT EXISTS chunk_index (\n"
	"    hash BLOB NOT NULL, length INTEGER NOT NULL,\n"
	"    blockid INTEGER NOT NULL, offset INTEGER NOT NULL,\n"
	"    PRIMARY KEY (hash, blockid)) WITHOUT ROWID;\n"
	"CREATE INDEX IF NOT EXISTS chunk_index_block ON chunk_index(blockid);\n"
	"CREATE TRIGGER IF NOT EXISTS chunk_index_forget\n"
	"    AFTER DELETE ON block_index BEGIN\n"
	"    DELETE FROM chunk_index WHERE blockid = old.blockid;\n"
	"    DELETE FROM subblock_signatures WHERE blockid = old.blockid;\n"
	"END;\n";

int
localdb_chunks_known(struct localdb *db)
{
	int r;

	if (db->has_chunks)
		return 1;
	if ((r = table_exists(db, "chunk_index")) == 1)
		db->has_chunks = true;
	return r;
}

static int
chunks_ready(struct localdb *db)
{
	int r;

	if (db->has_chunks)
		return 0;
	/* Reading needs no write: only create when absent. */
	if ((r = table_exists(db, "chunk_index")) < 0)
		return -1;
	if (r == 0 && localdb_exec(db, chunk_sql, "create chunk_index"))
		return -1;
	db->has_chunks = true;
	return 0;
}

int
localdb_block_size(struct localdb *db, const char *segment, uint64_t seq,
    uint64_t *size)
{
	sqlite3_stmt *s;
	char obj[24];
	int r;

	if ((r = staged_id(db, segment, seq, NULL, size, NULL)) != 0)
		return r;
	object_name(seq, obj);
	if ((s = stmt(db, db->has_missing ? ST_AVAIL_SIZE_M : ST_AVAIL_SIZE)) ==
	    NULL)
		return -1;
	sqlite3_bind_text(s, 1, segment, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, obj, -1, SQLITE_STATIC);
	if ((r = step(db, s, "check block")) <= 0)
		return r;
	/* A row without a usable size cannot be sliced safely. */
	if (sqlite3_column_type(s, 0) != SQLITE_INTEGER ||
	    sqlite3_column_int64(s, 0) < 0)
		r = 0;
	else
		*size = (uint64_t)sqlite3_column_int64(s, 0);
	done(s);
	return r;
}

int
localdb_chunk_row(struct localdb *db, const unsigned char *digest,
    uint32_t length, int64_t blockid, uint32_t offset)
{
	sqlite3_stmt *s;

	if ((s = stmt(db, ST_CHUNK_ADD)) == NULL)
		return -1;
	sqlite3_bind_blob(s, 1, digest, LOCALDB_CHUNK_DIGEST, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, length);
	sqlite3_bind_int64(s, 3, blockid);
	sqlite3_bind_int64(s, 4, offset);
	if (step(db, s, "store chunk") < 0)
		return -1;
	done(s);
	if (db->in_tx)
		stage_note_key(db, stage_key_digest(digest));
	return 0;
}

int
localdb_chunks_sql(struct localdb *db, int64_t segid, uint64_t seq,
    const struct localdb_chunk *c, size_t n)
{
	sqlite3_stmt *s;
	int64_t blockid;
	char obj[24];
	int r;

	object_name(seq, obj);
	if ((s = stmt(db, ST_BLOCK_ID)) == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, segid);
	sqlite3_bind_text(s, 2, obj, -1, SQLITE_STATIC);
	if ((r = step(db, s, "look up block")) <= 0) {
		if (r == 0)
			err_set("local database: no object %s for chunks", obj);
		return -1;
	}
	blockid = sqlite3_column_int64(s, 0);
	done(s);
	for (size_t i = 0; i < n; i++)
		if (localdb_chunk_row(db, c[i].digest, c[i].length, blockid,
			c[i].offset))
			return -1;
	return 0;
}

int
localdb_add_chunks(struct localdb *db, const char *segment, uint64_t seq,
    const struct localdb_chunk *c, size_t n)
{
	int64_t segid;
	int r;

	if (n == 0)
		return 0;
	if (check_segment(segment) || chunks_ready(db))
		return -1;
	if ((r = segment_id(db, segment, false, &segid)) < 0)
		return -1;
	if (r == 0) {
		err_set("local database: no object %s/%08llx for chunks",
		    segment, (unsigned long long)seq);
		return -1;
	}
	if (db->in_tx && stage_block_of(db, segid, seq, NULL, NULL) == 1)
		return stage_put_chunks(db, segid, seq, c, n);
	if (localdb_chunks_sql(db, segid, seq, c, n)) {
		err_prefix("%s", segment);
		return -1;
	}
	return 0;
}

int
localdb_find_chunk(struct localdb *db,
    const unsigned char digest[LOCALDB_CHUNK_DIGEST], uint32_t length,
    struct ref *out, uint64_t *objsize)
{
	sqlite3_stmt *s;
	const unsigned char *seg;
	uint64_t seq;
	int r;

	if (db->in_tx &&
	    (r = stage_find_chunk(db, digest, length, out, objsize)) != 0)
		return r;
	if ((r = localdb_chunks_known(db)) <= 0)
		return r;
	if (db->in_tx && (r = stage_absent(db, stage_key_digest(digest))))
		return r < 0 ? -1 : 0;
	if ((s = stmt(db, db->has_missing ? ST_CHUNK_FIND_M : ST_CHUNK_FIND)) ==
	    NULL)
		return -1;
	sqlite3_bind_blob(s, 1, digest, LOCALDB_CHUNK_DIGEST, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, length);
	if ((r = step(db, s, "find chunk")) <= 0)
		return r;
	seg = sqlite3_column_text(s, 0);
	if (seg == NULL || check_segment((const char *)seg) ||
	    parse_object(sqlite3_column_text(s, 1), &seq) ||
	    sqlite3_column_int64(s, 2) < 0 || sqlite3_column_int64(s, 3) < 0) {
		done(s);
		return -1;
	}
	ref_set_object(out, (const char *)seg, seq);
	out->range = REF_RANGE_SLICE;
	out->start = (uint64_t)sqlite3_column_int64(s, 2);
	out->length = length;
	*objsize = (uint64_t)sqlite3_column_int64(s, 3);
	done(s);
	return 1;
}

int
localdb_segment_file(struct localdb *db, const char *segment, char **path,
    char **checksum)
{
	sqlite3_stmt *s = NULL;
	const unsigned char *p, *c;
	int rc = -1;

	*path = *checksum = NULL;
	if (sqlite3_prepare_v2(db->h,
		"SELECT path, checksum FROM segments WHERE segment = ?1", -1, &s,
		NULL) != SQLITE_OK) {
		localdb_dberr(db, "prepare");
		return -1;
	}
	sqlite3_bind_text(s, 1, segment, -1, SQLITE_STATIC);
	switch (sqlite3_step(s)) {
	case SQLITE_ROW:
		p = sqlite3_column_text(s, 0);
		c = sqlite3_column_text(s, 1);
		*path = p ? strdup((const char *)p) : NULL;
		*checksum = c ? strdup((const char *)c) : NULL;
		if ((p && *path == NULL) || (c && *checksum == NULL)) {
			free(*path);
			free(*checksum);
			*path = *checksum = NULL;
			err_set("out of memory");
			break;
		}
		rc = 1;
		break;
	case SQLITE_DONE:
		rc = 0;
		break;
	default:
		localdb_dberr(db, "segment lookup");
	}
	sqlite3_finalize(s);
	return rc;
}
