/*
 * snapshot: the snapshot reader (see snapshot.h).  Everything read from
 * the store is hostile: sizes are bounded, references are checked against
 * the objects they name, includes are depth-limited and cycle-checked.
 */
#include "snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "codec.h"
#include "err.h"
#include "escape.h"
#include "fileio.h"
#include "hash.h"
#include "sigcheck.h"
#include "source.h"
#include "store.h"
#include "tar.h"

/* Directories and suffixes searched for segments, in order. */
static const char *const seg_dirs[] = { "segments0", "segments1", "",
	"segments" };
static const char *const seg_suffixes[] = { ".tar.zst", ".tar.gpg",
	".tar.gz", ".tar.bz2", ".tar.xz", ".tar" };
/* Bound of objects read into memory (metadata, indirect lists). */
#define OBJECT_MEM_MAX ((size_t)64 << 20)
/* Bound of include lines expanded in one log (defeats include bombs). */
#define MAX_INCLUDES ((uint64_t)1 << 26)
/* Bound of the bytes a metadata log's includes expand to, all counted:
 * each include re-reads its object, so a few small objects that include
 * large ones several times could keep a restore busy for days.  16 GiB
 * is the metadata of some 80 million files. */
#define META_EXPAND_MAX ((uint64_t)16 << 30)
/* Largest file size we believe. */
#define FILE_SIZE_MAX ((uint64_t)1 << 44)

struct object {
	uint64_t seq;
	size_t off, len;
	char *verified; /* checksum string already verified, or NULL */
};

struct segment {
	char uuid[REF_SEGMENT_MAX + 1];
	bool failed;    /* could not be read: msg says why */
	bool streaming; /* read per object (else decoded whole in data) */
	bool whole_tried; /* segment_load() ran: do not decode it again */
	unsigned reopens; /* times the cursor had to go backwards */
	int raw_fd; /* the stored file, kept so a reopen does not fetch it
		     * again from a remote store; -1 until opened */
	char *msg;
	char *path;
	struct buf data;
	struct object *objs;
	size_t nobjs;
	uint64_t used; /* LRU clock */
	/* Streaming segments keep a decoder open between fetches. */
	bool cursor_open;
	struct source cursor_dec;
	struct tar_reader cursor_tr;
	uint64_t cursor_next; /* members before this seq are consumed */
};

/*
 * The recently read objects of streamed segments: slots in a hash table
 * (chained through hnext) and in a list from most to least recently used
 * (prev/next; free slots are chained through next).
 */
#define OCACHE_SLOTS 512
#define OCACHE_BUCKETS 1024

struct cached_object {
	char uuid[REF_SEGMENT_MAX + 1];
	uint64_t seq;
	unsigned char *data;
	size_t len;
	char *verified; /* checksum string already verified, or NULL */
	int hnext, prev, next;
};

struct object_cache {
	struct cached_object slot[OCACHE_SLOTS];
	int bucket[OCACHE_BUCKETS];
	int head, tail, free;
	size_t bytes;
};

/*
 * The reads a restore announced (snapshot_plan_file): how many are left
 * for each object, keyed by a 64-bit hash of the segment name (never 0)
 * and the object number.  A collision of two segment hashes could only
 * make an object be kept or dropped wrongly, never read wrongly (a spilled
 * object records its segment's name).  Objects to be read again that
 * leave the memory cache are spilled to an unlinked temporary file.
 */
struct plan_entry {
	uint64_t segkey, seq;
	uint32_t left;
	uint32_t spill; /* index + 1 in spills, or 0 */
};

struct spilled {
	char uuid[REF_SEGMENT_MAX + 1];
	uint64_t seq, off, len;
	char *verified; /* checksum string already verified, or NULL */
};

struct plan {
	struct plan_entry *e; /* open addressing; segkey 0: empty */
	size_t cap, n;
	bool active; /* a read was planned: keep only what is read again */
	bool ended;  /* snapshot_plan_end() ran: every read is planned */
	int spill_fd; /* -1: not created (or failed: spill nothing) */
	bool spill_failed;
	uint64_t spill_end;
	struct spilled *spills;
	size_t nspills, cap_spills;
};

struct snapshot {
	struct store *st;
	char *name;
	char *desc_path;
	struct descriptor desc;
	bool v011;
	char signer[SIGCHECK_FPR_MAX + 1]; /* "" unless checked */
	struct segment cache[SNAPSHOT_CACHE_SEGMENTS];
	size_t nslots; /* entries of cache[] in use */
	struct object_cache objects;
	struct plan plan;
	uint64_t clock;
	char **touched;
	size_t ntouched, cap_touched;
};

static void segment_drop(struct segment *g);
static void object_cache_clear(struct snapshot *s);

/* ---- planned reads ---- */

static uint64_t
plan_segkey(const char *uuid)
{
	return fnv1a(uuid, strlen(uuid)) | 1;
}

static struct plan_entry *
plan_slot(const struct plan *pl, uint64_t segkey, uint64_t seq)
{
	size_t i = (size_t)((segkey ^ (seq * 0x9e3779b97f4a7c15u)) >> 7) &
	    (pl->cap - 1);

	while (pl->e[i].segkey != 0 &&
	    (pl->e[i].segkey != segkey || pl->e[i].seq != seq))
		i = (i + 1) & (pl->cap - 1);
	return &pl->e[i];
}

/* Rebuild the table with ${cap} slots, keeping entries with at least
 * ${min_left} reads left.  0 or -1. */
static int
plan_rehash(struct plan *pl, size_t cap, uint32_t min_left)
{
	struct plan_entry *old = pl->e;
	size_t old_cap = pl->cap;

	pl->e = calloc(cap, sizeof(*pl->e));
	if (pl->e == NULL) {
		pl->e = old;
		err_set("out of memory");
		return -1;
	}
	pl->cap = cap;
	pl->n = 0;
	for (size_t i = 0; i < old_cap; i++)
		if (old[i].segkey != 0 && old[i].left >= min_left) {
			*plan_slot(pl, old[i].segkey, old[i].seq) = old[i];
			pl->n++;
		}
	free(old);
	return 0;
}

static int
plan_add(struct plan *pl, const char *uuid, uint64_t seq)
{
	uint64_t key = plan_segkey(uuid);
	struct plan_entry *e;

	/* At most 3/4 full: 24 bytes a slot, for every object of a tree. */
	if (4 * (pl->n + 1) > 3 * pl->cap &&
	    plan_rehash(pl, pl->cap ? pl->cap * 2 : 4096, 0))
		return -1;
	e = plan_slot(pl, key, seq);
	if (e->segkey == 0) {
		e->segkey = key;
		e->seq = seq;
		pl->n++;
	}
	if (e->left < UINT32_MAX)
		e->left++;
	pl->active = true;
	return 0;
}

static struct plan_entry *
plan_find(const struct plan *pl, const char *uuid, uint64_t seq)
{
	struct plan_entry *e;

	if (pl->n == 0)
		return NULL;
	e = plan_slot(pl, plan_segkey(uuid), seq);
	return e->segkey != 0 ? e : NULL;
}

