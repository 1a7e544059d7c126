/*
 * scrub: sampled segment checks (see scrub.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "codec.h"
#include "descriptor.h"
#include "err.h"
#include "hash.h"
#include "localdb_scrub.h"
#include "ref.h"
#include "scrub.h"
#include "snapshot.h"
#include "source.h"
#include "store.h"
#include "tar.h"

struct seg {
	char uuid[REF_SEGMENT_MAX + 1];
	char sha1[41]; /* "" when no .sha1sums names it */
};

struct segset {
	struct seg *v;
	size_t n, cap;
};

static struct seg *
seg_add(struct segset *s, const char *uuid, size_t len)
{
	if (len == 0 || len > REF_SEGMENT_MAX)
		return NULL;
	for (size_t i = 0; i < s->n; i++)
		if (strlen(s->v[i].uuid) == len &&
		    memcmp(s->v[i].uuid, uuid, len) == 0)
			return &s->v[i];
	if (s->n == s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 64;
		struct seg *nv = realloc(s->v, ncap * sizeof(*nv));

		if (nv == NULL)
			return NULL;
		s->v = nv;
		s->cap = ncap;
	}
	memset(&s->v[s->n], 0, sizeof(s->v[s->n]));
	memcpy(s->v[s->n].uuid, uuid, len);
	return &s->v[s->n++];
}

/* Record the SHA-1s of snapshot ${name}'s .sha1sums, if it has one. */
static void
read_sha1sums(struct store *st, const char *name, struct segset *set)
{
	static const char *const dirs[] = { "", "checksums/", "meta/" };
	char path[512];
	uint64_t size;
	struct buf text;

	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%ssnapshot-%s.sha1sums", dirs[i],
		    name);
		if (store_stat(st, path, &size) == 0)
			break;
		path[0] = '\0';
	}
	if (path[0] == '\0')
		return;
	buf_init(&text, DESCRIPTOR_MAX);
	if (snapshot_read_side_file(st, path, DESCRIPTOR_MAX, &text) == 0) {
		/* "<40 hex> *<file>": the UUID begins the file's base name. */
		for (char *p = text.data; p && *p;) {
			char *nl = strchr(p, '\n'), *f, *slash;
			struct seg *sg;

			if (nl)
				*nl = '\0';
			if (strlen(p) > 42 && strspn(p, "0123456789abcdef") ==
			    40 && p[40] == ' ' && (p[41] == '*' || p[41] == ' ')) {
				f = p + 42;
				if ((slash = strrchr(f, '/')) != NULL)
					f = slash + 1;
				sg = seg_add(set, f, strspn(f,
				    "0123456789abcdef-"));
				if (sg)
					memcpy(sg->sha1, p, 40);
			}
			p = nl ? nl + 1 : NULL;
		}
	}
	buf_release(&text);
}

/* SHA-1 of the stored file; 0, or -1 (error recorded). */
static int
sha1_stored(struct store *st, const char *path, char out[41], uint64_t *size)
{
	char full[HASH_STR_MAX];
	int r = store_hash(st, path, HASH_SHA1, full, size);

	if (r > 0)
		err_set("%s: not found", path);
	if (r)
		return -1;
	memcpy(out, full + 5, 41); /* after "sha1=" */
	return 0;
}

/* Decode the whole segment; every member must be an object of it. */
static int
decode_all(struct store *st, const char *uuid, const char *path,
    uint64_t *objects)
{
	struct source raw, dec;
	struct tar_reader tr;
	struct tar_member m;
	unsigned char tmp[65536];
	size_t ulen = strlen(uuid);
	int fd, r = store_open_read(st, path, &fd);

	if (r) {
		if (r > 0)
			err_set("%s: not found", path);
		return -1;
	}
	source_from_fd(&raw, fd);
	if (codec_open_decoder(path, &raw, CODEC_SEGMENT_MAX, &dec))
		return -1;
	tar_reader_init(&tr, &dec, CODEC_SEGMENT_MAX);
	while ((r = tar_next(&tr, &m)) == 1) {
		ssize_t n;

		if (strncmp(m.name, uuid, ulen) != 0 || m.name[ulen] != '/') {
			err_set("member '%.100s' is not an object of the "
				"segment", m.name);
			r = -1;
			break;
		}
		while ((n = tar_read(&tr, tmp, sizeof(tmp))) > 0)
			;
		if (n < 0) {
			r = -1;
			break;
		}
		(*objects)++;
	}
	if (source_close(&dec) && r >= 0)
		r = -1;
	return r < 0 ? -1 : 0;
}

