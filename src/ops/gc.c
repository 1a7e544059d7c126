/*
 * gc: store garbage collection (see gc.h).
 */
#include "gc.h"

#include <sys/stat.h>
#include <dirent.h>
#include <unistd.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "descriptor.h"
#include "err.h"
#include "lease.h"
#include "localdb_space.h"
#include "snapshot.h"
#include "store.h"

/* Where segments and side files may live, in every layout. */
static const char *const gc_dirs[] = { "", "segments0", "segments1",
	"segments", "snapshots", "meta", "checksums" };
#define UUID_LEN 36

struct strs {
	char **v;
	size_t n, cap;
};

static int
strs_add(struct strs *s, const char *a, size_t len)
{
	if (s->n == s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 64;
		char **nv = realloc(s->v, ncap * sizeof(*nv));

		if (nv == NULL)
			goto oom;
		s->v = nv;
		s->cap = ncap;
	}
	if ((s->v[s->n] = strndup(a, len)) == NULL)
		goto oom;
	s->n++;
	return 0;
oom:
	err_set("out of memory");
	return -1;
}

static void
strs_free(struct strs *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
strs_sort_unique(struct strs *s)
{
	size_t out = 0;

	if (s->n)
		qsort(s->v, s->n, sizeof(*s->v), cmp_str);
	for (size_t i = 0; i < s->n; i++) {
		if (out > 0 && strcmp(s->v[out - 1], s->v[i]) == 0)
			free(s->v[i]);
		else
			s->v[out++] = s->v[i];
	}
	s->n = out;
}

static bool
strs_has(const struct strs *s, const char *a)
{
	return s->n && bsearch(&a, s->v, s->n, sizeof(*s->v), cmp_str);
}

/* The UUID of a segment file name "<uuid>[.ext]", or false. */
static bool
segment_uuid(const char *name, char uuid[UUID_LEN + 1])
{
	size_t n = strspn(name, "0123456789abcdef-");

	if (n != UUID_LEN || (name[n] != '\0' && name[n] != '.'))
		return false;
	memcpy(uuid, name, UUID_LEN);
	uuid[UUID_LEN] = '\0';
	return true;
}

/* The snapshot name of a side file "snapshot-NAME.sha1sums[.ext]" or
 * "snapshot-NAME.meta[.ext]", or NULL. */
static char *
side_owner(const char *name)
{
	static const char *const sides[] = { ".sha1sums", ".meta" };

	if (strncmp(name, "snapshot-", 9) != 0)
		return NULL;
	for (size_t i = 0; i < 2; i++) {
		const char *p = strstr(name + 9, sides[i]);
		size_t rest;

		if (p == NULL || p == name + 9)
			continue;
		rest = strlen(p + strlen(sides[i]));
		/* Nothing or one extension after the side-file suffix. */
		if (rest == 0 || (p[strlen(sides[i])] == '.' &&
		    strchr(p + strlen(sides[i]) + 1, '.') == NULL))
			return strndup(name + 9, (size_t)(p - name - 9));
	}
	return NULL;
}

struct listing {
	const char *dir;
	struct strs files; /* paths relative to the store */
};

static int
collect(void *arg, const char *name)
{
	struct listing *l = arg;
	struct buf b;
	int r;

	buf_init(&b, 4096);
	if (buf_printf(&b, "%s%s%s", l->dir, *l->dir ? "/" : "", name)) {
		buf_release(&b);
		return -1;
	}
	r = strs_add(&l->files, b.data, b.len);
	buf_release(&b);
	return r;
}

/* Age in seconds of store file ${path}; -1 on error. */
static int
file_age(struct store *st, const char *path, int64_t *age)
{
	const char *dir = store_local_dir(st);
	struct stat sb;
	struct buf b;
	int r;

	if (dir == NULL) {
		err_set("this store cannot tell file ages; only"
		    " --min-age=0 works with it");
		return -1;
	}
	buf_init(&b, BUF_UNLIMITED);
	if (buf_printf(&b, "%s/%s", dir, path)) {
		buf_release(&b);
		return -1;
	}
	r = lstat(b.data, &sb);
	if (r) {
		err_setp("'%s'", b.data);
		buf_release(&b);
		return -1;
	}
	buf_release(&b);
	*age = (int64_t)time(NULL) - (int64_t)sb.st_mtime;
	return 0;
}

/*
 * ".tmp.*" files of interrupted writes: the store API hides dot files, so
 * a local store's directories are read directly, with the files' ages;
 * a remote store's (an SFTP upload cut off) through store_list_temp(),
 * where gc runs only with --min-age=0.
 */
static int
temp_files(const struct gc_options *o, const char *root, const char *dir,
    struct gc_stats *stats)
{
	struct buf path;
	struct dirent *e;
	DIR *d;
	int rc = 0;

	buf_init(&path, BUF_UNLIMITED);
	if (buf_printf(&path, "%s/%s", root, dir)) {
		buf_release(&path);
		return -1;
	}
	if ((d = opendir(path.data)) == NULL) {
		buf_release(&path);
		return 0;
	}
	while ((e = readdir(d)) != NULL) {
		struct stat sb;
		char shown[4096];

		if (strncmp(e->d_name, ".tmp.", 5) != 0 ||
		    fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) ||
		    !S_ISREG(sb.st_mode))
			continue;
		snprintf(shown, sizeof(shown), "%s%s%s", dir, *dir ? "/" : "",
		    e->d_name);
		if ((int64_t)time(NULL) - (int64_t)sb.st_mtime < o->min_age) {
			stats->young++;
			if (o->young)
				o->young(o->arg, shown);
			continue;
		}
		if (!o->dry_run && unlinkat(dirfd(d), e->d_name, 0) &&
		    errno != ENOENT) {
			err_setp("deleting '%s'", shown);
			rc = -1;
			break;
		}
		stats->deleted++;
		stats->reclaimed += (uint64_t)sb.st_size;
		if (o->deleted)
			o->deleted(o->arg, shown, (uint64_t)sb.st_size,
			    "temp file");
	}
	closedir(d);
	buf_release(&path);
	return rc;
}

