/*
 * test_stage: a backup's new rows are held back and written in sorted
 * batches (localdb_stage.c), and a filter answers "not stored" after many
 * lookups.  Every answer must be the one SQLite would give: staged rows
 * are found before and after a batch is written, get ids that do not
 * collide with rows written directly, keep their signatures and chunks,
 * survive the commit, and vanish with a rollback; the filter never hides
 * a stored checksum.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "err.h"
#include "localdb.h"
#include "ref.h"
#include "tap.h"

#define SEG "5a0e2c6e-7d1a-4a56-9d4f-3c1b5e2a9f10"
#define SEG2 "6b6e5d4c-3b2a-4190-8f7e-6d5c4b3a2910"
#define SEG3 "7c7e5d4c-3b2a-4190-8f7e-6d5c4b3a2911"
/* More than four batches (localdb_stage.c holds 2048 blocks); block 7000
 * is in the last batch before the one being filled. */
#define NBLOCKS 10000
/* More lookups than the filter waits for (4096). */
#define NASKS 5000
/* More bytes of signatures than a batch holds (localdb_stage.c). */
#define BIG_SIG 300000

static int64_t
sq_int(sqlite3 *h, const char *sql)
{
	sqlite3_stmt *s;
	int64_t v = -1;

	if (sqlite3_prepare_v2(h, sql, -1, &s, NULL) != SQLITE_OK)
		return -2;
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

static void
sum_of(char out[80], int i)
{
	snprintf(out, 80, "sha256=%064x", (unsigned)i * 2654435761u);
}

static void
digest_of(unsigned char d[LOCALDB_CHUNK_DIGEST], int k)
{
	for (int i = 0; i < LOCALDB_CHUNK_DIGEST; i++)
		d[i] = (unsigned char)((k * 131 + i * 7) ^ (k >> 8));
}

static bool
found_as(struct localdb *db, int i, const char *seg, uint64_t seq)
{
	char sum[80];
	struct ref r;

	sum_of(sum, i);
	return localdb_find_block(db, sum, (uint64_t)i + 1, &r) == 1
	    && strcmp(r.segment, seg) == 0 && r.seq == seq
	    && r.length == (uint64_t)i + 1;
}

/* Everything, with the batches written in line or by the writer thread. */
static void
run(bool background)
{
	char dir[] = "/tmp/test_stage.XXXXXX", path[200], cmd[256], sum[80];
	struct localdb *db = NULL;
	struct localdb_chunk c[4];
	unsigned char d[LOCALDB_CHUNK_DIGEST];
	struct ref r;
	uint64_t objsize = 0, size = 0;
	char *alg = NULL;
	void *sig = NULL;
	size_t siglen = 0;
	double ts = 0;
	char *big;
	int expired = -1, bad;
	sqlite3 *h;

	printf("# batches written %s\n",
	    background ? "by the writer thread" : "in line");
	if (mkdtemp(dir) == NULL)
		exit(1);
	ok(localdb_open(dir, &db) == 0, "database created: %s", err_msg());
	if (db == NULL)
		exit(tap_done());
	localdb_set_background(db, background);

	/* ---- one backup: many staged rows ---- */
	ok(localdb_begin_snapshot(db, "20260101T000000", NULL, 1.0) == 0,
	    "backup begun");
	bad = 0;
	for (int i = 0; i < NBLOCKS; i++) {
		sum_of(sum, i);
		if (localdb_store_block(db, SEG, (uint64_t)i, sum,
		        (uint64_t)i + 1, i == 7 ? 2450000.5 : 0)
		    != 0)
			bad++;
		/* A row without checksum is written at once, numbered with
		 * the staged ones. */
		if (i % 1000 == 500
		    && localdb_store_block(db, SEG2, (uint64_t)i, NULL, 10, 0)
		        != 0)
			bad++;
	}
	ok(bad == 0, "%d blocks stored (and 10 without checksum): %s", NBLOCKS,
	    err_msg());
	ok(found_as(db, 0, SEG, 0) && found_as(db, 4095, SEG, 4095)
	        && found_as(db, 4096, SEG, 4096)
	        && found_as(db, NBLOCKS - 1, SEG, NBLOCKS - 1),
	    "blocks found, written or still held");
	sum_of(sum, NBLOCKS - 1);
	ok(localdb_find_block(db, sum, 5, &r) == 0,
	    "a held block with another size is not found");
	sum_of(sum, 7);
	ok(localdb_find_old_block(db, sum, 8, &ts, &expired) == 1
	        && ts == 2450000.5 && expired == 0,
	    "age of a written block kept");
	sum_of(sum, NBLOCKS - 2);
	ok(localdb_find_old_block(db, sum, NBLOCKS - 1, &ts, &expired) == 1
	        && ts > 2460000 && expired == 0,
	    "a held block is old data of today (%f)", ts);
	err_clear();
	ok(localdb_store_block(db, SEG, NBLOCKS - 1, "sha256=ff", 3, 0) == -1
	        && strstr(err_msg(), "twice") != NULL,
	    "a held object stored twice is refused: %s", err_msg());
	ok(localdb_block_size(db, SEG, NBLOCKS - 1, &size) == 1
	        && size == NBLOCKS,
	    "size of a held block");
	ok(localdb_block_available(db, SEG, NBLOCKS - 1) == 1,
	    "a held block is available");

	/* Signatures and chunks of a held block. */
	ok(localdb_put_signatures(
	       db, SEG, NBLOCKS - 1, "gear-8k/sha256", "sig!", 4)
	        == 0,
	    "signatures of a held block stored");
	ok(localdb_get_signatures(db, SEG, NBLOCKS - 1, &alg, &sig, &siglen)
	            == 1
	        && strcmp(alg, "gear-8k/sha256") == 0 && siglen == 4
	        && memcmp(sig, "sig!", 4) == 0,
	    "and read back");
	free(alg);
	free(sig);
	/* Staged again: the later one wins, as INSERT OR REPLACE. */
	ok(localdb_put_signatures(db, SEG, NBLOCKS - 2, "gear-8k/sha256", "one",
	       3) == 0
	        && localdb_put_signatures(
	               db, SEG, NBLOCKS - 2, "gear-8k/sha256", "two!", 4)
	            == 0
	        && localdb_get_signatures(
	               db, SEG, NBLOCKS - 2, &alg, &sig, &siglen)
	            == 1
	        && siglen == 4 && memcmp(sig, "two!", 4) == 0,
	    "signatures stored twice: the later ones read back");
	free(alg);
	free(sig);
	/* Too large to stage: by SQL, after the staged copy (which must not
	 * shadow it, nor be written over it). */
	big = calloc(1, BIG_SIG);
	if (big == NULL)
		exit(1);
	memset(big, 'b', BIG_SIG);
	ok(localdb_put_signatures(db, SEG, NBLOCKS - 3, "gear-8k/sha256",
	       "small",
	       5) == 0
	        && localdb_put_signatures(
	               db, SEG, NBLOCKS - 3, "gear-8k/sha256", big, BIG_SIG)
	            == 0
	        && localdb_get_signatures(
	               db, SEG, NBLOCKS - 3, &alg, &sig, &siglen)
	            == 1
	        && siglen == BIG_SIG && memcmp(sig, big, BIG_SIG) == 0,
	    "signatures too large to hold are stored and read back: %s",
	    err_msg());
	free(alg);
	free(sig);
	/* A block of the batch being written: by SQL too. */
	ok(localdb_put_signatures(db, SEG, 7000, "gear-8k/sha256", "last", 4)
	            == 0
	        && localdb_get_signatures(db, SEG, 7000, &alg, &sig, &siglen)
	            == 1
	        && siglen == 4 && memcmp(sig, "last", 4) == 0,
	    "signatures of a block of the last batch stored and read back: "
	    "%s",
	    err_msg());
	free(alg);
	free(sig);
	for (int i = 0; i < 4; i++) {
		digest_of(c[i].digest, i);
		c[i].offset = (uint32_t)i * 2000;
		c[i].length = 2000;
	}
	ok(localdb_add_chunks(db, SEG, NBLOCKS - 1, c, 4) == 0,
	    "chunks of a held block indexed");
	digest_of(d, 2);
	ok(localdb_find_chunk(db, d, 2000, &r, &objsize) == 1
	        && strcmp(r.segment, SEG) == 0 && r.seq == NBLOCKS - 1
	        && r.range == REF_RANGE_SLICE && r.start == 4000
	        && objsize == NBLOCKS,
	    "a held chunk found as a slice of its block");
	ok(localdb_find_chunk(db, d, 1999, &r, &objsize) == 0,
	    "not with another length");
	/* A chunk past the end of its object is never offered (as SQL). */
	digest_of(c[0].digest, 99);
	c[0].offset = NBLOCKS - 100;
	c[0].length = 200;
	ok(localdb_add_chunks(db, SEG, NBLOCKS - 1, c, 1) == 0
	        && localdb_find_chunk(db, c[0].digest, 200, &r, &objsize) == 0,
	    "a chunk past its object's end is not found");
	/* Chunks of a block in the batch before the one being filled (which
	 * the writer thread may be writing) go through SQL once it is. */
	digest_of(c[0].digest, 50);
	c[0].offset = 0;
	c[0].length = 3000;
	digest_of(c[1].digest, 51);
	c[1].offset = 3000;
	c[1].length = 4001;
	ok(localdb_add_chunks(db, SEG, 7000, c, 2) == 0
	        && localdb_find_chunk(db, c[1].digest, 4001, &r, &objsize) == 1
	        && r.seq == 7000 && r.start == 3000 && objsize == 7001,
	    "chunks of a block of the last batch stored and found: %s",
	    err_msg());
	ok(localdb_commit_snapshot(db) == 0, "committed: %s", err_msg());

	snprintf(path, sizeof(path), "%s/localdb.sqlite", dir);
	if (sqlite3_open(path, &h) != SQLITE_OK)
		exit(1);
	sqlite3_busy_timeout(h, 5000);
	ok(sq_int(h, "SELECT count(*) FROM block_index") == NBLOCKS + 10
	        && sq_int(h, "SELECT count(DISTINCT blockid) FROM block_index")
	            == NBLOCKS + 10,
	    "every row written, each with its own id");
	ok(sq_int(h,
	       "SELECT count(*) FROM block_index b JOIN segments s"
	       " USING (segmentid) WHERE s.segment = '" SEG "'")
	        == NBLOCKS,
	    "all in their segment");
	ok(sq_int(h,
	       "SELECT count(*) FROM subblock_signatures g JOIN"
	       " block_index b USING (blockid) WHERE b.size = "
	       "10000")
	        == 1,
	    "the signatures belong to their block");
	ok(sq_int(h,
	       "SELECT count(*) FROM subblock_signatures g JOIN"
	       " block_index b USING (blockid) WHERE b.size = 9999"
	       " AND g.signatures = CAST('two!' AS BLOB)")
	        == 1,
	    "the later of two signatures written");
	snprintf(cmd, sizeof(cmd),
	    "SELECT length(g.signatures) FROM subblock_signatures g JOIN"
	    " block_index b USING (blockid) WHERE b.size = %d",
	    NBLOCKS - 2);
	ok(sq_int(h, cmd) == BIG_SIG, "the large signatures written");
	ok(sq_int(h,
	       "SELECT count(*) FROM subblock_signatures g JOIN"
	       " block_index b USING (blockid) WHERE b.size = 7001"
	       " AND g.signatures = CAST('last' AS BLOB)")
	        == 1,
	    "those of the last batch's block written");
	ok(sq_int(h, "SELECT count(*) FROM subblock_signatures") == 4,
	    "one row of signatures per block");
	ok(sq_int(h,
	       "SELECT count(*) FROM chunk_index c JOIN block_index b"
	       " USING (blockid) WHERE b.size = 10000")
	        == 5,
	    "the chunks belong to their block");
	ok(sq_int(h,
	       "SELECT count(*) FROM chunk_index c JOIN block_index b"
	       " USING (blockid) WHERE b.size = 7001")
	        == 2,
	    "so do those of the last batch's block");
	ok(sq_int(h,
	       "SELECT count(*) FROM block_index WHERE timestamp IS NULL"
	       " OR checksum IS NULL AND size != 10")
	        == 0,
	    "timestamps and checksums written");
	ok(sq_int(h,
	       "SELECT timestamp FROM block_index WHERE object ="
	       " '00000007'")
	        == 2450000,
	    "inherited age written");
	sqlite3_close(h);

	/* ---- a second backup: the filter ---- */
	ok(localdb_begin_snapshot(db, "20260101T000001", NULL, 1.0) == 0,
	    "second backup begun");
	bad = 0;
	for (int i = 0; i < NASKS; i++) {
		sum_of(sum, NBLOCKS + 1000 + i);
		if (localdb_find_block(db, sum, 1, &r) != 0)
			bad++;
	}
	ok(bad == 0, "%d absent checksums not found", NASKS);
	bad = 0;
	for (int i = 0; i < NBLOCKS; i += 7)
		if (!found_as(db, i, SEG, (uint64_t)i))
			bad++;
	ok(bad == 0, "every stored block still found with the filter");
	sum_of(sum, 7);
	ok(localdb_find_old_block(db, sum, 8, &ts, &expired) == 1
	        && ts == 2450000.5,
	    "old block found with the filter");
	digest_of(d, 3);
	ok(localdb_find_chunk(db, d, 2000, &r, &objsize) == 1
	        && r.start == 6000,
	    "stored chunk found with the filter");
	digest_of(d, 1000);
	ok(localdb_find_chunk(db, d, 2000, &r, &objsize) == 0,
	    "absent chunk not found");
	bad = 0;
	for (int i = 0; i < 3 * 4096; i++) {
		sum_of(sum, 100000 + i);
		if (localdb_store_block(
		        db, SEG3, (uint64_t)i, sum, (uint64_t)100000 + i + 1, 0)
		    != 0)
			bad++;
	}
	ok(bad == 0, "more blocks stored while the filter is on");
	bad = 0;
	for (int i = 0; i < 3 * 4096; i += 5)
		if (!found_as(db, 100000 + i, SEG3, (uint64_t)i))
			bad++;
	ok(bad == 0, "and found");
	digest_of(c[0].digest, 5000);
	c[0].offset = 0;
	c[0].length = 100;
	ok(localdb_add_chunks(db, SEG, 3000, c, 1) == 0
	        && localdb_find_chunk(db, c[0].digest, 100, &r, &objsize) == 1
	        && r.seq == 3000,
	    "a chunk added to an old block is found");
	localdb_abort(db);
	if (sqlite3_open(path, &h) != SQLITE_OK)
		exit(1);
	ok(sq_int(h, "SELECT count(*) FROM block_index") == NBLOCKS + 10
	        && sq_int(h, "SELECT count(*) FROM chunk_index") == 7,
	    "an aborted backup leaves nothing");
	sqlite3_close(h);

	/* ---- a duplicate of a written row fails the backup ---- */
	ok(localdb_begin_snapshot(db, "20260101T000002", NULL, 1.0) == 0,
	    "third backup begun");
	ok(localdb_store_block(db, SEG, 0, "sha256=01", 1, 0) == 0,
	    "a second row for a written object is held");
	err_clear();
	ok(localdb_commit_snapshot(db) == -1 && *err_msg(),
	    "and refused when written: %s", err_msg());
	ok(localdb_begin_snapshot(db, "20260101T000003", NULL, 1.0) == 0
	        && found_as(db, 5, SEG, 5) && localdb_commit_snapshot(db) == 0,
	    "the database is usable after");

	localdb_close(db);
	free(big);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

int
main(void)
{
	run(false);
	run(true);
	return tap_done();
}
