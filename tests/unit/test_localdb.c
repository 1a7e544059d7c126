/*
 * test_localdb: creating, accepting and migrating local databases, and the
 * backup-time operations.  Expected values come from the fixture databases
 * through independent SQL, not from constants.
 */
#include <sys/stat.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "buf.h"
#include "err.h"
#include "fileio.h"
#include "hash.h"
#include "localdb.h"
#include "ref.h"
#include "tap.h"

/* Evaluate ${x} with no error recorded before, for messages. */
#define CLR(x) (err_clear(), (x))

static char tmpdir[256];
static int dirno;

static const char *
top(void)
{
	const char *t = getenv("CUMULUS_TOP");

	return t ? t : ".";
}

/* A fresh empty directory under tmpdir. */
static char *
newdir(void)
{
	char *d = malloc(300);

	snprintf(d, 300, "%s/d%d", tmpdir, ++dirno);
	if (mkdir(d, 0755) != 0) {
		perror(d);
		exit(1);
	}
	return d;
}

static int
copy_file(const char *from, const char *to)
{
	struct buf b;
	int fd, rc;

	buf_init(&b, BUF_UNLIMITED);
	if (fileio_read_file(from, &b))
		return -1;
	fd = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	rc = fd < 0 ? -1 : fileio_write_full(fd, b.data, b.len);
	if (fd >= 0)
		close(fd);
	buf_release(&b);
	return rc;
}