struct remote_temp {
	struct store *st;
	const struct gc_options *o;
	const char *dir;
	struct gc_stats *stats;
};

static int
remote_temp_cb(void *arg, const char *name, uint64_t size)
{
	struct remote_temp *t = arg;
	struct buf path;
	int r = 0;

	buf_init(&path, 4096);
	if (buf_printf(&path, "%s%s%s", t->dir, *t->dir ? "/" : "", name)) {
		buf_release(&path);
		return -1;
	}
	if (!t->o->dry_run)
		r = store_delete(t->st, path.data);
	if (r < 0) {
		err_prefix("deleting '%s'", path.data);
	} else {
		r = 0;
		t->stats->deleted++;
		t->stats->reclaimed += size;
		if (t->o->deleted)
			t->o->deleted(t->o->arg, path.data, size, "temp file");
	}
	buf_release(&path);
	return r;
}

static int
remote_temp_files(struct store *st, const struct gc_options *o,
    const char *dir, struct gc_stats *stats)
{
	struct remote_temp t = { st, o, dir, stats };

	return store_list_temp(st, dir, remote_temp_cb, &t);
}

/* Read every descriptor: the referenced segments and who references
 * them (first snapshot per uuid, for the missing-segment report). */
static int
referenced(struct store *st, char **names, size_t n, struct strs *refs,
    struct strs *owners)
{
	struct strs pairs = { 0 };

	for (size_t i = 0; i < n; i++) {
		struct snapshot *s;
		const struct descriptor *d;

		if (snapshot_open(st, names[i], &s)) {
			err_prefix("snapshot %s (nothing deleted)", names[i]);
			strs_free(&pairs);
			return -1;
		}
		d = snapshot_descriptor(s);
		for (size_t k = 0; k < d->nsegments; k++) {
			struct buf b;
			int r;

			buf_init(&b, BUF_UNLIMITED);
			r = strs_add(refs, d->segments[k],
			    strlen(d->segments[k])) ||
			    buf_printf(&b, "%s %s", d->segments[k], names[i]) ||
			    strs_add(&pairs, b.data, b.len);
			buf_release(&b);
			if (r) {
				snapshot_close(s);
				strs_free(&pairs);
				return -1;
			}
		}
		snapshot_close(s);
	}
	strs_sort_unique(refs);
	strs_sort_unique(&pairs);
	*owners = pairs;
	return 0;
}

