/*
 * localdb_space: pruning, cleaning, checking and rebuilding the local
 * database (see localdb_space.h).  Shares the handle with localdb.c
 * through localdb_internal.h; statements here are prepared per call, since
 * these commands run once per invocation.
 */
#include "localdb_space.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "localdb.h"
#include "localdb_internal.h"

static sqlite3_stmt *
sp_prepare(struct localdb *db, const char *sql, const char *what)
{
	sqlite3_stmt *s = NULL;

	if (sqlite3_prepare_v2(db->h, sql, -1, &s, NULL) != SQLITE_OK) {
		localdb_dberr(db, what);
		sqlite3_finalize(s);
		return NULL;
	}
	return s;
}

/* Run a statement to completion; the number of rows changed, or -1. */
static int64_t
sp_run(struct localdb *db, sqlite3_stmt *s, const char *what)
{
	int rc;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		;
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return localdb_dberr(db, what);
	return sqlite3_changes64(db->h);
}

/* One-shot statement without parameters: rows changed, or -1. */
static int64_t
sp_do(struct localdb *db, const char *sql, const char *what)
{
	sqlite3_stmt *s = sp_prepare(db, sql, what);
	int64_t n;

	if (s == NULL)
		return -1;
	n = sp_run(db, s, what);
	sqlite3_finalize(s);
	return n;
}

static void
sp_rollback(struct localdb *db)
{
	if (!sqlite3_get_autocommit(db->h))
		(void)sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
	db->in_tx = false;
	db->seg_cached = false;
	localdb_refs_reset(db);
}

/* Take the write lock for a space operation; never inside a backup. */
static int
sp_begin(struct localdb *db)
{
	if (db->in_tx || !sqlite3_get_autocommit(db->h)) {
		err_set("local database: a transaction is already open");
		return -1;
	}
	if (localdb_exec(db, "BEGIN IMMEDIATE", "lock the database")) {
		err_prefix("is a backup running?");
		return -1;
	}
	return 0;
}

/* Commit, or roll back for a dry run; the missing_segments table may
 * have been created or undone. */
static int
sp_end(struct localdb *db, bool dry_run)
{
	int rc = 0;

	if (dry_run)
		sp_rollback(db);
	else if (localdb_exec(db, "COMMIT", "commit"))
		rc = -1;
	if (rc)
		sp_rollback(db);
	/* A rollback may have undone the creation of missing_segments. */
	{
		sqlite3_stmt *s = sp_prepare(db, "SELECT 1 FROM sqlite_master"
		    " WHERE type = 'table' AND name = 'missing_segments'",
		    "read schema");

		if (s != NULL) {
			db->has_missing = sqlite3_step(s) == SQLITE_ROW;
			sqlite3_finalize(s);
		}
	}
	return rc;
}

static int
ensure_missing_table(struct localdb *db)
{
	if (localdb_exec(db, "CREATE TABLE IF NOT EXISTS missing_segments"
	    " (segment TEXT PRIMARY KEY)", "create missing_segments"))
		return -1;
	db->has_missing = true;
	return 0;
}

static bool
in_sorted(char *const *v, size_t n, const char *s)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(v[mid], s);

		if (c == 0)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

static void
say(void (*cb)(void *, const char *), void *arg, const char *fmt, ...)
    ERR_PRINTF(3, 4);