/* Count one read of object ${seq} of ${uuid}: whether to keep it after
 * this read.  Before the plan is complete, an object it does not name
 * (the metadata log, whose new version reads slices of the old one) may
 * be read again; after, only the planned reads are left. */
static bool
plan_take(struct plan *pl, const char *uuid, uint64_t seq)
{
	struct plan_entry *e;

	if (!pl->active)
		return true;
	e = plan_find(pl, uuid, seq);
	if (e == NULL)
		return !pl->ended;
	if (e->left > 0)
		e->left--;
	return e->left > 0;
}

int
snapshot_plan_file(struct snapshot *s, const struct stanza *st)
{
	size_t n, pos = 0;
	const char *v = stanza_get(st, "data", &n);

	while (v != NULL && pos < n) {
		size_t start;
		struct ref r;

		while (pos < n && (v[pos] == ' ' || v[pos] == '\t' ||
				      v[pos] == '\n' || v[pos] == '\r'))
			pos++;
		start = pos;
		while (pos < n && v[pos] != ' ' && v[pos] != '\t' &&
		    v[pos] != '\n' && v[pos] != '\r')
			pos++;
		/* Indirect lists and bad references are left to the read. */
		if (pos == start || v[start] == '@' ||
		    ref_parse(v + start, pos - start, &r) != 0 ||
		    r.kind != REF_OBJECT)
			continue;
		if (plan_add(&s->plan, r.segment, r.seq))
			return -1;
	}
	return 0;
}

int
snapshot_plan_end(struct snapshot *s)
{
	struct plan *pl = &s->plan;
	size_t cap = 4096, kept = 0;

	/* An object read once is never kept: only the others need a slot. */
	for (size_t i = 0; i < pl->cap; i++)
		if (pl->e[i].segkey != 0 && pl->e[i].left >= 2 &&
		    4 * (++kept) > 3 * cap)
			cap *= 2;
	pl->ended = true;
	/* The metadata log is read: free its decoders before the data,
	 * which needs fewer. */
	for (size_t i = 0; i < SNAPSHOT_CACHE_SEGMENTS; i++) {
		segment_drop(&s->cache[i]);
		if (i >= SNAPSHOT_DATA_SEGMENTS)
			buf_release(&s->cache[i].data);
	}
	s->nslots = SNAPSHOT_DATA_SEGMENTS;
	object_cache_clear(s);
	return pl->cap ? plan_rehash(pl, cap, 2) : 0;
}

/* Write object ${data} to the spill file for its later reads.  Failing
 * (a full disk) only means it will be decoded again. */
static void
spill_put(struct plan *pl, struct plan_entry *e, const char *uuid,
    uint64_t seq, const unsigned char *data, size_t len, const char *verified)
{
	struct spilled *sp;
	size_t done = 0;

	if (pl->spill_failed)
		return;
	if (pl->spill_fd < 0) {
		pl->spill_fd = fileio_anon_temp();
		if (pl->spill_fd < 0) {
			pl->spill_failed = true;
			return;
		}
	}
	if (pl->nspills == pl->cap_spills) {
		size_t ncap = pl->cap_spills ? pl->cap_spills * 2 : 64;
		struct spilled *nv = realloc(pl->spills, ncap * sizeof(*nv));

		if (nv == NULL)
			return;
		pl->spills = nv;
		pl->cap_spills = ncap;
	}
	while (done < len) {
		ssize_t w = pwrite(pl->spill_fd, data + done, len - done,
		    (off_t)(pl->spill_end + done));

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			(void)ftruncate(pl->spill_fd, (off_t)pl->spill_end);
			return;
		}
		done += (size_t)w;
	}
	sp = &pl->spills[pl->nspills++];
	snprintf(sp->uuid, sizeof(sp->uuid), "%s", uuid);
	sp->seq = seq;
	sp->off = pl->spill_end;
	sp->len = len;
	sp->verified = verified ? strdup(verified) : NULL;
	pl->spill_end += len;
	e->spill = (uint32_t)pl->nspills;
}

/* ---- recently read objects ---- */

static void
object_cache_init(struct object_cache *oc)
{
	for (int i = 0; i < OCACHE_BUCKETS; i++)
		oc->bucket[i] = -1;
	for (int i = 0; i < OCACHE_SLOTS; i++)
		oc->slot[i].next = i + 1 < OCACHE_SLOTS ? i + 1 : -1;
	oc->free = 0;
	oc->head = oc->tail = -1;
	oc->bytes = 0;
}

static unsigned
object_cache_hash(const char *uuid, uint64_t seq)
{
	uint64_t h = plan_segkey(uuid) ^ (seq * 0x9e3779b97f4a7c15u);

	return (unsigned)((h ^ (h >> 29)) % OCACHE_BUCKETS);
}

static void
object_cache_unlink(struct object_cache *oc, int i)
{
	struct cached_object *c = &oc->slot[i];

	if (c->prev >= 0)
		oc->slot[c->prev].next = c->next;
	else
		oc->head = c->next;
	if (c->next >= 0)
		oc->slot[c->next].prev = c->prev;
	else
		oc->tail = c->prev;
}

static void
object_cache_push(struct object_cache *oc, int i)
{
	struct cached_object *c = &oc->slot[i];

	c->prev = -1;
	c->next = oc->head;
	if (oc->head >= 0)
		oc->slot[oc->head].prev = i;
	else
		oc->tail = i;
	oc->head = i;
}

/* Object ${seq} of segment ${uuid}, made the most recently used; or NULL. */
static struct cached_object *
object_cache_find(struct object_cache *oc, const char *uuid, uint64_t seq)
{
	for (int i = oc->bucket[object_cache_hash(uuid, seq)]; i >= 0;
	     i = oc->slot[i].hnext) {
		struct cached_object *c = &oc->slot[i];

		if (c->seq == seq && strcmp(c->uuid, uuid) == 0) {
			if (oc->head != i) {
				object_cache_unlink(oc, i);
				object_cache_push(oc, i);
			}
			return c;
		}
	}
	return NULL;
}

/* Drop the object in slot ${i}; spill it first if planned reads are left
 * and ${spill}. */
static void
object_cache_remove(struct snapshot *s, int i, bool spill)
{
	struct object_cache *oc = &s->objects;
	struct cached_object *c = &oc->slot[i];
	int *link = &oc->bucket[object_cache_hash(c->uuid, c->seq)];
	struct plan_entry *e;

	if (spill && (e = plan_find(&s->plan, c->uuid, c->seq)) != NULL &&
	    e->left > 0 && e->spill == 0)
		spill_put(&s->plan, e, c->uuid, c->seq, c->data, c->len,
		    c->verified);
	while (*link != i)
		link = &oc->slot[*link].hnext;
	*link = c->hnext;
	object_cache_unlink(oc, i);
	oc->bytes -= c->len;
	free(c->data);
	free(c->verified);
	c->data = NULL;
	c->verified = NULL;
	c->next = oc->free;
	oc->free = i;
}

/* Keep ${data} (malloc'd, ${len} bytes; taken over) as object ${seq} of
 * ${uuid}, which is not in the cache. */
