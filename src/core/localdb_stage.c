/*
 * localdb_stage: the rows a running backup adds to block_index and
 * chunk_index, held in memory and written in batches sorted by checksum,
 * and a filter that answers "not stored" without asking SQLite.
 *
 * Why: checksums are random, so inserting each new row at once touches a
 * random page of block_content_index and of chunk_index.  Those indexes
 * outgrow the 2 MiB page cache early in a large backup, and every insert
 * then read a page back from the write-ahead log and spilled another: the
 * initial backup of the linux tree (a 31 MB database) wrote 496 MB to the
 * log and read 538 MB back.  A sorted batch visits each page once.  The
 * lookups that miss (every block of an initial backup) descended the same
 * indexes at random; the filter answers most of them from memory.
 *
 * Staged rows get their blockid here (the backup holds the write lock, so
 * max(blockid) + 1 onwards is free), which lets their signatures be
 * written at once and their chunks refer to them.  Everything that reads
 * block_index or chunk_index by SQL while rows are staged must either ask
 * this module first (stage_find_*, stage_block_of) or flush it
 * (stage_flush).  The stage and the filter live for one backup
 * transaction and are dropped with it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "localdb.h"
#include "localdb_internal.h"

/* A batch: at most this many blocks, chunks, or bytes of checksums
 * (about 1 MiB; 8192 blocks halved the log traffic again for 1 MiB more,
 * and the time did not move beyond the noise). */
#define STAGE_BLOCKS 4096
#define STAGE_CHUNKS (2 * STAGE_BLOCKS)
#define STAGE_SUM_BYTES (STAGE_BLOCKS * 72)
/* Open-addressing index sizes (slots hold an entry index + 1). */
#define BLOCK_SLOTS (2 * STAGE_BLOCKS)
#define CHUNK_SLOTS (2 * STAGE_CHUNKS)

/* The filter is built once the backup has asked SQLite this many times:
 * a small incremental never pays for reading the indexes. */
#define FILTER_AFTER 4096
#define FILTER_BITS_PER_KEY 8 /* with 5 probes: ~2 % false positives */
#define FILTER_PROBES 5

struct stage_block {
	int64_t blockid;
	uint64_t key; /* stage_key_text(checksum) */
	uint64_t size;
	double timestamp; /* julianday; 0: the time of the flush */
	uint32_t segid;
	uint32_t seq;
	uint32_t seg; /* index in segs */
	uint32_t sum; /* offset of the checksum in sums */
};

struct stage_chunk {
	unsigned char digest[LOCALDB_CHUNK_DIGEST];
	uint32_t offset;
	uint32_t length;
	uint32_t block; /* index in blocks */
};

struct stage_seg {
	uint32_t segid;
	char name[REF_SEGMENT_MAX + 1];
};

/*
 * The arrays have their full size from the start: large allocations are
 * mapped, so only the part a backup fills costs memory, and a batch never
 * moves (no copy while it grows).
 */
struct localdb_stage {
	struct stage_block blocks[STAGE_BLOCKS];
	struct stage_chunk chunks[STAGE_CHUNKS];
	uint32_t order[STAGE_CHUNKS]; /* the flush's sort */
	char sums[STAGE_SUM_BYTES];
	uint32_t by_sum[BLOCK_SLOTS];
	uint32_t by_name[BLOCK_SLOTS];
	uint32_t by_digest[CHUNK_SLOTS];
	size_t nblocks, nchunks, sums_len;
	struct stage_seg *segs;
	size_t nsegs, segs_cap, last_seg;
	int64_t next_id; /* next free blockid; 0 not read yet */

	uint64_t *bits; /* the filter; NULL until built */
	uint64_t nwords; /* of 64 bits */
	size_t fkeys, fcap; /* keys added; keys it was sized for */
	size_t sql_asks;
	bool filter_off; /* building failed for lack of memory */

	sqlite3_stmt *ins_block;
};

static int read_next_id(struct localdb *db);

static uint64_t
mix64(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdu;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53u;
	h ^= h >> 33;
	return h;
}

uint64_t
stage_key_text(const char *s)
{
	uint64_t h = 0xcbf29ce484222325u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3u;
	return mix64(h);
}

uint64_t
stage_key_digest(const unsigned char *d)
{
	uint64_t h;

	memcpy(&h, d, sizeof(h));
	return mix64(h ^ 0x6a09e667f3bcc909u); /* apart from text keys */
}

