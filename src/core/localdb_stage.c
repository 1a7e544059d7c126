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
 * max(blockid) + 1 onwards is free), which lets their chunks and
 * signatures refer to them; both are staged with their block.
 * Everything that reads block_index, chunk_index or subblock_signatures
 * by SQL while rows are staged must either ask this module first
 * (stage_find_*, stage_block_of, stage_get_signatures) or flush it
 * (stage_flush).  The stage and the filter live for one backup
 * transaction and are dropped with it.
 *
 * A full batch is written by a thread of its own while the backup fills
 * the next one: writing it takes tens of milliseconds, during which the
 * main thread used to feed neither the compressors nor the read-ahead
 * (a fifth of the initial backup of the tree had nothing else running).
 * The batch being written stays readable: lookups ask the batch being
 * filled, then that one, then SQLite.  The connection is in serialized
 * mode, and the writer has statements of its own; anything that needs
 * the rows in SQL, and the end of the transaction, waits for it.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "hash.h"
#include "localdb.h"
#include "localdb_internal.h"

/* A batch: at most this many blocks, chunks, or bytes of checksums
 * (about 0.5 MiB; two of them with the writer thread).  Larger batches
 * write less to the log: in line, 8192 blocks halved the traffic of 4096
 * for 1 MiB more, and the time did not move beyond the noise; with the
 * writer, the initial backup of the tree spent 0.99 s writing batches
 * of 2048 blocks against 0.89 s for 4096, off the main thread. */
#define STAGE_BLOCKS 2048
#define STAGE_CHUNKS (2 * STAGE_BLOCKS)
#define STAGE_SUM_BYTES (STAGE_BLOCKS * 72)
/* Open-addressing index sizes (slots hold an entry index + 1). */
#define BLOCK_SLOTS (2 * STAGE_BLOCKS)
#define CHUNK_SLOTS (2 * STAGE_CHUNKS)
/* A block's chunks go in its batch: a block is staged in a batch with
 * room for one chunk per 2 KiB of it (both chunkers' minimum), up to
 * this many.  More chunks than that go to SQL, after a wait. */
#define CHUNK_MIN_LEN 2048
#define CHUNKS_RESERVED (STAGE_CHUNKS / 8)
/* Signatures go with their block too, as the algorithm's name and the
 * blob: room for an entry of 36 bytes (a length and a SHA-256) per chunk
 * reserved.  Larger ones go to SQL, where the main thread shares the
 * connection with the writer: it waited 0.8 s for that lock in the
 * initial backup of the tree when every signature went there. */
#define SIG_ENTRY_MAX 36
#define SIG_NAME_MAX 64
#define STAGE_SIG_BYTES (STAGE_CHUNKS * SIG_ENTRY_MAX + 2048 * 16)

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
	uint32_t sig; /* 1 + offset of "name\0blob" in sigs, or 0: none */
	uint32_t siglen; /* bytes of the blob */
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
 * One batch.  The arrays have their full size from the start: large
 * allocations are mapped, so only the part a backup fills costs memory,
 * and a batch never moves (no copy while it grows).
 */
struct stage_batch {
	struct stage_block blocks[STAGE_BLOCKS];
	struct stage_chunk chunks[STAGE_CHUNKS]; /* of blocks[] only */
	uint32_t order[STAGE_CHUNKS]; /* the writer's sort */
	char sums[STAGE_SUM_BYTES];
	unsigned char sigs[STAGE_SIG_BYTES];
	uint32_t by_sum[BLOCK_SLOTS];
	uint32_t by_name[BLOCK_SLOTS];
	uint32_t by_digest[CHUNK_SLOTS];
	size_t nblocks, nchunks, sums_len, sigs_len;
	struct stage_seg *segs;
	size_t nsegs, segs_cap, last_seg;
};

struct localdb_stage {
	struct stage_batch *cur; /* being filled */
	struct stage_batch *prev; /* the last one handed to the writer, or
	                             NULL: read-only until the next swap */
	int64_t next_id; /* next free blockid; 0 not read yet */

	uint64_t *bits; /* the filter; NULL until built */
	uint64_t nwords; /* of 64 bits */
	size_t fkeys, fcap; /* keys added; keys it was sized for */
	size_t sql_asks;
	bool filter_off; /* building failed for lack of memory */