static void
say(void (*cb)(void *, const char *), void *arg, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (cb == NULL)
		return;
	va_start(ap, fmt);
	/* Names in warnings come from stores and file systems. */
	err_vformat(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cb(arg, msg);
}

/* HEAD's database garbage collection (reference 3.6), counted. */
static int
db_gc(struct localdb *db, struct localdb_prune_stats *stats)
{
	int64_t n;

	if (sp_do(db, "DELETE FROM segment_utilization WHERE snapshotid NOT IN"
	    " (SELECT snapshotid FROM snapshots)", "drop utilization") < 0)
		return -1;
	n = sp_do(db, "DELETE FROM segments WHERE segmentid NOT IN"
	    " (SELECT segmentid FROM segment_utilization)", "drop segments");
	if (n < 0)
		return -1;
	stats->segments_dropped += (uint64_t)n;
	n = sp_do(db, "DELETE FROM block_index WHERE segmentid NOT IN"
	    " (SELECT segmentid FROM segments)", "drop objects");
	if (n < 0)
		return -1;
	stats->blocks_dropped += (uint64_t)n;
	if (sp_do(db, "DELETE FROM subblock_signatures WHERE blockid NOT IN"
	    " (SELECT blockid FROM block_index)", "drop signatures") < 0)
		return -1;
	return 0;
}

int
localdb_prune(struct localdb *db, char *const *snapshots, size_t nsnap,
    char *const *segments, size_t nseg, bool dry_run,
    void (*cb)(void *arg, const char *msg), void *arg,
    struct localdb_prune_stats *stats)
{
	sqlite3_stmt *s = NULL, *del = NULL;
	int rc;

	memset(stats, 0, sizeof(*stats));
	if (sp_begin(db))
		return -1;
	/* Snapshots: the store's name is "<scheme>-<name>" or "<name>". */
	s = sp_prepare(db, "SELECT snapshotid, name, scheme FROM snapshots"
	    " ORDER BY snapshotid", "list snapshots");
	del = sp_prepare(db, "DELETE FROM snapshots WHERE snapshotid = ?1",
	    "drop snapshot");
	if (s == NULL || del == NULL)
		goto fail;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(s, 1);
		const char *scheme = (const char *)sqlite3_column_text(s, 2);
		char full[1024];

		snprintf(full, sizeof(full), "%s%s%s",
		    scheme && *scheme ? scheme : "",
		    scheme && *scheme ? "-" : "", name ? name : "");
		if (in_sorted(snapshots, nsnap, full))
			continue;
		say(cb, arg, "drop snapshot %s (not in the store)", full);
		sqlite3_bind_int64(del, 1, sqlite3_column_int64(s, 0));
		if (sp_run(db, del, "drop snapshot") < 0)
			goto fail;
		stats->snapshots_dropped++;
	}
	if (rc != SQLITE_DONE) {
		localdb_dberr(db, "list snapshots");
		goto fail;
	}
	sqlite3_finalize(s);
	sqlite3_finalize(del);
	s = del = NULL;

	/* Segments: those with objects but no file are missing for good. */
	if (ensure_missing_table(db))
		goto fail;
	s = sp_prepare(db, "SELECT segment FROM segments WHERE segmentid IN"
	    " (SELECT segmentid FROM block_index) AND segment NOT IN"
	    " (SELECT segment FROM missing_segments) ORDER BY segment",
	    "list segments");
	del = sp_prepare(db, "INSERT OR IGNORE INTO missing_segments(segment)"
	    " VALUES (?1)", "mark segment missing");
	if (s == NULL || del == NULL)
		goto fail;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *seg = (const char *)sqlite3_column_text(s, 0);

		if (seg == NULL || in_sorted(segments, nseg, seg))
			continue;
		say(cb, arg, "segment %s is not in the store: marked missing",
		    seg);
		if (sqlite3_bind_text(del, 1, seg, -1, SQLITE_TRANSIENT) !=
		    SQLITE_OK) {
			err_set("local database: mark segment missing: out of "
				"memory");
			goto fail;
		}
		if (sp_run(db, del, "mark segment missing") < 0)
			goto fail;
		stats->segments_missing++;
	}
	if (rc != SQLITE_DONE) {
		localdb_dberr(db, "list segments");
		goto fail;
	}
	sqlite3_finalize(s);
	sqlite3_finalize(del);
	s = del = NULL;
	/* Objects of missing segments can never be reused: drop them too. */
	{
		int64_t n = sp_do(db, "DELETE FROM block_index WHERE segmentid"
		    " IN (SELECT segmentid FROM segments WHERE segment IN"
		    " (SELECT segment FROM missing_segments))", "drop objects");

		if (n < 0)
			goto fail;
		stats->blocks_dropped += (uint64_t)n;
	}
	if (db_gc(db, stats))
		goto fail;
	return sp_end(db, dry_run);