static struct localdb_stage *
get_stage(struct localdb *db)
{
	/* malloc, not calloc: untouched pages stay unmapped.  Only the
	 * counters and the indexes need zeroes. */
	if (db->stage == NULL) {
		struct localdb_stage *st = malloc(sizeof(*st));

		if (st == NULL) {
			err_set("local database: out of memory");
			return NULL;
		}
		st->nblocks = st->nchunks = st->sums_len = 0;
		memset(st->by_sum, 0, sizeof(st->by_sum));
		memset(st->by_name, 0, sizeof(st->by_name));
		memset(st->by_digest, 0, sizeof(st->by_digest));
		st->segs = NULL;
		st->nsegs = st->segs_cap = st->last_seg = 0;
		st->next_id = 0;
		st->bits = NULL;
		st->nwords = 0;
		st->fkeys = st->fcap = st->sql_asks = 0;
		st->filter_off = false;
		st->ins_block = NULL;
		db->stage = st;
	}
	return db->stage;
}

static int
grow(void *pp, size_t *cap, size_t need, size_t size, size_t first)
{
	void **p = pp;
	size_t ncap = *cap ? *cap : first;
	void *n;

	if (need <= *cap)
		return 0;
	while (ncap < need)
		ncap *= 2;
	if ((n = realloc(*p, ncap * size)) == NULL) {
		err_set("local database: out of memory");
		return -1;
	}
	*p = n;
	*cap = ncap;
	return 0;
}

/* ---- the filter ---- */

/* The word of a probe: the high 32 bits of ${key} scaled to the size, so
 * the size need not be a power of two.  Its bit: the low 6. */
static size_t
probe_word(const struct localdb_stage *st, uint64_t key)
{
	return (size_t)(((key >> 32) * st->nwords) >> 32);
}

static bool
filter_test(const struct localdb_stage *st, uint64_t key)
{
	uint64_t step = (key >> 29 | key << 35) | 1;

	for (int i = 0; i < FILTER_PROBES; i++, key += step)
		if (!(st->bits[probe_word(st, key)] & (1ull << (key & 63))))
			return false;
	return true;
}

static void
filter_set(struct localdb_stage *st, uint64_t key)
{
	uint64_t step = (key >> 29 | key << 35) | 1;

	for (int i = 0; i < FILTER_PROBES; i++, key += step)
		st->bits[probe_word(st, key)] |= 1ull << (key & 63);
	st->fkeys++;
}

/* Add every key of ${sql} (one text or digest column) to the filter;
 * 1 when it filled past its size (the caller builds a larger one). */
static int
filter_scan(struct localdb *db, const char *sql, bool digest)
{
	struct localdb_stage *st = db->stage;
	sqlite3_stmt *s;
	int r;

	if (sqlite3_prepare_v2(db->h, sql, -1, &s, NULL) != SQLITE_OK)
		return localdb_dberr(db, "read checksums");
	while ((r = localdb_step(db, s, "read checksums")) == 1) {
		if (digest) {
			const void *d = sqlite3_column_blob(s, 0);

			if (d != NULL
			    && sqlite3_column_bytes(s, 0)
			        == LOCALDB_CHUNK_DIGEST)
				filter_set(st, stage_key_digest(d));
		} else {
			const unsigned char *t = sqlite3_column_text(s, 0);

			if (t != NULL)
				filter_set(st, stage_key_text((const char *)t));
		}
		if (st->fkeys > st->fcap) {
			sqlite3_finalize(s);
			return 1;
		}
	}
	sqlite3_finalize(s);
	return r < 0 ? -1 : 0;
}

/*
 * (Re)build the filter from the tables, sized for twice what they hold
 * plus room for this run.  Staged rows are flushed first, so the tables
 * hold every key.  Without memory the filter is simply not used.
 */
static int
filter_build(struct localdb *db, size_t want)
{
	struct localdb_stage *st = db->stage;
	int r;

	if (stage_flush(db))
		return -1;
	for (;;) {
		/* Below 2^32 words, as probe() needs. */
		if (want > ((size_t)1 << 34) / FILTER_BITS_PER_KEY) {
			st->filter_off = true;
			return 0;
		}
		st->nwords = (want * FILTER_BITS_PER_KEY + 63) / 64;
		free(st->bits);
		if ((st->bits = calloc(st->nwords, sizeof(uint64_t))) == NULL) {
			st->filter_off = true;
			return 0;
		}
		st->fcap = want;
		st->fkeys = 0;
		r = filter_scan(db, "SELECT checksum FROM block_index", false);
		if (r == 0 && (r = localdb_chunks_known(db)) == 1)
			r = filter_scan(
			    db, "SELECT hash FROM chunk_index", true);
		if (r < 0) {
			free(st->bits);
			st->bits = NULL;
			return -1;
		}
		if (r == 0)
			return 0;
		want *= 2;
	}
}

