/*
 * rebuild: the local database from descriptors and metadata (rebuild.h).
 *
 * The metadata log is walked object by object (not through meta_iter) so
 * that each stanza's place, "<object>[<start>+<length>]", is known: that
 * is the reference the statcache records and the next backup reuses.
 */
#include "rebuild.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "descriptor.h"
#include "err.h"
#include "forget.h"
#include "localdb.h"
#include "localdb_space.h"
#include "meta.h"
#include "ref.h"
#include "snapshot.h"
#include "statcache.h"
#include "store.h"

/* Bound of one metadata object held in memory. */
#define REBUILD_OBJECT_MAX ((size_t)64 << 20)
#define REBUILD_MAX_INCLUDES ((uint64_t)1 << 26)

struct walk {
	struct snapshot *s;
	struct localdb *db;
	struct rebuild_stats *stats;
	struct statcache_writer *scw; /* newest snapshot of its scheme */
	bool v011;
	struct stanza st;
	struct buf raw;       /* the stanza's lines, as stored */
	bool in_stanza;
	bool pos_ok;          /* all lines contiguous in one object */
	uint64_t frame;       /* serial of the object the stanza began in */
	uint64_t frames;
	struct ref pos;       /* that object */
	uint64_t start;       /* offset of its first line in the object */
	uint64_t includes;
	struct buf tmp;
};

/* Record the objects of a file's data list; a file that is exactly one
 * whole object gives that object its checksum. */
static int
file_objects(struct walk *w)
{
	const char *data = stanza_get(&w->st, "data", NULL);
	const char *sum = stanza_get(&w->st, "checksum", NULL);
	const char *size_s = stanza_get(&w->st, "size", NULL);
	uint64_t fsize = size_s ? strtoull(size_s, NULL, 10) : 0;
	size_t nobj = 0;

	if (data == NULL)
		return 0;
	/* One pass to count, one to record. */
	for (int pass = 0; pass < 2; pass++) {
		const char *p = data;

		while (*p) {
			size_t len;
			struct ref r;
			uint64_t osize = LOCALDB_SIZE_UNKNOWN;
			const char *csum = NULL;
			bool whole;

			p += strspn(p, " \t\n");
			len = strcspn(p, " \t\n");
			if (len == 0)
				break;
			/* v0.2 indirect lists would need their objects read. */
			if (*p == '@')
				return 0;
			if (ref_parse(p, len, &r)) {
				err_clear();
				return 0;
			}
			p += len;
			if (r.kind == REF_ZERO)
				continue;
			if (pass == 0) {
				nobj++;
				continue;
			}
			whole = r.range != REF_RANGE_SLICE;
			if (r.range == REF_RANGE_EXACT ||
			    (r.range == REF_RANGE_BARE && w->v011))
				osize = r.length;
			if (r.checksum[0])
				csum = r.checksum;
			else if (nobj == 1 && osize == fsize && sum != NULL)
				csum = sum;
			if (r.range == REF_RANGE_BARE && !w->v011) {
				/* An old prefix slice: a part, size unknown. */
				whole = false;
				r.start = 0;
			}
			if (localdb_rebuild_object(w->db, r.segment, r.seq,
			    csum, osize, whole ? 0 : r.start,
			    whole ? 0 : r.length, whole))
				return -1;
			w->stats->objects++;
			if (csum)
				w->stats->checksums++;
		}
	}
	return 0;
}

/* A stanza is complete: record its objects and its statcache entry. */
static int
end_stanza(struct walk *w, uint64_t end)
{
	const char *type;
	int rc = 0;

	if (!w->in_stanza)
		return 0;
	w->in_stanza = false;
	type = stanza_get(&w->st, "type", NULL);
	if (type && (strcmp(type, "f") == 0 || strcmp(type, "-") == 0) &&
	    file_objects(w))
		return -1;
	if (w->scw && stanza_get(&w->st, "name", NULL) != NULL) {
		struct ref where = w->pos;

		/* Only an exact place may be reused; else name the whole
		 * object, which the next backup will not reuse. */
		if (w->pos_ok && end > w->start) {
			where.range = REF_RANGE_SLICE;
			where.start = w->start;
			where.length = end - w->start;
		} else {
			where.range = REF_RANGE_NONE;
		}
		buf_reset(&w->tmp);
		rc = ref_format(&where, &w->tmp) ||
		    statcache_writer_add(w->scw, w->tmp.data, w->raw.data,
		    w->raw.len);
		if (rc == 0)
			w->stats->statcache_entries++;
	}
	stanza_clear(&w->st);
	buf_reset(&w->raw);
	return rc ? -1 : 0;
}