fail:
	sqlite3_finalize(s);
	sqlite3_finalize(del);
	sp_rollback(db);
	return -1;
}

int
localdb_space_begin(struct localdb *db)
{
	if (sp_begin(db))
		return -1;
	if (ensure_missing_table(db)) {
		sp_rollback(db);
		return -1;
	}
	return 0;
}

int
localdb_space_mark_missing(struct localdb *db, const char *segment)
{
	sqlite3_stmt *s = sp_prepare(db, "INSERT OR IGNORE INTO"
	    " missing_segments(segment) VALUES (?1)", "mark segment missing");
	int64_t n;

	if (s == NULL)
		return -1;
	sqlite3_bind_text(s, 1, segment, -1, SQLITE_STATIC);
	n = sp_run(db, s, "mark segment missing");
	sqlite3_finalize(s);
	return n < 0 ? -1 : 0;
}

int
localdb_space_commit(struct localdb *db)
{
	return sp_end(db, false);
}

void
localdb_space_rollback(struct localdb *db)
{
	(void)sp_end(db, true);
}

/* ---- cleaning ---- */

static int
cmp_benefit(const void *a, const void *b)
{
	const struct localdb_clean_segment *x = a, *y = b;

	if (x->benefit != y->benefit)
		return x->benefit > y->benefit ? -1 : 1;
	return strcmp(x->segment, y->segment);
}

/* Rank the candidate segments (step 2); *out sorted by benefit. */
static int
rank(struct localdb *db, struct localdb_clean_segment **out, size_t *nout)
{
	struct localdb_clean_segment *v = NULL;
	size_t n = 0, cap = 0;
	sqlite3_stmt *s;
	int rc;

	*out = NULL;
	*nout = 0;
	s = sp_prepare(db,
	    "SELECT s.segment, coalesce(s.type, ''),"
	    " coalesce(nullif(s.data_size, 0), (SELECT sum(size)"
	    "  FROM block_index b WHERE b.segmentid = s.segmentid), 0),"
	    " coalesce(s.disk_size, 0),"
	    " julianday('now') - s.timestamp,"
	    " (SELECT max(u.bytes_referenced) FROM segment_utilization u"
	    "  JOIN snapshots p ON p.snapshotid = u.snapshotid"
	    "  WHERE u.segmentid = s.segmentid)"
	    " FROM segments s"
	    " WHERE EXISTS (SELECT 1 FROM block_index b"
	    "  WHERE b.segmentid = s.segmentid AND b.expired IS NULL)"
	    " AND EXISTS (SELECT 1 FROM segment_utilization u"
	    "  JOIN snapshots p ON p.snapshotid = u.snapshotid"
	    "  WHERE u.segmentid = s.segmentid)"
	    " AND s.segment NOT IN (SELECT segment FROM missing_segments)",
	    "rank segments");
	if (s == NULL)
		return -1;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct localdb_clean_segment *c;
		int64_t size = sqlite3_column_int64(s, 2);
		int64_t live = sqlite3_column_int64(s, 5);
		double u, age;

		/* Nothing to reclaim from a segment of no bytes. */
		if (size <= 0)
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			struct localdb_clean_segment *nv =
			    realloc(v, ncap * sizeof(*v));

			if (nv == NULL) {
				err_set("out of memory");
				goto fail;
			}
			v = nv;
			cap = ncap;
		}
		c = &v[n++];
		memset(c, 0, sizeof(*c));
		snprintf(c->segment, sizeof(c->segment), "%s",
		    (const char *)sqlite3_column_text(s, 0));
		snprintf(c->type, sizeof(c->type), "%s",
		    (const char *)sqlite3_column_text(s, 1));
		c->data_size = (uint64_t)size;
		c->disk_size = sqlite3_column_int64(s, 3) > 0 ?
		    (uint64_t)sqlite3_column_int64(s, 3) : 0;
		live = live < 0 ? 0 : live > size ? size : live;
		c->live_bytes = (uint64_t)live;
		u = (double)live / (double)size;
		age = sqlite3_column_type(s, 4) == SQLITE_NULL ? 0 :
		    sqlite3_column_double(s, 4);
		if (!(age > 0))
			age = 0;
		c->utilization = u;
		c->age = age;
		c->benefit = (1 - u) * age / (u + 0.1);
	}
	if (rc != SQLITE_DONE) {
		localdb_dberr(db, "rank segments");
		goto fail;
	}
	sqlite3_finalize(s);
	if (n)
		qsort(v, n, sizeof(*v), cmp_benefit);
	*out = v;
	*nout = n;
	return 0;