static struct cached_object *
object_cache_add(struct snapshot *s, const char *uuid, uint64_t seq,
    unsigned char *data, size_t len)
{
	struct object_cache *oc = &s->objects;
	struct cached_object *c;
	unsigned b = object_cache_hash(uuid, seq);
	int i;

	while (oc->tail >= 0 &&
	    (oc->free < 0 || oc->bytes + len > SNAPSHOT_OBJECT_CACHE_BYTES))
		object_cache_remove(s, oc->tail, true);
	i = oc->free;
	c = &oc->slot[i];
	oc->free = c->next;
	snprintf(c->uuid, sizeof(c->uuid), "%s", uuid);
	c->seq = seq;
	c->data = data;
	c->len = len;
	c->verified = NULL;
	c->hnext = oc->bucket[b];
	oc->bucket[b] = i;
	object_cache_push(oc, i);
	oc->bytes += len;
	return c;
}

static void
object_cache_clear(struct snapshot *s)
{
	while (s->objects.tail >= 0)
		object_cache_remove(s, s->objects.tail, false);
}

/* ---- locating files ---- */

static int
add_name(char ***names, size_t *n, size_t *cap, const char *s, size_t len)
{
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		char **nv = realloc(*names, ncap * sizeof(*nv));

		if (nv == NULL)
			goto nomem;
		*names = nv;
		*cap = ncap;
	}
	(*names)[*n] = strndup(s, len);
	if ((*names)[*n] == NULL)
		goto nomem;
	(*n)++;
	return 0;
nomem:
	err_set("out of memory");
	return -1;
}

struct name_list {
	char **v;
	size_t n, cap;
};