	/* The writer thread and its statements. */
	struct localdb *db;
	sqlite3_stmt *ins_block, *ins_chunk, *ins_sig;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	bool started; /* thread running */
	bool writing; /* prev handed over, not written yet */
	bool quit;
	int wrc; /* the last write's result, until waited for */
	char wmsg[1024];
};

static int read_next_id(struct localdb *db);
static int stage_swap(struct localdb *db);

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
	return mix64(fnv1a(s, strlen(s)));
}

uint64_t
stage_key_digest(const unsigned char *d)
{
	uint64_t h;

	memcpy(&h, d, sizeof(h));
	return mix64(h ^ 0x6a09e667f3bcc909u); /* apart from text keys */
}

/* Empty ${b} (its segment list keeps its room). */
static void
batch_clear(struct stage_batch *b)
{
	b->nblocks = b->nchunks = b->sums_len = b->sigs_len = b->nsegs = 0;
	b->last_seg = 0;
	memset(b->by_sum, 0, sizeof(b->by_sum));
	memset(b->by_name, 0, sizeof(b->by_name));
	memset(b->by_digest, 0, sizeof(b->by_digest));
}

static struct stage_batch *
batch_new(void)
{
	/* malloc, not calloc: untouched pages stay unmapped.  Only the
	 * counters and the indexes need zeroes. */
	struct stage_batch *b = malloc(sizeof(*b));

	if (b == NULL) {
		err_set("local database: out of memory");
		return NULL;
	}
	b->segs = NULL;
	b->segs_cap = 0;
	batch_clear(b);
	return b;
}

static void
batch_free(struct stage_batch *b)
{
	if (b != NULL)
		free(b->segs);
	free(b);
}