int
stage_absent(struct localdb *db, uint64_t key)
{
	struct localdb_stage *st = get_stage(db);

	if (st == NULL)
		return -1;
	if (st->bits == NULL) {
		if (st->filter_off || ++st->sql_asks < FILTER_AFTER)
			return 0;
		/* Sized for twice the tables, and room for this run. */
		if (read_next_id(db)
		    || filter_build(db, 2 * (size_t)st->next_id + (1 << 16)))
			return -1;
		if (st->bits == NULL)
			return 0;
	} else if (st->fkeys > st->fcap) {
		if (filter_build(db, 2 * st->fkeys))
			return -1;
		if (st->bits == NULL)
			return 0;
	}
	return filter_test(st, key) ? 0 : 1;
}

void
stage_note_key(struct localdb *db, uint64_t key)
{
	if (db->stage != NULL && db->stage->bits != NULL)
		filter_set(db->stage, key);
}

/* ---- staged rows ---- */

static size_t
name_slot(uint32_t segid, uint32_t seq)
{
	return (size_t)mix64((uint64_t)segid << 32 | seq) & (BLOCK_SLOTS - 1);
}

/* Learn the first free blockid (once per backup). */
static int
read_next_id(struct localdb *db)
{
	struct localdb_stage *st = db->stage;
	sqlite3_stmt *s;
	int r;

	if (st->next_id == 0) {
		if (sqlite3_prepare_v2(db->h,
		        "SELECT coalesce(max(blockid), 0) + 1 FROM block_index",
		        -1, &s, NULL)
		    != SQLITE_OK)
			return localdb_dberr(db, "number blocks");
		r = localdb_step(db, s, "number blocks");
		if (r == 1)
			st->next_id = sqlite3_column_int64(s, 0);
		sqlite3_finalize(s);
		if (r != 1 || st->next_id <= 0) {
			if (r == 0 || st->next_id <= 0)
				err_set("local database: cannot number blocks");
			st->next_id = 0;
			return -1;
		}
	}
	return 0;
}

int
stage_next_id(struct localdb *db, int64_t *id)
{
	struct localdb_stage *st = get_stage(db);

	if (st == NULL || read_next_id(db))
		return -1;
	*id = st->next_id++;
	return 0;
}

static long
find_staged(const struct localdb_stage *st, uint32_t segid, uint32_t seq)
{
	for (size_t i = name_slot(segid, seq);;
	     i = (i + 1) & (BLOCK_SLOTS - 1)) {
		uint32_t e = st->by_name[i];

		if (e == 0)
			return -1;
		if (st->blocks[e - 1].segid == segid
		    && st->blocks[e - 1].seq == seq)
			return (long)e - 1;
	}
}

int
stage_block_of(struct localdb *db, int64_t segid, uint64_t seq,
    int64_t *blockid, uint64_t *size)
{
	struct localdb_stage *st = db->stage;
	long i;

	if (st == NULL || st->nblocks == 0 || segid <= 0 || segid >= UINT32_MAX
	    || seq >= UINT32_MAX)
		return 0;
	if ((i = find_staged(st, (uint32_t)segid, (uint32_t)seq)) < 0)
		return 0;
	if (blockid != NULL)
		*blockid = st->blocks[i].blockid;
	if (size != NULL)
		*size = st->blocks[i].size;
	return 1;
}

