/*
 * snapshot: the snapshot reader (see snapshot.h).  Everything read from
 * the store is hostile: sizes are bounded, references are checked against
 * the objects they name, includes are depth-limited and cycle-checked.
 */
#include "snapshot.h"

#include <errno.h>
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
	bool streaming; /* too large to cache: read per object */
	char *msg;
	char *path;
	struct buf data;
	struct object *objs;
	size_t nobjs;
	uint64_t used; /* LRU clock */
	/* Streaming segments keep a decoder open between fetches, so reading
	 * their objects in increasing order decodes the segment once. */
	bool cursor_open;
	struct source cursor_dec;
	struct tar_reader cursor_tr;
	uint64_t cursor_next; /* members before this seq are consumed */
};

struct snapshot {
	struct store *st;
	char *name;
	char *desc_path;
	struct descriptor desc;
	bool v011;
	char signer[SIGCHECK_FPR_MAX + 1]; /* "" unless checked */
	struct segment cache[SNAPSHOT_CACHE_SEGMENTS];
	uint64_t clock;
	char **touched;
	size_t ntouched, cap_touched;
};

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
	s->name = strdup(name);
	if (s->name == NULL) {
		free(s);
		err_set("out of memory");
		return -1;
	}
	for (size_t i = 0; i < SNAPSHOT_CACHE_SEGMENTS; i++)
		buf_init(&s->cache[i].data, SNAPSHOT_CACHE_SEGMENT_MAX);
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
	g->failed = g->streaming = false;
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

static int
open_segment(struct snapshot *s, const char *path, struct source *dec)
{
	struct source raw;
	int fd, r = store_open_read(s->st, path, &fd);

	if (r > 0)
		err_set("%s vanished", path);
	if (r)
		return -1;
	source_from_fd(&raw, fd);
	return codec_open_decoder(path, &raw, CODEC_SEGMENT_MAX, dec);
}

/* Decode segment ${g->uuid} into memory, or mark it streaming/failed. */
static void
segment_load(struct snapshot *s, struct segment *g)
{
	struct source dec;
	struct tar_reader tr;
	struct tar_member m;
	size_t cap = 0;
	int r;

	r = snapshot_find_segment(s->st, g->uuid, &g->path);
	if (r > 0)
		err_set("segment file not found in the store");
	if (r)
		goto failed;
	if (open_segment(s, g->path, &dec))
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
	g->failed = true;
	g->msg = strdup(err_msg());
}

