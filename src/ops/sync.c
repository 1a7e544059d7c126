/*
 * sync: copy snapshots between stores (see sync.h).
 */
#include "sync.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "descriptor.h"
#include "err.h"
#include "fileio.h"
#include "hash.h"
#include "snapshot.h"
#include "store.h"

#define SUMS_MAX ((size_t)64 << 20)

struct sums {
	struct buf text; /* "<sha1> *<name>" lines */
};

/* The sha1 (hex) the .sha1sums file gives for base name ${name}. */
static const char *
sums_lookup(const struct sums *s, const char *name, char out[41])
{
	const char *p = s->text.data;
	size_t nl = strlen(name);

	while (p && *p) {
		const char *e = strchr(p, '\n');
		size_t l = e ? (size_t)(e - p) : strlen(p);

		if (l == 42 + nl && p[40] == ' ' && p[41] == '*' &&
		    memcmp(p + 42, name, nl) == 0 &&
		    strspn(p, "0123456789abcdef") >= 40) {
			memcpy(out, p, 40);
			out[40] = '\0';
			return out;
		}
		p = e ? e + 1 : NULL;
	}
	return NULL;
}

static const char *
base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

/* SHA-1 (hex) of the stored file ${path}.  0, or -1 (error recorded). */
static int
hash_store_file(struct store *st, const char *path, char hex[41])
{
	char out[HASH_STR_MAX];
	int r = store_hash(st, path, HASH_SHA1, out, NULL);

	if (r > 0)
		err_set("%s vanished", path);
	if (r)
		return -1;
	memcpy(hex, out + 5, 41); /* after "sha1=" */
	return 0;
}

/* Is ${path} at ${dst} already the file we want?  1 yes, 0 no, -1. */
static int
dst_has(struct store *src, struct store *dst, const char *path,
    uint64_t size, const char *want, bool size_only)
{
	uint64_t dsize;
	char have[41], ref[41];
	int r = store_stat(dst, path, &dsize);

	if (r < 0)
		return -1;
	if (r == 1 || dsize != size)
		return 0;
	/* Same size: compare contents (for a remote DST that means reading
	 * the file back, unless the user settled for sizes). */
	if (size_only && store_local_dir(dst) == NULL)
		return 1;
	if (want == NULL) {
		if (store_local_dir(src) == NULL)
			return 1;
		if (hash_store_file(src, path, ref))
			return -1;
		want = ref;
	}
	if (hash_store_file(dst, path, have))
		return -1;
	return strcmp(have, want) == 0;
}

/* Asynchronous copies not yet confirmed: they count as copied only
 * once a store_flush() says every upload succeeded. */
struct pending {
	uint64_t files, bytes;
};

/* Wait for the asynchronous copies; count them if they all succeeded. */
static int
confirm(struct store *dst, struct pending *pend, struct sync_stats *stats)
{
	int rc = store_flush(dst);

	if (rc == 0) {
		stats->copied += pend->files;
		stats->bytes_copied += pend->bytes;
	}
	pend->files = pend->bytes = 0;
	return rc;
}

static int
copy_file(struct store *src, struct store *dst, const char *path,
    const char *want, struct pending *async, const struct sync_callbacks *cb,
    struct sync_stats *stats)
{
	struct store_writer *w;
	struct hash h;
	char tmp[65536], got[HASH_STR_MAX];
	uint64_t size, total = 0;
	int fd, r;