int
stage_put_block(struct localdb *db, int64_t segid, const char *segment,
    uint64_t seq, const char *checksum, uint64_t size, double timestamp)
{
	struct localdb_stage *st = get_stage(db);
	struct stage_block *b;
	size_t sumlen = strlen(checksum) + 1, i;

	if (st == NULL)
		return -1;
	if (st->nblocks == STAGE_BLOCKS
	    || st->sums_len + sumlen > STAGE_SUM_BYTES) {
		if (stage_flush(db))
			return -1;
	}
	if (find_staged(st, (uint32_t)segid, (uint32_t)seq) >= 0) {
		err_set("local database: store block: object %s/%08llx stored "
		        "twice",
		    segment, (unsigned long long)seq);
		return -1;
	}
	if (sumlen > STAGE_SUM_BYTES) {
		err_set("local database: checksum too long");
		return -1;
	}
	if (st->nsegs == 0 || st->segs[st->last_seg].segid != segid) {
		size_t k;

		for (k = 0; k < st->nsegs; k++)
			if (st->segs[k].segid == segid)
				break;
		if (k == st->nsegs) {
			if (grow(&st->segs, &st->segs_cap, st->nsegs + 1,
			        sizeof(*st->segs), 16))
				return -1;
			st->segs[k].segid = (uint32_t)segid;
			snprintf(st->segs[k].name, sizeof(st->segs[k].name),
			    "%s", segment);
			st->nsegs++;
		}
		st->last_seg = k;
	}
	b = &st->blocks[st->nblocks];
	if (stage_next_id(db, &b->blockid))
		return -1;
	b->key = stage_key_text(checksum);
	b->size = size;
	b->timestamp = timestamp;
	b->segid = (uint32_t)segid;
	b->seq = (uint32_t)seq;
	b->seg = (uint32_t)st->last_seg;
	b->sum = (uint32_t)st->sums_len;
	memcpy(st->sums + st->sums_len, checksum, sumlen);
	st->sums_len += sumlen;
	for (i = b->key & (BLOCK_SLOTS - 1); st->by_sum[i];
	     i = (i + 1) & (BLOCK_SLOTS - 1))
		;
	st->by_sum[i] = (uint32_t)st->nblocks + 1;
	for (i = name_slot(b->segid, b->seq); st->by_name[i];
	     i = (i + 1) & (BLOCK_SLOTS - 1))
		;
	st->by_name[i] = (uint32_t)st->nblocks + 1;
	st->nblocks++;
	stage_note_key(db, b->key);
	return 0;
}

int
stage_find_block(struct localdb *db, const char *checksum, uint64_t size,
    uint64_t key, struct ref *out, double *timestamp)
{
	struct localdb_stage *st = db->stage;

	if (st == NULL || st->nblocks == 0)
		return 0;
	for (size_t i = key & (BLOCK_SLOTS - 1); st->by_sum[i];
	     i = (i + 1) & (BLOCK_SLOTS - 1)) {
		const struct stage_block *b = &st->blocks[st->by_sum[i] - 1];

		if (b->key != key || b->size != size
		    || strcmp(st->sums + b->sum, checksum) != 0)
			continue;
		if (out != NULL) {
			ref_set_object(out, st->segs[b->seg].name, b->seq);
			out->range = REF_RANGE_BARE;
			out->length = size;
		}
		if (timestamp != NULL)
			*timestamp = b->timestamp;
		return 1;
	}
	return 0;
}

int
stage_put_chunks(struct localdb *db, int64_t segid, uint64_t seq,
    const struct localdb_chunk *c, size_t n)
{
	struct localdb_stage *st = db->stage;
	long bi;

	for (size_t k = 0; k < n; k++) {
		struct stage_chunk *sc;
		uint64_t key;
		size_t i;

		if (st->nchunks == STAGE_CHUNKS && stage_flush(db))
			return -1;
		/* A flush empties the stage: the block is in SQL now. */
		if ((bi = find_staged(st, (uint32_t)segid, (uint32_t)seq)) < 0)
			return localdb_chunks_sql(db, segid, seq, c + k, n - k);
		sc = &st->chunks[st->nchunks];
		memcpy(sc->digest, c[k].digest, sizeof(sc->digest));
		sc->offset = c[k].offset;
		sc->length = c[k].length;
		sc->block = (uint32_t)bi;
		key = stage_key_digest(sc->digest);
		for (i = key & (CHUNK_SLOTS - 1); st->by_digest[i];
		     i = (i + 1) & (CHUNK_SLOTS - 1))
			;
		st->by_digest[i] = (uint32_t)st->nchunks + 1;
		st->nchunks++;
		stage_note_key(db, key);
	}
	return 0;
}