static int
collect_snapshot(void *arg, const char *name)
{
	struct name_list *l = arg;
	size_t len = strlen(name);
	const char *ext = NULL;

	if (strncmp(name, "snapshot-", 9) != 0)
		return 0;
	if (len > 9 + 8 && strcmp(name + len - 8, ".cumulus") == 0)
		ext = name + len - 8;
	else if (len > 9 + 4 && strcmp(name + len - 4, ".lbs") == 0)
		ext = name + len - 4;
	if (ext == NULL)
		return 0;
	return add_name(&l->v, &l->n, &l->cap, name + 9,
	    (size_t)(ext - name) - 9);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void
snapshot_names_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

int
snapshot_list_names(struct store *st, char ***names, size_t *n)
{
	struct name_list l = { NULL, 0, 0 };
	size_t out = 0;

	if (store_list(st, "snapshots", collect_snapshot, &l) ||
	    store_list(st, "", collect_snapshot, &l)) {
		snapshot_names_free(l.v, l.n);
		return -1;
	}
	if (l.n)
		qsort(l.v, l.n, sizeof(*l.v), cmp_str);
	for (size_t i = 0; i < l.n; i++) {
		if (out > 0 && strcmp(l.v[out - 1], l.v[i]) == 0)
			free(l.v[i]);
		else
			l.v[out++] = l.v[i];
	}
	*names = l.v;
	*n = out;
	return 0;
}

int
snapshot_find_descriptor(struct store *st, const char *name, char **path)
{
	static const char *const dir[] = { "snapshots/", "snapshots/", "",
		"" };
	static const char *const ext[] = { ".cumulus", ".lbs", ".cumulus",
		".lbs" };
	struct buf b;

	/* A name with a slash would escape the naming scheme. */
	if (name[0] == '\0' || strchr(name, '/') || strlen(name) > 1000) {
		err_set("invalid snapshot name '%.100s'", name);
		return -1;
	}
	buf_init(&b, 4096);
	for (size_t i = 0; i < 4; i++) {
		uint64_t size;
		int r;

		buf_reset(&b);
		if (buf_printf(&b, "%ssnapshot-%s%s", dir[i], name, ext[i]))
			goto fail;
		r = store_stat(st, b.data, &size);
		if (r < 0)
			goto fail;
		if (r == 0) {
			*path = buf_detach(&b, NULL);
			return 0;
		}
	}
	buf_release(&b);
	return 1;
fail:
	buf_release(&b);
	return -1;
}

struct seg_search {
	const char *uuid;
	const char *dir;
	char *found;
};

static int
match_segment(void *arg, const char *name)
{
	struct seg_search *s = arg;
	size_t ul = strlen(s->uuid);

	if (strncmp(name, s->uuid, ul) != 0 || strncmp(name + ul, ".tar", 4) ||
	    !codec_known(name))
		return 0;
	if (s->dir[0])
		s->found = malloc(strlen(s->dir) + strlen(name) + 2);
	else
		s->found = malloc(strlen(name) + 1);
	if (s->found == NULL) {
		err_set("out of memory");
		return -1;
	}
	if (s->dir[0])
		sprintf(s->found, "%s/%s", s->dir, name);
	else
		strcpy(s->found, name);
	return 1;
}

int
snapshot_find_segment(struct store *st, const char *uuid, char **path)
{
	struct buf b;

	if (uuid[0] == '\0' || strlen(uuid) > REF_SEGMENT_MAX ||
	    strspn(uuid, "0123456789abcdef-") != strlen(uuid)) {
		err_set("invalid segment name '%.80s'", uuid);
		return -1;
	}
	buf_init(&b, 4096);
	for (size_t d = 0; d < 4; d++)
		for (size_t x = 0; x < sizeof(seg_suffixes) / sizeof(*seg_suffixes);
		     x++) {
			uint64_t size;
			int r;

			buf_reset(&b);
			if (buf_printf(&b, "%s%s%s%s", seg_dirs[d],
				seg_dirs[d][0] ? "/" : "", uuid, seg_suffixes[x]))
				goto fail;
			r = store_stat(st, b.data, &size);
			if (r < 0)
				goto fail;
			if (r == 0) {
				*path = buf_detach(&b, NULL);
				return 0;
			}
		}
	buf_release(&b);
	/* Any other decodable "<uuid>.tar*" name, found by listing. */
	for (size_t d = 0; d < 4; d++) {
		struct seg_search s = { uuid, seg_dirs[d], NULL };
		int r = store_list(st, seg_dirs[d], match_segment, &s);

		if (r < 0)
			return -1;
		if (s.found) {
			*path = s.found;
			return 0;
		}
	}
	return 1;
fail:
	buf_release(&b);
	return -1;
}

struct each_seg {
	const char *dir;
	int (*cb)(void *arg, const char *uuid, const char *path);
	void *arg;
};

static int
each_seg_cb(void *arg, const char *name)
{
	struct each_seg *e = arg;
	size_t ul = strspn(name, "0123456789abcdef-");
	char uuid[REF_SEGMENT_MAX + 1];
	struct buf p;
	int rc;

	/* <uuid>.tar[.ext], the uuid 8-4-4-4-12 long. */
	if (ul != 36 || strncmp(name + ul, ".tar", 4) != 0)
		return 0;
	memcpy(uuid, name, ul);
	uuid[ul] = '\0';
	buf_init(&p, 4096);
	if (buf_printf(&p, "%s%s%s", e->dir, e->dir[0] ? "/" : "", name)) {
		buf_release(&p);
		return -1;
	}
	rc = e->cb(e->arg, uuid, p.data);
	buf_release(&p);
	return rc;
}

int
snapshot_each_segment(struct store *st,
    int (*cb)(void *arg, const char *uuid, const char *path), void *arg)
{
	for (size_t d = 0; d < 4; d++) {
		struct each_seg e = { seg_dirs[d], cb, arg };
		int r = store_list(st, seg_dirs[d], each_seg_cb, &e);

		if (r)
			return r;
	}
	return 0;
}

int
snapshot_read_side_file(struct store *st, const char *path, size_t max,
    struct buf *out)
{
	struct source raw, dec;
	const char *base = strrchr(path, '/');
	const char *dot;
	char ext[32] = "";
	int fd, r;

	base = base ? base + 1 : path;
	dot = strrchr(base, '.');
	/* ".sha1sums", ".meta", ".lbs": plain; ".meta.bz2": decoded. */
	if (dot && codec_known(dot) && strcmp(dot, ".tar") != 0 &&
	    strlen(dot) < sizeof(ext))
		strcpy(ext, dot);
	r = store_open_read(st, path, &fd);
	if (r)
		return r > 0 ? (err_set("%s: not found", path), -1) : -1;
	source_from_fd(&raw, fd);
	if (codec_open_decoder(ext[0] ? ext : ".tar", &raw, max, &dec))
		return -1;
	for (;;) {
		char tmp[65536];
		ssize_t n = dec.read(dec.ctx, tmp, sizeof(tmp));

		if (n < 0 || (n > 0 && buf_append(out, tmp, (size_t)n))) {
			source_close(&dec);
			err_prefix("%s", path);
			return -1;
		}
		if (n == 0)
			break;
	}
	if (source_close(&dec)) {
		err_prefix("%s", path);
		return -1;
	}
	return 0;
}

/* ---- opening ---- */

int
snapshot_open(struct store *st, const char *name, struct snapshot **out)
{
	return snapshot_open_verified(st, name, NULL, out);
}

int
snapshot_open_verified(struct store *st, const char *name,
    const struct sigcheck *sig, struct snapshot **out)
{
	struct snapshot *s = calloc(1, sizeof(*s));
	struct buf text;
	int fd, r;

	if (s == NULL) {
		err_set("out of memory");
		return -1;
	}
	s->st = st;
	object_cache_init(&s->objects);
	s->plan.spill_fd = -1;
	s->name = strdup(name);
	if (s->name == NULL) {
		free(s);
		err_set("out of memory");
		return -1;
	}
	for (size_t i = 0; i < SNAPSHOT_CACHE_SEGMENTS; i++) {
		buf_init(&s->cache[i].data, SNAPSHOT_CACHE_SEGMENT_MAX);
		s->cache[i].raw_fd = -1;
	}
	s->nslots = SNAPSHOT_CACHE_SEGMENTS;
	r = snapshot_find_descriptor(st, name, &s->desc_path);
	if (r > 0)
		err_set("no snapshot named '%s'", name);
	if (r)
		goto fail_nodesc;
	r = store_open_read(st, s->desc_path, &fd);
	if (r > 0)
		err_set("%s: vanished", s->desc_path);
	if (r)
		goto fail_nodesc;
	buf_init(&text, DESCRIPTOR_MAX);
	r = fileio_read_fd(fd, &text);
	close(fd);
	if (r == 0 && sig != NULL) {
		/* Parse only what the signature covers, never the file. */
		struct buf signed_text;

		buf_init(&signed_text, DESCRIPTOR_MAX);
		r = sigcheck_verify(sig, text.data ? text.data : "", text.len,
		    &signed_text, s->signer);
		buf_release(&text);
		text = signed_text;
	}
	if (r == 0)
		r = descriptor_parse(text.data ? text.data : "", text.len,
		    &s->desc);
	buf_release(&text);
	if (r) {
		err_prefix("snapshot %s", name);
		goto fail_nodesc;
	}
	s->v011 = descriptor_is_v011(&s->desc);
	*out = s;
	return 0;
fail_nodesc:
	free(s->desc_path);
	free(s->name);
	for (size_t i = 0; i < SNAPSHOT_CACHE_SEGMENTS; i++)
		buf_release(&s->cache[i].data);
	free(s);
	return -1;
}

static void
segment_drop(struct segment *g)
{
	for (size_t i = 0; i < g->nobjs; i++)
		free(g->objs[i].verified);
	free(g->objs);
	free(g->msg);
	free(g->path);
	g->objs = NULL;
	g->nobjs = 0;
	g->msg = NULL;
	g->path = NULL;
	g->uuid[0] = '\0';
	g->failed = g->streaming = g->whole_tried = false;
	g->reopens = 0;
	if (g->raw_fd >= 0)
		close(g->raw_fd);
	g->raw_fd = -1;
	if (g->cursor_open) {
		source_close(&g->cursor_dec);
		g->cursor_open = false;
	}
	/* Keep the memory: touching fresh pages costs more than decoding. */
	buf_reset(&g->data);
}

void
snapshot_close(struct snapshot *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < SNAPSHOT_CACHE_SEGMENTS; i++) {
		segment_drop(&s->cache[i]);
		buf_release(&s->cache[i].data);
	}
	object_cache_clear(s);
	free(s->plan.e);
	for (size_t i = 0; i < s->plan.nspills; i++)
		free(s->plan.spills[i].verified);
	free(s->plan.spills);
	if (s->plan.spill_fd >= 0)
		close(s->plan.spill_fd);
	snapshot_names_free(s->touched, s->ntouched);
	descriptor_release(&s->desc);
	free(s->desc_path);
	free(s->name);
	free(s);
}

const struct descriptor *
snapshot_descriptor(const struct snapshot *s)
{
	return &s->desc;
}

const char *
snapshot_descriptor_path(const struct snapshot *s)
{
	return s->desc_path;
}

const char *
snapshot_signer(const struct snapshot *s)
{
	return s->signer[0] ? s->signer : NULL;
}

const char *
snapshot_name(const struct snapshot *s)
{
	return s->name;
}

void
snapshot_touched(const struct snapshot *s, char *const **list, size_t *n)
{
	*list = s->touched;
	*n = s->ntouched;
}

static int
touch(struct snapshot *s, const char *uuid)
{
	size_t lo = 0, hi = s->ntouched;

	/* Sorted insertion: a snapshot has a modest number of segments. */
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(s->touched[mid], uuid);

		if (c == 0)
			return 0;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (add_name(&s->touched, &s->ntouched, &s->cap_touched, uuid,
		strlen(uuid)))
		return -1;
	{
		char *v = s->touched[s->ntouched - 1];

		memmove(&s->touched[lo + 1], &s->touched[lo],
		    (s->ntouched - 1 - lo) * sizeof(char *));
		s->touched[lo] = v;
	}
	return 0;
}

/* ---- segments ---- */

