/*
 * metalog: metadata-log writer (see metalog.h).  Memory is bounded by one
 * pending object (64 KiB of stanzas plus the last stanza).
 */
#include "metalog.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "hash.h"
#include "localdb.h"
#include "ref.h"
#include "segment.h"
#include "statcache.h"

#define METALOG_FLUSH_BYTES 65536
#define METALOG_GROUP "metadata"

/* One pending stanza: literal text or a reference to an old copy. */
struct item {
	size_t text_off; /* stanza text (no blank line) in pending */
	size_t text_len;
	size_t obj_off; /* where a literal stanza landed in the object */
	bool reused;
	struct ref ref; /* when reused */
};

struct metalog {
	struct segment_writer *sw;
	struct localdb *db;
	struct statcache_writer *sc;
	struct buf pending; /* stanza texts of pending items */
	struct item *items;
	size_t nitems, cap;
	struct buf obj;  /* object being assembled */
	struct buf root; /* root object text */
	struct buf tmp;
	/* the last object asked about and the answer: reused stanzas come
	 * in runs from one old object, and nothing expires during a backup */
	bool avail_known;
	bool avail;
	uint64_t avail_seq;
	char avail_seg[REF_SEGMENT_MAX + 1];
};

int
metalog_open(struct segment_writer *sw, struct localdb *db,
    struct statcache_writer *sc, struct metalog **out)
{
	struct metalog *m = calloc(1, sizeof(*m));

	*out = NULL;
	if (m == NULL) {
		err_set("out of memory");
		return -1;
	}
	m->sw = sw;
	m->db = db;
	m->sc = sc;
	buf_init(&m->pending, BUF_UNLIMITED);
	buf_init(&m->obj, BUF_UNLIMITED);
	buf_init(&m->root, BUF_UNLIMITED);
	buf_init(&m->tmp, BUF_UNLIMITED);
	*out = m;
	return 0;
}

void
metalog_free(struct metalog *m)
{
	if (m == NULL)
		return;
	buf_release(&m->pending);
	buf_release(&m->obj);
	buf_release(&m->root);
	buf_release(&m->tmp);
	free(m->items);
	free(m);
}

/* Store ${m->obj} as a metadata object; fill ${r} (with checksum, exact
 * length) and account its use. */
static int
write_object(struct metalog *m, struct ref *r)
{
	char uuid[SEGMENT_UUID_LEN + 1];
	char sum[HASH_STR_MAX];
	uint64_t seq;

	if (hash_buffer(HASH_SHA256, m->obj.data, m->obj.len, sum) ||
	    segment_add(m->sw, METALOG_GROUP, m->obj.data, m->obj.len, uuid,
		&seq) ||
	    localdb_store_block(m->db, uuid, seq, sum, m->obj.len, 0) < 0 ||
	    localdb_use_object(m->db, uuid, seq, 0, m->obj.len, true) < 0)
		return -1;
	ref_set_object(r, uuid, seq);
	memcpy(r->checksum, sum, sizeof(sum));
	r->range = REF_RANGE_BARE;
	r->length = m->obj.len;
	return 0;
}

static int
emit_include(struct metalog *m, const struct ref *r)
{
	return buf_putc(&m->obj, '@') || ref_format(r, &m->obj) ||
		buf_putc(&m->obj, '\n')
	    ? -1
	    : 0;
}