static struct localdb_stage *
get_stage(struct localdb *db)
{
	if (db->stage == NULL) {
		struct localdb_stage *st = calloc(1, sizeof(*st));

		if (st == NULL || (st->cur = batch_new()) == NULL) {
			free(st);
			err_set("local database: out of memory");
			return NULL;
		}
		st->db = db;
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
find_staged(const struct stage_batch *b, uint32_t segid, uint32_t seq)
{
	if (b == NULL || b->nblocks == 0)
		return -1;
	for (size_t i = name_slot(segid, seq);;
	     i = (i + 1) & (BLOCK_SLOTS - 1)) {
		uint32_t e = b->by_name[i];

		if (e == 0)
			return -1;
		if (b->blocks[e - 1].segid == segid
		    && b->blocks[e - 1].seq == seq)
			return (long)e - 1;
	}
}

/* The staged block ${segid}/${seq}, in the batch being filled or the one
 * being written (its batch in ${batch} when not NULL), or NULL. */
static const struct stage_block *
staged_block(struct localdb *db, int64_t segid, uint64_t seq,
    const struct stage_batch **batch)
{
	const struct localdb_stage *st = db->stage;
	const struct stage_batch *bt;
	long i;

	if (st == NULL || segid <= 0 || segid >= UINT32_MAX
	    || seq >= UINT32_MAX)
		return NULL;
	bt = st->cur;
	if ((i = find_staged(bt, (uint32_t)segid, (uint32_t)seq)) < 0) {
		bt = st->prev;
		if ((i = find_staged(bt, (uint32_t)segid, (uint32_t)seq)) < 0)
			return NULL;
	}
	if (batch != NULL)
		*batch = bt;
	return &bt->blocks[i];
}

int
stage_block_of(struct localdb *db, int64_t segid, uint64_t seq,
    int64_t *blockid, uint64_t *size)
{
	const struct stage_block *b = staged_block(db, segid, seq, NULL);

	if (b == NULL)
		return 0;
	if (blockid != NULL)
		*blockid = b->blockid;
	if (size != NULL)
		*size = b->size;
	return 1;
}

int
stage_put_block(struct localdb *db, int64_t segid, const char *segment,
    uint64_t seq, const char *checksum, uint64_t size, double timestamp)
{
	struct localdb_stage *st = get_stage(db);
	struct stage_batch *bt;
	struct stage_block *b;
	size_t sumlen = strlen(checksum) + 1, i;
	uint64_t room = size / CHUNK_MIN_LEN + 2;

	if (st == NULL)
		return -1;
	if (room > CHUNKS_RESERVED)
		room = CHUNKS_RESERVED;
	if (st->cur->nblocks == STAGE_BLOCKS
	    || st->cur->sums_len + sumlen > STAGE_SUM_BYTES
	    || st->cur->nchunks + room > STAGE_CHUNKS
	    || st->cur->sigs_len + room * SIG_ENTRY_MAX + SIG_NAME_MAX
	        > STAGE_SIG_BYTES) {
		if (stage_swap(db))
			return -1;
	}
	bt = st->cur;
	if (find_staged(bt, (uint32_t)segid, (uint32_t)seq) >= 0
	    || find_staged(st->prev, (uint32_t)segid, (uint32_t)seq) >= 0) {
		err_set("local database: store block: object %s/%08llx stored "
		        "twice",
		    segment, (unsigned long long)seq);
		return -1;
	}
	if (sumlen > STAGE_SUM_BYTES) {
		err_set("local database: checksum too long");
		return -1;
	}
	if (bt->nsegs == 0 || bt->segs[bt->last_seg].segid != segid) {
		size_t k;

		for (k = 0; k < bt->nsegs; k++)
			if (bt->segs[k].segid == segid)
				break;
		if (k == bt->nsegs) {
			if (grow(&bt->segs, &bt->segs_cap, bt->nsegs + 1,
			        sizeof(*bt->segs), 16))
				return -1;
			bt->segs[k].segid = (uint32_t)segid;
			snprintf(bt->segs[k].name, sizeof(bt->segs[k].name),
			    "%s", segment);
			bt->nsegs++;
		}
		bt->last_seg = k;
	}
	b = &bt->blocks[bt->nblocks];
	if (stage_next_id(db, &b->blockid))
		return -1;
	b->key = stage_key_text(checksum);
	b->size = size;
	b->timestamp = timestamp;
	b->segid = (uint32_t)segid;
	b->seq = (uint32_t)seq;
	b->seg = (uint32_t)bt->last_seg;
	b->sum = (uint32_t)bt->sums_len;
	b->sig = b->siglen = 0;
	memcpy(bt->sums + bt->sums_len, checksum, sumlen);
	bt->sums_len += sumlen;
	for (i = b->key & (BLOCK_SLOTS - 1); bt->by_sum[i];
	     i = (i + 1) & (BLOCK_SLOTS - 1))
		;
	bt->by_sum[i] = (uint32_t)bt->nblocks + 1;
	for (i = name_slot(b->segid, b->seq); bt->by_name[i];
	     i = (i + 1) & (BLOCK_SLOTS - 1))
		;
	bt->by_name[i] = (uint32_t)bt->nblocks + 1;
	bt->nblocks++;
	stage_note_key(db, b->key);
	return 0;
}

static int
batch_find_block(const struct stage_batch *bt, const char *checksum,
    uint64_t size, uint64_t key, struct ref *out, double *timestamp)
{
	if (bt == NULL || bt->nblocks == 0)
		return 0;
	for (size_t i = key & (BLOCK_SLOTS - 1); bt->by_sum[i];
	     i = (i + 1) & (BLOCK_SLOTS - 1)) {
		const struct stage_block *b = &bt->blocks[bt->by_sum[i] - 1];

		if (b->key != key || b->size != size
		    || strcmp(bt->sums + b->sum, checksum) != 0)
			continue;
		if (out != NULL) {
			ref_set_object(out, bt->segs[b->seg].name, b->seq);
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
stage_find_block(struct localdb *db, const char *checksum, uint64_t size,
    uint64_t key, struct ref *out, double *timestamp)
{
	struct localdb_stage *st = db->stage;

	if (st == NULL)
		return 0;
	return batch_find_block(st->cur, checksum, size, key, out, timestamp)
	    || batch_find_block(st->prev, checksum, size, key, out, timestamp);
}

int
stage_put_signatures(struct localdb *db, int64_t segid, uint64_t seq,
    const char *algorithm, const void *sig, size_t len)
{
	struct localdb_stage *st = db->stage;
	struct stage_batch *bt;
	size_t namelen = strlen(algorithm) + 1;
	long bi;

	if (st == NULL || segid <= 0 || segid >= UINT32_MAX
	    || seq >= UINT32_MAX)
		return 0;
	/* Only in the batch being filled: the other one is being written. */
	bt = st->cur;
	bi = find_staged(bt, (uint32_t)segid, (uint32_t)seq);
	if (bi < 0 || namelen > SIG_NAME_MAX
	    || bt->sigs_len + namelen + len > STAGE_SIG_BYTES) {
		/* The caller writes them by SQL: after every staged row,
		 * and with no staged copy left to shadow them. */
		if (bi < 0
		    && find_staged(st->prev, (uint32_t)segid, (uint32_t)seq)
		        < 0)
			return 0;
		if (stage_flush(db))
			return -1;
		if ((bi = find_staged(st->prev, (uint32_t)segid, (uint32_t)seq))
		    >= 0)
			st->prev->blocks[bi].sig = 0;
		return 0;
	}
	bt->blocks[bi].sig = (uint32_t)bt->sigs_len + 1;
	bt->blocks[bi].siglen = (uint32_t)len;
	memcpy(bt->sigs + bt->sigs_len, algorithm, namelen);
	if (len > 0)
		memcpy(bt->sigs + bt->sigs_len + namelen, sig, len);
	bt->sigs_len += namelen + len;
	return 1;
}

int
stage_get_signatures(struct localdb *db, int64_t segid, uint64_t seq,
    char **algorithm, void **sig, size_t *len)
{
	const struct stage_batch *bt = NULL;
	const struct stage_block *b = staged_block(db, segid, seq, &bt);
	const char *name;

	if (b == NULL || b->sig == 0)
		return 0;
	name = (const char *)bt->sigs + b->sig - 1;
	*algorithm = strdup(name);
	*sig = malloc(b->siglen > 0 ? b->siglen : 1);
	if (*algorithm == NULL || *sig == NULL) {
		free(*algorithm);
		free(*sig);
		*algorithm = NULL;
		*sig = NULL;
		err_set("out of memory");
		return -1;
	}
	memcpy(*sig, name + strlen(name) + 1, b->siglen);
	*len = b->siglen;
	return 1;
}

int
stage_put_chunks(struct localdb *db, int64_t segid, uint64_t seq,
    const struct localdb_chunk *c, size_t n)
{
	struct localdb_stage *st = db->stage;
	struct stage_batch *bt = st->cur;
	long bi;

	for (size_t k = 0; k < n; k++) {
		struct stage_chunk *sc;
		uint64_t key;
		size_t i;

		/* Chunks go with their block, in its batch.  A block in the
		 * batch being written, or one with more chunks than its batch
		 * has room for: once every staged row is in SQL, by SQL. */
		bi = find_staged(bt, (uint32_t)segid, (uint32_t)seq);
		if (bi < 0 || bt->nchunks == STAGE_CHUNKS) {
			if (stage_flush(db))
				return -1;
			return localdb_chunks_sql(db, segid, seq, c + k, n - k);
		}
		sc = &bt->chunks[bt->nchunks];
		memcpy(sc->digest, c[k].digest, sizeof(sc->digest));
		sc->offset = c[k].offset;
		sc->length = c[k].length;
		sc->block = (uint32_t)bi;
		key = stage_key_digest(sc->digest);
		for (i = key & (CHUNK_SLOTS - 1); bt->by_digest[i];
		     i = (i + 1) & (CHUNK_SLOTS - 1))
			;
		bt->by_digest[i] = (uint32_t)bt->nchunks + 1;
		bt->nchunks++;
		stage_note_key(db, key);
	}
	return 0;
}

static int
batch_find_chunk(const struct stage_batch *bt, const unsigned char *digest,
    uint64_t key, uint32_t length, struct ref *out, uint64_t *objsize)
{
	if (bt == NULL || bt->nchunks == 0)
		return 0;
	for (size_t i = key & (CHUNK_SLOTS - 1); bt->by_digest[i];
	     i = (i + 1) & (CHUNK_SLOTS - 1)) {
		const struct stage_chunk *c = &bt->chunks[bt->by_digest[i] - 1];
		const struct stage_block *b = &bt->blocks[c->block];

		/* As the SQL: the chunk lies inside its object. */
		if (c->length != length
		    || memcmp(c->digest, digest, sizeof(c->digest)) != 0
		    || (uint64_t)c->offset + c->length > b->size)
			continue;
		ref_set_object(out, bt->segs[b->seg].name, b->seq);
		out->range = REF_RANGE_SLICE;
		out->start = c->offset;
		out->length = length;
		*objsize = b->size;
		return 1;
	}
	return 0;
}

int
stage_find_chunk(struct localdb *db, const unsigned char *digest,
    uint32_t length, struct ref *out, uint64_t *objsize)
{
	struct localdb_stage *st = db->stage;
	uint64_t key;

	if (st == NULL)
		return 0;
	key = stage_key_digest(digest);
	return batch_find_chunk(st->cur, digest, key, length, out, objsize)
	    || batch_find_chunk(st->prev, digest, key, length, out, objsize);
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

/* ---- writing a batch ---- */

static int
cmp_block(const void *a, const void *b, void *ctx)
{
	const struct stage_batch *bt = ctx;
	const struct stage_block *x = &bt->blocks[*(const uint32_t *)a];
	const struct stage_block *y = &bt->blocks[*(const uint32_t *)b];

	return strcmp(bt->sums + x->sum, bt->sums + y->sum);
}

static int
cmp_chunk(const void *a, const void *b, void *ctx)
{
	const struct stage_batch *bt = ctx;

	return memcmp(bt->chunks[*(const uint32_t *)a].digest,
	    bt->chunks[*(const uint32_t *)b].digest, LOCALDB_CHUNK_DIGEST);
}

/*
 * Insert the rows of ${bt}, sorted, with the writer's own statements (on
 * the writer thread, or on the caller's when there is none).  Reads ${bt}
 * only: the main thread may look it up meanwhile.  The keys are in the
 * filter already.  0 or -1 (error recorded for this thread).
 */
static int
write_batch(
    struct localdb *db, struct localdb_stage *st, struct stage_batch *bt)
{
	uint32_t *order = bt->order;
	sqlite3_stmt *s;

	for (size_t i = 0; i < bt->nblocks; i++)
		order[i] = (uint32_t)i;
	qsort_r(order, bt->nblocks, sizeof(*order), cmp_block, bt);
	s = prep(db, &st->ins_block,
	    "INSERT INTO block_index(blockid, segmentid, object, checksum,"
	    " size, timestamp)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, coalesce(?6, julianday('now')))");
	if (s == NULL)
		return -1;
	for (size_t i = 0; i < bt->nblocks; i++) {
		const struct stage_block *b = &bt->blocks[order[i]];
		char obj[24];

		snprintf(
		    obj, sizeof(obj), "%08llx", (unsigned long long)b->seq);
		sqlite3_bind_int64(s, 1, b->blockid);
		sqlite3_bind_int64(s, 2, b->segid);
		/* A copy: the only bind here that allocates, and may fail. */
		if (sqlite3_bind_text(s, 3, obj, -1, SQLITE_TRANSIENT) !=
		    SQLITE_OK) {
			err_set("local database: store block: out of memory");
			return -1;
		}
		sqlite3_bind_text(s, 4, bt->sums + b->sum, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 5, (int64_t)b->size);
		if (b->timestamp > 0)
			sqlite3_bind_double(s, 6, b->timestamp);
		else
			sqlite3_bind_null(s, 6);
		if (localdb_step(db, s, "store block") < 0)
			return -1;
		localdb_done(s);
	}
	/* Signatures by blockid, as staged: they append to the table. */
	s = NULL;
	for (size_t i = 0; i < bt->nblocks; i++) {
		const struct stage_block *b = &bt->blocks[i];
		const char *name = (const char *)bt->sigs + b->sig - 1;

		if (b->sig == 0)
			continue;
		if (s == NULL
		    && (s = prep(db, &st->ins_sig,
		            "INSERT OR REPLACE INTO subblock_signatures("
		            "blockid, algorithm, signatures)"
		            " VALUES (?1, ?2, ?3)"))
		        == NULL)
			return -1;
		sqlite3_bind_int64(s, 1, b->blockid);
		sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
		sqlite3_bind_blob(s, 3, name + strlen(name) + 1, (int)b->siglen,
		    SQLITE_STATIC);
		if (localdb_step(db, s, "store signatures") < 0)
			return -1;
		localdb_done(s);
	}
	if (bt->nchunks == 0)
		return 0;
	for (size_t i = 0; i < bt->nchunks; i++)
		order[i] = (uint32_t)i;
	qsort_r(order, bt->nchunks, sizeof(*order), cmp_chunk, bt);
	s = prep(db, &st->ins_chunk,
	    "INSERT OR IGNORE INTO chunk_index(hash, length, blockid, offset)"
	    " VALUES (?1, ?2, ?3, ?4)");
	if (s == NULL)
		return -1;
	for (size_t i = 0; i < bt->nchunks; i++) {
		const struct stage_chunk *c = &bt->chunks[order[i]];

		sqlite3_bind_blob(
		    s, 1, c->digest, LOCALDB_CHUNK_DIGEST, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, c->length);
		sqlite3_bind_int64(s, 3, bt->blocks[c->block].blockid);
		sqlite3_bind_int64(s, 4, c->offset);
		if (localdb_step(db, s, "store chunk") < 0)
			return -1;
		localdb_done(s);
	}
	return 0;
}

static void *
writer_main(void *arg)
{
	struct localdb_stage *st = arg;

	(void)pthread_setname_np(pthread_self(), "cumulus-db");
	pthread_mutex_lock(&st->lock);
	for (;;) {
		while (!st->writing && !st->quit)
			pthread_cond_wait(&st->cond, &st->lock);
		if (!st->writing)
			break;
		pthread_mutex_unlock(&st->lock);
		/* prev is ours to read until writing is false. */
		int rc = write_batch(st->db, st, st->prev);

		pthread_mutex_lock(&st->lock);
		if (rc && st->wrc == 0) {
			st->wrc = -1;
			snprintf(st->wmsg, sizeof(st->wmsg), "%s", err_msg());
		}
		err_clear();
		st->writing = false;
		pthread_cond_broadcast(&st->cond);
	}
	pthread_mutex_unlock(&st->lock);
	return NULL;
}

/* Wait until the writer is idle; its result (and it is forgotten). */
static int
writer_idle(struct localdb_stage *st)
{
	int rc;

	if (!st->started)
		return 0;
	pthread_mutex_lock(&st->lock);
	while (st->writing)
		pthread_cond_wait(&st->cond, &st->lock);
	rc = st->wrc;
	st->wrc = 0;
	pthread_mutex_unlock(&st->lock);
	return rc;
}

/* Wait until the writer is idle; its error, if any, becomes ours. */
static int
stage_wait(struct localdb_stage *st)
{
	if (writer_idle(st) == 0)
		return 0;
	err_set("%s", st->wmsg);
	return -1;
}

/*
 * Hand the batch being filled to the writer and start an empty one.  The
 * writer is started on first use; without it (not asked for with
 * localdb_set_background(), or no thread to be had) the batch is written
 * here.  0 or -1 (a batch that failed is dropped: the backup's
 * transaction is rolled back anyway).
 */
static int
stage_swap(struct localdb *db)
{
	struct localdb_stage *st = db->stage;
	struct stage_batch *next;

	if (st == NULL || (st->cur->nblocks == 0 && st->cur->nchunks == 0))
		return 0;
	if (stage_wait(st))
		return -1;
	if (st->prev == NULL && (st->prev = batch_new()) == NULL)
		return -1;
	next = st->prev;
	batch_clear(next);
	st->prev = st->cur;
	st->cur = next;
	if (!db->background)
		return write_batch(db, st, st->prev);
	if (!st->started) {
		pthread_mutex_init(&st->lock, NULL);
		pthread_cond_init(&st->cond, NULL);
		if (pthread_create(&st->thread, NULL, writer_main, st) == 0) {
			st->started = true;
		} else {
			pthread_cond_destroy(&st->cond);
			pthread_mutex_destroy(&st->lock);
			return write_batch(db, st, st->prev);
		}
	}
	pthread_mutex_lock(&st->lock);
	st->writing = true;
	pthread_cond_broadcast(&st->cond);
	pthread_mutex_unlock(&st->lock);
	return 0;
}

int
stage_flush(struct localdb *db)
{
	struct localdb_stage *st = db->stage;

	if (st == NULL)
		return 0;
	return stage_swap(db) || stage_wait(st) ? -1 : 0;
}

void
stage_reset(struct localdb *db)
{
	struct localdb_stage *st = db->stage;

	if (st == NULL)
		return;
	/* The rows being written are dropped with the transaction: only
	 * the caller's error, if any, matters. */
	if (st->started) {
		(void)writer_idle(st);
		pthread_mutex_lock(&st->lock);
		st->quit = true;
		pthread_cond_broadcast(&st->cond);
		pthread_mutex_unlock(&st->lock);
		pthread_join(st->thread, NULL);
		pthread_cond_destroy(&st->cond);
		pthread_mutex_destroy(&st->lock);
	}
	sqlite3_finalize(st->ins_block);
	sqlite3_finalize(st->ins_chunk);
	sqlite3_finalize(st->ins_sig);
	batch_free(st->cur);
	batch_free(st->prev);
	free(st->bits);
	free(st);
	db->stage = NULL;
}