/* Parse a member name "<uuid>/<hex>" of segment ${uuid}.  0 or -1. */
static int
member_seq(const char *name, const char *uuid, uint64_t *seq)
{
	size_t ul = strlen(uuid);
	const char *p;
	size_t n;

	if (strncmp(name, uuid, ul) != 0 || name[ul] != '/')
		return -1;
	p = name + ul + 1;
	n = strspn(p, "0123456789abcdef");
	if (n == 0 || n > 16 || p[n] != '\0')
		return -1;
	*seq = strtoull(p, NULL, 16);
	return 0;
}

static int
cmp_obj(const void *a, const void *b)
{
	const struct object *x = a, *y = b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Start decoding segment ${g} from its beginning. */
static int
open_segment(struct snapshot *s, struct segment *g, struct source *dec)
{
	struct source raw;
	int fd;

	if (g->raw_fd < 0) {
		int r = store_open_read(s->st, g->path, &g->raw_fd);

		if (r > 0)
			err_set("%s vanished", g->path);
		if (r)
			return -1;
	}
	/* Every store hands out a regular file (remote ones download to
	 * an unlinked temporary file), so it can be read again. */
	fd = fcntl(g->raw_fd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0 || lseek(fd, 0, SEEK_SET) != 0) {
		err_set("%s: %s", g->path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	source_from_fd(&raw, fd);
	return codec_open_decoder(g->path, &raw, CODEC_SEGMENT_MAX, dec);
}

static void
segment_failed(struct segment *g)
{
	g->failed = true;
	g->msg = strdup(err_msg());
}

/* Find the file of segment ${g->uuid}, to be read by streaming. */
static void
segment_locate(struct snapshot *s, struct segment *g)
{
	int r = snapshot_find_segment(s->st, g->uuid, &g->path);

	if (r > 0)
		err_set("segment file not found in the store");
	if (r)
		segment_failed(g);
	else
		g->streaming = true;
}

/* Decode located segment ${g} into memory; it stays streaming when too
 * large, or is marked failed. */
static void
segment_load(struct snapshot *s, struct segment *g)
{
	struct source dec;
	struct tar_reader tr;
	struct tar_member m;
	size_t cap = 0;
	int r;

	g->whole_tried = true;
	g->streaming = false;
	if (open_segment(s, g, &dec))
		goto failed;
	tar_reader_init(&tr, &dec, CODEC_SEGMENT_MAX);
	while ((r = tar_next(&tr, &m)) == 1) {
		uint64_t seq;
		struct object *o;

		if ((m.type != '0' && m.type != '7') ||
		    member_seq(m.name, g->uuid, &seq))
			continue;
		if (g->data.len + m.size >= SNAPSHOT_CACHE_SEGMENT_MAX) {
			/* Too big to cache: fetch objects by streaming. */
			source_close(&dec);
			for (size_t i = 0; i < g->nobjs; i++)
				free(g->objs[i].verified);
			free(g->objs);
			g->objs = NULL;
			g->nobjs = 0;
			buf_release(&g->data);
			g->streaming = true;
			return;
		}
		if (g->nobjs == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			struct object *nv = realloc(g->objs, ncap * sizeof(*nv));

			if (nv == NULL) {
				err_set("out of memory");
				source_close(&dec);
				goto failed;
			}
			g->objs = nv;
			cap = ncap;
		}
		o = &g->objs[g->nobjs];
		o->seq = seq;
		o->off = g->data.len;
		o->len = (size_t)m.size;
		o->verified = NULL;
		if (buf_reserve(&g->data, (size_t)m.size + 1)) {
			source_close(&dec);
			goto failed;
		}
		if (tar_read(&tr, g->data.data + g->data.len, (size_t)m.size) !=
		    (ssize_t)m.size && m.size > 0) {
			source_close(&dec);
			goto failed;
		}
		g->data.len += (size_t)m.size;
		g->nobjs++;
	}
	if (r < 0) {
		source_close(&dec);
		goto failed;
	}
	if (source_close(&dec))
		goto failed;
	if (g->nobjs)
		qsort(g->objs, g->nobjs, sizeof(*g->objs), cmp_obj);
	return;
failed:
	segment_failed(g);
}

/* The cache entry of segment ${uuid}, loading it on a miss. */
static struct segment *
segment_get(struct snapshot *s, const char *uuid)
{
	struct segment *victim = &s->cache[0];

	for (size_t i = 0; i < s->nslots; i++) {
		struct segment *g = &s->cache[i];

		if (strcmp(g->uuid, uuid) == 0) {
			g->used = ++s->clock;
			return g;
		}
		if (g->used < victim->used)
			victim = g;
	}
	segment_drop(victim);
	strcpy(victim->uuid, uuid);
	victim->used = ++s->clock;
	segment_locate(s, victim);
	return victim;
}

static struct object *
find_object(struct segment *g, uint64_t seq)
{
	size_t lo = 0, hi = g->nobjs;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (g->objs[mid].seq == seq)
			return &g->objs[mid];
		if (g->objs[mid].seq < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int
check_sum(const struct ref *r, const char *got)
{
	if (strcmp(got, r->checksum) == 0)
		return 0;
	err_set("object %s/%08" PRIx64 " checksum mismatch (%s expected, "
		"got %s)",
	    r->segment, r->seq, r->checksum, got);
	return -1;
}

/*
 * Deliver the range ${r} selects of object ${data} (${olen} bytes) after
 * checking its checksum, unless ${*verified} says it was already checked
 * against the same string (a chunk shared by many files is hashed once).
 */
static int
deliver(struct snapshot *s, const struct ref *r, const unsigned char *data,
    size_t olen, char **verified, snapshot_sink sink, void *arg)
{
	uint64_t off, len;

	if (r->checksum[0] &&
	    (*verified == NULL || strcmp(*verified, r->checksum) != 0)) {
		enum hash_alg alg;
		char got[HASH_STR_MAX];

		if (hash_parse(r->checksum, &alg) ||
		    hash_buffer(alg, data, olen, got) || check_sum(r, got))
			return -1;
		free(*verified);
		*verified = strdup(r->checksum); /* NULL: check next time */
	}
	if (ref_resolve(r, olen, s->v011, &off, &len))
		return -1;
	if (len == 0)
		return 0;
	return sink(arg, data + off, (size_t)len);
}

/* Fetch from a segment decoded whole into memory. */
static int
fetch_whole(struct snapshot *s, struct segment *g, const struct ref *r,
    snapshot_sink sink, void *arg)
{
	struct object *o = find_object(g, r->seq);

	if (o == NULL) {
		err_set("object %s/%08" PRIx64 " not found in its segment",
		    r->segment, r->seq);
		return -1;
	}
	return deliver(s, r, (const unsigned char *)g->data.data + o->off,
	    o->len, &o->verified, sink, arg);
}

/* Stream the member ${m} the cursor is at to ${sink}, hashing as it goes:
 * for objects too large to hold in memory. */
static int
stream_member(struct snapshot *s, struct segment *g, const struct ref *r,
    const struct tar_member *m, snapshot_sink sink, void *arg)
{
	struct hash h;
	enum hash_alg alg;
	bool hashing = r->checksum[0] != '\0';
	uint64_t off, len, pos = 0;
	char got[HASH_STR_MAX];
	int rc = 0;

	if ((hashing && hash_parse(r->checksum, &alg)) ||
	    ref_resolve(r, m->size, s->v011, &off, &len) ||
	    (hashing && hash_init(&h, alg)))
		return -1;
	for (;;) {
		unsigned char tmp[65536];
		ssize_t n = tar_read(&g->cursor_tr, tmp, sizeof(tmp));
		uint64_t a, b;

		if (n <= 0) {
			rc = (int)n;
			break;
		}
		if (hashing)
			hash_update(&h, tmp, (size_t)n);
		/* Deliver the overlap of [pos, pos+n) and the range. */
		a = pos > off ? pos : off;
		b = pos + (uint64_t)n < off + len ? pos + (uint64_t)n : off + len;
		if (a < b && sink(arg, tmp + (a - pos), (size_t)(b - a))) {
			rc = -1;
			break;
		}
		pos += (uint64_t)n;
	}
	if (hashing) {
		if (rc < 0) {
			hash_abort(&h);
			return -1;
		}
		if (hash_final(&h, got) || check_sum(r, got))
			return -1;
	}
	return rc;
}

/* Deliver from object ${sp} in the spill file: only the range, when the
 * reference's checksum was verified when the object was spilled. */
static int
fetch_spilled(struct snapshot *s, struct spilled *sp, const struct ref *r,
    snapshot_sink sink, void *arg)
{
	unsigned char *data;
	uint64_t off, len;
	int rc = -1;

	if (r->checksum[0] &&
	    (sp->verified == NULL || strcmp(sp->verified, r->checksum) != 0)) {
		/* Read it whole to check it. */
		data = malloc(sp->len ? (size_t)sp->len : 1);
		if (data == NULL) {
			err_set("out of memory");
			return -1;
		}
		if (fileio_pread_full(s->plan.spill_fd, data, (size_t)sp->len,
			(off_t)sp->off) != (ssize_t)sp->len)
			err_set("reading the spill file: %s", strerror(errno));
		else
			rc = deliver(s, r, data, (size_t)sp->len,
			    &sp->verified, sink, arg);
		free(data);
		return rc;
	}
	if (ref_resolve(r, sp->len, s->v011, &off, &len))
		return -1;
	data = malloc(len < 65536 ? (len ? (size_t)len : 1) : 65536);
	if (data == NULL) {
		err_set("out of memory");
		return -1;
	}
	rc = 0;
	while (len > 0 && rc == 0) {
		size_t n = len < 65536 ? (size_t)len : 65536;

		if (fileio_pread_full(s->plan.spill_fd, data, n,
			(off_t)(sp->off + off)) != (ssize_t)n) {
			err_set("reading the spill file: %s", strerror(errno));
			rc = -1;
		} else {
			rc = sink(arg, data, n);
		}
		off += n;
		len -= n;
	}
	free(data);
	return rc;
}

/* The member ${m} the cursor is at, whole, malloc'd; NULL on error. */
static unsigned char *
read_member(struct segment *g, const struct tar_member *m)
{
	unsigned char *data = malloc(m->size ? (size_t)m->size : 1);

	if (data == NULL) {
		err_set("out of memory");
		return NULL;
	}
	if (m->size > 0 && tar_read(&g->cursor_tr, data, (size_t)m->size) !=
	    (ssize_t)m->size) {
		free(data);
		return NULL;
	}
	return data;
}

/*
 * Fetch from a streamed segment: from the recent objects, else by reading
 * forward to the member with the segment's open cursor, reopening only to
 * go backwards (and decoding the segment whole once that happens often).
 */
static int
fetch_streaming(struct snapshot *s, struct segment *g, const struct ref *r,
    snapshot_sink sink, void *arg)
{
	struct cached_object *c;
	struct tar_member m;
	unsigned char *data;
	struct plan_entry *e = plan_find(&s->plan, g->uuid, r->seq);
	bool keep = plan_take(&s->plan, g->uuid, r->seq);
	int rc;

	c = object_cache_find(&s->objects, g->uuid, r->seq);
	if (c != NULL) {
		rc = deliver(s, r, c->data, c->len, &c->verified, sink, arg);
		if (!keep)
			object_cache_remove(s, (int)(c - s->objects.slot),
			    false);
		return rc;
	}
	if (e != NULL && e->spill != 0) {
		struct spilled *sp = &s->plan.spills[e->spill - 1];

		if (sp->seq == r->seq && strcmp(sp->uuid, g->uuid) == 0) {
			rc = fetch_spilled(s, sp, r, sink, arg);
			if (!keep) /* its last read: give the space back */
				(void)fallocate(s->plan.spill_fd,
				    FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				    (off_t)sp->off, (off_t)sp->len);
			return rc;
		}
	}
	if (g->cursor_open && r->seq < g->cursor_next) {
		source_close(&g->cursor_dec);
		g->cursor_open = false;
		if (++g->reopens > SNAPSHOT_REOPEN_LIMIT && !g->whole_tried) {
			segment_load(s, g);
			if (g->failed) {
				err_set("%s", g->msg ? g->msg : "unreadable");
				return -1;
			}
			if (!g->streaming)
				return fetch_whole(s, g, r, sink, arg);
		}
	}
	if (!g->cursor_open) {
		if (open_segment(s, g, &g->cursor_dec))
			return -1;
		tar_reader_init(&g->cursor_tr, &g->cursor_dec, CODEC_SEGMENT_MAX);
		g->cursor_open = true;
		g->cursor_next = 0;
	}
	while ((rc = tar_next(&g->cursor_tr, &m)) == 1) {
		uint64_t seq;

		if ((m.type != '0' && m.type != '7') ||
		    member_seq(m.name, g->uuid, &seq))
			continue;
		g->cursor_next = seq + 1;
		if (seq != r->seq) {
			/* Passing an object to be read later: keep it. */
			struct plan_entry *later;

			if (m.size <= SNAPSHOT_OBJECT_CACHE_MAX &&
			    (later = plan_find(&s->plan, g->uuid, seq)) !=
				NULL &&
			    later->left > 0 && later->spill == 0 &&
			    object_cache_find(&s->objects, g->uuid, seq) ==
				NULL) {
				if ((data = read_member(g, &m)) == NULL)
					break;
				object_cache_add(s, g->uuid, seq, data,
				    (size_t)m.size);
			}
			continue;
		}
		if (m.size > SNAPSHOT_OBJECT_CACHE_MAX) {
			if (stream_member(s, g, r, &m, sink, arg))
				break;
			return 0;
		}
		if ((data = read_member(g, &m)) == NULL)
			break;
		if (!keep) {
			char *verified = NULL;

			rc = deliver(s, r, data, (size_t)m.size, &verified, sink,
			    arg);
			free(verified);
			free(data);
			return rc;
		}
		c = object_cache_add(s, g->uuid, seq, data,
		    (size_t)m.size);
		return deliver(s, r, c->data, c->len, &c->verified, sink, arg);
	}
	if (rc == 0)
		err_set("object %s/%08" PRIx64 " not found in its segment",
		    r->segment, r->seq);
	/* A failed or exhausted cursor starts over next time. */
	source_close(&g->cursor_dec);
	g->cursor_open = false;
	return -1;
}

static int
fetch_object(struct snapshot *s, const struct ref *r, snapshot_sink sink,
    void *arg)
{
	struct segment *g;

	if (touch(s, r->segment))
		return -1;
	g = segment_get(s, r->segment);
	if (g->failed) {
		err_set("%s", g->msg ? g->msg : "unreadable");
		return -1;
	}
	if (g->streaming)
		return fetch_streaming(s, g, r, sink, arg);
	plan_take(&s->plan, g->uuid, r->seq);
	return fetch_whole(s, g, r, sink, arg);
}

/* The caller's sink, watched: an error of its own (a full disk where a
 * file is restored) is not the segment's and is passed on as it is. */
struct watched_sink {
	snapshot_sink fn;
	void *arg;
	bool failed;
};

static int
watched_sink(void *arg, const void *p, size_t n)
{
	struct watched_sink *w = arg;

	if (w->fn(w->arg, p, n)) {
		w->failed = true;
		return -1;
	}
	return 0;
}

int
snapshot_fetch(struct snapshot *s, const struct ref *r, snapshot_sink sink,
    void *arg)
{
	struct watched_sink w = { sink, arg, false };

	if (r->kind == REF_ZERO)
		return r->length ? sink(arg, NULL, (size_t)r->length) : 0;
	if (fetch_object(s, r, watched_sink, &w)) {
		if (!w.failed && strncmp(err_msg(), "segment ", 8) != 0)
			err_prefix("segment %s", r->segment);
		return -1;
	}
	return 0;
}

static int
buf_sink(void *arg, const void *p, size_t n)
{
	struct buf *b = arg;

	if (p)
		return buf_append(b, p, n);
	if (buf_reserve(b, n))
		return -1;
	memset(b->data + b->len, 0, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int
snapshot_fetch_buf(struct snapshot *s, const struct ref *r, struct buf *out)
{
	if (r->kind == REF_ZERO && r->length > out->max - out->len) {
		err_set("zero reference of %" PRIu64 " bytes is too large here",
		    r->length);
		return -1;
	}
	if (snapshot_fetch(s, r, buf_sink, out)) {
		/* An object too large for ${out} is the store's fault. */
		if (strncmp(err_msg(), "segment ", 8) != 0)
			err_prefix("segment %s", r->segment);
		return -1;
	}
	return 0;
}

/*
 * Append to ${out} while ${*used} stays within OBJECT_MEM_MAX: objects
 * held at once (nested includes, nested indirect lists) share one bound,
 * not one each per level of nesting.
 */
struct budget {
	struct buf *out;
	size_t *used;
	const char *what; /* what ran out, for the message */
	bool over;	  /* it did: not the segment's fault */
};

static int
budget_sink(void *arg, const void *p, size_t n)
{
	struct budget *b = arg;

	if (n > OBJECT_MEM_MAX - *b->used) {
		err_set("%s exceed %zu MiB", b->what, OBJECT_MEM_MAX >> 20);
		b->over = true;
		return -1;
	}
	*b->used += n;
	return buf_sink(b->out, p, n);
}

/* ---- the metadata log ---- */

struct frame {
	struct buf data;
	size_t pos;
	/* The object, for cycles: the same object under another range or
	 * checksum is the same cycle. */
	char segment[REF_SEGMENT_MAX + 1];
	uint64_t seq;
};

struct meta_iter {
	struct snapshot *s;
	struct frame frames[SNAPSHOT_MAX_DEPTH + 1];
	size_t depth;
	uint64_t includes;
	/* The frames' objects share OBJECT_MEM_MAX: held is their bytes,
	 * expanded every include's (META_EXPAND_MAX). */
	size_t held;
	uint64_t expanded;
};

/* Push the object ${r} as a new innermost frame. */
static int
push(struct meta_iter *it, const struct ref *r)
{
	struct budget budget = { NULL, &it->held,
		"metadata objects included at once", false };
	struct frame *f;

	if (r->kind != REF_OBJECT) {
		err_set("metadata include of a zero reference");
		return -1;
	}
	if (it->depth > SNAPSHOT_MAX_DEPTH) {
		err_set("metadata includes nested deeper than %d",
		    SNAPSHOT_MAX_DEPTH);
		return -1;
	}
	if (++it->includes > MAX_INCLUDES) {
		err_set("metadata log has too many includes");
		return -1;
	}
	for (size_t i = 0; i < it->depth; i++)
		if (it->frames[i].seq == r->seq &&
		    strcmp(it->frames[i].segment, r->segment) == 0) {
			err_set("metadata include cycle at %s/%08" PRIx64,
			    r->segment, r->seq);
			return -1;
		}
	f = &it->frames[it->depth];
	snprintf(f->segment, sizeof(f->segment), "%s", r->segment);
	f->seq = r->seq;
	buf_init(&f->data, BUF_UNLIMITED);
	f->pos = 0;
	budget.out = &f->data;
	if (snapshot_fetch(it->s, r, budget_sink, &budget)) {
		it->held -= f->data.len;
		buf_release(&f->data);
		return -1;
	}
	it->expanded += f->data.len;
	if (it->expanded > META_EXPAND_MAX) {
		err_set("metadata log expands to more than %" PRIu64 " GiB",
		    META_EXPAND_MAX >> 30);
		it->held -= f->data.len;
		buf_release(&f->data);
		return -1;
	}
	it->depth++;
	return 0;
}

int
snapshot_meta_open(struct snapshot *s, struct meta_iter **out)
{
	struct meta_iter *it = calloc(1, sizeof(*it));

	if (it == NULL) {
		err_set("out of memory");
		return -1;
	}
	it->s = s;
	if (push(it, &s->desc.root)) {
		err_prefix("metadata root");
		free(it);
		return -1;
	}
	*out = it;
	return 0;
}

void
meta_iter_close(struct meta_iter *it)
{
	if (it == NULL)
		return;
	while (it->depth > 0)
		buf_release(&it->frames[--it->depth].data);
	free(it);
}

int
meta_iter_line(struct meta_iter *it, const char **line, size_t *n)
{
	while (it->depth > 0) {
		struct frame *f = &it->frames[it->depth - 1];
		const char *p, *nl;
		size_t len;
		struct ref r;

		if (f->pos >= f->data.len) {
			it->held -= f->data.len;
			buf_release(&f->data);
			it->depth--;
			continue;
		}
		p = f->data.data + f->pos;
		nl = memchr(p, '\n', f->data.len - f->pos);
		len = nl ? (size_t)(nl - p) : f->data.len - f->pos;
		f->pos += len + (nl ? 1 : 0);
		if (meta_line_kind(p, len) != META_LINE_INCLUDE) {
			*line = p;
			*n = len;
			return 1;
		}
		/* "@ref": expand in place; it also ends a stanza. */
		p++;
		len--;
		while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t' ||
				      p[len - 1] == '\r'))
			len--;
		if (ref_parse(p, len, &r) || push(it, &r)) {
			err_prefix("metadata include '@%.*s'",
			    (int)(len > 200 ? 200 : len), p);
			return -1;
		}
		*line = "";
		*n = 0;
		return 1;
	}
	return 0;
}

int
meta_iter_next(struct meta_iter *it, struct stanza *st)
{
	const char *line;
	size_t n;
	int r;

	stanza_clear(st);
	while ((r = meta_iter_line(it, &line, &n)) == 1) {
		switch (meta_line_kind(line, n)) {
		case META_LINE_BLANK:
			if (st->n > 0)
				return 1;
			break;
		case META_LINE_FIELD:
		case META_LINE_CONT:
			if (stanza_add_line(st, line, n))
				return -1;
			break;
		case META_LINE_INCLUDE:
		case META_LINE_JUNK:
			break;
		}
	}
	if (r < 0)
		return -1;
	return st->n > 0 ? 1 : 0;
}

/* ---- file contents ---- */

struct file_read {
	struct snapshot *s;
	snapshot_sink sink;
	void *arg;
	bool hashing;
	struct hash h;
	uint64_t delivered;
	uint64_t limit; /* the declared size, or FILE_SIZE_MAX */
	char *failed_segment;
	bool sink_failed; /* the caller's sink failed: no segment to blame */
	bool overrun;	  /* more data than recorded: the segment's fault */
	/* Bytes of indirect lists read for this file, held or done with:
	 * at most OBJECT_MEM_MAX in all.  Each "@" line reads its list
	 * again, so a list of lists, each naming the next many times, would
	 * otherwise expand a few KB of store into years of work, or hold
	 * 64 MiB per level of nesting. */
	size_t list_bytes;
};

static int
file_sink(void *arg, const void *p, size_t n)
{
	static const unsigned char zeros[65536];
	struct file_read *f = arg;

	if (n > f->limit - f->delivered) {
		err_set("data is longer than the file's recorded size");
		f->overrun = true;
		return -1;
	}
	f->delivered += n;
	if (f->hashing) {
		if (p)
			hash_update(&f->h, p, n);
		else
			for (size_t done = 0; done < n;) {
				size_t k = n - done > sizeof(zeros) ?
					       sizeof(zeros) :
					       n - done;

				hash_update(&f->h, zeros, k);
				done += k;
			}
	}
	if (f->sink(f->arg, p, n)) {
		f->sink_failed = true;
		return -1;
	}
	return 0;
}

static int
read_list(struct file_read *f, const char *s, size_t n, int depth)
{
	size_t pos = 0;

	while (pos < n) {
		size_t start, len;
		bool indirect;
		struct ref r;

		while (pos < n && (s[pos] == ' ' || s[pos] == '\t' ||
				      s[pos] == '\n' || s[pos] == '\r'))
			pos++;
		if (pos == n)
			break;
		start = pos;
		while (pos < n && s[pos] != ' ' && s[pos] != '\t' &&
		    s[pos] != '\n' && s[pos] != '\r')
			pos++;
		len = pos - start;
		indirect = s[start] == '@';
		if (ref_parse(s + start + indirect, len - indirect, &r)) {
			err_prefix("data reference");
			return -1;
		}
		if (indirect) {
			/* v0.2: an object listing more references. */
			struct buf list;
			struct budget lr = { &list, &f->list_bytes,
				"indirect data lists of one file", false };
			int rc;

			if (depth >= SNAPSHOT_MAX_DEPTH) {
				err_set("indirect data lists nested too deep");
				return -1;
			}
			buf_init(&list, BUF_UNLIMITED);
			rc = snapshot_fetch(f->s, &r, budget_sink, &lr);
			if (rc == 0)
				rc = read_list(f, list.data ? list.data : "",
				    list.len, depth + 1);
			else if (f->failed_segment && !lr.over)
				strcpy(f->failed_segment, r.segment);
			buf_release(&list);
			if (rc)
				return -1;
			continue;
		}
		if (r.kind == REF_ZERO && r.length > f->limit - f->delivered) {
			err_set("data is longer than the file's recorded size");
			return -1;
		}
		if (snapshot_fetch(f->s, &r, file_sink, f)) {
			if (f->sink_failed || r.kind != REF_OBJECT)
				return -1;
			/* snapshot_fetch names the segment of its own
			 * failures, not of the sink's. */
			if (f->overrun)
				err_prefix("segment %s", r.segment);
			if (f->failed_segment && f->failed_segment[0] == '\0')
				strcpy(f->failed_segment, r.segment);
			return -1;
		}
	}
	return 0;
}

int
snapshot_read_file(struct snapshot *s, const struct stanza *st,
    snapshot_sink sink, void *arg, char failed_segment[REF_SEGMENT_MAX + 1])
{
	struct file_read f;
	const char *data = stanza_get(st, "data", NULL);
	const char *size = stanza_get(st, "size", NULL);
	const char *sum = stanza_get(st, "checksum", NULL);
	uint64_t declared = 0;
	enum hash_alg alg = HASH_SHA1;
	int rc;

	memset(&f, 0, sizeof(f));
	f.s = s;
	f.sink = sink;
	f.arg = arg;
	f.limit = FILE_SIZE_MAX;
	f.failed_segment = failed_segment;
	if (failed_segment)
		failed_segment[0] = '\0';
	if (size) {
		char *end;

		errno = 0;
		declared = strtoull(size, &end, 0);
		if (errno || end == size || *end != '\0' || size[0] == '-' ||
		    declared > FILE_SIZE_MAX) {
			err_set("malformed size '%.40s'", size);
			return -1;
		}
		f.limit = declared;
	}
	if (sum) {
		if (hash_parse(sum, &alg))
			return -1;
		if (hash_init(&f.h, alg))
			return -1;
		f.hashing = true;
	}
	rc = data ? read_list(&f, data, strlen(data), 0) : 0;
	if (rc) {
		if (f.hashing)
			hash_abort(&f.h);
		return -1;
	}
	if (size && f.delivered != declared) {
		err_set("data has %" PRIu64 " bytes, the recorded size is %" PRIu64,
		    f.delivered, declared);
		if (f.hashing)
			hash_abort(&f.h);
		return -1;
	}
	if (f.hashing) {
		char got[HASH_STR_MAX];

		if (hash_final(&f.h, got))
			return -1;
		if (strcmp(got, sum) != 0) {
			err_set("file checksum mismatch (%s expected, got %s)",
			    sum, got);
			return -1;
		}
	}
	return 0;
}

void
snapshot_first_segment(const struct stanza *st, char seg[REF_SEGMENT_MAX + 1])
{
	const char *data = stanza_get(st, "data", NULL);

	seg[0] = '\0';
	while (data && *data) {
		size_t len;
		struct ref r;

		data += strspn(data, " \t\r\n");
		len = strcspn(data, " \t\r\n");
		if (len == 0)
			break;
		if (ref_parse(data + (*data == '@'), len - (*data == '@'),
			&r) == 0 &&
		    r.kind == REF_OBJECT) {
			strcpy(seg, r.segment);
			return;
		}
		data += len;
	}
}