static int
flush(struct metalog *m)
{
	struct ref objref, run;
	bool have_run = false, after_include = false;

	if (m->nitems == 0)
		return 0;
	buf_reset(&m->obj);
	/* Lay out the object: literal stanzas, each ended by a blank line,
	 * and merged runs of reused ranges as "@ref" lines. */
	for (size_t i = 0; i < m->nitems; i++) {
		struct item *it = &m->items[i];

		if (it->reused) {
			if (have_run && ref_merge(&run, &it->ref))
				continue;
			if (have_run && emit_include(m, &run))
				return -1;
			run = it->ref;
			have_run = true;
			continue;
		}
		if (have_run) {
			if (emit_include(m, &run))
				return -1;
			have_run = false;
			after_include = true;
		}
		/* The original puts a blank line between an "@" line and a
		 * stanza that follows it. */
		if (after_include && buf_putc(&m->obj, '\n'))
			return -1;
		after_include = false;
		it->obj_off = m->obj.len;
		if (buf_append(&m->obj, m->pending.data + it->text_off,
			it->text_len) ||
		    buf_putc(&m->obj, '\n'))
			return -1;
	}
	if (have_run && emit_include(m, &run))
		return -1;
	if (write_object(m, &objref))
		return -1;
	if (buf_putc(&m->root, '@') || ref_format(&objref, &m->root) ||
	    buf_putc(&m->root, '\n'))
		return -1;
	/* Tell the statcache where each stanza now lives, and account the
	 * old ranges this snapshot keeps using. */
	for (size_t i = 0; i < m->nitems; i++) {
		struct item *it = &m->items[i];
		struct ref where;

		if (it->reused) {
			where = it->ref;
			if (localdb_use_object(m->db, where.segment, where.seq,
				where.start, where.length, false) < 0)
				return -1;
		} else {
			where = objref;
			where.range = REF_RANGE_SLICE;
			where.start = it->obj_off;
			where.length = it->text_len + 1;
		}
		if (m->sc) {
			buf_reset(&m->tmp);
			if (ref_format(&where, &m->tmp) ||
			    statcache_writer_add(m->sc, m->tmp.data,
				m->pending.data + it->text_off, it->text_len))
				return -1;
		}
	}
	buf_reset(&m->pending);
	m->nitems = 0;
	return 0;
}

int
metalog_add(struct metalog *m, const char *text, size_t len,
    const char *reuse_ref)
{
	struct item *it;

	if (m->nitems == m->cap) {
		size_t ncap = m->cap ? m->cap * 2 : 256;
		struct item *n = realloc(m->items, ncap * sizeof(*n));

		if (n == NULL) {
			err_set("out of memory");
			return -1;
		}
		m->items = n;
		m->cap = ncap;
	}
	it = &m->items[m->nitems];
	memset(it, 0, sizeof(*it));
	if (reuse_ref &&
	    ref_parse(reuse_ref, strlen(reuse_ref), &it->ref) == 0 &&
	    it->ref.kind == REF_OBJECT && it->ref.range == REF_RANGE_SLICE) {
		/* Reuse only what the database still offers: an expired
		 * object is being cleaned away. */
		if (!m->avail_known || m->avail_seq != it->ref.seq ||
		    strcmp(m->avail_seg, it->ref.segment) != 0) {
			int avail = localdb_block_available(m->db,
			    it->ref.segment, it->ref.seq);

			if (avail < 0)
				return -1;
			m->avail = avail == 1;
			m->avail_seq = it->ref.seq;
			memcpy(m->avail_seg, it->ref.segment,
			    sizeof(m->avail_seg));
			m->avail_known = true;
		}
		it->reused = m->avail;
	}
	err_clear();
	it->text_off = m->pending.len;
	it->text_len = len;
	if (buf_append(&m->pending, text, len))
		return -1;
	m->nitems++;
	if (m->pending.len > METALOG_FLUSH_BYTES)
		return flush(m);
	return 0;
}

int
metalog_finish(struct metalog *m, struct buf *root)
{
	struct ref rootref;
	int rc = -1;

	if (flush(m))
		goto out;
	/* The root object lists the metadata objects in order. */
	buf_reset(&m->obj);
	if (buf_append(&m->obj, m->root.data, m->root.len) ||
	    write_object(m, &rootref) || ref_format(&rootref, root))
		goto out;
	rc = 0;
out:
	metalog_free(m);
	return rc;
}