static sqlite3 *
sq_open(const char *dir)
{
	char p[400];
	sqlite3 *h = NULL;

	snprintf(p, sizeof(p), "%s/localdb.sqlite", dir);
	if (sqlite3_open_v2(p, &h, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		fprintf(stderr, "open %s: %s\n", p, sqlite3_errmsg(h));
		exit(1);
	}
	return h;
}

/* The integer result of ${sql} (first column of the first row), -1 if none. */
static int64_t
sq_int(sqlite3 *h, const char *sql)
{
	sqlite3_stmt *s;
	int64_t v = -1;

	if (sqlite3_prepare_v2(h, sql, -1, &s, NULL) != SQLITE_OK) {
		fprintf(stderr, "# %s: %s\n", sql, sqlite3_errmsg(h));
		return -2;
	}
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

/* All rows of ${sql} as text, one line each, columns separated by '|'. */
static char *
sq_text(sqlite3 *h, const char *sql)
{
	sqlite3_stmt *s;
	struct buf b;

	buf_init(&b, BUF_UNLIMITED);
	buf_puts(&b, "");
	if (sqlite3_prepare_v2(h, sql, -1, &s, NULL) != SQLITE_OK) {
		fprintf(stderr, "# %s: %s\n", sql, sqlite3_errmsg(h));
		return buf_detach(&b, NULL);
	}
	while (sqlite3_step(s) == SQLITE_ROW) {
		for (int i = 0; i < sqlite3_column_count(s); i++) {
			const unsigned char *t = sqlite3_column_text(s, i);

			buf_printf(&b, "%s%s", i ? "|" : "",
			    t ? (const char *)t : "NULL");
		}
		buf_putc(&b, '\n');
	}
	sqlite3_finalize(s);
	return buf_detach(&b, NULL);
}

static void
sq_exec(sqlite3 *h, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(h, sql, NULL, NULL, &msg) != SQLITE_OK) {
		fprintf(stderr, "# %s: %s\n", sql, msg);
		exit(1);
	}
}

static const char schema_text_sql[] =
    "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name";

static void
test_schema_file(void)
{
	struct buf b;
	char p[400];

	buf_init(&b, BUF_UNLIMITED);
	snprintf(p, sizeof(p), "%s/schema.sql", top());
	ok(CLR(fileio_read_file(p, &b)) == 0, "read schema.sql: %s", err_msg());
	ok(b.len == strlen(localdb_schema_sql()) &&
	    memcmp(b.data, localdb_schema_sql(), b.len) == 0,
	    "compiled-in schema is identical to schema.sql");
	buf_release(&b);
}

/* A new database, and one made by hand from schema.sql, are the same. */
static void
test_create(void)
{
	char *d1 = newdir(), *d2 = newdir(), p[400], *s1, *s2;
	struct localdb *db;
	struct stat st;
	sqlite3 *h1, *h2;

	snprintf(p, sizeof(p), "%s/localdb.sqlite", d1);
	ok(stat(p, &st) != 0, "no database before open");
	ok(CLR(localdb_open(d1, &db)) == 0, "open creates: %s", err_msg());
	localdb_close(db);
	ok(stat(p, &st) == 0, "database file created");
	h1 = sq_open(d1);
	ok(sq_int(h1, "SELECT major * 100 + minor FROM schema_version "
	    "WHERE version = '0.11'") == 11, "schema_version is 0.11");

	/* by hand: an empty file, then the schema as sqlite3 .read does */
	snprintf(p, sizeof(p), "%s/localdb.sqlite", d2);
	close(open(p, O_WRONLY | O_CREAT, 0644));
	h2 = sq_open(d2);
	sq_exec(h2, localdb_schema_sql());
	s1 = sq_text(h1, schema_text_sql);
	s2 = sq_text(h2, schema_text_sql);
	ok(strcmp(s1, s2) == 0 && strstr(s1, "block_index") != NULL,
	    "same tables and indexes as a database made from schema.sql");
	sqlite3_close(h2);
	ok(CLR(localdb_open(d2, &db)) == 0,
	    "database from schema.sql accepted: %s",
	    err_msg());
	localdb_close(db);
	free(s1);
	free(s2);

	/* an empty existing file is also given the schema */
	free(d2);
	d2 = newdir();
	snprintf(p, sizeof(p), "%s/localdb.sqlite", d2);
	close(open(p, O_WRONLY | O_CREAT, 0644));
	ok(CLR(localdb_open(d2, &db)) == 0, "empty file gets the schema");
	localdb_close(db);
	h2 = sq_open(d2);
	ok(sq_int(h2, "SELECT minor FROM schema_version") == 11,
	    "... version row present");
	sqlite3_close(h2);
	sqlite3_close(h1);

	/* a directory that does not exist */
	snprintf(p, sizeof(p), "%s/nonexistent", tmpdir);
	err_clear();
	ok(localdb_open(p, &db) == -1 && db == NULL && *err_msg(),
	    "missing directory is an error: %s", err_msg());
	free(d1);
	free(d2);
}

static void
test_bad_version(void)
{
	char *d = newdir();
	struct localdb *db;
	sqlite3 *h;
	char p[400];

	snprintf(p, sizeof(p), "%s/localdb.sqlite", d);
	close(open(p, O_WRONLY | O_CREAT, 0644));
	h = sq_open(d);
	sq_exec(h, localdb_schema_sql());
	sq_exec(h, "UPDATE schema_version SET version = '0.10', minor = 10");
	sqlite3_close(h);
	ok(CLR(localdb_open(d, &db)) == -1 && strstr(err_msg(), "0.10") != NULL,
	    "schema version 0.10 refused: %s", err_msg());

	free(d);
	d = newdir();
	snprintf(p, sizeof(p), "%s/localdb.sqlite", d);
	close(open(p, O_WRONLY | O_CREAT, 0644));
	h = sq_open(d);
	sq_exec(h, "CREATE TABLE something(x)");
	sqlite3_close(h);
	ok(CLR(localdb_open(d, &db)) == -1 && *err_msg(),
	    "foreign database refused: %s", err_msg());
	free(d);
}

/* The original's 0.11 database: accepted, its blocks found. */
static void
test_head_fixture(void)
{
	char *d = newdir(), p[400], g[400], *before, *after;
	struct localdb *db;
	sqlite3 *h;
	sqlite3_stmt *s;
	struct ref r;
	unsigned mask = 0;
	int found = 0, rows = 0, avail = 0;

	snprintf(g, sizeof(g), "%s/tests/golden/head-bzip2/localdb/"
	    "localdb.sqlite", top());
	snprintf(p, sizeof(p), "%s/localdb.sqlite", d);
	ok(copy_file(g, p) == 0, "copy head fixture");
	h = sq_open(d);
	before = sq_text(h, "SELECT * FROM block_index ORDER BY blockid");
	ok(CLR(localdb_open(d, &db)) == 0, "0.11 fixture accepted: %s",
	    err_msg());
	after = sq_text(h, "SELECT * FROM block_index ORDER BY blockid");
	ok(strcmp(before, after) == 0, "opening changes nothing");

	sqlite3_prepare_v2(h, "SELECT s.segment, b.object, b.checksum, b.size"
	    " FROM block_index b JOIN segments s USING (segmentid)"
	    " WHERE b.expired IS NULL", -1, &s, NULL);
	while (sqlite3_step(s) == SQLITE_ROW) {
		const char *seg = (const char *)sqlite3_column_text(s, 0);
		uint64_t seq = strtoull((const char *)sqlite3_column_text(s, 1),
		    NULL, 16);
		const char *sum = (const char *)sqlite3_column_text(s, 2);
		uint64_t size = (uint64_t)sqlite3_column_int64(s, 3);

		rows++;
		if (localdb_find_block(db, sum, size, &r) == 1 &&
		    r.kind == REF_OBJECT && r.range == REF_RANGE_BARE &&
		    r.length == size) {
			/* duplicates may resolve to another copy */
			if ((strcmp(r.segment, seg) == 0 && r.seq == seq) ||
			    localdb_block_available(db, r.segment, r.seq) == 1)
				found++;
		}
		if (localdb_block_available(db, seg, seq) == 1)
			avail++;
	}
	sqlite3_finalize(s);
	ok(rows > 0 && found == rows, "every block found by checksum and size"
	    " (%d of %d)", found, rows);
	ok(avail == rows, "every block available");

	/* the wrong size finds nothing */
	{
		char *sum = sq_text(h, "SELECT checksum FROM block_index "
		    "WHERE size = (SELECT max(size) FROM block_index) LIMIT 1");
		int64_t size = sq_int(h, "SELECT max(size) FROM block_index");

		sum[strcspn(sum, "\n")] = '\0';
		ok(localdb_find_block(db, sum, (uint64_t)size, &r) == 1,
		    "largest block found");
		ok(localdb_find_block(db, sum, (uint64_t)size + 1, &r) == 0,
		    "... not with another size");
		free(sum);
	}
	ok(localdb_find_block(db, "sha224=00", 5, &r) == 0,
	    "unknown checksum not found");
	ok(localdb_block_available(db, "no-such-segment", 0) == 0,
	    "unknown segment not available");

	ok(localdb_any_block_of_size(db, 1048576) ==
		(sq_int(h, "SELECT count(*) FROM block_index WHERE "
		    "size = 1048576") > 0) &&
	    localdb_any_block_of_size(db, 1048575) ==
		(sq_int(h, "SELECT count(*) FROM block_index WHERE "
		    "size = 1048575") > 0),
	    "blocks of 1 MiB and of 1 MiB - 1 found by size as SQL counts them");
	ok(localdb_legacy_algorithms(db, &mask) == 0, "legacy algorithms");
	ok(mask == ((sq_int(h, "SELECT count(*) FROM block_index WHERE "
	    "checksum LIKE 'sha1=%'") > 0 ? 1u << HASH_SHA1 : 0) |
	    (sq_int(h, "SELECT count(*) FROM block_index WHERE "
	    "checksum LIKE 'sha224=%'") > 0 ? 1u << HASH_SHA224 : 0) |
	    (sq_int(h, "SELECT count(*) FROM block_index WHERE "
	    "checksum LIKE 'sha256=%'") > 0 ? 1u << HASH_SHA256 : 0)) &&
	    (mask & 1u << HASH_SHA224), "... mask %#x matches the rows", mask);

	/* the original's signatures are readable */
	{
		char *alg = NULL;
		void *sig = NULL;
		size_t len = 0;
		char *row = sq_text(h, "SELECT s.segment, b.object,"
		    " length(g.signatures), g.algorithm"
		    " FROM subblock_signatures"
		    " g JOIN block_index b USING (blockid)"
		    " JOIN segments s USING (segmentid) LIMIT 1");
		char seg[80] = "", obj[32] = "", galg[64] = "";
		unsigned long glen = 0;

		if (*row)
			sscanf(row, "%79[^|]|%31[^|]|%lu|%63[^\n]", seg, obj,
			    &glen, galg);
		ok(*row && localdb_get_signatures(db, seg,
		    strtoull(obj, NULL, 16), &alg, &sig, &len) == 1 &&
		    len == glen && strcmp(alg, galg) == 0,
		    "signatures of %s/%s read (%s)", seg, obj, alg ? alg : "");
		free(alg);
		free(sig);
		free(row);
	}
	localdb_close(db);
	sqlite3_close(h);
	free(before);
	free(after);
	free(d);
}

static const char v09_schema[] =
    "CREATE TABLE snapshots (snapshotid integer primary key,"
    " name text not null, scheme text not null, timestamp real,"
    " intent real);"
    "CREATE TABLE segments (segmentid integer primary key,"
    " segment text unique not null, path text, checksum text, mtime real,"
    " size integer, expire_time integer);"
    "CREATE TABLE block_index (blockid integer primary key,"
    " segmentid integer not null, object text not null, checksum text,"
    " size integer, timestamp real, expired integer);"
    "CREATE INDEX block_content_index on block_index(checksum);"
    "CREATE UNIQUE INDEX block_name_index on block_index(segmentid, object);"
    "CREATE TABLE subblock_signatures (blockid integer primary key,"
    " algorithm text not null, signatures blob not null);"
    "CREATE TABLE segments_used (snapshotid integer not null,"
    " segmentid integer not null, utilization real);"
    "CREATE UNIQUE INDEX segments_used_index"
    " on segments_used(snapshotid, segmentid);"
    "CREATE VIEW segment_info as select segmentid, mtime, size, expire_time,"
    " cast(size * utilization as integer) as used, utilization"
    " from segments join (select segmentid, max(utilization) as utilization"
    " from segments_used group by segmentid) using (segmentid);";

/* Check a migrated database against the 0.9 original ${g}. */
static void
check_migrated(const char *what, const char *d, const char *g)
{
	char p[400], *fresh_schema, *schema, *a, *b;
	struct buf orig, bak;
	sqlite3 *h, *o;
	char *fresh = newdir();
	struct localdb *db;

	snprintf(p, sizeof(p), "%s/%s", d, LOCALDB_BACKUP_FILE);
	buf_init(&orig, BUF_UNLIMITED);
	buf_init(&bak, BUF_UNLIMITED);
	fileio_read_file(g, &orig);
	ok(fileio_read_file(p, &bak) == 0 && bak.len == orig.len &&
	    memcmp(bak.data, orig.data, orig.len) == 0,
	    "%s: backup copy identical to the 0.9 file", what);
	buf_release(&orig);
	buf_release(&bak);

	localdb_open(fresh, &db);
	localdb_close(db);
	h = sq_open(fresh);
	fresh_schema = sq_text(h, schema_text_sql);
	sqlite3_close(h);
	h = sq_open(d);
	schema = sq_text(h, schema_text_sql);
	ok(strcmp(schema, fresh_schema) == 0,
	    "%s: migrated schema is exactly the 0.11 schema", what);
	if (strcmp(schema, fresh_schema) != 0)
		printf("# got:\n%s# want:\n%s", schema, fresh_schema);

	if (sqlite3_open_v2(g, &o, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		exit(1);
	a = sq_text(o, "SELECT snapshotid, name, scheme, timestamp"
	    " FROM snapshots ORDER BY 1");
	b = sq_text(h, "SELECT snapshotid, name, scheme, timestamp"
	    " FROM snapshots ORDER BY 1");
	ok(*a && strcmp(a, b) == 0, "%s: snapshots kept", what);
	free(a);
	free(b);
	a = sq_text(o, "SELECT segmentid, segment, mtime, path, checksum,"
	    " size, NULL, NULL FROM segments ORDER BY 1");
	b = sq_text(h, "SELECT segmentid, segment, timestamp, path, checksum,"
	    " data_size, disk_size, type FROM segments ORDER BY 1");
	ok(*a && strcmp(a, b) == 0, "%s: segments converted", what);
	free(a);
	free(b);
	a = sq_text(o, "SELECT * FROM block_index ORDER BY 1");
	b = sq_text(h, "SELECT * FROM block_index ORDER BY 1");
	ok(*a && strcmp(a, b) == 0, "%s: block_index unchanged", what);
	free(a);
	free(b);
	a = sq_text(o, "SELECT blockid, algorithm, hex(signatures)"
	    " FROM subblock_signatures ORDER BY 1");
	b = sq_text(h, "SELECT blockid, algorithm, hex(signatures)"
	    " FROM subblock_signatures ORDER BY 1");
	ok(strcmp(a, b) == 0, "%s: subblock_signatures unchanged", what);
	free(a);
	free(b);
	a = sq_text(o, "SELECT u.snapshotid, u.segmentid,"
	    " CAST(s.size * coalesce(u.utilization, 0) AS INTEGER)"
	    " FROM segments_used u"
	    " JOIN segments s USING (segmentid) ORDER BY 1, 2");
	b = sq_text(h, "SELECT snapshotid, segmentid, bytes_referenced"
	    " FROM segment_utilization ORDER BY 1, 2");
	ok(*a && strcmp(a, b) == 0, "%s: utilization as bytes", what);
	free(a);
	free(b);
	sqlite3_close(o);
	sqlite3_close(h);
	free(schema);
	free(fresh_schema);
	free(fresh);
}

static void
test_v09_fixture(void)
{
	char *d = newdir(), p[400], g[400];
	struct localdb *db;
	unsigned mask = 0;
	struct stat st1, st2;

	snprintf(g, sizeof(g), "%s/tests/golden/v09-bzip2/localdb/"
	    "localdb.sqlite", top());
	snprintf(p, sizeof(p), "%s/localdb.sqlite", d);
	ok(copy_file(g, p) == 0, "copy 0.9 fixture");
	ok(CLR(localdb_open(d, &db)) == 0, "0.9 fixture opened: %s", err_msg());
	ok(localdb_legacy_algorithms(db, &mask) == 0 &&
	    mask == 1u << HASH_SHA1, "0.9 fixture has sha1 blocks only");
	localdb_close(db);
	check_migrated("v09 fixture", d, g);

	/* a second open does not migrate again */
	snprintf(p, sizeof(p), "%s/%s", d, LOCALDB_BACKUP_FILE);
	stat(p, &st1);
	unlink(p);
	ok(CLR(localdb_open(d, &db)) == 0 && stat(p, &st2) != 0,
	    "migrated database opens as 0.11");
	localdb_close(db);
	free(d);
}

/* A 0.9 database with expired blocks and partial utilization. */
static void
test_v09_synthetic(void)
{
	char *d = newdir(), *gd = newdir(), p[400], g[400];
	struct localdb *db;
	sqlite3 *h;
	struct ref r;
	double ts = 0;
	int expired = -1;

	snprintf(g, sizeof(g), "%s/localdb.sqlite", gd);
	close(open(g, O_WRONLY | O_CREAT, 0644));
	h = sq_open(gd);
	sq_exec(h, v09_schema);
	sq_exec(h, "INSERT INTO snapshots VALUES (1, '20090101T000000', '',"
	    " 2454832.5, 1.0), (2, '20090102T000000', 'daily', 2454833.5, 2.0);"
	    "INSERT INTO segments VALUES (1, 'seg-live', 'seg-live.tar.gz',"
	    " 'sha1=aa', 2454832.5, 1000, NULL), (2, 'seg-old', NULL, NULL,"
	    " 2454830.25, 3000, 1);"
	    "INSERT INTO block_index VALUES"
	    " (1, 1, '00000000', 'sha1=11', 600, 2454832.5, NULL),"
	    " (2, 1, '00000001', 'sha1=22', 400, 2454832.5, NULL),"
	    " (3, 2, '00000000', 'sha1=33', 3000, 2454830.25, 2);"
	    "INSERT INTO subblock_signatures VALUES (3, 'lbfs-4096/sha1',"
	    " x'0010aabb');"
	    "INSERT INTO segments_used VALUES (1, 1, 1.0), (1, 2, 0.5),"
	    " (2, 1, 0.3), (2, 2, NULL);");
	sqlite3_close(h);
	snprintf(p, sizeof(p), "%s/localdb.sqlite", d);
	copy_file(g, p);
	ok(CLR(localdb_open(d, &db)) == 0,
	    "synthetic 0.9 database migrated: %s",
	    err_msg());
	ok(localdb_find_block(db, "sha1=11", 600, &r) == 1 &&
	    strcmp(r.segment, "seg-live") == 0 && r.seq == 0,
	    "live block found after migration");
	ok(localdb_find_block(db, "sha1=33", 3000, &r) == 0,
	    "expired block not found");
	ok(localdb_find_old_block(db, "sha1=33", 3000, &ts, &expired) == 1 &&
	    expired == 2 && ts > 2454830.2 && ts < 2454830.3,
	    "expired block keeps its group and age (%d, %f)", expired, ts);
	localdb_close(db);
	check_migrated("synthetic", d, g);
	free(d);
	free(gd);
}

static int64_t
refs_bytes(sqlite3 *h, int64_t snap, const char *seg)
{
	char q[300];

	snprintf(q, sizeof(q), "SELECT bytes_referenced FROM "
	    "segment_utilization JOIN segments USING (segmentid) "
	    "WHERE snapshotid = %lld AND segment = '%s'", (long long)snap, seg);
	return sq_int(h, q);
}

static void
test_session(void)
{
	char *d = newdir();
	struct localdb *db;
	sqlite3 *h;
	struct ref r;
	char **list = NULL;
	size_t n = 0;
	double ts = 0;
	int expired = -1;
	int64_t snap, snaps;
	char *seg;

	ok(CLR(localdb_open(d, &db)) == 0, "open new");
	h = sq_open(d);
	ok(localdb_use_object(db, "a", 0, 0, 1, false) == -1,
	    "use_object outside a backup is an error");
	ok(localdb_begin_snapshot(db, "20260101T000000", NULL, 1.0) == 0,
	    "begin snapshot");
	snap = localdb_snapshot_id(db);
	ok(snap > 0, "snapshot id %lld", (long long)snap);
	ok(localdb_begin_snapshot(db, "x", "", 1.0) == -1,
	    "nested begin refused");
	ok(localdb_store_block(db, "segA", 0, "sha256=aa", 100, 0) == 0 &&
	    localdb_store_block(db, "segA", 1, "sha256=bb", 200, 0) == 0 &&
	    localdb_store_block(db, "segA", 0x1a, "sha256=cc", 50,
	    2450000.5) == 0, "store blocks");
	ok(localdb_store_block(db, "segA", 1, "sha256=dd", 1, 0) == -1,
	    "storing the same object twice fails");
	ok(localdb_add_segment(db, "segA", "segments1/segA.tar.gz", "sha224=ee",
	    350, 123, "data") == 0, "add segment");
	ok(sq_int(h, "SELECT count(*) FROM block_index") == 0,
	    "nothing visible to other connections before commit");
	ok(localdb_any_block_of_size(db, 200) == 1 &&
	    localdb_any_block_of_size(db, 50) == 1 &&
	    localdb_any_block_of_size(db, 300) == 0,
	    "blocks of 200 and 50 bytes staged are seen by size, none of 300");

	ok(localdb_find_block(db, "sha256=bb", 200, &r) == 1 &&
	    strcmp(r.segment, "segA") == 0 && r.seq == 1, "find stored block");
	ok(localdb_find_old_block(db, "sha256=cc", 50, &ts, &expired) == 1 &&
	    ts == 2450000.5 && expired == 0, "inherited age kept");
	ok(localdb_block_available(db, "segA", 0x1a) == 1 &&
	    localdb_block_available(db, "segA", 0x1b) == 0,
	    "availability of object 1a / 1b");

	ok(localdb_use_object(db, "segA", 0, 0, 100, true) == 1,
	    "use whole object 0 (size asserted)");
	ok(localdb_use_object(db, "segA", 1, 0, 50, false) == 1 &&
	    localdb_use_object(db, "segA", 1, 50, 50, false) == 1 &&
	    localdb_use_object(db, "segA", 1, 100, 100, false) == 1,
	    "slices of object 1 adding up to its size");
	ok(localdb_use_object(db, "segA", 0x1a, 0, 20, false) == 1,
	    "slice of object 1a");
	ok(localdb_use_object(db, "segB", 5, 0, 10, false) == 0,
	    "unknown object in unknown segment: 0");
	ok(localdb_use_object(db, "segA", 9, 0, LOCALDB_SIZE_UNKNOWN,
	    true) == 0, "unknown object of known segment: 0");
	ok(localdb_use_object(db, "segC", 2, 0, 30, true) == 1,
	    "whole object with asserted size, unknown segment: accounted");
	ok(localdb_snapshot_segments(db, &list, &n) == 0 && n == 3 &&
	    strcmp(list[0], "segA") == 0 && strcmp(list[1], "segB") == 0 &&
	    strcmp(list[2], "segC") == 0, "segment list sorted, with unknowns");
	localdb_free_list(list, n);
	ok(CLR(localdb_commit_snapshot(db)) == 0, "commit: %s", err_msg());
	ok(refs_bytes(h, snap, "segA") == 100 + 199 + 20,
	    "partial slices capped below the object size (%lld)",
	    (long long)refs_bytes(h, snap, "segA"));
	ok(refs_bytes(h, snap, "segC") == 30, "asserted size counted");
	ok(refs_bytes(h, snap, "segB") == -1, "unknown object not counted");
	seg = sq_text(h, "SELECT segment, path, checksum, data_size, disk_size,"
	    " type, timestamp > 2460000 FROM segments WHERE segment = 'segA'");
	is_str(seg, "segA|segments1/segA.tar.gz|sha224=ee|350|123|data|1\n",
	    "segment row filled in");
	free(seg);
	ok(sq_int(h, "SELECT count(*) FROM snapshots WHERE scheme = '' AND"
	    " name = '20260101T000000' AND timestamp > 2460000") == 1,
	    "snapshot row committed");

	/* a second backup: whole-object use after a partial one is full */
	snaps = sq_int(h, "SELECT count(*) FROM snapshots");
	ok(localdb_begin_snapshot(db, "20260102T000000", "daily", 1.0) == 0,
	    "second backup");
	ok(localdb_snapshot_segments(db, &list, &n) == 0 && n == 0,
	    "accounting starts empty");
	localdb_free_list(list, n);
	localdb_use_object(db, "segA", 1, 10, 150, false);
	localdb_use_object(db, "segA", 1, 0, LOCALDB_SIZE_UNKNOWN, true);
	localdb_use_object(db, "segA", 1, 0, 10, false);
	ok(CLR(localdb_commit_snapshot(db)) == 0, "commit second");
	ok(refs_bytes(h, localdb_snapshot_id(db), "segA") == 200,
	    "whole reference counts the full object");

	/* an aborted backup leaves nothing */
	ok(localdb_begin_snapshot(db, "20260103T000000", "", 1.0) == 0 &&
	    localdb_store_block(db, "segD", 0, "sha256=ff", 10, 0) == 0,
	    "third backup stores a block");
	localdb_abort(db);
	ok(localdb_find_block(db, "sha256=ff", 10, &r) == 0 &&
	    sq_int(h, "SELECT count(*) FROM snapshots") == snaps + 1 &&
	    sq_int(h, "SELECT count(*) FROM segments WHERE segment = 'segD'")
	    == 0, "abort rolled everything back");

	/* expired and missing blocks are not reused */
	sq_exec(h, "UPDATE block_index SET expired = 3 WHERE checksum ="
	    " 'sha256=aa'");
	ok(localdb_find_block(db, "sha256=aa", 100, &r) == 0 &&
	    localdb_block_available(db, "segA", 0) == 0,
	    "expired block neither found nor available");
	ok(localdb_find_old_block(db, "sha256=aa", 100, &ts, &expired) == 1 &&
	    expired == 3, "... but old (group 3)");
	ok(localdb_mark_segment_missing(db, "segA") == 0 &&
	    localdb_mark_segment_missing(db, "segA") == 0, "mark segA missing");
	ok(localdb_find_block(db, "sha256=bb", 200, &r) == 0 &&
	    localdb_block_available(db, "segA", 1) == 0,
	    "blocks of a missing segment are not reused");
	localdb_close(db);
	ok(CLR(localdb_open(d, &db)) == 0 &&
	    localdb_find_block(db, "sha256=bb", 200, &r) == 0,
	    "missing mark persists");

	/* signatures */
	{
		static const unsigned char blob[] = { 0, 16, 0xab, 0, 0xcd };
		char *alg = NULL;
		void *sig = NULL;
		size_t len = 0;

		ok(localdb_put_signatures(db, "segA", 0x1a, "lbfs-4096/sha256",
		    blob, sizeof(blob)) == 0, "put signatures");
		ok(localdb_get_signatures(db, "segA", 0x1a, &alg, &sig,
		    &len) == 1 && len == sizeof(blob) &&
		    memcmp(sig, blob, len) == 0 &&
		    strcmp(alg, "lbfs-4096/sha256") == 0, "get them back");
		free(alg);
		free(sig);
		ok(localdb_get_signatures(db, "segA", 1, &alg, &sig, &len) == 0,
		    "object without signatures: 0");
		ok(localdb_put_signatures(db, "segZ", 0, "x", blob, 1) == -1,
		    "signatures for an unknown object refused");
	}
	localdb_close(db);
	localdb_close(NULL);
	sqlite3_close(h);
	free(d);
}

/*
 * The backup's in-memory accounting keeps 32-bit segment ids and sizes,
 * and 30-bit sequence numbers.  Wider ones (no writer makes them, but a database may
 * hold them) are answered by SQLite and counted as unknown, which keeps
 * their segment in the snapshot's list.
 */
static void
test_wide_keys(void)
{
	char *d = newdir();
	struct localdb *db;
	sqlite3 *h;
	char **list = NULL;
	size_t n = 0;
	int64_t snap;

	ok(CLR(localdb_open(d, &db)) == 0, "open new (wide keys)");
	h = sq_open(d);
	sq_exec(h, "INSERT INTO segments(segmentid, segment)"
	    " VALUES (8589934592, 'segBig'), (7, 'segN');"
	    "INSERT INTO block_index(segmentid, object, checksum, size)"
	    " VALUES (8589934592, '00000000', 'sha256=01', 10),"
	    " (7, '100000000', 'sha256=02', 20),"
	    " (7, '00000001', 'sha256=03', 5000000000),"
	    " (7, '00000002', 'sha256=04', 30),"
	    " (7, '40000000', 'sha256=06', 40),"
	    " (7, '3fffffff', 'sha256=07', 50)");
	ok(localdb_begin_snapshot(db, "20260105T000000", NULL, 1.0) == 0,
	    "begin snapshot");
	snap = localdb_snapshot_id(db);
	ok(localdb_block_available(db, "segBig", 0) == 1 &&
	    localdb_block_available(db, "segBig", 1) == 0,
	    "segment id over 32 bits: availability from SQLite");
	ok(localdb_block_available(db, "segN", 0x100000000ull) == 1 &&
	    localdb_block_available(db, "segN", 0x100000001ull) == 0 &&
	    localdb_block_available(db, "segN", 1) == 1 &&
	    localdb_block_available(db, "segN", 2) == 1 &&
	    localdb_block_available(db, "segN", 3) == 0,
	    "sequence numbers over 32 bits next to small ones");
	ok(localdb_block_available(db, "segN", 0x40000000) == 1 &&
	    localdb_block_available(db, "segN", 0x40000001) == 0 &&
	    localdb_block_available(db, "segN", 0x3fffffff) == 1,
	    "sequence numbers of 30 bits and over");
	ok(localdb_use_object(db, "segBig", 0, 0, 10, true) == 0,
	    "wide segment id: counted as unknown");
	ok(localdb_use_object(db, "segN", 0x100000000ull, 0, 20, true) == 0,
	    "wide sequence number: counted as unknown");
	ok(localdb_use_object(db, "segN", 1, 0, LOCALDB_SIZE_UNKNOWN,
	    true) == 0, "object of 5 GB: counted as unknown");
	ok(localdb_use_object(db, "segN", 2, 0, 30, true) == 1,
	    "small object of the same segment: accounted");
	ok(localdb_use_object(db, "segN", 0x40000000, 0, 40, true) == 0,
	    "sequence number of 31 bits: counted as unknown");
	ok(localdb_use_object(db, "segN", 0x3fffffff, 0, 50, true) == 1,
	    "largest sequence number of 30 bits: accounted");
	ok(localdb_store_block(db, "segN", 3, "sha256=05", 5000000000ull,
	    0) == 0 && localdb_block_available(db, "segN", 3) == 1,
	    "a 5 GB object stored in the backup is available");
	ok(localdb_use_object(db, "segN", 3, 0, LOCALDB_SIZE_UNKNOWN,
	    true) == 0, "... and counted as unknown");
	ok(localdb_snapshot_segments(db, &list, &n) == 0 && n == 2 &&
	    strcmp(list[0], "segBig") == 0 && strcmp(list[1], "segN") == 0,
	    "both segments kept in the snapshot's list");
	localdb_free_list(list, n);
	ok(CLR(localdb_commit_snapshot(db)) == 0, "commit: %s", err_msg());
	ok(refs_bytes(h, snap, "segN") == 80 &&
	    refs_bytes(h, snap, "segBig") == -1,
	    "only the small objects are in segment_utilization (%lld)",
	    (long long)refs_bytes(h, snap, "segN"));
	localdb_close(db);
	sqlite3_close(h);
	free(d);
}

int
main(void)
{
	char cmd[300];

	snprintf(tmpdir, sizeof(tmpdir), "%s/test_localdb.XXXXXX",
	    getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_schema_file();
	test_create();
	test_bad_version();
	test_head_fixture();
	test_v09_fixture();
	test_v09_synthetic();
	test_session();
	test_wide_keys();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", tmpdir);
	return tap_done();
}