fail:
	sqlite3_finalize(s);
	free(v);
	return -1;
}

/* x^0.4 for x >= 0, as the fifth root of x^2 by Newton's method (keeps
 * the library free of libm). */
static double
pow04(double x)
{
	double a = x * x, y = x > 1 ? x : 1;

	if (!(x > 0))
		return 0;
	for (int i = 0; i < 200; i++) {
		double y4 = y * y * y * y, ny = y - (y * y4 - a) / (5 * y4);

		if (!(ny > 0))
			ny = y / 2;
		if (ny == y)
			break;
		y = ny;
	}
	return y;
}

/* Step 4: group expired objects into age buckets of similar size. */
static int
balance(struct localdb *db, struct localdb_clean_report *rep)
{
	enum { MIN_AGE = 4, MAXB = 4096 };
	double segsize, total = 0, target_buckets, min_size, target_size;
	double bucket = 0, cut[MAXB + 2];
	size_t ncut = 0, nd = 0;
	double (*dist)[2] = NULL;
	bool young = false;
	sqlite3_stmt *s;
	int rc;

	if (sp_do(db, "UPDATE block_index SET expired = 0"
	    " WHERE expired IS NOT NULL", "reset groups") < 0)
		return -1;
	s = sp_prepare(db, "SELECT avg(data_size) FROM segments WHERE"
	    " segmentid IN (SELECT segmentid FROM block_index"
	    " WHERE expired IS NOT NULL)", "segment size");
	if (s == NULL)
		return -1;
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW || sqlite3_column_type(s, 0) == SQLITE_NULL) {
		sqlite3_finalize(s);
		return rc == SQLITE_ROW ? 0 : localdb_dberr(db, "segment size");
	}
	segsize = sqlite3_column_double(s, 0);
	sqlite3_finalize(s);
	/* An odd row must not lead to a division by zero. */
	if (!(segsize >= 1))
		segsize = 1;
	if (sp_do(db, "UPDATE block_index SET timestamp = julianday('now')"
	    " WHERE expired IS NOT NULL AND"
	    " (timestamp IS NULL OR timestamp > julianday('now'))",
	    "clamp ages") < 0)
		return -1;
	s = sp_prepare(db, "SELECT round(julianday('now') - timestamp) AS age,"
	    " sum(coalesce(size, 0)) FROM block_index WHERE expired IS NOT NULL"
	    " GROUP BY age ORDER BY age DESC", "age distribution");
	if (s == NULL)
		return -1;
	if ((dist = calloc(MAXB, sizeof(*dist))) == NULL) {
		sqlite3_finalize(s);
		err_set("out of memory");
		return -1;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW && nd < MAXB) {
		dist[nd][0] = sqlite3_column_double(s, 0);
		dist[nd][1] = sqlite3_column_double(s, 1);
		total += dist[nd][1];
		nd++;
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		free(dist);
		return localdb_dberr(db, "age distribution");
	}
	target_buckets = 2 * pow04(total / segsize);
	min_size = 1.5 * segsize;
	target_size = target_buckets > 0 ? total / target_buckets : 0;
	if (target_size < 2 * segsize)
		target_size = 2 * segsize;
	/* Oldest to youngest (the rows come in that order). */
	for (size_t i = 0; i < nd; i++) {
		double age = dist[i][0];

		if (bucket >= target_size || (age < MIN_AGE && !young)) {
			if (bucket < target_size && ncut > 0)
				ncut--;
			if (ncut < MAXB)
				cut[ncut++] = age;
			bucket = 0;
		}
		bucket += dist[i][1];
		if (age < MIN_AGE)
			young = true;
	}
	free(dist);
	if (bucket >= min_size || !young)
		cut[ncut++] = -1;
	cut[ncut++] = -1;
	/* Ascending; later assignments win, so older data gets higher k. */
	s = sp_prepare(db, "UPDATE block_index SET expired = ?1"
	    " WHERE expired IS NOT NULL"
	    " AND round(julianday('now') - timestamp) > ?2", "assign groups");
	if (s == NULL)
		return -1;
	rep->ncutoffs = 0;
	for (size_t i = 0; i < ncut; i++) {
		double c = cut[ncut - 1 - i];

		sqlite3_bind_int64(s, 1, (int64_t)i);
		sqlite3_bind_double(s, 2, c);
		if (sp_run(db, s, "assign groups") < 0) {
			sqlite3_finalize(s);
			return -1;
		}
		if (rep->ncutoffs < sizeof(rep->cutoffs) / sizeof(rep->cutoffs[0]))
			rep->cutoffs[rep->ncutoffs++] = c;
		rep->buckets = (unsigned)i;
	}
	sqlite3_finalize(s);
	return 0;
}