/* The cache entry of segment ${uuid}, loading it on a miss. */
static struct segment *
segment_get(struct snapshot *s, const char *uuid)
{
	struct segment *victim = &s->cache[0];

	for (size_t i = 0; i < SNAPSHOT_CACHE_SEGMENTS; i++) {
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
	segment_load(s, victim);
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
 * Fetch from a segment too large to cache: read forward to the member
 * with the segment's open cursor, reopening only to go backwards.
 */
static int
fetch_streaming(struct snapshot *s, struct segment *g, const struct ref *r,
    snapshot_sink sink, void *arg)
{
	struct tar_member m;
	struct hash h;
	enum hash_alg alg;
	bool hashing = r->checksum[0] != '\0';
	int rc;

	if (hashing && hash_parse(r->checksum, &alg))
		return -1;
	if (g->cursor_open && r->seq < g->cursor_next) {
		source_close(&g->cursor_dec);
		g->cursor_open = false;
	}
	if (!g->cursor_open) {
		if (open_segment(s, g->path, &g->cursor_dec))
			return -1;
		tar_reader_init(&g->cursor_tr, &g->cursor_dec, CODEC_SEGMENT_MAX);
		g->cursor_open = true;
		g->cursor_next = 0;
	}
	while ((rc = tar_next(&g->cursor_tr, &m)) == 1) {
		uint64_t seq, off, len, pos = 0;
		char got[HASH_STR_MAX];

		if ((m.type != '0' && m.type != '7') ||
		    member_seq(m.name, g->uuid, &seq))
			continue;
		g->cursor_next = seq + 1;
		if (seq != r->seq)
			continue;
		if (ref_resolve(r, m.size, s->v011, &off, &len)) {
			rc = -1;
			break;
		}
		if (hashing && hash_init(&h, alg)) {
			rc = -1;
			break;
		}
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
			b = pos + (uint64_t)n < off + len ? pos + (uint64_t)n :
							   off + len;
			if (a < b && sink(arg, tmp + (a - pos), (size_t)(b - a))) {
				rc = -1;
				break;
			}
			pos += (uint64_t)n;
		}
		if (hashing) {
			if (rc < 0) {
				hash_abort(&h);
				break;
			}
			if (hash_final(&h, got) || check_sum(r, got)) {
				rc = -1;
				break;
			}
		}
		if (rc < 0)
			break;
		return 0;
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
	struct object *o;
	uint64_t off, len;

	if (touch(s, r->segment))
		return -1;
	g = segment_get(s, r->segment);
	if (g->failed) {
		err_set("%s", g->msg ? g->msg : "unreadable");
		return -1;
	}
	if (g->streaming)
		return fetch_streaming(s, g, r, sink, arg);
	o = find_object(g, r->seq);
	if (o == NULL) {
		err_set("object %s/%08" PRIx64 " not found in its segment",
		    r->segment, r->seq);
		return -1;
	}
	if (r->checksum[0] &&
	    (o->verified == NULL || strcmp(o->verified, r->checksum) != 0)) {
		enum hash_alg alg;
		char got[HASH_STR_MAX];

		if (hash_parse(r->checksum, &alg) ||
		    hash_buffer(alg, g->data.data + o->off, o->len, got) ||
		    check_sum(r, got))
			return -1;
		free(o->verified);
		o->verified = strdup(r->checksum);
	}
	if (ref_resolve(r, o->len, s->v011, &off, &len))
		return -1;
	if (len == 0)
		return 0;
	return sink(arg, g->data.data + o->off + off, (size_t)len);
}

int
snapshot_fetch(struct snapshot *s, const struct ref *r, snapshot_sink sink,
    void *arg)
{
	if (r->kind == REF_ZERO)
		return r->length ? sink(arg, NULL, (size_t)r->length) : 0;
	if (fetch_object(s, r, sink, arg)) {
		if (strncmp(err_msg(), "segment ", 8) != 0)
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
	return snapshot_fetch(s, r, buf_sink, out);
}

/* ---- the metadata log ---- */

struct frame {
	struct buf data;
	size_t pos;
	char key[REF_SEGMENT_MAX + HASH_STR_MAX + 64]; /* ref, for cycles */
};

struct meta_iter {
	struct snapshot *s;
	struct frame frames[SNAPSHOT_MAX_DEPTH + 1];
	size_t depth;
	uint64_t includes;
};

/* Push the object ${r} (its text ${key}) as a new innermost frame. */
static int
push(struct meta_iter *it, const struct ref *r)
{
	struct frame *f;
	struct buf key;

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
	buf_init(&key, sizeof(f->key) - 1);
	if (ref_format(r, &key)) {
		buf_release(&key);
		return -1;
	}
	for (size_t i = 0; i < it->depth; i++)
		if (strcmp(it->frames[i].key, key.data) == 0) {
			err_set("metadata include cycle at %s", key.data);
			buf_release(&key);
			return -1;
		}
	f = &it->frames[it->depth];
	strcpy(f->key, key.data);
	buf_release(&key);
	buf_init(&f->data, OBJECT_MEM_MAX);
	f->pos = 0;
	if (snapshot_fetch_buf(it->s, r, &f->data)) {
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
};

static int
file_sink(void *arg, const void *p, size_t n)
{
	static const unsigned char zeros[65536];
	struct file_read *f = arg;

	if (n > f->limit - f->delivered) {
		err_set("data is longer than the file's recorded size");
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
	return f->sink(f->arg, p, n);
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
			int rc;

			if (depth >= SNAPSHOT_MAX_DEPTH) {
				err_set("indirect data lists nested too deep");
				return -1;
			}
			buf_init(&list, OBJECT_MEM_MAX);
			rc = snapshot_fetch_buf(f->s, &r, &list);
			if (rc == 0)
				rc = read_list(f, list.data ? list.data : "",
				    list.len, depth + 1);
			else if (f->failed_segment)
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
			if (f->failed_segment && r.kind == REF_OBJECT &&
			    f->failed_segment[0] == '\0')
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
