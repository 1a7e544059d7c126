/*
 * backup: scan, read, deduplicate, and commit one snapshot (see backup.h
 * for the data flow and the commit order).
 *
 * The tree is walked with directory descriptors (openat), so paths longer
 * than PATH_MAX work and a directory renamed under us cannot redirect the
 * walk.  Memory does not grow with the number of files: the walk holds one
 * sorted listing per directory level, the metadata writer one 64 KiB
 * object, and everything else lives in the database and the statcache.
 */
#include "backup.h"

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "chunker.h"
#include "err.h"
#include "escape.h"
#include "fileio.h"
#include "hash.h"
#include "lease.h"
#include "localdb.h"
#include "meta.h"
#include "metalog.h"
#include "hasher.h"
#include "prefetch.h"
#include "ref.h"
#include "run.h"
#include "segment.h"
#include "snapshot.h"
#include "statcache.h"
#include "store.h"
#include "walk.h"

#define BLOCK_SIZE ((size_t)1 << 20)
#define VOLATILE_SECONDS 30
/* Symlink targets longer than this are refused (Linux allows 4095 bytes). */
#define SYMLINK_MAX ((size_t)1 << 16)
#define MAX_SEGMENTS_LISTED 8
/* Read-ahead: at most this many entries wait for their turn in the
 * metadata log, holding at most PQ_FILES open files and PQ_BYTES of their
 * data. */
#define PQ_MAX 512
#define PQ_FILES 128
#define PQ_BYTES ((uint64_t)2 << 20)

/* An entry waiting for its turn in the metadata log (see pq_push()). */
struct pending {
	char *path;
	bool file;          /* a file being read ahead; else formatted text */
	struct stat sb;     /* the file's, when it was opened */
	struct prefetch_job job;
	char *text;         /* the stanza, for an entry that is not a file */
	size_t len;
	char *reuse;        /* the statcache reference to reuse, or NULL */
	const char *status;
};

struct seginfo {
	char uuid[SEGMENT_UUID_LEN + 1];
	char *name;
	char sha1[HASH_STR_MAX];
};

struct idcache {
	unsigned id;
	char *name; /* NULL: no name */
};

struct backup {
	const struct backup_options *o;
	const struct backup_callbacks *cb;
	struct backup_result *res;
	struct store *store;
	struct localdb *db;
	struct statcache *sc;
	struct statcache_writer *scw;
	struct segment_writer *sw;
	struct metalog *ml;
	unsigned legacy_algs;
	/* Whether the database has an object of exactly BLOCK_SIZE bytes
	 * (full_blocks), once asked (full_blocks_known): full_block_lookup(). */
	bool full_blocks_known, full_blocks;
	time_t now;
	struct timespec last_progress;
	unsigned char *block;
	/* Files read in line, with several threads: the next block, read
	 * while this one is processed and hashed meanwhile by the helper. */
	unsigned char *block2;
	struct hasher *hasher;
	/* Their Gear chunks, cut by the helper: cuts[i] goes with the block
	 * in bufs[i] of read_file(). */
	struct hasher_cuts cuts[2];
	struct stanza st;
	struct buf text;  /* formatted stanza */
	struct buf data;  /* data list */
	struct buf tmp;
	struct seginfo *segs; /* written by this backup */
	size_t nsegs, segcap;
	struct idcache users[64], groups[64];
	size_t nusers, ngroups;
	struct subfile *sub; /* sub-file incrementals state, per file */
	struct lease *lease; /* this backup's lease in the store (lease.h) */
	char gc_mark[512];   /* the store's record of the last gc, "" none */
	bool gc_check;       /* a gc ran: list the store's segments */
	struct prefetch *pf; /* NULL: files are read in line */
	struct pending *pq;  /* ring of PQ_MAX entries, in metadata-log order */
	size_t pq_head, pq_len, pq_files;
	uint64_t pq_bytes;
	bool pq_finishing;   /* finishing the front: emit in line */
};