int
localdb_clean(struct localdb *db, double threshold, bool dry_run,
    void (*cb)(void *arg, const struct localdb_clean_segment *seg),
    void *arg, struct localdb_clean_report *rep)
{
	struct localdb_clean_segment *v = NULL;
	sqlite3_stmt *s = NULL;
	size_t n = 0;

	memset(rep, 0, sizeof(*rep));
	if (!(threshold >= 0)) {
		err_set("cleaning threshold must be a number >= 0");
		return -1;
	}
	if (sp_begin(db))
		return -1;
	if (ensure_missing_table(db) || rank(db, &v, &n))
		goto fail;
	s = sp_prepare(db, "UPDATE block_index SET expired = 0 WHERE"
	    " segmentid = (SELECT segmentid FROM segments WHERE segment = ?1)",
	    "expire segment");
	if (s == NULL)
		goto fail;
	for (size_t i = 0; i < n && v[i].benefit > threshold; i++) {
		sqlite3_bind_text(s, 1, v[i].segment, -1, SQLITE_STATIC);
		if (sp_run(db, s, "expire segment") < 0)
			goto fail;
		rep->segments++;
		rep->rewrite += v[i].live_bytes;
		rep->reclaimable += v[i].disk_size;
		if (cb)
			cb(arg, &v[i]);
	}
	sqlite3_finalize(s);
	s = NULL;
	free(v);
	v = NULL;
	if (balance(db, rep))
		goto fail;
	return sp_end(db, dry_run);
fail:
	sqlite3_finalize(s);
	free(v);
	sp_rollback(db);
	return -1;
}

/* ---- checking ---- */

/* Report every row of ${sql} (one text column) as a problem. */
static int
check_rows(struct localdb *db, const char *sql, const char *what,
    void (*cb)(void *, const char *), void *arg)
{
	sqlite3_stmt *s = sp_prepare(db, sql, what);
	int rc, n = 0;

	if (s == NULL)
		return -1;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(s, 0);

		if (n < 20)
			say(cb, arg, "%s: %s", what, t ? (const char *)t : "?");
		n++;
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return localdb_dberr(db, what);
	if (n > 20)
		say(cb, arg, "%s: %d more", what, n - 20);
	return n;
}