int
stage_find_chunk(struct localdb *db, const unsigned char *digest,
    uint32_t length, struct ref *out, uint64_t *objsize)
{
	struct localdb_stage *st = db->stage;
	uint64_t key;

	if (st == NULL || st->nchunks == 0)
		return 0;
	key = stage_key_digest(digest);
	for (size_t i = key & (CHUNK_SLOTS - 1); st->by_digest[i];
	     i = (i + 1) & (CHUNK_SLOTS - 1)) {
		const struct stage_chunk *c = &st->chunks[st->by_digest[i] - 1];
		const struct stage_block *b = &st->blocks[c->block];

		/* As the SQL: the chunk lies inside its object. */
		if (c->length != length
		    || memcmp(c->digest, digest, sizeof(c->digest)) != 0
		    || (uint64_t)c->offset + c->length > b->size)
			continue;
		ref_set_object(out, st->segs[b->seg].name, b->seq);
		out->range = REF_RANGE_SLICE;
		out->start = c->offset;
		out->length = length;
		*objsize = b->size;
		return 1;
	}
	return 0;
}

static sqlite3_stmt *
prep(struct localdb *db, sqlite3_stmt **s, const char *sql)
{
	if (*s == NULL
	    && sqlite3_prepare_v3(
	           db->h, sql, -1, SQLITE_PREPARE_PERSISTENT, s, NULL)
	        != SQLITE_OK) {
		localdb_dberr(db, "prepare");
		*s = NULL;
	}
	return *s;
}

/* ---- writing the batch ---- */

static int
cmp_block(const void *a, const void *b, void *ctx)
{
	const struct localdb_stage *st = ctx;
	const struct stage_block *x = &st->blocks[*(const uint32_t *)a];
	const struct stage_block *y = &st->blocks[*(const uint32_t *)b];

	return strcmp(st->sums + x->sum, st->sums + y->sum);
}

static int
cmp_chunk(const void *a, const void *b, void *ctx)
{
	const struct localdb_stage *st = ctx;

	return memcmp(st->chunks[*(const uint32_t *)a].digest,
	    st->chunks[*(const uint32_t *)b].digest, LOCALDB_CHUNK_DIGEST);
}

int
stage_flush(struct localdb *db)
{
	struct localdb_stage *st = db->stage;
	uint32_t *order;
	sqlite3_stmt *s;
	int rc = -1;

	if (st == NULL || (st->nblocks == 0 && st->nchunks == 0))
		return 0;
	order = st->order;
	for (size_t i = 0; i < st->nblocks; i++)
		order[i] = (uint32_t)i;
	qsort_r(order, st->nblocks, sizeof(*order), cmp_block, st);
	s = prep(db, &st->ins_block,
	    "INSERT INTO block_index(blockid, segmentid, object, checksum,"
	    " size, timestamp)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, coalesce(?6, julianday('now')))");
	if (s == NULL)
		goto out;
	for (size_t i = 0; i < st->nblocks; i++) {
		const struct stage_block *b = &st->blocks[order[i]];
		char obj[24];

		snprintf(
		    obj, sizeof(obj), "%08llx", (unsigned long long)b->seq);
		sqlite3_bind_int64(s, 1, b->blockid);
		sqlite3_bind_int64(s, 2, b->segid);
		sqlite3_bind_text(s, 3, obj, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(s, 4, st->sums + b->sum, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 5, (int64_t)b->size);
		if (b->timestamp > 0)
			sqlite3_bind_double(s, 6, b->timestamp);
		else
			sqlite3_bind_null(s, 6);
		if (localdb_step(db, s, "store block") < 0)
			goto out;
		localdb_done(s);
	}
	for (size_t i = 0; i < st->nchunks; i++)
		order[i] = (uint32_t)i;
	qsort_r(order, st->nchunks, sizeof(*order), cmp_chunk, st);
	for (size_t i = 0; i < st->nchunks; i++) {
		const struct stage_chunk *c = &st->chunks[order[i]];

		if (localdb_chunk_row(db, c->digest, c->length,
		        st->blocks[c->block].blockid, c->offset))
			goto out;
	}
	rc = 0;
out:
	/* Written or not, the batch is gone: after an error the backup's
	 * transaction is rolled back anyway. */
	st->nblocks = st->nchunks = st->sums_len = st->nsegs = 0;
	memset(st->by_sum, 0, sizeof(st->by_sum));
	memset(st->by_name, 0, sizeof(st->by_name));
	memset(st->by_digest, 0, sizeof(st->by_digest));
	return rc;
}

void
stage_reset(struct localdb *db)
{
	struct localdb_stage *st = db->stage;

	if (st == NULL)
		return;
	sqlite3_finalize(st->ins_block);
	free(st->segs);
	free(st->bits);
	free(st);
	db->stage = NULL;
}