static void
warnf(struct backup *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
warnf(struct backup *b, const char *fmt, ...)
{
	char msg[4096];
	va_list ap;

	va_start(ap, fmt);
	/* Names in warnings come from stores and file systems. */
	err_vformat(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	b->res->stats.warnings++;
	if (b->cb && b->cb->warn)
		b->cb->warn(b->cb->arg, msg);
}

static void
progress(struct backup *b, bool force)
{
	struct timespec ts;

	if (b->cb == NULL || b->cb->progress == NULL)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (!force && (ts.tv_sec - b->last_progress.tv_sec) * 1000 +
			      (ts.tv_nsec - b->last_progress.tv_nsec) / 1000000 <
			  500)
		return;
	b->last_progress = ts;
	b->cb->progress(b->cb->arg, &b->res->stats);
}

/* A printable form of a raw path for messages: a long one keeps its
 * start and its end (the name), so that the message's reason, after it,
 * is not cut off. */
static const char *
shown(struct backup *b, const char *path)
{
	const size_t keep = 200;
	size_t n = strlen(path);

	buf_reset(&b->tmp);
	if (n <= 2 * keep + 3) {
		if (escape_encode(&b->tmp, path, n))
			return path;
	} else if (escape_encode(&b->tmp, path, keep) ||
	    buf_puts(&b->tmp, "...") ||
	    escape_encode(&b->tmp, path + n - keep, keep)) {
		return "(a long path)";
	}
	return b->tmp.data;
}

/* ---- the segment close callback ---- */

static int
on_segment(void *arg, const struct segment_info *info)
{
	struct backup *b = arg;
	struct seginfo *s;

	if (localdb_add_segment(b->db, info->uuid, info->name, info->sha1,
		info->data_size, info->disk_size, info->group))
		return -1;
	if (b->nsegs == b->segcap) {
		size_t ncap = b->segcap ? b->segcap * 2 : 64;
		struct seginfo *n = realloc(b->segs, ncap * sizeof(*n));

		if (n == NULL) {
			err_set("out of memory");
			return -1;
		}
		b->segs = n;
		b->segcap = ncap;
	}
	s = &b->segs[b->nsegs];
	memcpy(s->uuid, info->uuid, sizeof(s->uuid));
	memcpy(s->sha1, info->sha1, sizeof(s->sha1));
	s->name = strdup(info->name);
	if (s->name == NULL) {
		err_set("out of memory");
		return -1;
	}
	b->nsegs++;
	b->res->stats.segments++;
	b->res->stats.bytes_stored += info->disk_size;
	return 0;
}

/* ---- stanza fields ---- */

static const char *
id_name(struct idcache *cache, size_t *n, unsigned id, bool user)
{
	char buf[4096];
	char *name = NULL;

	for (size_t i = 0; i < *n; i++)
		if (cache[i].id == id)
			return cache[i].name;
	if (user) {
		struct passwd pw, *res = NULL;

		if (getpwuid_r(id, &pw, buf, sizeof(buf), &res) == 0 && res)
			name = strdup(res->pw_name);
	} else {
		struct group gr, *res = NULL;

		if (getgrgid_r(id, &gr, buf, sizeof(buf), &res) == 0 && res)
			name = strdup(res->gr_name);
	}
	if (*n < 64) {
		cache[*n].id = id;
		cache[*n].name = name;
		(*n)++;
		return name;
	}
	/* Cache full: leak-free fallback, look up every time. */
	free(name);
	return NULL;
}

/*
 * Decimal forms of numbers, written backwards into the end of ${buf}
 * (${size} >= 24) and returned: several per entry, and snprintf's format
 * parsing was a tenth of a no-change backup.
 */
static char *
fmt_u(char *buf, size_t size, unsigned long long v)
{
	char *p = buf + size;

	*--p = '\0';
	do
		*--p = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	return p;
}

static char *
fmt_ll(char *buf, size_t size, long long v)
{
	char *p = fmt_u(buf, size, v < 0 ? 0ULL - (unsigned long long)v :
					   (unsigned long long)v);

	if (v < 0)
		*--p = '-';
	return p;
}

/* "major/minor/inode", the inode field, in ${buf} (96 bytes). */
static const char *
fmt_inode(char *buf, dev_t dev, ino_t ino)
{
	char n[32];
	const char *p;
	size_t len, l;

	p = fmt_u(n, sizeof(n), major(dev));
	len = strlen(p);
	memcpy(buf, p, len);
	buf[len++] = '/';
	p = fmt_u(n, sizeof(n), minor(dev));
	l = strlen(p);
	memcpy(buf + len, p, l);
	len += l;
	buf[len++] = '/';
	p = fmt_u(n, sizeof(n), (unsigned long long)ino);
	memcpy(buf + len, p, strlen(p) + 1);
	return buf;
}

static int
set_owner(struct backup *b, const char *key, unsigned id, const char *name)
{
	char num[32];

	buf_reset(&b->tmp);
	if (buf_puts(&b->tmp, fmt_u(num, sizeof(num), id)))
		return -1;
	if (name && (buf_puts(&b->tmp, " (") ||
			escape_encode(&b->tmp, name, strlen(name)) ||
			buf_putc(&b->tmp, ')')))
		return -1;
	return stanza_set(&b->st, key, b->tmp.data, b->tmp.len);
}

static int
set_num(struct backup *b, const char *key, long long v)
{
	char s[32];

	return stanza_set_str(&b->st, key, fmt_ll(s, sizeof(s), v));
}

/* The fields every entry has (reference: "Fields"). */
static int
common_fields(struct backup *b, const char *path, const struct stat *sb)
{
	char inode[96], mode[16];
	const char *modestr;
	bool is_dir = S_ISDIR(sb->st_mode);

	stanza_clear(&b->st);
	buf_reset(&b->tmp);
	if (escape_encode(&b->tmp, path, strlen(path)) ||
	    stanza_set(&b->st, "name", b->tmp.data, b->tmp.len))
		return -1;
	fmt_inode(inode, sb->st_dev, sb->st_ino);
	/* Octal with a leading 0, as the original ("0644"; 0 is "0"). */
	{
		unsigned m = (unsigned)(sb->st_mode & 07777);
		char *p = mode + sizeof(mode);

		*--p = '\0';
		do
			*--p = (char)('0' + (m & 7));
		while ((m >>= 3) != 0);
		if (p[0] != '0')
			*--p = '0';
		modestr = p;
	}
	if (stanza_set_str(&b->st, "mode", modestr) ||
	    set_num(b, "mtime", (long long)sb->st_mtime) ||
	    set_num(b, "ctime", (long long)sb->st_ctime) ||
	    stanza_set_str(&b->st, "inode", inode) ||
	    set_owner(b, "user", sb->st_uid,
		id_name(b->users, &b->nusers, sb->st_uid, true)) ||
	    set_owner(b, "group", sb->st_gid,
		id_name(b->groups, &b->ngroups, sb->st_gid, false)))
		return -1;
	if (!is_dir && sb->st_nlink > 1 &&
	    set_num(b, "links", (long long)sb->st_nlink))
		return -1;
	/* Recently changed entries may still be changing: the next backup
	 * must look at them again rather than trust the statcache. */
	if (!is_dir && (b->now - sb->st_mtime < VOLATILE_SECONDS ||
			   b->now - sb->st_ctime < VOLATILE_SECONDS) &&
	    stanza_set_str(&b->st, "volatile", "1"))
		return -1;
	return 0;
}

/* ---- regular file contents ---- */

static bool
all_zero(const unsigned char *p, size_t n)
{
	static const unsigned char zeros[4096];

	while (n >= sizeof(zeros)) {
		if (memcmp(p, zeros, sizeof(zeros)))
			return false;
		p += sizeof(zeros);
		n -= sizeof(zeros);
	}
	return memcmp(p, zeros, n) == 0;
}

static int
append_ref(struct backup *b, const struct ref *r)
{
	if (b->data.len && buf_puts(&b->data, "\n    "))
		return -1;
	return ref_format(r, &b->data);
}

/* ---- sub-file incrementals (reference 2.6; docs/design.md) ---- */

/*
 * A file that is read is cut into content-defined chunks over its whole
 * length (so an insertion shifts no later boundary).  Each chunk is looked
 * up among the signatures of the objects the same path used before (an
 * in-memory table, loaded once per file) and then in the database's
 * chunk_index (any object, Gear chunks only).  Matches become slices of
 * the old objects, adjacent ones merged; the other chunks are collected
 * into new "literal" objects of at most BLOCK_SIZE bytes, cut at chunk
 * boundaries so every chunk lies inside one object, each stored with its
 * signatures.  When the path has no Gear signatures (a new file, or data
 * written by the original or an older version) every aligned 1 MiB block
 * is first looked up whole, as the original did, so old databases keep
 * deduplicating; a block found that lacks signatures gets them.  Files
 * under SUB_MIN_FILE bytes skip all this: whole blocks only, as before.
 */

/* Smaller files are stored in whole blocks, without signatures. */
#define SUB_MIN_FILE 16384
/* At most this many old chunks in memory per file (~56 bytes each, about
 * 8 GiB of file); beyond, chunk_index answers. */
#define SUB_MAX_CHUNKS ((size_t)1 << 20)

struct sub_obj {
	char segment[REF_SEGMENT_MAX + 1];
	uint64_t seq, size;
};

/* An old chunk: its digest and place in an old object (obj: index + 1). */
struct sub_chunk {
	unsigned char digest[HASH_DIGEST_MAX];
	uint32_t length, obj;
	uint64_t offset;
};

struct subfile {
	enum chunker_kind kind;
	enum hash_alg halg;
	size_t dlen;
	bool aligned; /* look up aligned whole blocks first */
	bool plain;   /* a small file: whole blocks only, no chunks */
	struct chunker ck;
	struct sub_obj *objs;
	size_t nobjs, objcap;
	/* The old chunks, dense, and an open-addressing index of them by
	 * digest (chunk index + 1, 0 free): 56 bytes per chunk where a table
	 * of chunks at load 1/2 took 96. */
	struct sub_chunk *chunks;
	size_t nchunks, chunkcap;
	uint32_t *slots;
	size_t slotcap; /* 0 or a power of two */
	unsigned char *chunk;   /* the current chunk, when it spans reads */
	size_t clen;
	unsigned char *lit;     /* bytes of the next literal object */
	size_t litlen;
	struct buf litsig;      /* its signature blob */
	struct localdb_chunk *litch; /* its chunks */
	size_t nlitch, litchcap;
	/* The SHA-256 checksum of the block sub_block() was last given, when
	 * it computed one: a file of one block has the same checksum. */
	char block_sum[HASH_STR_MAX];
	bool block_sum_valid;
	/* The SHA-256 digest of the partial chunk (chunk, clen) as the last
	 * chunk of the file, when the helper computed it (hasher.h). */
	unsigned char tail_digest[32];
	bool tail_valid;
	uint64_t fed;           /* bytes given to sub_block() so far */
	unsigned nfed;          /* and in how many calls */
	struct ref pend;        /* last reference, still open for merging */
	bool have_pend;
	uint64_t pend_objsize;
	const char **status;
};

static void
sub_free(struct subfile *s)
{
	free(s->objs);
	free(s->chunks);
	free(s->slots);
	free(s->chunk);
	free(s->lit);
	free(s->litch);
	buf_release(&s->litsig);
}

static size_t
slot_of(const unsigned char *digest, size_t mask)
{
	uint64_t k;

	memcpy(&k, digest, sizeof(k));
	return (size_t)(k ^ (k >> 29)) & mask;
}

static int
sub_insert(struct subfile *s, const struct chunker_sig *g, uint32_t obj)
{
	struct sub_chunk *c;
	size_t i;

	if ((s->nchunks + 1) * 2 > s->slotcap) {
		size_t ncap = s->slotcap ? s->slotcap * 2 : 4096;
		uint32_t *n = calloc(ncap, sizeof(*n));

		if (n == NULL) {
			err_set("out of memory");
			return -1;
		}
		for (size_t j = 0; j < s->nchunks; j++) {
			i = slot_of(s->chunks[j].digest, ncap - 1);
			while (n[i])
				i = (i + 1) & (ncap - 1);
			n[i] = (uint32_t)j + 1;
		}
		free(s->slots);
		s->slots = n;
		s->slotcap = ncap;
	}
	i = slot_of(g->digest, s->slotcap - 1);
	for (; s->slots[i]; i = (i + 1) & (s->slotcap - 1)) {
		c = &s->chunks[s->slots[i] - 1];
		if (c->length == g->length &&
		    memcmp(c->digest, g->digest, s->dlen) == 0)
			return 0; /* keep the first place */
	}
	if (s->nchunks == s->chunkcap) {
		size_t ncap = s->chunkcap ? s->chunkcap * 2 : 2048;
		struct sub_chunk *n = realloc(s->chunks, ncap * sizeof(*n));

		if (n == NULL) {
			err_set("out of memory");
			return -1;
		}
		s->chunks = n;
		s->chunkcap = ncap;
	}
	c = &s->chunks[s->nchunks];
	memcpy(c->digest, g->digest, s->dlen);
	c->length = g->length;
	c->offset = g->offset;
	c->obj = obj;
	s->slots[i] = (uint32_t)++s->nchunks;
	return 0;
}

static const struct sub_chunk *
sub_lookup(const struct subfile *s, const unsigned char *digest, size_t len)
{
	if (s->nchunks == 0)
		return NULL;
	for (size_t i = slot_of(digest, s->slotcap - 1); s->slots[i];
	     i = (i + 1) & (s->slotcap - 1)) {
		const struct sub_chunk *c = &s->chunks[s->slots[i] - 1];

		if (c->length == len && memcmp(c->digest, digest, s->dlen) == 0)
			return c;
	}
	return NULL;
}

/* Signature classes of old objects: Gear/sha256, LBFS/sha1, LBFS/sha224. */
enum { SIG_NONE, SIG_GEAR, SIG_LBFS1, SIG_LBFS224, SIG_CLASSES };

static int
sig_class(const char *alg)
{
	enum chunker_kind k;
	enum hash_alg h;

	if (chunker_parse_algorithm(alg, &k, &h))
		return SIG_NONE;
	if (k == CHUNKER_GEAR)
		return SIG_GEAR;
	return h == HASH_SHA1 ? SIG_LBFS1 : SIG_LBFS224;
}

/*
 * List the usable objects of the data list ${data} (the path's previous
 * entry) with the class of their signatures; *${bytes} sums their sizes
 * per class.
 */
static int
sub_collect(struct backup *b, struct subfile *s, const char *data,
    uint64_t bytes[SIG_CLASSES], int **cls)
{
	const char *p = data;
	struct ref last;
	size_t cap = 0;

	memset(&last, 0, sizeof(last));
	*cls = NULL;
	while (*p) {
		size_t len, blen;
		struct ref r;
		uint64_t size = 0;
		char *alg = NULL;
		void *blob = NULL;
		int rc, c;

		p += strspn(p, " \t\n");
		len = strcspn(p, " \t\n");
		if (len == 0)
			break;
		rc = ref_parse(p, len, &r);
		p += len;
		if (rc) {
			err_clear();
			continue;
		}
		if (r.kind != REF_OBJECT ||
		    (last.seq == r.seq && strcmp(last.segment, r.segment) == 0))
			continue;
		last = r;
		if ((rc = localdb_block_size(b->db, r.segment, r.seq, &size)) < 0)
			return -1;
		if (rc == 0)
			continue;
		if ((rc = localdb_get_signatures(b->db, r.segment, r.seq, &alg,
			 &blob, &blen)) < 0)
			return -1;
		c = rc ? sig_class(alg) : SIG_NONE;
		free(alg);
		free(blob);
		if (s->nobjs == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			int *nc = realloc(*cls, ncap * sizeof(*nc));

			if (nc == NULL) {
				err_set("out of memory");
				return -1;
			}
			*cls = nc;
			cap = ncap;
			if (ncap > s->objcap) {
				struct sub_obj *o = realloc(s->objs,
				    ncap * sizeof(*o));

				if (o == NULL) {
					err_set("out of memory");
					return -1;
				}
				s->objs = o;
				s->objcap = ncap;
			}
		}
		snprintf(s->objs[s->nobjs].segment, sizeof(s->objs[0].segment),
		    "%s", r.segment);
		s->objs[s->nobjs].seq = r.seq;
		s->objs[s->nobjs].size = size;
		(*cls)[s->nobjs++] = c;
		bytes[c] += size;
	}
	return 0;
}

/* Put the signatures of the listed objects of class ${want} into the
 * table; blobs that do not describe exactly their object are skipped. */
static int
sub_load(struct backup *b, struct subfile *s, const int *cls, int want)
{
	for (size_t o = 0; o < s->nobjs; o++) {
		const struct sub_obj *ob = &s->objs[o];
		struct chunker_sig *v = NULL;
		char *alg = NULL;
		void *blob = NULL;
		size_t blen = 0, n = 0;
		int rc;

		if (cls[o] != want)
			continue;
		if ((rc = localdb_get_signatures(b->db, ob->segment, ob->seq,
			 &alg, &blob, &blen)) < 0)
			return -1;
		free(alg);
		rc = rc == 1 ? chunker_sig_parse(blob, blen, s->dlen, &v, &n) : -1;
		free(blob);
		if (rc || n == 0 ||
		    v[n - 1].offset + v[n - 1].length != ob->size) {
			err_clear();
			free(v);
			continue;
		}
		for (size_t i = 0; i < n; i++)
			if (!v[i].unknown && sub_insert(s, &v[i], (uint32_t)o + 1)) {
				free(v);
				return -1;
			}
		free(v);
		if (s->nchunks >= SUB_MAX_CHUNKS)
			break;
	}
	return 0;
}

/*
 * Prepare for one file, given its previous statcache entry ${e}: chunk
 * with the chunker whose signatures describe most of the old objects, and
 * look up aligned whole blocks unless that covers all of them.
 */
static int
sub_begin(struct backup *b, struct statcache_entry *e, bool plain,
    const char **status)
{
	struct subfile *s = b->sub;
	const char *data = e ? statcache_entry_get(e, "data") : NULL;
	uint64_t bytes[SIG_CLASSES] = { 0 }, total = 0;
	int *cls = NULL, best = SIG_GEAR, rc = 0;

	/* A big table from the last file is not worth clearing. */
	if (s->slotcap > 65536) {
		free(s->slots);
		free(s->chunks);
		s->slots = NULL;
		s->chunks = NULL;
		s->slotcap = s->chunkcap = 0;
	} else if (s->nchunks) {
		memset(s->slots, 0, s->slotcap * sizeof(*s->slots));
	}
	s->nchunks = s->nobjs = s->clen = s->litlen = s->nlitch = 0;
	s->fed = s->nfed = 0;
	s->block_sum_valid = s->tail_valid = false;
	buf_reset(&s->litsig);
	s->have_pend = false;
	s->status = status;
	if (data && !plain && sub_collect(b, s, data, bytes, &cls))
		rc = -1;
	for (int c = SIG_GEAR; c < SIG_CLASSES; c++)
		if (bytes[c] > bytes[best])
			best = c;
	for (int c = 0; c < SIG_CLASSES; c++)
		total += bytes[c];
	s->kind = best == SIG_GEAR ? CHUNKER_GEAR : CHUNKER_LBFS;
	s->halg = best == SIG_GEAR ? HASH_SHA256
	    : best == SIG_LBFS1    ? HASH_SHA1
				   : HASH_SHA224;
	s->dlen = hash_size(s->halg);
	s->aligned = total == 0 || bytes[best] < total;
	s->plain = plain;
	if (plain)
		s->aligned = true;
	if (rc == 0 && bytes[best] && sub_load(b, s, cls, best))
		rc = -1;
	free(cls);
	chunker_init(&s->ck, s->kind);
	return rc;
}

/* Close the open reference: account it and add it to the data list. */
static int
sub_put_pending(struct backup *b)
{
	struct subfile *s = b->sub;
	struct ref *r = &s->pend;
	bool whole;

	if (!s->have_pend)
		return 0;
	s->have_pend = false;
	if (r->kind == REF_OBJECT) {
		/* A run covering a whole object is the whole object. */
		if (r->range == REF_RANGE_SLICE && r->start == 0 &&
		    r->length == s->pend_objsize)
			r->range = REF_RANGE_BARE;
		whole = r->range != REF_RANGE_SLICE;
		if (localdb_use_object(b->db, r->segment, r->seq,
			whole ? 0 : r->start, r->length, whole) < 0)
			return -1;
	}
	return append_ref(b, r);
}

/* Add a reference, merged with the open one when contiguous. */
static int
sub_emit(struct backup *b, const struct ref *r, uint64_t objsize)
{
	struct subfile *s = b->sub;

	if (s->have_pend && ref_merge(&s->pend, r))
		return 0;
	if (sub_put_pending(b))
		return -1;
	s->pend = *r;
	s->pend_objsize = objsize;
	s->have_pend = true;
	return 0;
}

static int
sub_emit_zero(struct backup *b, size_t n)
{
	struct ref r;

	memset(&r, 0, sizeof(r));
	r.kind = REF_ZERO;
	r.range = REF_RANGE_BARE;
	r.length = n;
	return sub_emit(b, &r, 0);
}

/*
 * Find a stored copy of a block: by our hash, then by the hashes the
 * original program used, so a database it left keeps deduplicating.
 */
static int
find_block(struct backup *b, const unsigned char *p, size_t n,
    const char *sum, struct ref *r)
{
	static const enum hash_alg legacy[] = { HASH_SHA224, HASH_SHA1 };
	int found = localdb_find_block(b->db, sum, n, r);

	for (size_t i = 0; found == 0 && i < 2; i++) {
		char lsum[HASH_STR_MAX];

		if (!(b->legacy_algs & (1u << legacy[i])))
			continue;
		if (hash_buffer(legacy[i], p, n, lsum))
			return -1;
		found = localdb_find_block(b->db, lsum, n, r);
	}
	return found;
}

static void
set_status(const char **status, const char *now)
{
	if (*status == NULL || (strcmp(now, "new") == 0 &&
				   strcmp(*status, "old") == 0))
		*status = now;
}

/*
 * Give object ${r} the signatures ${sig} (and its chunks to chunk_index)
 * unless it has some already: the original's LBFS signatures stay.
 */
static int
sub_add_signatures(struct backup *b, const struct ref *r, const char *alg,
    const struct buf *sig, const struct localdb_chunk *ch, size_t nch)
{
	char *old = NULL;
	void *blob = NULL;
	size_t blen;
	int rc = localdb_get_signatures(b->db, r->segment, r->seq, &old, &blob,
	    &blen);

	free(old);
	free(blob);
	if (rc != 0)
		return rc < 0 ? -1 : 0;
	if (localdb_put_signatures(b->db, r->segment, r->seq, alg, sig->data,
		sig->len))
		return -1;
	/* A one-chunk object is found by its block checksum already. */
	return nch > 1 ? localdb_add_chunks(b->db, r->segment, r->seq, ch, nch)
		       : 0;
}

/* Store the literal bytes collected so far as one object (or reuse an
 * identical stored one) and reference it. */
static int
sub_flush_literal(struct backup *b)
{
	struct subfile *s = b->sub;
	const char *alg = chunker_algorithm_name(s->kind, s->halg);
	char sum[HASH_STR_MAX], uuid[SEGMENT_UUID_LEN + 1], group[32] = "data";
	double age = 0;
	int expired = 0, found;
	uint64_t seq;
	struct ref r;
	size_t n = s->litlen;

	if (n == 0)
		return 0;
	s->litlen = 0;
	/* One Gear chunk: its digest is the object's checksum.  Every byte
	 * of a one-block file: the block's checksum is. */
	if (s->nlitch == 1 && s->halg == HASH_SHA256) {
		memcpy(sum, "sha256=", 7);
		hash_hex(s->litch[0].digest, 32, sum + 7);
	} else if (s->nfed == 1 && s->block_sum_valid && n == s->fed) {
		memcpy(sum, s->block_sum, sizeof(sum));
	} else if (hash_buffer(HASH_SHA256, s->lit, n, sum)) {
		return -1;
	}
	found = find_block(b, s->lit, n, sum, &r);
	if (found < 0)
		return -1;
	if (found) {
		if (sub_add_signatures(b, &r, alg, &s->litsig, s->litch,
			s->kind == CHUNKER_GEAR ? s->nlitch : 0))
			return -1;
		set_status(s->status, "old");
	} else {
		/* Data that cleaning expired keeps its age and goes to the
		 * group of its age bucket, so old data stays together. */
		int old = localdb_find_old_block(b->db, sum, n, &age, &expired);

		if (old < 0)
			return -1;
		if (old == 1) {
			if (expired > 0)
				snprintf(group, sizeof(group), "compacted-%d",
				    expired);
			set_status(s->status, "partial");
		} else {
			age = 0;
		}
		if (segment_add(b->sw, group, s->lit, n, uuid, &seq) ||
		    localdb_store_block(b->db, uuid, seq, sum, n, age) ||
		    localdb_put_signatures(b->db, uuid, seq, alg, s->litsig.data,
			s->litsig.len) ||
		    (s->kind == CHUNKER_GEAR && s->nlitch > 1 &&
			localdb_add_chunks(b->db, uuid, seq, s->litch, s->nlitch)))
			return -1;
		ref_set_object(&r, uuid, seq);
		b->res->stats.bytes_new += n;
		set_status(s->status, "new");
		if (n == BLOCK_SIZE)
			b->full_blocks = true;
	}
	r.range = REF_RANGE_BARE;
	r.length = n;
	s->nlitch = 0;
	buf_reset(&s->litsig);
	return sub_emit(b, &r, n);
}

/* One chunk of the file: reuse a stored copy or add it to the literal.
 * ${digest}: its SHA-256 digest when already known (Gear chunks), or NULL. */
static int
sub_chunk(struct backup *b, const unsigned char *p, size_t n,
    const unsigned char *digest)
{
	struct subfile *s = b->sub;
	unsigned char d[HASH_DIGEST_MAX];
	const struct sub_chunk *slot;
	struct localdb_chunk *c;
	struct hash h;
	struct ref r;
	uint64_t objsize = 0;
	int found = 0;

	if (all_zero(p, n))
		return sub_flush_literal(b) || sub_emit_zero(b, n) ? -1 : 0;
	if (digest && s->halg == HASH_SHA256) {
		memcpy(d, digest, 32);
	} else {
		if (hash_init(&h, s->halg))
			return -1;
		hash_update(&h, p, n);
		if (hash_final_raw(&h, d) < 0)
			return -1;
	}
	if ((slot = sub_lookup(s, d, n)) != NULL) {
		const struct sub_obj *o = &s->objs[slot->obj - 1];

		ref_set_object(&r, o->segment, o->seq);
		r.range = REF_RANGE_SLICE;
		r.start = slot->offset;
		r.length = n;
		objsize = o->size;
		found = 1;
	} else if (s->kind == CHUNKER_GEAR &&
	    (found = localdb_find_chunk(b->db, d, (uint32_t)n, &r, &objsize)) <
		0) {
		return -1;
	}
	if (found) {
		set_status(s->status, "old");
		return sub_flush_literal(b) || sub_emit(b, &r, objsize) ? -1 : 0;
	}
	if (s->litlen + n > BLOCK_SIZE && sub_flush_literal(b))
		return -1;
	if (s->nlitch == s->litchcap) {
		size_t ncap = s->litchcap ? s->litchcap * 2 : 256;
		struct localdb_chunk *nc = realloc(s->litch, ncap * sizeof(*nc));

		if (nc == NULL) {
			err_set("out of memory");
			return -1;
		}
		s->litch = nc;
		s->litchcap = ncap;
	}
	c = &s->litch[s->nlitch++];
	memcpy(c->digest, d, sizeof(c->digest));
	c->offset = (uint32_t)s->litlen;
	c->length = (uint32_t)n;
	memcpy(s->lit + s->litlen, p, n);
	s->litlen += n;
	return chunker_sig_append(&s->litsig, (uint32_t)n, d, s->dlen);
}

/* End the current chunk early (before an aligned block used whole). */
static int
sub_cut(struct backup *b)
{
	struct subfile *s = b->sub;
	size_t n = s->clen;

	chunker_init(&s->ck, s->kind);
	s->clen = 0;
	s->tail_valid = false;
	if (n && sub_chunk(b, s->chunk, n, NULL))
		return -1;
	return sub_flush_literal(b);
}

/*
 * An aligned block found whole in the database: use it, and give it
 * signatures when it has none (computed as for a file of its own).
 */
static int
sub_whole_block(struct backup *b, const unsigned char *p, size_t n,
    struct ref *r)
{
	struct subfile *s = b->sub;
	struct chunker ck;
	struct buf sig;
	struct localdb_chunk *ch = NULL;
	size_t nch = 0, pos = 0;
	char *alg = NULL;
	void *blob = NULL;
	size_t blen;
	int rc;

	set_status(s->status, "old");
	r->range = REF_RANGE_BARE;
	r->length = n;
	rc = localdb_get_signatures(b->db, r->segment, r->seq, &alg, &blob,
	    &blen);
	free(alg);
	free(blob);
	if (rc != 0)
		return rc < 0 ? -1 : sub_emit(b, r, n);
	buf_init(&sig, BUF_UNLIMITED);
	if ((ch = calloc(n / CHUNKER_GEAR_MIN + 2, sizeof(*ch))) == NULL) {
		err_set("out of memory");
		goto fail;
	}
	chunker_init(&ck, CHUNKER_GEAR);
	while (pos < n) {
		bool cut;
		size_t k = 0;
		struct hash h;

		while (pos + k < n) {
			k += chunker_scan(&ck, p + pos + k, n - pos - k, &cut);
			if (cut)
				break;
		}
		if (hash_init(&h, HASH_SHA256))
			goto fail;
		hash_update(&h, p + pos, k);
		if (hash_final_raw(&h, ch[nch].digest) < 0 ||
		    chunker_sig_append(&sig, (uint32_t)k, ch[nch].digest, 32))
			goto fail;
		ch[nch].offset = (uint32_t)pos;
		ch[nch].length = (uint32_t)k;
		nch++;
		pos += k;
	}
	if (sub_add_signatures(b, r, CHUNKER_ALG_GEAR, &sig, ch, nch))
		goto fail;
	free(ch);
	buf_release(&sig);
	return sub_emit(b, r, n);
fail:
	free(ch);
	buf_release(&sig);
	return -1;
}

/*
 * A block of a small file not found whole: one new object without
 * signatures (the original stores none below 16 KiB either).
 */
static int
sub_plain_block(struct backup *b, const unsigned char *p, size_t n,
    const char *sum)
{
	char uuid[SEGMENT_UUID_LEN + 1], group[32] = "data";
	double age = 0;
	int expired = 0;
	uint64_t seq;
	struct ref r;

	/* Data that cleaning expired keeps its age and goes to the group of
	 * its age bucket, so old data stays together. */
	int old = localdb_find_old_block(b->db, sum, n, &age, &expired);

	if (old < 0)
		return -1;
	if (old == 1) {
		if (expired > 0)
			snprintf(group, sizeof(group), "compacted-%d", expired);
		set_status(b->sub->status, "partial");
	} else {
		age = 0;
	}
	if (segment_add(b->sw, group, p, n, uuid, &seq) ||
	    localdb_store_block(b->db, uuid, seq, sum, n, age))
		return -1;
	b->res->stats.bytes_new += n;
	set_status(b->sub->status, "new");
	ref_set_object(&r, uuid, seq);
	r.range = REF_RANGE_BARE;
	r.length = n;
	return sub_emit(b, &r, n);
}

/*
 * Whether the helper's cuts ${c} of an ${n}-byte block are those our
 * chunker would make: cut from the state it is in, and consistent.
 */
static bool
cuts_usable(const struct subfile *s, const struct hasher_cuts *c, size_t n)
{
	size_t last = c->n ? c->chunk[c->n - 1].end : 0;

	return c->valid && s->kind == CHUNKER_GEAR &&
	    c->start.len == s->ck.len && c->start.h == s->ck.h &&
	    s->clen == s->ck.len && c->n <= c->cap && last <= n &&
	    c->end.len == (c->n ? n - last : s->clen + n);
}

/* The chunks of a block cut ahead (cuts_usable()): the first one ends the
 * partial chunk held from the block before. */
static int
sub_block_cut(struct backup *b, const unsigned char *p, size_t n,
    const struct hasher_cuts *c)
{
	struct subfile *s = b->sub;
	size_t pos = 0;

	for (size_t i = 0; i < c->n; i++) {
		size_t k = c->chunk[i].end - pos;

		if (s->clen) {
			size_t len = s->clen + k;

			memcpy(s->chunk + s->clen, p + pos, k);
			s->clen = 0;
			if (sub_chunk(b, s->chunk, len, c->chunk[i].digest))
				return -1;
		} else if (sub_chunk(b, p + pos, k, c->chunk[i].digest)) {
			return -1;
		}
		pos = c->chunk[i].end;
	}
	memcpy(s->chunk + s->clen, p + pos, n - pos);
	s->clen += n - pos;
	s->ck = c->end;
	s->tail_valid = c->tail_valid;
	memcpy(s->tail_digest, c->tail_digest, sizeof(s->tail_digest));
	return 0;
}

/*
 * Whether an aligned block of ${n} bytes could be found whole: 0 for a
 * full block when no object of BLOCK_SIZE bytes exists, so that neither
 * the helper nor sub_block() hashes it only to look it up.  Objects of
 * exactly BLOCK_SIZE come from the original program and from backups
 * before sub-file chunking; ours, cut at chunk boundaries, almost never
 * have that size (sub_flush_literal() notes one that does).  Skipping
 * saves one SHA-256 pass over every full block of a new large file
 * (about a quarter of its hashing).  1, 0, or -1 on error.
 */
static int
full_block_lookup(struct backup *b, size_t n)
{
	int r;

	if (n != BLOCK_SIZE || b->full_blocks_known)
		return n != BLOCK_SIZE || b->full_blocks;
	if ((r = localdb_any_block_of_size(b->db, BLOCK_SIZE)) < 0)
		return -1;
	b->full_blocks_known = true;
	b->full_blocks = r == 1;
	return r;
}

/* Whether an ${n}-byte block of the file being read is looked up whole,
 * and so needs its own checksum: the one decision for sub_block() and
 * for the helper that hashes ahead of it.  1, 0, or -1 on error. */
static int
want_block_sum(struct backup *b, size_t n)
{
	if (!b->sub->aligned)
		return 0;
	return b->sub->plain ? 1 : full_block_lookup(b, n);
}

/* Feed one read block (aligned at a multiple of BLOCK_SIZE).  ${pre}: the
 * whole file, read and hashed ahead (prefetch.h), or NULL.  ${known}: the
 * block's SHA-256, computed ahead (hasher.h), or NULL; ${cuts}: its
 * chunks, cut ahead, or NULL. */
static int
sub_block(struct backup *b, const unsigned char *p, size_t n,
    const struct prefetch_job *pre, const char *known,
    const struct hasher_cuts *cuts)
{
	struct subfile *s = b->sub;

	s->block_sum_valid = s->tail_valid = false;
	s->fed += n;
	s->nfed++;
	if (s->aligned) {
		char *sum = s->block_sum;
		struct ref r;
		int found;

		if (all_zero(p, n))
			return sub_cut(b) || sub_emit_zero(b, n) ? -1 : 0;
		if ((found = want_block_sum(b, n)) <= 0) {
			if (found < 0)
				return -1;
			goto chunks;
		}
		if (pre)
			memcpy(sum, pre->sum, HASH_STR_MAX);
		else if (known)
			memcpy(sum, known, HASH_STR_MAX);
		else if (hash_buffer(HASH_SHA256, p, n, sum))
			return -1;
		s->block_sum_valid = true;
		if ((found = find_block(b, p, n, sum, &r)) < 0)
			return -1;
		if (found && s->plain) {
			set_status(s->status, "old");
			return sub_emit(b, &r, n);
		}
		if (found)
			return sub_cut(b) || sub_whole_block(b, p, n, &r) ? -1 : 0;
		if (s->plain)
			return sub_plain_block(b, p, n, sum);
	}
chunks:
	/* Chunks cut ahead are those of a fresh Gear chunker over the file. */
	if (pre && pre->chunks && s->kind == CHUNKER_GEAR && s->nfed == 1 &&
	    s->clen == 0) {
		for (size_t i = 0; i < pre->nchunks; i++)
			if (sub_chunk(b, p + pre->chunks[i].offset,
				pre->chunks[i].length, pre->chunks[i].digest))
				return -1;
		return 0;
	}
	if (cuts && cuts_usable(s, cuts, n))
		return sub_block_cut(b, p, n, cuts);
	while (n) {
		bool cut;
		size_t k = chunker_scan(&s->ck, p, n, &cut);

		if (cut && s->clen == 0) {
			if (sub_chunk(b, p, k, NULL))
				return -1;
		} else {
			memcpy(s->chunk + s->clen, p, k);
			s->clen += k;
			if (cut) {
				size_t len = s->clen;

				s->clen = 0;
				if (sub_chunk(b, s->chunk, len, NULL))
					return -1;
			}
		}
		p += k;
		n -= k;
	}
	return 0;
}

/* The end of the file: its last chunk, literal and reference. */
static int
sub_end(struct backup *b)
{
	struct subfile *s = b->sub;
	size_t n = s->clen;

	s->clen = 0;
	if (n && sub_chunk(b, s->chunk, n, s->tail_valid ? s->tail_digest : NULL))
		return -1;
	return sub_flush_literal(b) || sub_put_pending(b) ? -1 : 0;
}

/* The helper that hashes a file's next block, the buffer that block is
 * read into and room for its chunks: started on the first file read in
 * line.  0 or -1. */
static int
get_hasher(struct backup *b)
{
	if (b->block2 == NULL && (b->block2 = malloc(BLOCK_SIZE)) == NULL) {
		err_set("out of memory");
		return -1;
	}
	for (int i = 0; i < 2; i++) {
		struct hasher_cuts *c = &b->cuts[i];

		if (c->chunk != NULL)
			continue;
		c->cap = BLOCK_SIZE / CHUNKER_GEAR_MIN + 1;
		if ((c->chunk = malloc(c->cap * sizeof(*c->chunk))) == NULL) {
			err_set("out of memory");
			return -1;
		}
	}
	if (b->hasher == NULL && hasher_create(&b->hasher))
		return -1;
	return 0;
}

/*
 * Hand block ${p} (${n} bytes) to the helper: it hashes the block into
 * ${running} and ${sum} (unless NULL) and, if we chunk with Gear, cuts
 * it into ${cuts}, from a fresh chunker if ${first}, else continuing the
 * block before;
 * ${last}: the file ends with it.  0 or -1.
 */
static int
start_hasher(struct backup *b, const unsigned char *p, size_t n,
    struct hash *running, char *sum, struct hasher_cuts *cuts, bool first,
    bool last)
{
	struct hasher_job job;

	memset(&job, 0, sizeof(job));
	job.p = p;
	job.n = n;
	job.running = running;
	job.sum = sum;
	/* Cut ahead only new data: a changed file whose old chunks are
	 * known leaves the main thread little else to do than cut it (most
	 * chunks are found), and cutting in line balances the two hashes
	 * on the helper (the edited 1 GiB file: 1.6 s, against 1.9 s with
	 * the cuts on the helper too). */
	if (b->sub->kind == CHUNKER_GEAR && !b->sub->plain &&
	    b->sub->nchunks == 0) {
		job.cuts = cuts;
		job.first = first;
		job.last = last;
	}
	cuts->valid = false;
	return hasher_start(b->hasher, &job);
}

/* Whether the open file ${fd} was modified since ${sb} was taken of it. */
static bool
changed_since(int fd, const struct stat *sb)
{
	struct stat now;

	if (fstat(fd, &now))
		return false; /* an open file can always be fstat'ed */
	return now.st_mtim.tv_sec != sb->st_mtim.tv_sec ||
	    now.st_mtim.tv_nsec != sb->st_mtim.tv_nsec ||
	    now.st_ctim.tv_sec != sb->st_ctim.tv_sec ||
	    now.st_ctim.tv_nsec != sb->st_ctim.tv_nsec;
}

/*
 * Read the file and fill size, checksum and data.  Read errors are
 * warnings: what was read is kept and the entry marked volatile.  ${pre}:
 * the whole file read and hashed ahead (then ${fd} is not read), or NULL.
 *
 * With read-ahead workers (several threads), a file whose first block is
 * full goes through the helper (get_hasher): each block is handed to it
 * as soon as read, one block ahead of the block being stored, so the
 * helper hashes and cuts block k + 1 while this thread stores block k
 * and reads block k + 2.  Both buffers are the helper's until waited
 * for.  Otherwise each block is hashed here.
 */
static int
read_file(struct backup *b, int fd, const char *path, const struct stat *sb,
    struct statcache_entry *e, const char **status,
    const struct prefetch_job *pre)
{
	struct hash h;
	char sum[HASH_STR_MAX];
	uint64_t total = 0;
	size_t single = 0; /* bytes of a file read in one short block */
	const unsigned char *single_p = NULL;
	/* The block being stored is bufs[cur], len[cur] bytes (-1: its read
	 * failed with error[cur]); queued[cur]: handed to the helper, which
	 * puts its checksum in sums[cur] and its chunks in b->cuts[cur]. */
	unsigned char *bufs[2] = { b->block, NULL };
	char sums[2][HASH_STR_MAX], error[2][256];
	ssize_t len[2] = { 0, 0 };
	/* summed[i]: the helper puts the block's checksum in sums[i] (only
	 * when sub_block() would look the block up whole). */
	bool queued[2] = { false, false }, summed[2] = { false, false };
	bool helper = false, read_failed = false;
	int cur = 0, rc;

	buf_reset(&b->data);
	/* Small files are not worth chunking: few chunks each, and their
	 * signatures would cost more than the bytes they could save. */
	if (sub_begin(b, e, sb->st_size < SUB_MIN_FILE, status) ||
	    hash_init(&h, HASH_SHA256))
		return -1;
	if (pre) {
		len[0] = pre->read_error[0] ? -1 : (ssize_t)pre->len;
		snprintf(error[0], sizeof(error[0]), "%s", pre->read_error);
	} else if ((len[0] = fileio_read_file_full(fd, bufs[0],
			BLOCK_SIZE)) < 0) {
		snprintf(error[0], sizeof(error[0]), "%s", err_msg());
	} else if ((size_t)len[0] == BLOCK_SIZE && b->pf) {
		if (get_hasher(b))
			goto fail;
		bufs[1] = b->block2;
		helper = true;
		if ((rc = want_block_sum(b, BLOCK_SIZE)) < 0)
			goto fail;
		summed[0] = rc == 1;
		if (start_hasher(b, bufs[0], BLOCK_SIZE, &h,
			summed[0] ? sums[0] : NULL, &b->cuts[0], true, false))
			goto fail;
		queued[0] = true;
	}
	for (;;) {
		const unsigned char *p = pre ? pre->data : bufs[cur];
		ssize_t r = len[cur];
		bool known = queued[cur];
		int nxt = cur ^ 1;

		if (r < 0) {
			warnf(b, "error reading '%s': %s; its backup may be "
				 "incomplete",
			    shown(b, path), error[cur]);
			if (stanza_set_str(&b->st, "volatile", "1"))
				goto fail;
			read_failed = true;
			break;
		}
		if (r == 0)
			break;
		/* The next block, into the other buffer (stored, and waited
		 * for, last time round), to the helper before this one is
		 * waited for: it need not stop between the two. */
		if (helper && (size_t)r == BLOCK_SIZE) {
			len[nxt] = fileio_read_file_full(fd, bufs[nxt],
			    BLOCK_SIZE);
			if (len[nxt] < 0) {
				snprintf(error[nxt], sizeof(error[nxt]), "%s",
				    err_msg());
			} else if (len[nxt] > 0) {
				if ((rc = want_block_sum(b, (size_t)len[nxt])) < 0)
					goto fail;
				summed[nxt] = rc == 1;
				if (start_hasher(b, bufs[nxt], (size_t)len[nxt],
					&h, summed[nxt] ? sums[nxt] : NULL,
					&b->cuts[nxt], false,
					(size_t)len[nxt] < BLOCK_SIZE))
					goto fail;
				queued[nxt] = true;
			}
		}
		if (known) {
			queued[cur] = false;
			if (hasher_wait(b->hasher))
				goto fail;
		} else if (total == 0 && (size_t)r < BLOCK_SIZE) {
			/* A file that fits in its first read is one block: the
			 * block's checksum, if sub_block() computes one, is
			 * the file's. */
			single = (size_t)r;
			single_p = p;
		} else {
			hash_update(&h, p, (size_t)r);
		}
		total += (uint64_t)r;
		b->res->stats.bytes_read += (uint64_t)r;
		rc = sub_block(b, p, (size_t)r, pre,
		    known && summed[cur] ? sums[cur] : NULL,
		    known ? &b->cuts[cur] : NULL);
		if (rc)
			goto fail;
		progress(b, false);
		if ((size_t)r < BLOCK_SIZE || pre)
			break;
		if (helper) {
			cur = nxt;
		} else if ((len[cur] = fileio_read_file_full(
				fd, bufs[cur], BLOCK_SIZE)) < 0) {
			snprintf(error[cur], sizeof(error[cur]), "%s",
			    err_msg());
		}
	}
	if (sub_end(b))
		goto fail;
	if (single > 0 && b->sub->block_sum_valid) {
		hash_abort(&h);
		memcpy(sum, b->sub->block_sum, sizeof(sum));
	} else {
		if (single > 0)
			hash_update(&h, single_p, single);
		if (hash_final(&h, sum))
			return -1;
	}
	if (read_failed) {
		/* Warned of above: what was read is recorded, volatile. */
	} else if (total != (uint64_t)sb->st_size) {
		warnf(b, "size of '%s' changed during reading", shown(b, path));
		if (stanza_set_str(&b->st, "volatile", "1"))
			return -1;
	} else if (pre ? pre->changed : changed_since(fd, sb)) {
		/* Rewritten in place while read: what was stored may mix old
		 * and new bytes.  The next backup reads it again. */
		warnf(b, "'%s' changed while it was read; its backup may be "
			 "inconsistent",
		    shown(b, path));
		if (stanza_set_str(&b->st, "volatile", "1"))
			return -1;
	}
	b->res->stats.files_read++;
	return set_num(b, "size", (long long)total) ||
		stanza_set_str(&b->st, "checksum", sum) ||
		stanza_set(&b->st, "data", b->data.data ? b->data.data : "",
		    b->data.len)
	    ? -1
	    : 0;
fail:
	/* The helper may hold h and the buffers. */
	if (helper)
		hasher_drain(b->hasher);
	hash_abort(&h);
	return -1;
}

/*
 * The statcache's verdict: the file is unchanged if the previous entry is
 * not volatile and ctime, mtime, size and inode all match, and every
 * object it used is still available.  Then its data is reused unread.
 */
static bool
stat_unchanged(const struct stat *sb, struct statcache_entry *e)
{
	const char *v;
	char want[96];

	v = statcache_entry_get(e, "volatile");
	if (v && strcmp(v, "0") != 0)
		return false;
	if ((v = statcache_entry_get(e, "ctime")) == NULL ||
	    strcmp(v, fmt_ll(want, sizeof(want), (long long)sb->st_ctime)))
		return false;
	if ((v = statcache_entry_get(e, "mtime")) == NULL ||
	    strcmp(v, fmt_ll(want, sizeof(want), (long long)sb->st_mtime)))
		return false;
	if ((v = statcache_entry_get(e, "size")) == NULL ||
	    strcmp(v, fmt_ll(want, sizeof(want), (long long)sb->st_size)))
		return false;
	return (v = statcache_entry_get(e, "inode")) != NULL &&
	    strcmp(v, fmt_inode(want, sb->st_dev, sb->st_ino)) == 0;
}

static int
try_statcache(struct backup *b, const struct stat *sb,
    struct statcache_entry *e, bool *reused)
{
	const char *data, *sum, *p;

	*reused = false;
	if (e == NULL || b->o->rebuild_statcache || !stat_unchanged(sb, e))
		return 0;
	data = statcache_entry_get(e, "data");
	sum = statcache_entry_get(e, "checksum");
	if (data == NULL || sum == NULL)
		return 0;
	/* Every reference must still be available before any is used.  The
	 * first few parsed references are kept for the second pass. */
	struct ref kept[4];
	size_t nkept = 0, idx;

	for (int pass = 0; pass < 2; pass++) {
		p = data;
		idx = 0;
		while (*p) {
			size_t len;
			struct ref parsed;
			const struct ref *r = &parsed;

			p += strspn(p, " \t\n");
			len = strcspn(p, " \t\n");
			if (len == 0)
				break;
			if (pass == 1 && idx < nkept) {
				r = &kept[idx];
			} else if (ref_parse(p, len, &parsed)) {
				err_clear();
				return 0;
			}
			if (pass == 0 && nkept < sizeof(kept) / sizeof(kept[0]))
				kept[nkept++] = parsed;
			idx++;
			p += len;
			if (r->kind == REF_ZERO)
				continue;
			if (pass == 0) {
				int a = localdb_block_available(b->db, r->segment,
				    r->seq);

				if (a < 0)
					return -1;
				if (a == 0)
					return 0;
			} else if (localdb_use_object(b->db, r->segment, r->seq,
				       r->range == REF_RANGE_SLICE ? r->start : 0,
				       r->range == REF_RANGE_NONE
					   ? LOCALDB_SIZE_UNKNOWN
					   : r->length,
				       r->range != REF_RANGE_SLICE) < 0) {
				return -1;
			}
		}
	}
	if (stanza_set_str(&b->st, "size", statcache_entry_get(e, "size")) ||
	    stanza_set_str(&b->st, "checksum", sum) ||
	    stanza_set_str(&b->st, "data", data))
		return -1;
	*reused = true;
	return 0;
}

/* ---- entries read ahead ---- */

/*
 * With worker threads, a new small file is opened in walk order and given
 * to the prefetch workers; it and every entry after it wait in a ring
 * (b->pq) and are finished in order: a file's data goes through the
 * database and segments on this thread, with the checksums the workers
 * computed, and each stanza reaches the metadata log in the same order as
 * without read-ahead.  Only entries with no statcache entry are read ahead
 * (nothing of the previous snapshot to compare), so the walk never needs
 * the statcache again for them.
 */

static int emit(struct backup *b, const char *path, struct statcache_entry *e,
    const char *status);

static struct pending *
pq_at(struct backup *b, size_t i)
{
	return &b->pq[(b->pq_head + i) % PQ_MAX];
}

static void
pending_free(struct backup *b, struct pending *q)
{
	if (q->file) {
		prefetch_job_release(&q->job);
		if (q->job.fd >= 0)
			close(q->job.fd);
		b->pq_files--;
		b->pq_bytes -= (uint64_t)q->sb.st_size;
	}
	free(q->path);
	free(q->text);
	free(q->reuse);
	memset(q, 0, sizeof(*q));
}

/* Give the metadata log its next entry. */
static int
commit_entry(struct backup *b, const char *path, const char *text,
    size_t len, const char *reuse, const char *status)
{
	if (metalog_add(b->ml, text, len, reuse))
		return -1;
	b->res->stats.entries++;
	if (b->o->verbose && b->cb && b->cb->entry)
		b->cb->entry(b->cb->arg, path, status);
	progress(b, false);
	return 0;
}

/* Finish a file read ahead, as dump() would have in line. */
static int
finish_file(struct backup *b, struct pending *q)
{
	const struct prefetch_job *pre = &q->job;
	const char *status = NULL;

	if (prefetch_wait(b->pf, &q->job))
		return -1;
	/* It grew after it was opened: read it in line, from the start. */
	if (!q->job.complete && q->job.read_error[0] == '\0') {
		pre = NULL;
		if (lseek(q->job.fd, 0, SEEK_SET) < 0) {
			err_setp("lseek");
			return -1;
		}
	}
	if (common_fields(b, q->path, &q->sb) ||
	    stanza_set_str(&b->st, "type", "f") ||
	    read_file(b, q->job.fd, q->path, &q->sb, NULL, &status, pre))
		return -1;
	return emit(b, q->path, NULL, status);
}

static int
pq_finish_front(struct backup *b)
{
	struct pending *q = pq_at(b, 0);
	int rc;

	b->pq_finishing = true;
	if (!q->file)
		rc = commit_entry(b, q->path, q->text, q->len, q->reuse,
		    q->status);
	else
		rc = finish_file(b, q);
	b->pq_finishing = false;
	pending_free(b, q);
	b->pq_head = (b->pq_head + 1) % PQ_MAX;
	b->pq_len--;
	return rc;
}

/* Finish the entries at the front that are ready, and more while over the
 * limits. */
static int
pq_pump(struct backup *b)
{
	while (b->pq_len) {
		struct pending *q = pq_at(b, 0);

		if (q->file && b->pq_files <= PQ_FILES &&
		    b->pq_bytes <= PQ_BYTES && !prefetch_ready(b->pf, &q->job))
			break;
		if (pq_finish_front(b))
			return -1;
	}
	return 0;
}

/* Finish every waiting entry. */
static int
pq_drain(struct backup *b)
{
	while (b->pq_len)
		if (pq_finish_front(b))
			return -1;
	return 0;
}

/* After a failure: stop the workers, then drop what waits. */
static void
pq_free(struct backup *b)
{
	prefetch_destroy(b->pf);
	b->pf = NULL;
	while (b->pq_len) {
		pending_free(b, pq_at(b, 0));
		b->pq_head = (b->pq_head + 1) % PQ_MAX;
		b->pq_len--;
	}
	free(b->pq);
	b->pq = NULL;
}

/* Append an entry to the ring: ${text} (${len} bytes) for an entry that is
 * complete, NULL for a file.  NULL on failure. */
static struct pending *
pq_push(struct backup *b, const char *path, const char *text, size_t len,
    const char *reuse, const char *status)
{
	char *path_copy = strdup(path), *text_copy = NULL, *reuse_copy = NULL;
	struct pending *q;

	if (text && (text_copy = malloc(len + 1)) != NULL)
		memcpy(text_copy, text, len);
	if (reuse)
		reuse_copy = strdup(reuse);
	if (path_copy == NULL || (text && text_copy == NULL) ||
	    (reuse && reuse_copy == NULL)) {
		err_set("out of memory");
		goto fail;
	}
	/* Finishing the front reuses b->st and b->text: copied above. */
	if (b->pq_len == PQ_MAX && pq_finish_front(b))
		goto fail;
	q = pq_at(b, b->pq_len++);
	q->path = path_copy;
	q->text = text_copy;
	q->len = len;
	q->reuse = reuse_copy;
	q->status = status;
	return q;
fail:
	free(path_copy);
	free(text_copy);
	free(reuse_copy);
	return NULL;
}

/* Give the open file ${fd} (${sb}) to the workers.  Closed here if it
 * cannot join the ring; else the ring owns it (closed when finished, or
 * when the ring is freed after a failure). */
static int
defer_file(struct backup *b, const char *path, int fd, const struct stat *sb)
{
	struct pending *q = pq_push(b, path, NULL, 0, NULL, NULL);

	if (q == NULL) {
		close(fd);
		return -1;
	}
	q->file = true;
	q->sb = *sb;
	q->job.fd = fd;
	q->job.size_hint = (size_t)sb->st_size;
	q->job.mtim = sb->st_mtim;
	q->job.ctim = sb->st_ctim;
	q->job.chunk = sb->st_size >= SUB_MIN_FILE;
	b->pq_files++;
	b->pq_bytes += (uint64_t)sb->st_size;
	if (prefetch_submit(b->pf, &q->job))
		return -1;
	return pq_pump(b);
}

/* ---- one entry ---- */

/*
 * Dump the entry the walk found: ${it->name} in directory ${it->parent},
 * recorded as ${it->path}.  A directory's children are the items that
 * follow.  Problems with the entry are warnings; -1 only for failures of
 * the backup itself.
 */
static int
dump(struct backup *b, const struct walk_item *it)
{
	const char *path = it->path, *name = it->name;
	const int parent = it->parent;
	struct stat sb;
	struct statcache_entry *e = NULL;
	const char *status = NULL;
	int fd = -1, rc = -1, found;

	lease_refresh(b->lease);
	if (it->err) {
		warnf(b, "lstat '%s': %s", shown(b, path), strerror(it->err));
		return 0;
	}
	sb = it->sb;
	found = statcache_lookup(b->sc, path, it->path_len, &e);
	if (found < 0)
		return -1;
	if (found == 0)
		e = NULL;
	if (S_ISREG(sb.st_mode)) {
		bool reused = false;

		/* An unchanged file is described from the statcache and its
		 * lstat data alone: one system call, the file is not opened. */
		if (common_fields(b, path, &sb) ||
		    stanza_set_str(&b->st, "type", "f") ||
		    try_statcache(b, &sb, e, &reused))
			goto out;
		if (reused) {
			b->res->stats.files++;
			return emit(b, path, e, NULL);
		}
		/* O_NONBLOCK: a FIFO put in the file's place must not hang
		 * the open (fstat() below catches it).  Reads go through
		 * fileio_read_file_full(), for which EAGAIN is an error: a
		 * plain file never says it, and a special one that does
		 * (/proc/kmsg) could block forever. */
		fd = openat(parent, name,
		    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOATIME | O_CLOEXEC);
		if (fd < 0 && errno == EPERM)
			fd = openat(parent, name,
			    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0 && errno == ELOOP)
			goto changed_type; /* O_NOFOLLOW met a symlink */
		if (fd < 0) {
			warnf(b, "cannot open '%s': %s", shown(b, path),
			    strerror(errno));
			return 0;
		}
		/* What is read is described by the open file's stat data. */
		if (fstat(fd, &sb)) {
			warnf(b, "cannot stat '%s': %s", shown(b, path),
			    strerror(errno));
			rc = 0;
			goto out;
		}
		if (!S_ISREG(sb.st_mode)) {
			close(fd);
			fd = -1;
			goto changed_type;
		}
		b->res->stats.files++;
		if (b->pf && e == NULL && sb.st_size < (off_t)BLOCK_SIZE)
			return defer_file(b, path, fd, &sb);
		/* Read in line: what waits goes first. */
		if (pq_drain(b) || common_fields(b, path, &sb) ||
		    stanza_set_str(&b->st, "type", "f") ||
		    read_file(b, fd, path, &sb, e, &status, NULL))
			goto out;
		/* Content that changed while ctime, mtime, size and inode did
		 * not means the statcache could not have noticed: say so. */
		if (e && b->o->rebuild_statcache && stat_unchanged(&sb, e)) {
			const char *old = statcache_entry_get(e, "checksum");
			const char *now = stanza_get(&b->st, "checksum", NULL);

			if (old && now && strncmp(old, "sha256=", 7) == 0 &&
			    strcmp(old, now) != 0)
				warnf(b, "checksum of '%s' does not match the "
					 "previous snapshot although its stat data "
					 "did not change",
				    shown(b, path));
		}
		rc = emit(b, path, e, status);
		goto out;
	}
	if (0) {
changed_type:
		/* Replaced since the walk saw it: record what is there now,
		 * unless it is a directory, whose entries the walk skipped. */
		if (fstatat(parent, name, &sb, AT_SYMLINK_NOFOLLOW)) {
			warnf(b, "'%s' vanished during the backup",
			    shown(b, path));
			return 0;
		}
		if (S_ISREG(sb.st_mode) || S_ISDIR(sb.st_mode)) {
			warnf(b, "'%s' was replaced during the backup; skipped",
			    shown(b, path));
			return 0;
		}
		warnf(b, "'%s' is no longer a regular file; recorded as it is "
			 "now",
		    shown(b, path));
	}
	if (common_fields(b, path, &sb))
		return -1;
	if (S_ISDIR(sb.st_mode)) {
		if (stanza_set_str(&b->st, "type", "d") || emit(b, path, e, NULL))
			return -1;
		if (it->fd < 0)
			warnf(b, "cannot open directory '%s': %s", shown(b, path),
			    strerror(it->err_open));
		return 0;
	}
	if (S_ISLNK(sb.st_mode)) {
		/* lstat's size is only a hint: 0 in /proc, and the link may
		 * have been replaced by a longer one since.  A symlink whose
		 * target cannot be read is skipped: restore could not make it
		 * without one. */
		size_t cap = (size_t)sb.st_size < 4096 ? 4096 :
							 (size_t)sb.st_size + 1;
		char *target = NULL;
		ssize_t n;

		for (;;) {
			char *t = realloc(target, cap);

			if (t == NULL) {
				free(target);
				err_set("out of memory");
				return -1;
			}
			target = t;
			n = readlinkat(parent, name, target, cap);
			if (n < 0 || (size_t)n < cap || cap >= SYMLINK_MAX)
				break;
			cap *= 2;
		}
		if (n < 0 || (size_t)n >= cap) {
			warnf(b, "cannot read symlink '%s': %s; skipped",
			    shown(b, path),
			    n < 0 ? strerror(errno) : "target too long");
			free(target);
			return 0;
		}
		buf_reset(&b->tmp);
		if (escape_encode(&b->tmp, target, (size_t)n) ||
		    stanza_set(&b->st, "target", b->tmp.data, b->tmp.len)) {
			free(target);
			return -1;
		}
		free(target);
		if (stanza_set_str(&b->st, "type", "l"))
			return -1;
	} else if (S_ISFIFO(sb.st_mode)) {
		if (stanza_set_str(&b->st, "type", "p"))
			return -1;
	} else if (S_ISSOCK(sb.st_mode)) {
		if (stanza_set_str(&b->st, "type", "s"))
			return -1;
	} else if (S_ISCHR(sb.st_mode) || S_ISBLK(sb.st_mode)) {
		char dev[64];

		snprintf(dev, sizeof(dev), "%u/%u", major(sb.st_rdev),
		    minor(sb.st_rdev));
		if (stanza_set_str(&b->st, "type", S_ISCHR(sb.st_mode) ? "c" : "b") ||
		    stanza_set_str(&b->st, "device", dev))
			return -1;
	} else {
		warnf(b, "'%s': unknown file type 0%o", shown(b, path),
		    (unsigned)sb.st_mode);
		return 0;
	}
	return emit(b, path, e, NULL);
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Format the current stanza and give it to the metadata log, reusing the
 * previous snapshot's copy when the text is identical. */
static int
emit(struct backup *b, const char *path, struct statcache_entry *e,
    const char *status)
{
	const char *reuse = NULL;

	buf_reset(&b->text);
	if (stanza_format(&b->st, &b->text))
		return -1;
	if (e && !b->o->full_metadata &&
	    statcache_entry_equal_text(e, b->text.data, b->text.len) == 1)
		reuse = statcache_entry_ref(e);
	/* Behind a file read ahead: wait for it. */
	if (b->pq_len && !b->pq_finishing)
		return pq_push(b, path, b->text.data, b->text.len, reuse,
			   status) == NULL ||
			pq_pump(b)
		    ? -1
		    : 0;
	return commit_entry(b, path, b->text.data, b->text.len, reuse,
	    status);
}

/* ---- command-line paths ---- */

struct root {
	char *arg;  /* as given, normalised (make_roots): where it is */
	char *path; /* as recorded: no leading '/', "/" is "." */
};

static int
cmp_roots(const void *a, const void *c)
{
	const struct root *x = a, *y = c;

	return statcache_path_cmp(x->path, strlen(x->path), y->path,
	    strlen(y->path));
}

/*
 * Walk the roots and dump every entry.  Each root is opened as a name in
 * its directory, so that a root which is a symbolic link is recorded as
 * one, like any other entry.
 */
static int
dump_roots(struct backup *b, const struct root *roots, size_t nroots,
    bool threads)
{
	struct walk_root *wr = calloc(nroots ? nroots : 1, sizeof(*wr));
	char **copies = calloc(nroots ? nroots : 1, sizeof(*copies));
	struct walk *w = NULL;
	const struct walk_item *it;
	int r, rc = -1;

	if (wr == NULL || copies == NULL) {
		err_set("out of memory");
		goto out;
	}
	for (size_t i = 0; i < nroots; i++) {
		char *copy = strdup(roots[i].arg), *slash;

		if ((copies[i] = copy) == NULL) {
			err_set("out of memory");
			goto out;
		}
		slash = strrchr(copy, '/');
		wr[i].path = roots[i].path;
		if (strcmp(roots[i].path, ".") == 0 && roots[i].arg[0] == '/') {
			wr[i].dir = "/";
			wr[i].name = ".";
		} else if (slash == NULL) {
			wr[i].dir = ".";
			wr[i].name = copy;
		} else {
			*slash = '\0';
			wr[i].dir = slash == copy ? "/" : copy;
			wr[i].name = slash + 1;
		}
	}
	w = walk_open(wr, nroots, b->o->excludes, b->o->nexcludes, threads);
	if (w == NULL)
		goto out;
	while ((r = walk_next(w, &it)) > 0) {
		switch (it->kind) {
		case WALK_ROOT_ERROR:
			warnf(b, "cannot open '%s': %s", it->path,
			    strerror(it->err));
			break;
		case WALK_END:
			if (it->err)
				warnf(b, "cannot list directory '%s': %s",
				    shown(b, it->path), strerror(it->err));
			break;
		case WALK_ENTRY:
			if (dump(b, it))
				goto out;
			break;
		}
	}
	rc = r;
out:
	walk_free(w);
	for (size_t i = 0; copies && i < nroots; i++)
		free(copies[i]);
	free(copies);
	free(wr);
	return rc;
}

/*
 * Where a command-line path is, to tell which paths are the same place or
 * one inside another, whatever they are called: the root's own lstat()
 * data, and the directories it is in, innermost first, found by ".." (the
 * real ones, not those of the path's spelling).
 */
struct root_loc {
	struct root r;
	bool found; /* ${sb} is the root's lstat() data */
	struct stat sb;
	const char *name; /* its last component: "." for "/" and "." */
	struct stat *up; /* the directories it is in, innermost first */
	size_t nup;
	bool drop;
};

static bool
same_file(const struct stat *a, const struct stat *c)
{
	return a->st_dev == c->st_dev && a->st_ino == c->st_ino;
}

/* The directories around ${l}: ${dir} is the one it is in (or, when
 * ${self}, the root itself, which is not counted).  As far as they can
 * be found; -1 only when out of memory. */
static int
root_up(struct root_loc *l, const char *dir, bool self)
{
	struct stat sb, prev;
	size_t cap = 0;
	int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);

	for (bool first = true; fd >= 0; first = false) {
		int up;

		if (fstat(fd, &sb) != 0 || (!first && same_file(&sb, &prev)))
			break; /* "/" is its own ".." */
		prev = sb;
		if (!(first && self)) {
			if (l->nup == cap) {
				size_t ncap = cap ? cap * 2 : 16;
				struct stat *nu
				    = realloc(l->up, ncap * sizeof(*nu));

				if (nu == NULL) {
					close(fd);
					err_set("out of memory");
					return -1;
				}
				l->up = nu;
				cap = ncap;
			}
			l->up[l->nup++] = sb;
		}
		up = openat(fd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
		close(fd);
		fd = up;
	}
	if (fd >= 0)
		close(fd);
	return 0;
}

/* Is ${in} the same place as ${out}, or inside it? */
static bool
root_within(const struct root_loc *in, const struct root_loc *out)
{
	if (!out->found || !in->found) {
		/* Not there (it records nothing): only the same path. */
		return !out->found && !in->found
		    && strcmp(in->r.arg, out->r.arg) == 0;
	}
	if (S_ISDIR(out->sb.st_mode)) {
		if (S_ISDIR(in->sb.st_mode) && same_file(&in->sb, &out->sb))
			return true;
		for (size_t i = 0; i < in->nup; i++)
			if (same_file(&in->up[i], &out->sb))
				return true;
		return false;
	}
	/* Not a directory: the same name in the same directory (another
	 * hard link is another entry). */
	return same_file(&in->sb, &out->sb) && in->nup && out->nup
	    && same_file(&in->up[0], &out->up[0])
	    && strcmp(in->name, out->name) == 0;
}

/* Would two recorded paths be the same entry, or one inside the other? */
static bool
root_names_overlap(const char *a, const char *c)
{
	size_t la = strlen(a), lc = strlen(c);

	if (strcmp(a, ".") == 0 || strcmp(c, ".") == 0)
		return true;
	if (la > lc)
		return root_names_overlap(c, a);
	return strncmp(a, c, la) == 0 && (c[la] == '\0' || c[la] == '/');
}

/* Is ${path} (${len} bytes) a directory, and not a symbolic link? */
static bool
root_real_dir(const char *path, size_t len)
{
	char *p = strndup(path, len);
	struct stat sb;
	bool r = p != NULL && lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode);

	free(p);
	return r;
}

/*
 * The command-line path ${given} without '.', empty and '..' components,
 * into ${*out} (allocated): "a/./b//" is "a/b", "./" is ".", "a/../b" is
 * "b" when a is a directory (not a symbolic link).  A '..' that cannot go
 * so, because it leaves the path (relative "../x") or follows a symbolic
 * link, is resolved by realpath() with what comes before it: the result
 * is then absolute.  -1 with the error recorded when that fails.
 */
static int
root_norm(const char *given, char **out)
{
	const bool abs = given[0] == '/';
	size_t len = strlen(given), n = 0, last_up = 0;
	char *s = malloc(len + 3), *lex = malloc(len + 3), *real = NULL;
	const char *p = given;
	bool need_real = false, any_up = false;

	*out = NULL;
	if (s == NULL || lex == NULL)
		goto oom;
	if (abs)
		s[n++] = '/';
	/* Components, without empty and '.' ones. */
	while (*p) {
		const char *e = strchr(p, '/');
		size_t cl = e ? (size_t)(e - p) : strlen(p);

		if (!(cl == 0 || (cl == 1 && p[0] == '.'))) {
			if (n && s[n - 1] != '/')
				s[n++] = '/';
			memcpy(s + n, p, cl);
			n += cl;
			if (cl == 2 && p[0] == '.' && p[1] == '.') {
				any_up = true;
				last_up = n;
			}
		}
		p += cl + (e != NULL);
	}
	s[n] = '\0';
	/* '..' lexically, where that is where the system would go too. */
	if (any_up) {
		size_t m = abs ? 1 : 0;

		memcpy(lex, s, m);
		for (p = s + m; *p && !need_real;) {
			const char *e = strchr(p, '/');
			size_t cl = e ? (size_t)(e - p) : strlen(p);

			if (cl == 2 && p[0] == '.' && p[1] == '.') {
				size_t top = m;

				while (
				    top > (abs ? 1 : 0) && lex[top - 1] != '/')
					top--;
				if (m == (abs ? 1u : 0u)) {
					/* "/.." is "/"; "../x" leaves. */
					need_real = !abs;
				} else if (root_real_dir(lex, m)) {
					m = top > (abs ? 1u : 0u) ? top - 1
					                          : top;
				} else {
					need_real = true;
				}
			} else {
				if (m > (abs ? 1u : 0u))
					lex[m++] = '/';
				memcpy(lex + m, p, cl);
				m += cl;
			}
			p += cl + (e != NULL);
		}
		lex[m] = '\0';
		/* "rl/in/.." is the directory rl leads to: "rl" would be
		 * the link itself. */
		if (!need_real && s[last_up] == '\0' && m > (abs ? 1u : 0u)
		    && !root_real_dir(lex, m))
			need_real = true;
		if (!need_real) {
			free(s);
			s = lex;
			lex = NULL;
		}
	}
	if (need_real) {
		char save = s[last_up];

		s[last_up] = '\0';
		if ((real = realpath(s, NULL)) == NULL) {
			err_setp("cannot find '%s'", given);
			goto fail;
		}
		s[last_up] = save;
		if (asprintf(out, "%s%s", strcmp(real, "/") == 0 ? "" : real,
		        s + last_up)
		    < 0) {
			*out = NULL;
			goto oom;
		}
		if ((*out)[0] == '\0') {
			free(*out);
			*out = strdup("/");
		}
	} else {
		*out = strdup(s[0] ? s : ".");
	}
	if (*out == NULL)
		goto oom;
	free(real);
	free(s);
	free(lex);
	return 0;
oom:
	err_set("out of memory");
fail:
	free(real);
	free(s);
	free(lex);
	return -1;
}

/*
 * The command-line paths, sorted as the log is, each once.  A path is
 * recorded as given without '.', empty and '..' components (root_norm)
 * and without the leading '/'.  A path that is the same place as another,
 * or inside it, is left out: the other one records it.  Two different
 * places that would be recorded under one name, or one inside the other
 * ("." and /elsewhere, a relative var/x and /var/x), are an error: the
 * snapshot could not tell them apart.
 */
static int
make_roots(const struct backup_options *o, struct root **out, size_t *nout)
{
	struct root_loc *l = calloc(o->npaths ? o->npaths : 1, sizeof(*l));
	struct root *roots = NULL;
	size_t n = 0, k = 0;
	int rc = -1;

	if (l == NULL) {
		err_set("out of memory");
		return -1;
	}
	for (; n < o->npaths; n++) {
		struct root_loc *r = &l[n];
		const char *rec, *slash;
		char *dir;

		if (o->paths[n][0] == '\0') {
			err_set("an empty path was given");
			goto out;
		}
		if (root_norm(o->paths[n], &r->r.arg))
			goto out;
		rec = r->r.arg;
		while (*rec == '/')
			rec++;
		r->r.path = strdup(*rec ? rec : ".");
		if (r->r.path == NULL) {
			n++;
			err_set("out of memory");
			goto out;
		}
		r->found = lstat(r->r.arg, &r->sb) == 0;
		slash = strrchr(r->r.arg, '/');
		if (strcmp(r->r.path, ".") == 0) {
			r->name = ".";
			dir = strdup(r->r.arg);
		} else {
			r->name = slash ? slash + 1 : r->r.arg;
			dir = slash == NULL ? strdup(".")
			    : slash == r->r.arg
			    ? strdup("/")
			    : strndup(r->r.arg, (size_t)(slash - r->r.arg));
		}
		if (dir == NULL) {
			n++;
			err_set("out of memory");
			goto out;
		}
		if (root_up(r, dir, strcmp(r->name, ".") == 0)) {
			free(dir);
			n++;
			goto out;
		}
		free(dir);
	}
	/* Same place: the first given stays.  Inside another: left out. */
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < n && !l[i].drop; j++) {
			if (j == i || l[j].drop || !root_within(&l[i], &l[j]))
				continue;
			l[i].drop = !root_within(&l[j], &l[i]) || j < i;
		}
	}
	for (size_t i = 0; i < n; i++) {
		for (size_t j = i + 1; j < n && !l[i].drop && l[i].found; j++) {
			if (l[j].drop || !l[j].found
			    || !root_names_overlap(l[i].r.path, l[j].r.path))
				continue;
			size_t in = strlen(l[i].r.path) < strlen(l[j].r.path)
			        || strcmp(l[i].r.path, ".") == 0
			    ? j
			    : i,
			       at = in == i ? j : i;
			const char *hint
			    = o->paths[i][0] != '/' || o->paths[j][0] != '/'
			    ? ", or give both as absolute paths"
			    : "";

			if (strcmp(l[i].r.path, l[j].r.path) == 0)
				err_set(
				    "'%s' and '%s' are different places but "
				    "would both be recorded as '%s': back them "
				    "up in separate snapshots%s",
				    o->paths[i], o->paths[j], l[i].r.path,
				    hint);
			else
				err_set(
				    "'%s' is not inside '%s' but would be "
				    "recorded inside it, as '%s': back them up "
				    "in separate snapshots%s",
				    o->paths[in], o->paths[at], l[in].r.path,
				    hint);
			goto out;
		}
	}
	if ((roots = calloc(n ? n : 1, sizeof(*roots))) == NULL) {
		err_set("out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (l[i].drop)
			continue;
		roots[k++] = l[i].r;
		l[i].r.arg = l[i].r.path = NULL;
	}
	qsort(roots, k, sizeof(*roots), cmp_roots);
	*out = roots;
	*nout = k;
	rc = 0;
out:
	for (size_t i = 0; i < n; i++) {
		free(l[i].r.arg);
		free(l[i].r.path);
		free(l[i].up);
	}
	free(l);
	return rc;
}

/* ---- descriptor and side files ---- */

static int
cmp_str(const void *a, const void *c)
{
	return strcmp(*(char *const *)a, *(char *const *)c);
}

static int
write_sha1sums(struct backup *b, char **segs, size_t nseg, const char *name,
    char sum[HASH_STR_MAX])
{
	struct buf out;
	char fname[512];
	int rc = -1;

	/*
	 * Every segment of the snapshot whose sha1 is known: those written
	 * now, and older ones the database recorded (ours and the original
	 * 0.9's record sha1; the original 0.11 recorded sha224 and a path in
	 * a subdirectory, which a flat .sha1sums cannot name).
	 */
	buf_init(&out, BUF_UNLIMITED);
	for (size_t i = 0; i < nseg; i++) {
		bool done = false;

		for (size_t j = 0; j < b->nsegs && !done; j++) {
			if (strcmp(b->segs[j].uuid, segs[i]) != 0)
				continue;
			if (buf_printf(&out, "%s *%s\n", b->segs[j].sha1 + 5,
				b->segs[j].name))
				goto out;
			done = true;
		}
		if (!done) {
			char *path = NULL, *known = NULL;
			int r = localdb_segment_file(b->db, segs[i], &path, &known);

			if (r == 1 && path && known && strchr(path, '/') == NULL &&
			    strncmp(known, "sha1=", 5) == 0 &&
			    buf_printf(&out, "%s *%s\n", known + 5, path))
				r = -1;
			free(path);
			free(known);
			if (r < 0)
				goto out;
		}
	}
	snprintf(fname, sizeof(fname), "snapshot-%s.sha1sums", name);
	if (hash_buffer(HASH_SHA1, out.data ? out.data : "", out.len, sum) ||
	    store_put(b->store, fname, out.data ? out.data : "", out.len, true))
		goto out;
	rc = 0;
out:
	buf_release(&out);
	return rc;
}

static int
put_descriptor(struct backup *b, const char *fname, const struct buf *text)
{
	struct store_writer *w;
	int in = -1;

	if (b->o->signature_filter == NULL)
		return store_put(b->store, fname, text->data, text->len, true);
	/* The signature filter reads the text from a temp file and writes
	 * the signed descriptor straight into the store's temp file. */
	in = open(getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
	    O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (in < 0) {
		err_setp("cannot create a temporary file");
		return -1;
	}
	if (fileio_write_full(in, text->data, text->len) ||
	    lseek(in, 0, SEEK_SET) != 0 || store_create(b->store, fname, &w)) {
		close(in);
		return -1;
	}
	{
		pid_t pid;
		int rc = run_spawn_sh(b->o->signature_filter, in,
		    store_writer_fd(w), &pid);

		close(in);
		if (rc == 0)
			rc = run_wait(pid, b->o->signature_filter);
		if (rc) {
			err_prefix("signature filter");
			store_writer_abort(w);
			return -1;
		}
	}
	return store_writer_commit(w, true);
}

static int
write_descriptor(struct backup *b, const char *name, const char *ts_local,
    const struct buf *root)
{
	char **segs = NULL;
	size_t nseg = 0;
	char sum[HASH_STR_MAX], fname[512];
	struct buf d;
	int rc = -1;

	if (localdb_snapshot_segments(b->db, &segs, &nseg))
		return -1;
	qsort(segs, nseg, sizeof(*segs), cmp_str);
	buf_init(&d, BUF_UNLIMITED);
	if (write_sha1sums(b, segs, nseg, name, sum))
		goto out;
	if (buf_printf(&d,
		"Format: Cumulus Snapshot v0.11\n"
		"Producer: Cumulus %s (cumulus-c)\n"
		"Date: %s\n",
		CUMULUS_VERSION, ts_local))
		goto out;
	if (b->o->scheme && buf_printf(&d, "Scheme: %s\n", b->o->scheme))
		goto out;
	if (buf_printf(&d, "Backup-Intent: %g\nRoot: %s\nChecksums: %s\nSegments:\n",
		b->o->intent > 0 ? b->o->intent : 1.0, root->data, sum))
		goto out;
	for (size_t i = 0; i < nseg; i++)
		if (buf_printf(&d, "    %s\n", segs[i]))
			goto out;
	snprintf(fname, sizeof(fname), "snapshot-%s.lbs", name);
	/* The commit point: once this file exists the snapshot is whole. */
	rc = put_descriptor(b, fname, &d);
	if (rc) {
		/* Leave no checksum file without its descriptor. */
		snprintf(fname, sizeof(fname), "snapshot-%s.sha1sums", name);
		store_delete(b->store, fname);
	}
out:
	buf_release(&d);
	localdb_free_list(segs, nseg);
	return rc;
}

/* ---- the whole backup ---- */

static void
collect_group(void *arg, const char *group, uint64_t raw, uint64_t stored)
{
	struct backup_result *res = arg;

	if (res->ngroups < sizeof(res->groups) / sizeof(res->groups[0])) {
		snprintf(res->groups[res->ngroups].group,
		    sizeof(res->groups[0].group), "%s", group);
		res->groups[res->ngroups].raw = raw;
		res->groups[res->ngroups].stored = stored;
		res->ngroups++;
	}
}

struct uuids {
	char **v;
	size_t n;
};

static int
add_uuid(void *arg, const char *uuid, const char *path)
{
	struct uuids *u = arg;
	char **nv;

	(void)path;
	if ((nv = realloc(u->v, (u->n + 1) * sizeof(*nv))) == NULL ||
	    (nv[u->n] = strdup(uuid)) == NULL) {
		if (nv)
			u->v = nv;
		err_set("out of memory");
		return -1;
	}
	u->v = nv;
	u->n++;
	return 0;
}

/* The last gc record this database has seen (in its directory). */
#define GC_SEEN_FILE "gc-seen"

/*
 * Whether a gc ran since this database last looked: the store's record
 * differs from the copy kept beside the database.
 */
static int
gc_seen(struct backup *b)
{
	const char *dir = b->o->localdb ? b->o->localdb :
	    store_local_dir(b->store);
	struct buf seen, path;
	int rc = 0;

	if (lease_last_gc(b->store, b->gc_mark, sizeof(b->gc_mark)))
		return -1;
	if (b->gc_mark[0] == '\0' || dir == NULL)
		return 0;
	buf_init(&seen, 4096);
	buf_init(&path, BUF_UNLIMITED);
	if (buf_printf(&path, "%s/%s", dir, GC_SEEN_FILE))
		rc = -1;
	else if (fileio_read_file(buf_str(&path), &seen) ||
	    strcmp(buf_str(&seen), b->gc_mark) != 0)
		b->gc_check = true;
	err_clear();
	buf_release(&seen);
	buf_release(&path);
	return rc;
}

/*
 * Objects of segments the store no longer has (deleted by a gc that ran
 * without this database) must never be reused: the store is listed after
 * the lease handshake, so no gc deletes anything from here on.
 */
static int
mark_absent(struct backup *b)
{
	struct uuids u = { NULL, 0 };
	int rc = -1;

	if (!b->gc_check || !lease_supported(b->store))
		return 0;
	if (snapshot_each_segment(b->store, add_uuid, &u) == 0) {
		if (u.n)
			qsort(u.v, u.n, sizeof(*u.v), cmp_str);
		rc = localdb_mark_absent_segments(b->db, u.v, u.n) < 0 ?
		    -1 : 0;
	}
	localdb_free_list(u.v, u.n);
	return rc;
}

/*
 * One more worker than cores by default: with one per core, a worker woken
 * while both cores are busy can wait queued there for up to a scheduler
 * tick although the other core has just gone idle (the benchmark
 * machine's kernel sees no cache shared between its two cores, so it
 * neither places a woken thread on the idle core nor moves it there
 * before its periodic balance); a third worker is more often runnable on
 * the idle core.  Initial backup of the linux tree, interleaved rounds
 * against two workers: 2-4 % less wall time (median of the paired ratios
 * in four sets, 27 of 40 pairs faster), the same CPU time, 2 MiB more
 * peak memory (docs/design.md).
 */
int
backup_worker_count(int threads, long cores)
{
	if (threads > 0)
		return threads;
	if (cores <= 1)
		return 1;
	return cores >= 64 ? 64 : (int)cores + 1;
}

/* ${n} read-ahead workers (backup_worker_count()), when more than one. */
static int
start_prefetch(struct backup *b, int n)
{
	if (n < 2)
		return 0;
	if ((b->pq = calloc(PQ_MAX, sizeof(*b->pq))) == NULL) {
		err_set("out of memory");
		return -1;
	}
	return prefetch_create(n > 64 ? 64 : n, &b->pf);
}

int
backup_check_scheme(const char *s)
{
	if (s == NULL)
		return 0;
	if (s[0] == '\0' || strpbrk(s, "/ \t\n\r") != NULL || s[0] == '.') {
		err_set("invalid scheme name '%s' (no '/', whitespace or leading "
			"'.')",
		    s);
		return -1;
	}
	return 0;
}

static void
raise_fd_limit(void)
{
	struct rlimit rl;

	/* The walk keeps one descriptor per directory level. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int
backup_run(const struct backup_options *o, const struct backup_callbacks *cb,
    struct backup_result *res)
{
	struct backup b;
	struct segment_config cfg;
	struct root *roots = NULL;
	size_t nroots = 0;
	struct buf root;
	char ts[32], ts_local[64], fname[512];
	struct tm tm;
	int rc = -1;
	bool committed = false;
	/* Several threads: the walk, new rows for SQLite and the read-ahead
	 * each run on threads of their own. */
	const int workers = backup_worker_count(o->threads,
	    sysconf(_SC_NPROCESSORS_ONLN));
	const bool threads = workers > 1;

	memset(&b, 0, sizeof(b));
	memset(res, 0, sizeof(*res));
	b.o = o;
	b.cb = cb;
	b.res = res;
	stanza_init(&b.st);
	buf_init(&b.text, BUF_UNLIMITED);
	buf_init(&b.data, BUF_UNLIMITED);
	buf_init(&b.tmp, BUF_UNLIMITED);
	buf_init(&root, BUF_UNLIMITED);
	run_ignore_sigpipe();
	raise_fd_limit();
	if (backup_check_scheme(o->scheme) || make_roots(o, &roots, &nroots))
		goto out;
	if (store_open(o->dest, true, &b.store))
		goto out;
	/* Snapshot names have one-second resolution: never reuse one. */
	for (;;) {
		struct timespec now, rest = { 0, 0 };
		uint64_t size;
		int st;

		/* Not time(): its coarse clock may still say the second
		 * waited out below. */
		if (clock_gettime(CLOCK_REALTIME, &now))
			now = (struct timespec){ time(NULL), 0 };
		b.now = now.tv_sec;
		gmtime_r(&b.now, &tm);
		strftime(ts, sizeof(ts), "%Y%m%dT%H%M%S", &tm);
		snprintf(res->name, sizeof(res->name), "%s%s%s",
		    o->scheme ? o->scheme : "", o->scheme ? "-" : "", ts);
		snprintf(fname, sizeof(fname), "snapshot-%s.lbs", res->name);
		st = store_stat(b.store, fname, &size);
		if (st < 0)
			goto out;
		/* A failed or killed backup may have left its .sha1sums
		 * behind (it is written before the descriptor). */
		if (st == 1) {
			snprintf(fname, sizeof(fname), "snapshot-%s.sha1sums",
			    res->name);
			st = store_stat(b.store, fname, &size);
			if (st < 0)
				goto out;
		}
		if (st == 1)
			break;
		/* Taken: wait for the next second, not a whole one. */
		rest.tv_nsec = 1000000000L - now.tv_nsec;
		while (nanosleep(&rest, &rest) && errno == EINTR)
			;
	}
	localtime_r(&b.now, &tm);
	strftime(ts_local, sizeof(ts_local), "%Y-%m-%d %H:%M:%S %z", &tm);
	b.block = malloc(BLOCK_SIZE);
	b.sub = calloc(1, sizeof(*b.sub));
	if (b.sub) {
		buf_init(&b.sub->litsig, BUF_UNLIMITED);
		b.sub->chunk = malloc(CHUNKER_MAX);
		b.sub->lit = malloc(BLOCK_SIZE);
	}
	if (b.block == NULL || b.sub == NULL || b.sub->chunk == NULL ||
	    b.sub->lit == NULL) {
		err_set("out of memory");
		goto out;
	}
	/* The database directory is private: it names every file backed up. */
	if (o->localdb && fileio_mkdir_p(o->localdb, 0700)) {
		err_prefix("cannot create local database directory '%s'",
		    o->localdb);
		goto out;
	}
	/* Only a local store can hold the database by default. */
	if (o->localdb == NULL && store_local_dir(b.store) == NULL) {
		err_set("a remote store needs --localdb");
		goto out;
	}
	/* Announce this backup to gc, and let a running gc finish first
	 * (lease.h). */
	if (lease_take(b.store, "backup", &b.lease) ||
	    lease_wait(b.store, "gc", LEASE_GC_WAIT, &b.gc_check) ||
	    gc_seen(&b))
		goto out;
	if (localdb_open(o->localdb ? o->localdb : store_local_dir(b.store),
		&b.db))
		goto out;
	localdb_set_background(b.db, threads);
	if (localdb_begin_snapshot(b.db, ts, o->scheme, o->intent) ||
	    mark_absent(&b) ||
	    localdb_legacy_algorithms(b.db, &b.legacy_algs))
		goto out;
	/* What a killed backup left: only backups write statcaches, and
	 * this one now holds the database's write lock. */
	statcache_clean_temps(o->localdb ? o->localdb : store_local_dir(b.store));
	if (statcache_open(o->localdb ? o->localdb : store_local_dir(b.store),
		o->scheme, &b.sc) ||
	    statcache_writer_open(o->localdb ? o->localdb
					     : store_local_dir(b.store),
		o->scheme, &b.scw))
		goto out;
	memset(&cfg, 0, sizeof(cfg));
	cfg.filter = o->filter;
	cfg.extension = o->filter_extension;
	cfg.target_size = o->segment_size;
	cfg.threads = workers;
	if (segment_writer_open(b.store, &cfg, on_segment, &b, &b.sw) ||
	    metalog_open(b.sw, b.db, b.scw, &b.ml))
		goto out;
	if (start_prefetch(&b, workers))
		goto out;
	if (dump_roots(&b, roots, nroots, threads))
		goto out;
	if (pq_drain(&b))
		goto out;
	pq_free(&b);
	{
		struct metalog *ml = b.ml;

		b.ml = NULL;
		if (metalog_finish(ml, &root))
			goto out;
	}
	if (segment_writer_finish(b.sw))
		goto out;
	segment_writer_stats(b.sw, collect_group, res);
	/* A lease gone stale may mean a gc deleted what this reuses. */
	if (lease_check(b.lease) ||
	    write_descriptor(&b, res->name, ts_local, &root))
		goto out;
	committed = true;
	/* Every file was confirmed; an upload helper that then fails is
	 * worth a warning (as in the original), not the snapshot. */
	if (store_finish(b.store))
		warnf(&b, "%s, after every file was confirmed", err_msg());
	/*
	 * The snapshot is in the store.  Now the database may say so, and
	 * then the statcache may point at it; a crash between these steps
	 * leaves an older but consistent view, so the next backup only
	 * stores a little more.
	 */
	if (localdb_commit_snapshot(b.db)) {
		err_prefix("snapshot %s was written, but the local database "
			   "could not record it",
		    res->name);
		goto out;
	}
	/* Only now has this database caught up with that gc. */
	if (b.gc_check && b.gc_mark[0] &&
	    fileio_publish(b.o->localdb ? b.o->localdb :
	    store_local_dir(b.store), GC_SEEN_FILE, b.gc_mark,
	    strlen(b.gc_mark), false))
		err_clear();
	{
		struct statcache_writer *w = b.scw;

		b.scw = NULL;
		if (statcache_writer_commit(w)) {
			err_prefix("snapshot %s was written, but the statcache "
				   "could not be saved",
			    res->name);
			goto out;
		}
	}
	progress(&b, true);
	rc = 0;
out:
	if (rc && committed)
		warnf(&b, "%s", err_msg());
	pq_free(&b);
	metalog_free(b.ml);
	segment_writer_free(b.sw);
	statcache_writer_abort(b.scw);
	statcache_close(b.sc);
	localdb_close(b.db);
	lease_release(b.lease);
	store_close(b.store);
	for (size_t i = 0; i < nroots; i++) {
		free(roots[i].arg);
		free(roots[i].path);
	}
	free(roots);
	for (size_t i = 0; i < b.nsegs; i++)
		free(b.segs[i].name);
	free(b.segs);
	for (size_t i = 0; i < b.nusers; i++)
		free(b.users[i].name);
	for (size_t i = 0; i < b.ngroups; i++)
		free(b.groups[i].name);
	hasher_destroy(b.hasher);
	free(b.cuts[0].chunk);
	free(b.cuts[1].chunk);
	free(b.block2);
	free(b.block);
	if (b.sub) {
		sub_free(b.sub);
		free(b.sub);
	}
	stanza_release(&b.st);
	buf_release(&b.text);
	buf_release(&b.data);
	buf_release(&b.tmp);
	buf_release(&root);
	return committed ? 0 : rc;
}