int
localdb_check(struct localdb *db, void (*cb)(void *arg, const char *msg),
    void *arg)
{
	static const struct {
		const char *what, *sql;
	} checks[] = {
		{ "integrity", "PRAGMA integrity_check" },
		{ "schema version", "SELECT 'not 0.11' WHERE NOT EXISTS"
		    " (SELECT 1 FROM schema_version WHERE major = 0 AND"
		    " minor = 11)" },
		{ "object of an unknown segment", "SELECT 'block ' || blockid"
		    " FROM block_index WHERE segmentid NOT IN"
		    " (SELECT segmentid FROM segments)" },
		{ "bad object name", "SELECT 'block ' || blockid FROM block_index"
		    " WHERE object IS NULL OR object = '' OR"
		    " object GLOB '*[^0-9a-fA-F]*'" },
		{ "utilization of an unknown snapshot", "SELECT 'snapshot ' ||"
		    " snapshotid FROM segment_utilization WHERE snapshotid"
		    " NOT IN (SELECT snapshotid FROM snapshots)" },
		{ "utilization of an unknown segment", "SELECT 'segment ' ||"
		    " segmentid FROM segment_utilization WHERE segmentid NOT IN"
		    " (SELECT segmentid FROM segments)" },
		{ "more bytes referenced than stored", "SELECT s.segment FROM"
		    " segment_utilization u JOIN segments s ON"
		    " s.segmentid = u.segmentid WHERE s.data_size IS NOT NULL"
		    " AND u.bytes_referenced > s.data_size" },
		{ "negative size", "SELECT 'block ' || blockid FROM block_index"
		    " WHERE size < 0" },
	};
	int total = 0;

	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
		int n;

		if (i == 0) {
			/* integrity_check answers "ok" when healthy. */
			n = check_rows(db, "SELECT * FROM pragma_integrity_check"
			    " WHERE integrity_check != 'ok'", checks[i].what,
			    cb, arg);
		} else {
			n = check_rows(db, checks[i].sql, checks[i].what, cb,
			    arg);
		}
		if (n < 0)
			return -1;
		total += n;
		/* The other queries are meaningless on a damaged file. */
		if (i == 0 && n > 0)
			break;
	}
	return total;
}

/* ---- rebuilding ---- */

int
localdb_rebuild_begin(struct localdb *db)
{
	sqlite3_stmt *s;
	int rc;

	if (sp_begin(db))
		return -1;
	s = sp_prepare(db, "SELECT (SELECT count(*) FROM snapshots) +"
	    " (SELECT count(*) FROM block_index)", "count rows");
	if (s == NULL)
		goto fail;
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW || sqlite3_column_int64(s, 0) != 0) {
		if (rc == SQLITE_ROW)
			err_set("local database is not empty: rebuild-db"
			    " writes a new one");
		else
			localdb_dberr(db, "count rows");
		sqlite3_finalize(s);
		goto fail;
	}
	sqlite3_finalize(s);
	db->in_tx = true;
	return 0;
fail:
	sp_rollback(db);
	return -1;
}

int
localdb_rebuild_snapshot(struct localdb *db, const char *name,
    const char *scheme, double julian)
{
	sqlite3_stmt *s;
	int64_t n;

	localdb_refs_reset(db);
	if (localdb_exec(db, "DELETE FROM snapshot_segrefs; DELETE FROM"
	    " snapshot_unknown", "reset reference accounting"))
		return -1;
	s = sp_prepare(db, "INSERT INTO snapshots(name, scheme, timestamp)"
	    " VALUES (?1, ?2, ?3)", "insert snapshot");
	if (s == NULL)
		return -1;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, scheme ? scheme : "", -1, SQLITE_STATIC);
	sqlite3_bind_double(s, 3, julian);
	n = sp_run(db, s, "insert snapshot");
	sqlite3_finalize(s);
	if (n < 0)
		return -1;
	db->snapshotid = sqlite3_last_insert_rowid(db->h);
	return 0;
}