static int
walk_object(struct walk *w, const struct ref *r, int depth)
{
	struct buf data;
	uint64_t base = r->range == REF_RANGE_SLICE ? r->start : 0;
	uint64_t frame = ++w->frames;
	uint64_t osize = LOCALDB_SIZE_UNKNOWN;
	size_t off = 0;
	int rc = -1;

	if (r->kind != REF_OBJECT) {
		err_set("metadata include of a zero reference");
		return -1;
	}
	if (depth > SNAPSHOT_MAX_DEPTH ||
	    ++w->includes > REBUILD_MAX_INCLUDES) {
		err_set("metadata includes nested too deep or too many");
		return -1;
	}
	buf_init(&data, REBUILD_OBJECT_MAX);
	if (snapshot_fetch_buf(w->s, r, &data))
		goto out;
	if (r->range == REF_RANGE_NONE)
		osize = data.len;
	else if (r->range == REF_RANGE_EXACT ||
	    (r->range == REF_RANGE_BARE && w->v011))
		osize = r->length;
	if (localdb_rebuild_object(w->db, r->segment, r->seq,
	    r->checksum[0] ? r->checksum : NULL, osize, base,
	    r->range == REF_RANGE_SLICE ? r->length : 0,
	    r->range != REF_RANGE_SLICE))
		goto out;
	w->stats->objects++;
	while (off < data.len) {
		const char *p = data.data + off;
		const char *nl = memchr(p, '\n', data.len - off);
		size_t len = nl ? (size_t)(nl - p) : data.len - off;
		size_t next = off + len + (nl ? 1 : 0);

		switch (meta_line_kind(p, len)) {
		case META_LINE_INCLUDE: {
			struct ref inc;
			size_t n = len - 1;

			if (end_stanza(w, 0))
				goto out;
			while (n > 0 && (p[n] == ' ' || p[n] == '\t' ||
			    p[n] == '\r'))
				n--;
			if (ref_parse(p + 1, n, &inc) ||
			    walk_object(w, &inc, depth + 1))
				goto out;
			break;
		}
		case META_LINE_BLANK:
			/* The stanza's place includes this blank line. */
			if (w->in_stanza && (w->frame != frame || !nl))
				w->pos_ok = false;
			if (end_stanza(w, base + next))
				goto out;
			break;
		case META_LINE_FIELD:
		case META_LINE_CONT:
			if (!w->in_stanza) {
				w->in_stanza = true;
				w->pos_ok = true;
				w->frame = frame;
				w->pos = *r;
				w->start = base + off;
			} else if (w->frame != frame) {
				w->pos_ok = false;
			}
			if (stanza_add_line(&w->st, p, len) ||
			    buf_append(&w->raw, p, len) ||
			    buf_putc(&w->raw, '\n'))
				goto out;
			break;
		case META_LINE_JUNK:
			w->pos_ok = false;
			break;
		}
		off = next;
	}
	rc = 0;
out:
	buf_release(&data);
	return rc;
}

struct item {
	char *name;
	char scheme[256];
	time_t time;
	bool parsed;
	bool newest;
};

static int
cmp_time(const void *a, const void *b)
{
	const struct item *x = a, *y = b;

	if (x->time != y->time)
		return x->time < y->time ? -1 : 1;
	return strcmp(x->name, y->name);
}

static void
warnf(void (*warn)(void *, const char *), void *arg, struct rebuild_stats *st,
    const char *name)
{
	char msg[1024];

	st->warnings++;
	snprintf(msg, sizeof(msg), "snapshot %s skipped: %s", name,
	    err_msg());
	if (warn)
		warn(arg, msg);
}

int
rebuild_db(struct store *st, struct localdb *db, const char *dbdir,
    void (*warn)(void *arg, const char *msg), void *arg,
    struct rebuild_stats *stats)
{
	struct walk w;
	struct item *items = NULL;
	char **names = NULL, **segs = NULL;
	size_t n = 0, nsegs = 0;
	int rc = -1;