int
gc_run(struct store *st, const struct gc_options *o, struct gc_stats *stats)
{
	struct strs refs = { 0 }, owners = { 0 }, present = { 0 };
	struct strs todo = { 0 }, gone = { 0 };
	struct listing l;
	struct lease *lease = NULL;
	struct lease_scan sc;
	char **names = NULL;
	size_t nnames = 0;
	int rc = -1;

	memset(stats, 0, sizeof(*stats));
	memset(&l, 0, sizeof(l));
	if (o->min_age > 0 && store_local_dir(st) == NULL) {
		err_set("this store cannot tell file ages; only --min-age=0"
		    " works with it");
		return -1;
	}
	/* Our lease first, then the descriptors (lease.h): a backup that
	 * starts after this waits for us. */
	if (!o->dry_run && lease_take(st, "gc", &lease))
		goto out;
	if (snapshot_list_names(st, &names, &nnames) ||
	    referenced(st, names, nnames, &refs, &owners))
		goto out;
	stats->snapshots = nnames;
	stats->referenced = refs.n;
	for (size_t i = 0; i < sizeof(gc_dirs) / sizeof(gc_dirs[0]); i++) {
		l.dir = gc_dirs[i];
		if (store_list(st, gc_dirs[i], collect, &l))
			goto out;
	}
	for (size_t i = 0; i < l.files.n; i++) {
		const char *path = l.files.v[i];
		const char *base = strrchr(path, '/');
		const char *why = NULL;
		char uuid[UUID_LEN + 1], *owner;
		int64_t age;

		base = base ? base + 1 : path;
		if (segment_uuid(base, uuid)) {
			if (strs_add(&present, uuid, UUID_LEN))
				goto out;
			if (!strs_has(&refs, uuid))
				why = "segment";
		} else if ((owner = side_owner(base)) != NULL) {
			bool live = false;

			for (size_t k = 0; k < nnames && !live; k++)
				live = strcmp(names[k], owner) == 0;
			free(owner);
			if (!live)
				why = "side file";
		} else if (strncmp(base, ".tmp.", 5) == 0) {
			why = "temp file";
		}
		if (why == NULL)
			continue;
		if (o->min_age > 0) {
			if (file_age(st, path, &age))
				goto out;
			if (age < o->min_age) {
				stats->young++;
				if (o->young)
					o->young(o->arg, path);
				continue;
			}
		}
		/* Queue "<why>\t<path>"; segments also by uuid for the db. */
		{
			struct buf b;
			int r;

			buf_init(&b, BUF_UNLIMITED);
			r = buf_printf(&b, "%s\t%s", why, path) ||
			    strs_add(&todo, b.data, b.len) ||
			    (strcmp(why, "segment") == 0 &&
			    strs_add(&gone, uuid, UUID_LEN));
			buf_release(&b);
			if (r)
				goto out;
		}
	}
	/* A backup announced before we read the descriptors may reuse any
	 * unreferenced segment: then nothing at all is deleted. */
	if (lease_scan(st, "backup", NULL, !o->dry_run, &sc))
		goto out;
	stats->stale_leases = sc.stale;
	/* Dead gc leases go too (a backup would wait for them). */
	{
		struct lease_scan g;

		if (lease_scan(st, "gc", lease, !o->dry_run, &g))
			goto out;
		stats->stale_leases += g.stale;
	}
	if (sc.fresh > 0 && !o->force) {
		stats->busy = sc.fresh;
		if (o->busy)
			o->busy(o->arg, sc.first, sc.first_age, sc.fresh);
		goto report;
	}
	/* Backups check the store's segments after this record changed
	 * (lease.h); it is written before anything goes. */
	if (!o->dry_run && gone.n > 0 && lease_mark_gc(st))
		goto out;
	/* The database forgets the segments (committed) before they go, so
	 * a crash in between leaves it cautious, never wrong. */
	if (o->db && !o->dry_run && gone.n > 0) {
		if (localdb_space_begin(o->db))
			goto out;
		for (size_t i = 0; i < gone.n; i++)
			if (localdb_space_mark_missing(o->db, gone.v[i])) {
				localdb_space_rollback(o->db);
				goto out;
			}
		if (localdb_space_commit(o->db))
			goto out;
	}
	for (size_t i = 0; i < todo.n; i++) {
		char *tab = strchr(todo.v[i], '\t');
		const char *path = tab + 1;
		uint64_t size = 0;

		*tab = '\0';
		lease_refresh(lease);
		if (store_stat(st, path, &size) < 0)
			goto out;
		if (!o->dry_run && store_delete(st, path) < 0) {
			err_prefix("deleting '%s'", path);
			goto out;
		}
		stats->deleted++;
		stats->reclaimed += size;
		if (o->deleted)
			o->deleted(o->arg, path, size, todo.v[i]);
	}
	for (size_t i = 0; i < sizeof(gc_dirs) / sizeof(gc_dirs[0]); i++) {
		const char *local = store_local_dir(st);

		if (local ? temp_files(o, local, gc_dirs[i], stats)
			  : remote_temp_files(st, o, gc_dirs[i], stats))
			goto out;
	}
report:
	strs_sort_unique(&present);
	for (size_t i = 0; i < owners.n; i++) {
		char *sp = strchr(owners.v[i], ' ');

		if (sp == NULL)
			continue;
		*sp = '\0';
		/* One report per segment, naming its first snapshot. */
		if (!strs_has(&present, owners.v[i]) &&
		    (i == 0 || strncmp(owners.v[i - 1], owners.v[i],
		    UUID_LEN) != 0)) {
			stats->missing++;
			if (o->missing)
				o->missing(o->arg, sp + 1, owners.v[i]);
		}
		*sp = ' ';
	}
	rc = 0;
out:
	lease_release(lease);
	strs_free(&refs);
	strs_free(&owners);
	strs_free(&present);
	strs_free(&todo);
	strs_free(&gone);
	strs_free(&l.files);
	snapshot_names_free(names, nnames);
	return rc;
}