/* The cached statement ${id} of this module; NULL on error. */
static sqlite3_stmt *
sp_cached(struct localdb *db, enum sp_st id)
{
	static const char *const sql[SP_COUNT] = {
		[SP_SEG_INSERT] = "INSERT OR IGNORE INTO segments(segment)"
		    " VALUES (?1)",
		[SP_SEG_ID] = "SELECT segmentid FROM segments"
		    " WHERE segment = ?1",
		[SP_BLOCK_GET] = "SELECT blockid, size, checksum"
		    " FROM block_index WHERE segmentid = ?1 AND object = ?2",
		[SP_BLOCK_INSERT] = "INSERT INTO block_index(segmentid,"
		    " object, checksum, size, timestamp)"
		    " VALUES (?1, ?2, ?3, ?4, julianday('now'))",
		[SP_BLOCK_FILL] = "UPDATE block_index SET"
		    " size = coalesce(size, ?2),"
		    " checksum = coalesce(checksum, ?3) WHERE blockid = ?1",
	};

	if (db->sp[id] == NULL && sqlite3_prepare_v3(db->h, sql[id], -1,
	    SQLITE_PREPARE_PERSISTENT, &db->sp[id], NULL) != SQLITE_OK) {
		localdb_dberr(db, "prepare");
		db->sp[id] = NULL;
		return NULL;
	}
	sqlite3_reset(db->sp[id]);
	sqlite3_clear_bindings(db->sp[id]);
	return db->sp[id];
}

/* The id of ${segment}'s row, created if needed; the last answer is
 * remembered (an object's neighbours mostly share its segment). */
static int
rebuild_segment_id(struct localdb *db, const char *segment, int64_t *id)
{
	sqlite3_stmt *s;
	int rc;

	if (db->seg_cached && strcmp(db->seg_cache, segment) == 0) {
		*id = db->seg_cache_id;
		return 0;
	}
	if ((s = sp_cached(db, SP_SEG_INSERT)) == NULL)
		return -1;
	sqlite3_bind_text(s, 1, segment, -1, SQLITE_STATIC);
	if (sp_run(db, s, "record segment") < 0 ||
	    (s = sp_cached(db, SP_SEG_ID)) == NULL)
		return -1;
	sqlite3_bind_text(s, 1, segment, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(s);
		if (rc == SQLITE_DONE)
			err_set("local database: segment row vanished");
		else
			localdb_dberr(db, "look up segment");
		return -1;
	}
	*id = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	snprintf(db->seg_cache, sizeof(db->seg_cache), "%s", segment);
	db->seg_cache_id = *id;
	db->seg_cached = true;
	return 0;
}

int
localdb_rebuild_object(struct localdb *db, const char *segment,
    uint64_t seq, const char *checksum, uint64_t size, uint64_t start,
    uint64_t length, bool whole)
{
	bool known = size != LOCALDB_SIZE_UNKNOWN;
	bool has_sum = checksum != NULL && *checksum != '\0';
	sqlite3_stmt *s;
	int64_t segid, blockid;
	char obj[24];
	int rc;

	if (known && size > (uint64_t)INT64_MAX) {
		err_set("local database: object size too large");
		return -1;
	}
	if (strlen(segment) >= sizeof(db->seg_cache)) {
		err_set("local database: segment name too long");
		return -1;
	}
	snprintf(obj, sizeof(obj), "%08" PRIx64, seq);
	/* One indexed lookup; a new object is one insert, a known one is
	 * updated only when this reference tells more (its size, then a
	 * checksum for that size). */
	if (rebuild_segment_id(db, segment, &segid) ||
	    (s = sp_cached(db, SP_BLOCK_GET)) == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, segid);
	sqlite3_bind_text(s, 2, obj, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		bool size_null = sqlite3_column_type(s, 1) == SQLITE_NULL;
		bool sum_null = sqlite3_column_type(s, 2) == SQLITE_NULL;
		int64_t old = sqlite3_column_int64(s, 1);
		bool fill_size = size_null && known;
		bool fill_sum = sum_null && has_sum && known &&
		    (fill_size || (!size_null && old == (int64_t)size));

		blockid = sqlite3_column_int64(s, 0);
		sqlite3_reset(s);
		if (fill_size || fill_sum) {
			if ((s = sp_cached(db, SP_BLOCK_FILL)) == NULL)
				return -1;
			sqlite3_bind_int64(s, 1, blockid);
			if (known)
				sqlite3_bind_int64(s, 2, (int64_t)size);
			if (fill_sum)
				sqlite3_bind_text(s, 3, checksum, -1,
				    SQLITE_STATIC);
			if (sp_run(db, s, "record object") < 0)
				return -1;
		}
	} else if (rc == SQLITE_DONE) {
		sqlite3_reset(s);
		if ((s = sp_cached(db, SP_BLOCK_INSERT)) == NULL)
			return -1;
		sqlite3_bind_int64(s, 1, segid);
		sqlite3_bind_text(s, 2, obj, -1, SQLITE_STATIC);
		if (has_sum)
			sqlite3_bind_text(s, 3, checksum, -1, SQLITE_STATIC);
		if (known)
			sqlite3_bind_int64(s, 4, (int64_t)size);
		if (sp_run(db, s, "record object") < 0)
			return -1;
	} else {
		sqlite3_reset(s);
		return localdb_dberr(db, "look up object");
	}
	return localdb_use_object(db, segment, seq, start,
	    whole ? size : length, whole) < 0 ? -1 : 0;
}