	memset(stats, 0, sizeof(*stats));
	memset(&w, 0, sizeof(w));
	w.db = db;
	w.stats = stats;
	stanza_init(&w.st);
	buf_init(&w.raw, BUF_UNLIMITED);
	buf_init(&w.tmp, BUF_UNLIMITED);
	if (snapshot_list_names(st, &names, &n))
		goto out;
	if ((items = calloc(n ? n : 1, sizeof(*items))) == NULL) {
		err_set("out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		items[i].name = names[i];
		items[i].parsed = forget_parse_name(names[i], items[i].scheme,
		    sizeof(items[i].scheme), &items[i].time);
	}
	if (n)
		qsort(items, n, sizeof(*items), cmp_time);
	/* The newest of each scheme gives the statcache. */
	for (size_t i = 0; i < n; i++) {
		bool later = false;

		for (size_t k = i + 1; k < n && !later; k++)
			later = strcmp(items[k].scheme, items[i].scheme) == 0;
		items[i].newest = !later;
	}
	if (localdb_rebuild_begin(db))
		goto out;
	for (size_t i = 0; i < n; i++) {
		struct item *it = &items[i];
		const struct descriptor *d;
		const char *ts = it->name;
		double julian;
		struct ref root;

		err_clear();
		if (snapshot_open(st, it->name, &w.s)) {
			warnf(warn, arg, stats, it->name);
			continue;
		}
		d = snapshot_descriptor(w.s);
		w.v011 = descriptor_is_v011(d);
		julian = (it->parsed ? (double)it->time : (double)time(NULL)) /
		    86400.0 + 2440587.5;
		if (it->parsed && it->scheme[0])
			ts = it->name + strlen(it->scheme) + 1;
		if (localdb_rebuild_snapshot(db, ts, it->parsed ? it->scheme :
		    (d->scheme ? d->scheme : ""), julian))
			goto fail;
		if (it->newest && statcache_writer_open(dbdir,
		    it->scheme[0] ? it->scheme : NULL, &w.scw))
			goto fail;
		root = d->root;
		w.in_stanza = false;
		stanza_clear(&w.st);
		buf_reset(&w.raw);
		if (walk_object(&w, &root, 0) || end_stanza(&w, 0)) {
			/* A damaged snapshot is skipped, not fatal: its rows
			 * stay (objects it names do exist somewhere). */
			statcache_writer_abort(w.scw);
			w.scw = NULL;
			warnf(warn, arg, stats, it->name);
		}
		if (localdb_rebuild_snapshot_end(db))
			goto fail;
		if (w.scw) {
			struct statcache_writer *scw = w.scw;

			w.scw = NULL;
			if (statcache_writer_commit(scw))
				goto fail;
		}
		/* Segments rows, dated by the first snapshot using them. */
		for (size_t k = 0; k < d->nsegments; k++) {
			char *path = NULL, **nv;
			uint64_t size = 0;
			bool seen = false;
			int r;

			for (size_t j = 0; j < nsegs && !seen; j++)
				seen = strcmp(segs[j], d->segments[k]) == 0;
			if (seen)
				continue;
			if ((r = snapshot_find_segment(st, d->segments[k],
			    &path)) < 0)
				goto fail;
			if (r == 0 && store_stat(st, path, &size) < 0) {
				free(path);
				goto fail;
			}
			if (r == 0) {
				int e = localdb_rebuild_segment(db,
				    d->segments[k], path, size, NULL, julian);

				free(path);
				if (e)
					goto fail;
			}
			if ((nv = realloc(segs, (nsegs + 1) *
			    sizeof(*nv))) == NULL) {
				err_set("out of memory");
				goto fail;
			}
			segs = nv;
			if ((segs[nsegs] = strdup(d->segments[k])) == NULL) {
				err_set("out of memory");
				goto fail;
			}
			nsegs++;
			stats->segments++;
		}
		snapshot_close(w.s);
		w.s = NULL;
		stats->snapshots++;
	}
	if (localdb_rebuild_commit(db))
		goto out;
	rc = 0;
	goto out;
fail:
	err_prefix("rebuild-db");
	statcache_writer_abort(w.scw);
	snapshot_close(w.s);
	localdb_abort(db);
	localdb_space_rollback(db);
out:
	for (size_t i = 0; i < nsegs; i++)
		free(segs[i]);
	free(segs);
	free(items);
	snapshot_names_free(names, n);
	stanza_release(&w.st);
	buf_release(&w.raw);
	buf_release(&w.tmp);
	return rc;
}