static int
check_segment(struct store *st, const struct seg *sg, struct scrub_result *res,
    char *problem, size_t psize)
{
	char *path = NULL, got[41];
	uint64_t size = 0;
	int r = snapshot_find_segment(st, sg->uuid, &path);

	if (r != 0) {
		snprintf(problem, psize, "%s", r > 0 ? "segment file missing" :
		    err_msg());
		return -1;
	}
	if (sha1_stored(st, path, got, &size)) {
		snprintf(problem, psize, "%s", err_msg());
		free(path);
		return -1;
	}
	res->bytes += size;
	if (sg->sha1[0] && strcmp(got, sg->sha1) != 0) {
		snprintf(problem, psize, "%s: sha1 %s, .sha1sums says %s", path,
		    got, sg->sha1);
		free(path);
		return -1;
	}
	if (decode_all(st, sg->uuid, path, &res->objects)) {
		snprintf(problem, psize, "%s: %s", path, err_msg());
		free(path);
		return -1;
	}
	free(path);
	return 0;
}

static int
cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
scrub_run(struct store *st, struct localdb *db, unsigned percent,
    scrub_report report, void *arg, struct scrub_result *res)
{
	struct segset set = { NULL, 0, 0 };
	char **names = NULL, **order = NULL, problem[1024];
	size_t nnames = 0, want;
	int rc = -1;

	memset(res, 0, sizeof(*res));
	if (percent < 1 || percent > 100) {
		err_set("the subset must be 1%% to 100%%");
		return -1;
	}
	if (snapshot_list_names(st, &names, &nnames))
		return -1;
	for (size_t i = 0; i < nnames; i++) {
		struct snapshot *s;
		const struct descriptor *d;

		if (snapshot_open(st, names[i], &s)) {
			res->bad++;
			report(arg, names[i], err_msg());
			continue;
		}
		d = snapshot_descriptor(s);
		/* The descriptor parser bounds the names' length. */
		for (size_t k = 0; k < d->nsegments; k++)
			if (seg_add(&set, d->segments[k],
				strlen(d->segments[k])) == NULL) {
				snapshot_close(s);
				err_set("out of memory");
				goto out;
			}
		snapshot_close(s);
		read_sha1sums(st, names[i], &set);
	}
	res->segments = set.n;
	if (set.n == 0) {
		rc = 0;
		goto out;
	}
	if ((order = calloc(set.n, sizeof(*order))) == NULL) {
		err_set("out of memory");
		goto out;
	}
	for (size_t i = 0; i < set.n; i++)
		order[i] = set.v[i].uuid;
	/* Without a database, the same first N% by name every time. */
	if (db == NULL)
		qsort(order, set.n, sizeof(*order), cmp_name);
	else if (localdb_scrub_order(db, order, set.n))
		goto out;
	want = (set.n * percent + 99) / 100;
	for (size_t i = 0; i < want; i++) {
		const struct seg *sg = NULL;

		for (size_t k = 0; k < set.n && sg == NULL; k++)
			if (set.v[k].uuid == order[i])
				sg = &set.v[k];
		res->checked++;
		if (check_segment(st, sg, res, problem, sizeof(problem))) {
			res->bad++;
			report(arg, sg->uuid, problem);
			continue;
		}
		report(arg, sg->uuid, NULL);
		if (db && localdb_scrub_mark(db, sg->uuid, (int64_t)time(NULL)))
			goto out;
	}
	rc = 0;
out:
	free(order);
	free(set.v);
	snapshot_names_free(names, nnames);
	return rc;
}