	r = store_stat(src, path, &size);
	if (r)
		return r > 0 ? (err_set("%s: missing in the source store", path),
				   -1)
			     : -1;
	stats->required++;
	r = dst_has(src, dst, path, size, want, cb != NULL && cb->size_only);
	if (r < 0)
		return -1;
	if (r == 1) {
		stats->present++;
		return 0;
	}
	if (cb && cb->copying)
		cb->copying(cb->arg, path, size);
	r = store_open_read(src, path, &fd);
	if (r)
		return r > 0 ? (err_set("%s vanished", path), -1) : -1;
	if (hash_init(&h, HASH_SHA1)) {
		close(fd);
		return -1;
	}
	if (store_create(dst, path, &w)) {
		hash_abort(&h);
		close(fd);
		return -1;
	}
	for (;;) {
		ssize_t n = fileio_read_full(fd, tmp, sizeof(tmp));

		if (n < 0 || (n > 0 && fileio_write_full(store_writer_fd(w), tmp,
					   (size_t)n)))
			goto fail;
		if (n == 0)
			break;
		hash_update(&h, tmp, (size_t)n);
		total += (uint64_t)n;
	}
	close(fd);
	fd = -1;
	if (hash_final(&h, got)) {
		store_writer_abort(w);
		return -1;
	}
	/* A damaged source file must not become a "good" copy. */
	if (want && strcmp(got + 5, want) != 0) {
		store_writer_abort(w);
		err_set("%s: the source file does not match its .sha1sums "
			"checksum; not copied",
		    path);
		return -1;
	}
	if (async) {
		if (store_writer_commit_async(w, false))
			return -1;
		async->files++;
		async->bytes += total;
		return 0;
	}
	if (store_writer_commit(w, false))
		return -1;
	stats->copied++;
	stats->bytes_copied += total;
	return 0;
fail:
	hash_abort(&h);
	if (fd >= 0)
		close(fd);
	store_writer_abort(w);
	return -1;
}

static int
sync_one(struct store *src, struct store *dst, const char *name,
    const struct sync_callbacks *cb, struct sync_stats *stats,
    struct pending *pend)
{
	struct descriptor d;
	struct sums sums;
	struct buf text, p;
	char *desc_path = NULL, *seg;
	char sha[41];
	uint64_t size;
	int r, rc = -1;
	bool parsed = false;

	buf_init(&text, DESCRIPTOR_MAX);
	buf_init(&sums.text, SUMS_MAX);
	buf_init(&p, 4096);
	r = snapshot_find_descriptor(src, name, &desc_path);
	if (r) {
		if (r > 0)
			err_set("no snapshot '%s' in the source store", name);
		goto out;
	}
	if (snapshot_read_side_file(src, desc_path, DESCRIPTOR_MAX, &text) ||
	    descriptor_parse(text.data ? text.data : "", text.len, &d))
		goto out;
	parsed = true;
	/* The .sha1sums file sits next to the descriptor (or in the root). */
	if (buf_printf(&p, "snapshot-%s.sha1sums", name))
		goto out;
	r = store_stat(src, p.data, &size);
	if (r < 0 || (r == 0 && snapshot_read_side_file(src, p.data, SUMS_MAX,
					 &sums.text)))
		goto out;
	for (size_t i = 0; i < d.nsegments; i++) {
		r = snapshot_find_segment(src, d.segments[i], &seg);
		if (r) {
			if (r > 0)
				err_set("segment %s of snapshot %s is missing "
					"in the source store",
				    d.segments[i], name);
			goto out;
		}
		r = copy_file(src, dst, seg, sums_lookup(&sums, base_name(seg),
						   sha),
		    pend, cb, stats);
		free(seg);
		if (r)
			goto out;
	}
	if (sums.text.len && copy_file(src, dst, p.data, NULL, pend, cb, stats))
		goto out;
	/* The descriptor last: a synchronous write waits for every copy
	 * above to be confirmed. */
	if (confirm(dst, pend, stats) ||
	    copy_file(src, dst, desc_path, NULL, NULL, cb, stats))
		goto out;
	stats->snapshots++;
	rc = 0;
out:
	if (rc)
		err_prefix("snapshot %s", name);
	if (parsed)
		descriptor_release(&d);
	free(desc_path);
	buf_release(&text);
	buf_release(&sums.text);
	buf_release(&p);
	return rc;
}

int
sync_snapshots(struct store *src, struct store *dst,
    const char *const *names, size_t n, const struct sync_callbacks *cb,
    struct sync_stats *stats)
{
	struct pending pend = { 0, 0 };
	char **all = NULL;
	size_t nall = 0;
	int rc = 0;

	memset(stats, 0, sizeof(*stats));
	if (names == NULL) {
		if (snapshot_list_names(src, &all, &nall))
			return -1;
		names = (const char *const *)all;
		n = nall;
	}
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = sync_one(src, dst, names[i], cb, stats, &pend);
	if (confirm(dst, &pend, stats))
		rc = -1;
	snapshot_names_free(all, nall);
	return rc;
}
