/*
 * test_clean: localdb_clean()'s benefit ranking and age bucketing, on
 * rows written directly into a fresh database, against values worked out
 * by hand from the rules of reference 3.5 (steps 2-4):
 *   u = max(bytes_referenced) / data_size, age in days,
 *   benefit = (1 - u) * age / (u + 0.1), expired while > threshold;
 *   buckets: S = avg data_size, target = max(2S, total / (2 (total/S)^0.4)),
 *   min = 1.5S, MIN_AGE = 4.
 */
#include <sys/stat.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "err.h"
#include "localdb.h"
#include "localdb_space.h"
#include "tap.h"

static char dir[256];
static sqlite3 *h;

static void
sql(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
sql(const char *fmt, ...)
{
	char q[1024], *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(q, sizeof(q), fmt, ap);
	va_end(ap);
	if (sqlite3_exec(h, q, NULL, NULL, &msg) != SQLITE_OK) {
		printf("# sql failed: %s: %s\n", q, msg ? msg : "?");
		sqlite3_free(msg);
		exit(1);
	}
}

static int64_t
one(const char *q)
{
	sqlite3_stmt *s;
	int64_t v = -999;

	if (sqlite3_prepare_v2(h, q, -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

/*
 * Segment ${name} (type, data_size or -1 for NULL, disk_size, age in days
 * or NaN-ish 1e9 for NULL / negative for the future), referenced by
 * snapshot 1 with ${ref1} bytes and snapshot 2 with ${ref2} (-1: no row),
 * and holding ${nobj} objects of ${objsize} bytes (-1: NULL size), all
 * ${objage} days old.
 */
static void
segment(int id, const char *name, const char *type, int64_t data_size,
    int64_t disk, double age, int64_t ref1, int64_t ref2, int nobj,
    int64_t objsize, double objage)
{
	char ds[32], ts[64], os[32];

	if (data_size < 0)
		snprintf(ds, sizeof(ds), "NULL");
	else
		snprintf(ds, sizeof(ds), "%lld", (long long)data_size);
	if (age > 1e8)
		snprintf(ts, sizeof(ts), "NULL");
	else
		snprintf(ts, sizeof(ts), "julianday('now') - %.6f", age);
	sql("INSERT INTO segments(segmentid, segment, type, data_size,"
	    " disk_size, timestamp) VALUES (%d, '%s', '%s', %s, %lld, %s)",
	    id, name, type, ds, (long long)disk, ts);
	if (ref1 >= 0)
		sql("INSERT INTO segment_utilization VALUES (1, %d, %lld)", id,
		    (long long)ref1);
	if (ref2 >= 0)
		sql("INSERT INTO segment_utilization VALUES (2, %d, %lld)", id,
		    (long long)ref2);
	if (objsize < 0)
		snprintf(os, sizeof(os), "NULL");
	else
		snprintf(os, sizeof(os), "%lld", (long long)objsize);
	for (int i = 0; i < nobj; i++)
		sql("INSERT INTO block_index(segmentid, object, size, timestamp)"
		    " VALUES (%d, '%08x', %s, julianday('now') - %.6f)", id,
		    i + 1, os, objage);
}

struct seen {
	char order[1024];
	double benefit[16], util[16], age[16];
	uint64_t live[16];
	int n;
};

static void
on_seg(void *arg, const struct localdb_clean_segment *c)
{
	struct seen *s = arg;

	snprintf(s->order + strlen(s->order), sizeof(s->order) -
	    strlen(s->order), "%s%s", s->order[0] ? " " : "", c->segment);
	if (s->n < 16) {
		s->benefit[s->n] = c->benefit;
		s->util[s->n] = c->utilization;
		s->age[s->n] = c->age;
		s->live[s->n] = c->live_bytes;
	}
	s->n++;
}

static int
near(double a, double b)
{
	return a - b < 1e-3 && b - a < 1e-3;
}

static struct localdb *
fresh(const char *sub)
{
	struct localdb *db = NULL;
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	if (mkdir(path, 0700) || localdb_open(path, &db)) {
		printf("# cannot create %s: %s\n", path, err_msg());
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/%s/localdb.sqlite", dir, sub);
	if (sqlite3_open(path, &h) != SQLITE_OK)
		exit(1);
	sqlite3_busy_timeout(h, 5000);
	sql("INSERT INTO snapshots VALUES (1, 'a', '', julianday('now'))");
	sql("INSERT INTO snapshots VALUES (2, 'b', '', julianday('now'))");
	return db;
}

static void
ranking(void)
{
	struct localdb *db = fresh("rank");
	struct localdb_clean_report rep;
	struct seen s;

	/*            id name   type  data  disk age  ref1 ref2 n size objage
	 * benefit by hand:
	 *   meta u=0    age 30  -> 1 * 30 / 0.1         = 300
	 *   a    u=0    age 10  -> 10 / 0.1             = 100
	 *   f    u=.75  age 40  -> .25 * 40 / .85       = 11.7647
	 *        (data_size NULL: 2 objects of 1000; max(1000, 1500))
	 *   d    u=.9   age 100 -> .1 * 100 / 1         = 10
	 *   b    u=.5   age 10  -> .5 * 10 / .6         = 8.3333
	 *   c    u=.5   age 8   -> .5 * 8 / .6          = 6.6667
	 *   e    u=0    age .5  -> .5 / .1              = 5
	 *   h    referenced 5000 > 1000: u = 1          = 0
	 *   i    timestamp NULL: age 0                  = 0
	 *   j    timestamp in the future: age 0         = 0
	 * never ranked: g (no bytes at all), k (missing), l (all objects
	 * expired already), m (no utilization row of a kept snapshot). */
	segment(1, "meta", "metadata", 1000, 100, 30, 0, -1, 1, 1000, 30);
	segment(2, "a", "data", 1000, 200, 10, 0, -1, 1, 1000, 10);
	segment(3, "f", "data", -1, 300, 40, 1000, 1500, 2, 1000, 40);
	segment(4, "d", "data", 1000, 400, 100, 900, -1, 1, 1000, 100);
	segment(5, "b", "data", 1000, 500, 10, 500, 100, 1, 1000, 10);
	segment(6, "c", "data", 1000, 600, 8, 500, -1, 1, 1000, 8);
	segment(7, "e", "data", 1000, 700, 0.5, 0, -1, 1, 1000, 0.5);
	segment(8, "h", "data", 1000, 800, 50, 5000, -1, 1, 1000, 50);
	segment(9, "i", "data", 1000, 900, 1e9, 0, -1, 1, 1000, 9);
	segment(10, "j", "data", 1000, 1000, -5, 0, -1, 1, 1000, 9);
	segment(11, "g", "data", 0, 1100, 50, 0, -1, 1, -1, 50);
	segment(12, "k", "data", 1000, 1200, 50, 0, -1, 1, 1000, 50);
	segment(13, "l", "data", 1000, 1300, 50, 0, -1, 1, 1000, 50);
	segment(14, "m", "data", 1000, 1400, 50, -1, -1, 1, 1000, 50);
	sql("CREATE TABLE IF NOT EXISTS missing_segments"
	    " (segment TEXT PRIMARY KEY)");
	sql("INSERT INTO missing_segments VALUES ('k')");
	sql("UPDATE block_index SET expired = 0 WHERE segmentid = 13");
	sql("INSERT INTO segment_utilization VALUES (99, 14, 0)");
	/* Reopen, so the handle sees missing_segments. */
	localdb_close(db);
	{
		char path[512];

		snprintf(path, sizeof(path), "%s/rank", dir);
		localdb_open(path, &db);
	}

	memset(&s, 0, sizeof(s));
	ok(localdb_clean(db, LOCALDB_CLEAN_THRESHOLD, true, on_seg, &s,
	    &rep) == 0, "clean --dry-run: %s", err_msg());
	is_str(s.order, "meta a f d b",
	    "expired in descending benefit while > 7");
	ok(near(s.benefit[0], 300) && near(s.benefit[1], 100) &&
	    near(s.benefit[2], 0.25 * 40 / 0.85) && near(s.benefit[3], 10) &&
	    near(s.benefit[4], 0.5 * 10 / 0.6),
	    "benefits %.4f %.4f %.4f %.4f %.4f", s.benefit[0], s.benefit[1],
	    s.benefit[2], s.benefit[3], s.benefit[4]);
	ok(near(s.util[2], 0.75) && s.live[2] == 1500,
	    "f: data_size from its objects, max over snapshots (u %.3f)",
	    s.util[2]);
	ok(near(s.age[3], 100) && near(s.util[3], 0.9), "d: age and u");
	ok(rep.segments == 5 && rep.rewrite == 0 + 0 + 1500 + 900 + 500 &&
	    rep.reclaimable == 100 + 200 + 300 + 400 + 500,
	    "report: %llu segments, %llu to rewrite, %llu reclaimable",
	    (unsigned long long)rep.segments, (unsigned long long)rep.rewrite,
	    (unsigned long long)rep.reclaimable);
	ok(one("SELECT count(*) FROM block_index WHERE expired IS NOT NULL")
	    == 1, "a dry run changes nothing (only l's row stays expired)");

	memset(&s, 0, sizeof(s));
	localdb_clean(db, 9, true, on_seg, &s, &rep);
	is_str(s.order, "meta a f d", "threshold 9 stops before b (8.33)");
	memset(&s, 0, sizeof(s));
	localdb_clean(db, 0, true, on_seg, &s, &rep);
	is_str(s.order, "meta a f d b c e",
	    "threshold 0: every benefit > 0; u = 1, NULL and future ages"
	    " give 0");
	memset(&s, 0, sizeof(s));
	localdb_clean(db, 1000, true, on_seg, &s, &rep);
	ok(s.n == 0 && rep.segments == 0, "threshold 1000 expires nothing");
	ok(localdb_clean(db, -1, true, on_seg, &s, &rep) == -1,
	    "a negative threshold is refused");

	memset(&s, 0, sizeof(s));
	ok(localdb_clean(db, LOCALDB_CLEAN_THRESHOLD, false, on_seg, &s,
	    &rep) == 0, "clean");
	ok(one("SELECT count(*) FROM block_index WHERE expired IS NOT NULL"
	    " AND segmentid IN (1, 2, 3, 4, 5)") == 6 &&
	    one("SELECT count(*) FROM block_index WHERE expired IS NOT NULL")
	    == 7, "exactly the objects of meta a f d b (and l) are expired");
	memset(&s, 0, sizeof(s));
	localdb_clean(db, LOCALDB_CLEAN_THRESHOLD, true, on_seg, &s, &rep);
	ok(s.n == 0, "expired segments are not ranked again");
	localdb_close(db);
	sqlite3_close(h);
}

/* One segment per age holding ${mb}[i] MB (objects of 0.5 MB) that are
 * ${ages}[i] days old, all expired by the cleaner (u = 0, segment age 200
 * days); data_size of each segment 1,000,000 (S). */
static struct localdb *
buckets_db(const char *sub, const double *ages, const int *mb, int n)
{
	struct localdb *db = fresh(sub);

	for (int i = 0; i < n; i++) {
		char name[16];

		snprintf(name, sizeof(name), "s%d", i);
		segment(i + 1, name, "data", 1000000, 1000, 200, 0, -1,
		    mb[i] * 2, 500000, ages[i]);
	}
	return db;
}

static int64_t
group_of(double age)
{
	char q[256];

	snprintf(q, sizeof(q), "SELECT min(expired) || max(expired) FROM"
	    " block_index WHERE round(julianday('now') - timestamp) = %.0f",
	    age);
	return one(q);
}

static void
bucketing(void)
{
	struct localdb_clean_report rep;
	struct localdb *db;

	/*
	 * 3 MB at 100 days, 3 MB at 50, 1 MB at 10, 0.5 MB at 2 (S = 1 MB):
	 * total 7.5 MB, target_buckets = 2 * 7.5^0.4 = 4.478, target_size =
	 * max(2 MB, 1.675 MB) = 2 MB, min_size = 1.5 MB.  Oldest first:
	 * 100: add (3); 50: 3 >= 2, cut 50 (3); 10: 3 >= 2, cut 10 (1);
	 * 2: young, 1 < 2 so cut 10 is dropped, cut 2 (0.5).  0.5 < 1.5
	 * and young: only one -1.  Cutoffs ascending: -1 2 50, so
	 * 100 -> 2, 50 -> 1, 10 -> 1, 2 -> 0.
	 */
	{
		static const double ages[] = { 100, 50, 10, 2 };
		static const int mb[] = { 3, 3, 1, 0 };

		db = buckets_db("b1", ages, mb, 4);
		sql("INSERT INTO block_index(segmentid, object, size, timestamp)"
		    " VALUES (4, '000000ff', 500000, julianday('now') - 2)");
		ok(localdb_clean(db, LOCALDB_CLEAN_THRESHOLD, false, NULL,
		    NULL, &rep) == 0, "clean (buckets 1): %s", err_msg());
		ok(rep.ncutoffs == 3 && rep.cutoffs[0] == -1 &&
		    rep.cutoffs[1] == 2 && rep.cutoffs[2] == 50,
		    "cutoffs -1 2 50 (got %zu: %g %g %g)", rep.ncutoffs,
		    rep.cutoffs[0], rep.cutoffs[1], rep.cutoffs[2]);
		ok(group_of(100) == 22 && group_of(50) == 11 &&
		    group_of(10) == 11 && group_of(2) == 0,
		    "groups by age: 100d -> 2, 50d and 10d -> 1, 2d -> 0"
		    " (%lld %lld %lld %lld)", (long long)group_of(100),
		    (long long)group_of(50), (long long)group_of(10),
		    (long long)group_of(2));
		localdb_close(db);
		sqlite3_close(h);
	}
	/*
	 * 1 MB at 30 days, 1 MB at 20, nothing young: target 2 MB, the walk
	 * cuts nothing; the last bucket (2 MB >= 1.5 MB) gets a -1 and one
	 * more -1 follows: cutoffs -1 -1, so everything gets group 1 (its
	 * own compacted segments, not mixed with new data).
	 */
	{
		static const double ages[] = { 30, 20 };
		static const int mb[] = { 1, 1 };

		db = buckets_db("b2", ages, mb, 2);
		ok(localdb_clean(db, LOCALDB_CLEAN_THRESHOLD, false, NULL,
		    NULL, &rep) == 0, "clean (buckets 2)");
		ok(rep.ncutoffs == 2 && rep.cutoffs[0] == -1 &&
		    rep.cutoffs[1] == -1, "cutoffs -1 -1 (got %zu: %g %g %g)",
		    rep.ncutoffs, rep.cutoffs[0], rep.cutoffs[1],
		    rep.cutoffs[2]);
		ok(group_of(30) == 11 && group_of(20) == 11,
		    "old data only: one group, 1 (%lld %lld)",
		    (long long)group_of(30), (long long)group_of(20));
		localdb_close(db);
		sqlite3_close(h);
	}
	/*
	 * The same with 2 MB at each age: at 20 the bucket (2 MB) has reached
	 * the target: cut 20; the last bucket (2 MB) gets a -1, then -1:
	 * cutoffs -1 -1 20, so 30 -> 2, 20 -> 1.
	 */
	{
		static const double ages[] = { 30, 20 };
		static const int mb[] = { 2, 2 };

		db = buckets_db("b2b", ages, mb, 2);
		ok(localdb_clean(db, LOCALDB_CLEAN_THRESHOLD, false, NULL,
		    NULL, &rep) == 0, "clean (buckets 2b)");
		ok(rep.ncutoffs == 3 && rep.cutoffs[0] == -1 &&
		    rep.cutoffs[1] == -1 && rep.cutoffs[2] == 20,
		    "cutoffs -1 -1 20");
		ok(group_of(30) == 22 && group_of(20) == 11,
		    "full buckets: 30d -> 2, 20d -> 1");
		localdb_close(db);
		sqlite3_close(h);
	}
	/*
	 * 1 MB at 1 day only: the first age is young, cut 1; 1 < 1.5:
	 * cutoffs 1 -1 -> ascending -1 1: everything is group 0 (rewritten
	 * with new data).
	 */
	{
		static const double ages[] = { 1 };
		static const int mb[] = { 1 };

		db = buckets_db("b3", ages, mb, 1);
		ok(localdb_clean(db, LOCALDB_CLEAN_THRESHOLD, false, NULL,
		    NULL, &rep) == 0, "clean (buckets 3)");
		ok(rep.ncutoffs == 2 && rep.cutoffs[0] == -1 &&
		    rep.cutoffs[1] == 1, "cutoffs -1 1");
		ok(group_of(1) == 0, "young data only: group 0");
		localdb_close(db);
		sqlite3_close(h);
	}
	/* An odd database: expired segments of data_size 0 must not divide
	 * by zero (S is taken as 1 byte). */
	{
		db = fresh("b4");
		segment(1, "z", "data", 0, 10, 200, 0, -1, 2, 700, 9);
		sql("UPDATE segments SET data_size = 0");
		ok(localdb_clean(db, LOCALDB_CLEAN_THRESHOLD, false, NULL,
		    NULL, &rep) == 0 && rep.segments == 1,
		    "data_size 0: ranked by its objects' sizes, no crash");
		ok(one("SELECT count(*) FROM block_index WHERE expired IS NULL")
		    == 0, "its objects got groups");
		localdb_close(db);
		sqlite3_close(h);
	}
}

int
main(void)
{
	char cmd[300];

	snprintf(dir, sizeof(dir), "%s/test_clean.XXXXXX",
	    getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(dir) == NULL)
		return 1;
	ranking();
	bucketing();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", dir);
	return tap_done();
}