int
localdb_rebuild_snapshot_end(struct localdb *db)
{
	sqlite3_stmt *s = sp_prepare(db, "INSERT OR REPLACE INTO"
	    " segment_utilization(snapshotid, segmentid, bytes_referenced)"
	    " SELECT ?1, segmentid, size FROM snapshot_segrefs", "record segment utilization");
	int64_t n;

	if (s == NULL || localdb_ref_flush(db)) {
		sqlite3_finalize(s);
		return -1;
	}
	sqlite3_bind_int64(s, 1, db->snapshotid);
	n = sp_run(db, s, "record segment utilization");
	sqlite3_finalize(s);
	db->seg_cached = false;
	localdb_refs_reset(db);
	return n < 0 ? -1 : 0;
}

int
localdb_rebuild_segment(struct localdb *db, const char *segment,
    const char *path, uint64_t disk_size, const char *type, double julian)
{
	static const char *const sql[] = {
		"INSERT OR IGNORE INTO segments(segment) VALUES (?1)",
		"UPDATE segments SET path = ?2, disk_size = ?3,"
		" type = coalesce(?4, type),"
		" timestamp = coalesce(timestamp, ?5) WHERE segment = ?1",
	};

	if (disk_size > (uint64_t)INT64_MAX) {
		err_set("local database: segment size too large");
		return -1;
	}
	for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]); i++) {
		sqlite3_stmt *s = sp_prepare(db, sql[i], "record segment");
		int64_t n;

		if (s == NULL)
			return -1;
		sqlite3_bind_text(s, 1, segment, -1, SQLITE_STATIC);
		if (i == 1) {
			sqlite3_bind_text(s, 2, path, -1, SQLITE_STATIC);
			sqlite3_bind_int64(s, 3, (int64_t)disk_size);
			if (type)
				sqlite3_bind_text(s, 4, type, -1,
				    SQLITE_STATIC);
			sqlite3_bind_double(s, 5, julian);
		}
		n = sp_run(db, s, "record segment");
		sqlite3_finalize(s);
		if (n < 0)
			return -1;
	}
	return 0;
}

int
localdb_rebuild_commit(struct localdb *db)
{
	/* Sizes and ages as far as the metadata tells them: an object is as
	 * old as the segment it lives in. */
	if (sp_do(db, "UPDATE segments SET data_size = (SELECT sum(size)"
	    " FROM block_index b WHERE b.segmentid = segments.segmentid)",
	    "segment sizes") < 0 ||
	    sp_do(db, "UPDATE block_index SET timestamp = coalesce((SELECT"
	    " timestamp FROM segments s WHERE s.segmentid ="
	    " block_index.segmentid), timestamp)", "object ages") < 0) {
		sp_rollback(db);
		return -1;
	}
	db->in_tx = false;
	db->seg_cached = false;
	localdb_refs_reset(db);
	return sp_end(db, false);
}
