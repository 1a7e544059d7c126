/*
 * test_chunkindex: the sub-file incrementals' additions to the local
 * database: chunk_index lookups (usable objects only, exact length),
 * localdb_block_size, and the trigger that forgets a deleted block's chunks
 * and signatures.  Changes behind the library's back go through SQL.
 */
#include <sys/stat.h>
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

#define SEG "0b0e2c6e-7d1a-4a56-9d4f-3c1b5e2a9f10"
#define SEG2 "7f6e5d4c-3b2a-4190-8f7e-6d5c4b3a2910"

static int
sq_int(sqlite3 *h, const char *sql)
{
	sqlite3_stmt *s;
	int v = -1;

	if (sqlite3_prepare_v2(h, sql, -1, &s, NULL) != SQLITE_OK)
		return -2;
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return v;
}

static int
sq_exec(sqlite3 *h, const char *sql)
{
	return sqlite3_exec(h, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

static void
digest(unsigned char d[LOCALDB_CHUNK_DIGEST], int k)
{
	for (int i = 0; i < LOCALDB_CHUNK_DIGEST; i++)
		d[i] = (unsigned char)(k * 37 + i);
}

int
main(void)
{
	char dir[] = "/tmp/test_chunkindex.XXXXXX", path[200], cmd[256];
	struct localdb *db = NULL;
	struct localdb_chunk c[3];
	unsigned char d[LOCALDB_CHUNK_DIGEST];
	struct ref r;
	uint64_t objsize = 0, size = 0;
	sqlite3 *h;

	if (mkdtemp(dir) == NULL)
		return 1;
	ok(localdb_open(dir, &db) == 0, "database created: %s", err_msg());
	if (db == NULL)
		return tap_done();
	memset(&r, 0, sizeof(r));
	digest(d, 1);
	ok(localdb_find_chunk(db, d, 100, &r, &objsize) == 0,
	    "no chunk_index yet: nothing found");
	ok(localdb_begin_snapshot(db, "20260101T000000", NULL, 1.0) == 0 &&
		localdb_store_block(db, SEG, 1, "sha256=aa", 30000, 0) == 0 &&
		localdb_store_block(db, SEG, 2, "sha256=bb", 5000, 0) == 0,
	    "two blocks stored");
	for (int i = 0; i < 3; i++) {
		digest(c[i].digest, i + 1);
		c[i].offset = (uint32_t)i * 10000;
		c[i].length = 10000;
	}
	ok(localdb_add_chunks(db, SEG, 1, c, 3) == 0, "three chunks indexed");
	ok(localdb_add_chunks(db, SEG, 1, c, 3) == 0,
	    "indexing them again is harmless");
	err_clear();
	ok(localdb_add_chunks(db, SEG, 9, c, 1) < 0 && *err_msg(),
	    "chunks of an unknown object refused: %s", err_msg());
	digest(d, 2);
	ok(localdb_find_chunk(db, d, 10000, &r, &objsize) == 1 &&
		strcmp(r.segment, SEG) == 0 && r.seq == 1 &&
		r.range == REF_RANGE_SLICE && r.start == 10000 &&
		r.length == 10000 && objsize == 30000,
	    "second chunk found as " SEG "/1[10000+10000] of 30000 bytes");
	ok(localdb_find_chunk(db, d, 9999, &r, &objsize) == 0,
	    "same digest, other length: not found");
	digest(d, 7);
	ok(localdb_find_chunk(db, d, 10000, &r, &objsize) == 0,
	    "unknown digest: not found");
	ok(localdb_block_size(db, SEG, 1, &size) == 1 && size == 30000,
	    "block_size of a usable block");
	ok(localdb_block_size(db, SEG, 3, &size) == 0, "block_size of no block");
	ok(localdb_put_signatures(db, SEG, 1, "gear-8k/sha256", "x", 1) == 0,
	    "signatures stored");
	ok(localdb_commit_snapshot(db) == 0, "committed");

	/* Expire the block behind the library's back. */
	snprintf(path, sizeof(path), "%s/localdb.sqlite", dir);
	if (sqlite3_open(path, &h) != SQLITE_OK)
		return 1;
	sqlite3_busy_timeout(h, 5000);
	ok(sq_exec(h, "UPDATE block_index SET expired = 3 WHERE object = "
		      "'00000001'") == 0,
	    "block 1 expired");
	digest(d, 2);
	ok(localdb_find_chunk(db, d, 10000, &r, &objsize) == 0,
	    "a chunk of an expired block is not found");
	ok(localdb_block_size(db, SEG, 1, &size) == 0,
	    "an expired block is not usable");
	ok(sq_exec(h, "UPDATE block_index SET expired = NULL") == 0 &&
		localdb_find_chunk(db, d, 10000, &r, &objsize) == 1,
	    "found again once not expired");
	ok(localdb_mark_segment_missing(db, SEG) == 0 &&
		localdb_find_chunk(db, d, 10000, &r, &objsize) == 0 &&
		localdb_block_size(db, SEG, 1, &size) == 0,
	    "nothing of a missing segment is found");
	ok(sq_exec(h, "DELETE FROM missing_segments") == 0, "segment back");

	/* Deleting the block forgets its chunks and signatures, so a new
	 * block that reuses its blockid inherits nothing. */
	ok(sq_int(h, "SELECT count(*) FROM chunk_index") == 3 &&
		sq_int(h, "SELECT count(*) FROM subblock_signatures") == 1,
	    "3 chunk rows and 1 signature row before");
	ok(sq_exec(h, "DELETE FROM block_index WHERE object = '00000001'") == 0,
	    "block 1 deleted");
	ok(sq_int(h, "SELECT count(*) FROM chunk_index") == 0 &&
		sq_int(h, "SELECT count(*) FROM subblock_signatures") == 0,
	    "its chunks and signatures went with it");
	sqlite3_close(h);
	ok(localdb_begin_snapshot(db, "20260101T000001", NULL, 1.0) == 0 &&
		localdb_store_block(db, SEG2, 1, "sha256=cc", 30000, 0) == 0,
	    "a new block stored (may reuse the blockid)");
	ok(localdb_find_chunk(db, d, 10000, &r, &objsize) == 0,
	    "the new block has no chunks of the deleted one");
	localdb_abort(db);
	/* chunk_index created inside a rolled-back backup is created again. */
	ok(localdb_begin_snapshot(db, "20260101T000002", NULL, 1.0) == 0 &&
		localdb_store_block(db, SEG2, 2, "sha256=dd", 30000, 0) == 0 &&
		localdb_add_chunks(db, SEG2, 2, c, 1) == 0 &&
		localdb_commit_snapshot(db) == 0,
	    "chunks indexed after a rollback");
	localdb_close(db);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		ok(0, "cleanup");
	return tap_done();
}
