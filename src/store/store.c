/*
 * store: names, backend dispatch by URL, staging of remote writes, the
 * listing cache of remote stores and the asynchronous upload queue (see
 * store.h and store_backend.h).
 */
#include "store.h"

#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "fileio.h"
#include "store_backend.h"

#define MAX_JOBS 64
#define NAME_MAX_LEN 1024

static const struct store_ops *const backends[] = {
	&store_s3_ops,
	&store_script_ops,
	&store_sftp_ops,
};

/* One listed directory of a remote store: names with sizes. */
struct cache_dir {
	char *dir;
	char **names;
	uint64_t *sizes; /* UINT64_MAX: deleted since listed */
	size_t n, cap;
	bool sorted;
};

struct job {
	struct job *next;
	char *name;
	char *path;
	int fd;
	void *native; /* a backend's own writer (file store), or NULL */
	bool noreplace;
};

struct store {
	char *url;
	const struct store_ops *ops;
	void *impl;
	unsigned jobs;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t threads[MAX_JOBS];
	unsigned nthreads;
	struct job *qhead, *qtail;
	unsigned pending; /* queued + running */
	bool stopping;
	char *failed; /* first asynchronous error; sticky */
	struct cache_dir *cache;
	size_t ncache;
};

/* Set once by the command layer before any store is opened. */
static unsigned default_jobs;

void
store_set_default_jobs(unsigned jobs)
{
	default_jobs = jobs;
}

struct store_writer {
	struct store *st;
	void *native;
	int fd;
	char *name;
	char *path; /* staged file, while it has a name */
};

int
store_open(const char *url, bool create, struct store **out)
{
	const struct store_ops *ops = &store_file_ops;
	struct store *st;

	*out = NULL;
	for (size_t i = 0; i < sizeof(backends) / sizeof(*backends); i++)
		if (strncmp(url, backends[i]->scheme,
			strlen(backends[i]->scheme)) == 0)
			ops = backends[i];
	if (ops == &store_file_ops && strncmp(url, "file://", 7) != 0 &&
	    strstr(url, "://") != NULL) {
		err_set("store URL '%.200s': unknown scheme (use a directory, "
			"file:///DIR, s3://BUCKET/PREFIX or "
			"sftp://[USER@]HOST[:PORT]/PATH)",
		    url);
		return -1;
	}
	st = calloc(1, sizeof(*st));
	if (st == NULL || (st->url = strdup(url)) == NULL) {
		free(st);
		err_set("out of memory");
		return -1;
	}
	st->ops = ops;
	st->jobs = ops->default_jobs ? ops->default_jobs : 1;
	pthread_mutex_init(&st->mu, NULL);
	pthread_cond_init(&st->cv, NULL);
	if (ops->open(url, create, &st->impl)) {
		st->impl = NULL;
		store_close(st);
		return -1;
	}
	if (default_jobs)
		store_set_jobs(st, default_jobs);
	*out = st;
	return 0;
}

static void
cache_free(struct store *st)
{
	for (size_t i = 0; i < st->ncache; i++) {
		struct cache_dir *c = &st->cache[i];

		for (size_t j = 0; j < c->n; j++)
			free(c->names[j]);
		free(c->names);
		free(c->sizes);
		free(c->dir);
	}
	free(st->cache);
	st->cache = NULL;
	st->ncache = 0;
}

void
store_close(struct store *st)
{
	if (st == NULL)
		return;
	/* Uploads still queued finish (their files are harmless without a
	 * descriptor); then the threads stop. */
	store_flush(st);
	pthread_mutex_lock(&st->mu);
	st->stopping = true;
	pthread_cond_broadcast(&st->cv);
	pthread_mutex_unlock(&st->mu);
	for (unsigned i = 0; i < st->nthreads; i++)
		pthread_join(st->threads[i], NULL);
	if (st->impl)
		st->ops->close(st->impl);
	cache_free(st);
	pthread_mutex_destroy(&st->mu);
	pthread_cond_destroy(&st->cv);
	free(st->failed);
	free(st->url);
	free(st);
}

const char *
store_local_dir(const struct store *st)
{
	return st->ops->local_dir ? st->ops->local_dir(st->impl) : NULL;
}

const char *
store_url(const struct store *st)
{
	return st->url;
}

void
store_set_jobs(struct store *st, unsigned jobs)
{
	unsigned max = st->ops->max_jobs ? st->ops->max_jobs : 1;

	if (jobs == 0)
		jobs = st->ops->default_jobs ? st->ops->default_jobs : 1;
	if (jobs > max)
		jobs = max;
	if (jobs > MAX_JOBS)
		jobs = MAX_JOBS;
	st->jobs = jobs;
}

/* Control characters (a terminal's escape sequences) in a name. */
static bool
has_controls(const char *name)
{
	for (const char *p = name; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return true;
	return false;
}

/* Names come from descriptors and command lines: refuse anything that
 * could leave the store directory or the store's prefix. */
static int
check_name(const char *name)
{
	const char *p = name;

	if (name[0] == '\0' || name[0] == '/' || strlen(name) > NAME_MAX_LEN)
		goto bad;
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);

		if (len == 0 || (len == 1 && p[0] == '.') ||
		    (len == 2 && p[0] == '.' && p[1] == '.'))
			goto bad;
		if (slash == NULL)
			break;
		p = slash + 1;
		if (*p == '\0')
			goto bad;
	}
	if (has_controls(name))
		goto bad;
	return 0;
bad:
	err_set("invalid store file name '%.200s'", name);
	return -1;
}

/* ---- listing cache (remote stores; callers hold st->mu) ---- */

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

struct pair {
	char *name;
	uint64_t size;
};

static void
cache_sort(struct cache_dir *c)
{
	struct pair *v;

	if (c->sorted || c->n < 2) {
		c->sorted = true;
		return;
	}
	/* Sort names and sizes together (strcmp on the first member).
	 * Out of memory: stay unsorted, lookups fall back to a scan. */
	v = malloc(c->n * sizeof(*v));
	if (v == NULL)
		return;
	for (size_t i = 0; i < c->n; i++) {
		v[i].name = c->names[i];
		v[i].size = c->sizes[i];
	}
	qsort(v, c->n, sizeof(*v), cmp_names);
	for (size_t i = 0; i < c->n; i++) {
		c->names[i] = v[i].name;
		c->sizes[i] = v[i].size;
	}
	free(v);
	c->sorted = true;
}

static struct cache_dir *
cache_find_dir(struct store *st, const char *dir)
{
	for (size_t i = 0; i < st->ncache; i++)
		if (strcmp(st->cache[i].dir, dir) == 0)
			return &st->cache[i];
	return NULL;
}

/* Index of ${base} in ${c}, or -1. */
static long
cache_index(struct cache_dir *c, const char *base)
{
	size_t lo = 0, hi;

	cache_sort(c);
	if (!c->sorted) {
		for (size_t i = 0; i < c->n; i++)
			if (strcmp(c->names[i], base) == 0)
				return (long)i;
		return -1;
	}
	hi = c->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int r = strcmp(c->names[mid], base);

		if (r == 0)
			return (long)mid;
		if (r < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static int
cache_add(struct cache_dir *c, const char *base, uint64_t size)
{
	if (c->n == c->cap) {
		size_t ncap = c->cap ? c->cap * 2 : 256;
		char **nn = realloc(c->names, ncap * sizeof(*nn));
		uint64_t *ns;

		if (nn == NULL)
			goto oom;
		c->names = nn;
		ns = realloc(c->sizes, ncap * sizeof(*ns));
		if (ns == NULL)
			goto oom;
		c->sizes = ns;
		c->cap = ncap;
	}
	if ((c->names[c->n] = strdup(base)) == NULL)
		goto oom;
	c->sizes[c->n++] = size;
	c->sorted = false;
	return 0;
oom:
	err_set("out of memory");
	return -1;
}

/*
 * Whether a name a backend listed in ${dir} is shown to callers: not temp
 * files (dot files), nothing below the directory, and nothing check_name()
 * would refuse, so that one odd file in a store cannot make the callers
 * that use what they list (gc) fail, nor put escape sequences on a
 * terminal through the commands that print names.
 */
static bool
listable(const char *dir, const char *name)
{
	return name[0] != '.' && name[0] != '\0' && strchr(name, '/') == NULL &&
	    !has_controls(name) &&
	    strlen(dir) + 1 + strlen(name) <= NAME_MAX_LEN;
}

struct fill {
	struct cache_dir *c;
	const char *dir;
};

static int
fill_cb(void *arg, const char *name, uint64_t size)
{
	struct fill *f = arg;

	if (!listable(f->dir, name))
		return 0;
	return cache_add(f->c, name, size);
}

/* The cached listing of ${dir}, listing it now if needed. */
static struct cache_dir *
cache_dir(struct store *st, const char *dir)
{
	struct cache_dir *c = cache_find_dir(st, dir), tmp;
	struct fill f = { &tmp, dir };

	if (c)
		return c;
	memset(&tmp, 0, sizeof(tmp));
	tmp.dir = strdup(dir);
	if (tmp.dir == NULL) {
		err_set("out of memory");
		return NULL;
	}
	if (st->ops->list(st->impl, dir, fill_cb, &f)) {
		for (size_t j = 0; j < tmp.n; j++)
			free(tmp.names[j]);
		free(tmp.names);
		free(tmp.sizes);
		free(tmp.dir);
		return NULL;
	}
	c = realloc(st->cache, (st->ncache + 1) * sizeof(*c));
	if (c == NULL) {
		err_set("out of memory");
		for (size_t j = 0; j < tmp.n; j++)
			free(tmp.names[j]);
		free(tmp.names);
		free(tmp.sizes);
		free(tmp.dir);
		return NULL;
	}
	st->cache = c;
	st->cache[st->ncache] = tmp;
	return &st->cache[st->ncache++];
}

/* Split ${name} into a directory (copied into ${dir}) and a base name. */
static const char *
split_name(const char *name, char *dir, size_t dirsize)
{
	const char *slash = strrchr(name, '/');
	size_t len = slash ? (size_t)(slash - name) : 0;

	if (len >= dirsize)
		len = dirsize - 1;
	memcpy(dir, name, len);
	dir[len] = '\0';
	return slash ? slash + 1 : name;
}

/* Record a write or delete in a directory that is already cached. */
static void
cache_note(struct store *st, const char *name, uint64_t size)
{
	char dir[1100];
	const char *base = split_name(name, dir, sizeof(dir));
	struct cache_dir *c;
	long i;

	if (!st->ops->cache_listing)
		return;
	pthread_mutex_lock(&st->mu);
	c = cache_find_dir(st, dir);
	if (c) {
		i = cache_index(c, base);
		if (i >= 0)
			c->sizes[i] = size;
		else if (size != UINT64_MAX)
			cache_add(c, base, size);
	}
	pthread_mutex_unlock(&st->mu);
}

/* ---- the upload queue ---- */

static void
stage_release(int fd, char *path)
{
	if (fd >= 0)
		close(fd);
	if (path) {
		unlink(path);
		free(path);
	}
}

/* Upload one staged file; records the error on failure. */
static int
do_put(struct store *st, const char *name, int fd, const char *path,
    bool noreplace)
{
	struct stat sb;

	if (fstat(fd, &sb)) {
		err_setp("staged file for '%s'", name);
		return -1;
	}
	if (st->ops->put(st->impl, name, fd, path, noreplace))
		return -1;
	cache_note(st, name, (uint64_t)sb.st_size);
	return 0;
}

static void *
worker(void *arg)
{
	struct store *st = arg;

	(void)pthread_setname_np(pthread_self(), "cumulus-store");
	pthread_mutex_lock(&st->mu);
	for (;;) {
		struct job *j;
		int rc;

		while (st->qhead == NULL && !st->stopping)
			pthread_cond_wait(&st->cv, &st->mu);
		if (st->qhead == NULL)
			break;
		j = st->qhead;
		st->qhead = j->next;
		if (st->qhead == NULL)
			st->qtail = NULL;
		/* After a failure the rest is not uploaded: the backup
		 * fails anyway, and every upload costs time and money. */
		rc = st->failed ? 0 : 1;
		pthread_mutex_unlock(&st->mu);
		if (rc && j->native)
			rc = st->ops->w_commit(j->native, j->noreplace);
		else if (rc)
			rc = do_put(st, j->name, j->fd, j->path, j->noreplace);
		else if (j->native)
			st->ops->w_abort(j->native);
		pthread_mutex_lock(&st->mu);
		if (rc && st->failed == NULL)
			st->failed = strdup(err_msg()[0] ? err_msg()
							  : "upload failed");
		stage_release(j->fd, j->path);
		free(j->name);
		free(j);
		st->pending--;
		pthread_cond_broadcast(&st->cv);
	}
	pthread_mutex_unlock(&st->mu);
	return NULL;
}

/* Report the first asynchronous failure (caller holds st->mu). */
static int
failed_locked(struct store *st)
{
	if (st->failed == NULL)
		return 0;
	err_set("%s", st->failed);
	return -1;
}

int
store_flush(struct store *st)
{
	int rc;

	pthread_mutex_lock(&st->mu);
	while (st->pending > 0)
		pthread_cond_wait(&st->cv, &st->mu);
	rc = failed_locked(st);
	pthread_mutex_unlock(&st->mu);
	return rc;
}

int
store_finish(struct store *st)
{
	if (store_flush(st))
		return -1;
	return st->ops->finish ? st->ops->finish(st->impl) : 0;
}

/* ---- writing ---- */

int
store_create(struct store *st, const char *name, struct store_writer **out)
{
	struct store_writer *w;
	const char *tmpdir = getenv("TMPDIR");

	*out = NULL;
	if (check_name(name))
		return -1;
	w = calloc(1, sizeof(*w));
	if (w == NULL || (w->name = strdup(name)) == NULL) {
		free(w);
		err_set("out of memory");
		return -1;
	}
	w->st = st;
	w->fd = -1;
	if (st->ops->w_create) {
		if (st->ops->w_create(st->impl, name, &w->native, &w->fd))
			goto fail;
		*out = w;
		return 0;
	}
	/* Remote: stage the bytes locally; commit uploads them. */
	if (tmpdir == NULL || tmpdir[0] == '\0')
		tmpdir = "/tmp";
	if (asprintf(&w->path, "%s/cumulus-stage.XXXXXX", tmpdir) < 0) {
		w->path = NULL;
		err_set("out of memory");
		goto fail;
	}
	w->fd = mkostemp(w->path, O_CLOEXEC);
	if (w->fd < 0) {
		err_setp("cannot create a staging file in '%s'", tmpdir);
		goto fail;
	}
	if (!st->ops->put_needs_path) {
		unlink(w->path);
		free(w->path);
		w->path = NULL;
	}
	*out = w;
	return 0;
fail:
	free(w->path);
	free(w->name);
	free(w);
	return -1;
}

int
store_writer_fd(const struct store_writer *w)
{
	return w->fd;
}

static void
writer_free(struct store_writer *w)
{
	stage_release(w->fd, w->path);
	free(w->name);
	free(w);
}

int
store_writer_commit(struct store_writer *w, bool noreplace)
{
	struct store *st = w->st;
	int rc;

	if (w->native) {
		/* Ordered after every asynchronous commit before it. */
		if (store_flush(st) == 0) {
			rc = st->ops->w_commit(w->native, noreplace);
		} else {
			st->ops->w_abort(w->native);
			rc = -1;
		}
		free(w->name);
		free(w);
		return rc;
	}
	/* Ordered after every asynchronous commit before it. */
	rc = store_flush(st);
	if (rc == 0)
		rc = do_put(st, w->name, w->fd, w->path, noreplace);
	writer_free(w);
	return rc;
}

int
store_writer_commit_async(struct store_writer *w, bool noreplace)
{
	struct store *st = w->st;
	struct job *j;
	int rc = 0;

	/* A file store's commit (fsync, rename, fsync of the directory) is
	 * done by a worker too, one at a time: the backup writes the next
	 * segment meanwhile instead of waiting for the disk. */
	if (st->jobs <= 1 && !w->native)
		return store_writer_commit(w, noreplace);
	j = calloc(1, sizeof(*j));
	if (j == NULL) {
		err_set("out of memory");
		store_writer_abort(w);
		return -1;
	}
	j->name = w->name;
	j->path = w->path;
	j->fd = w->native ? -1 : w->fd; /* the native writer owns its fd */
	j->native = w->native;
	j->noreplace = noreplace;
	free(w);
	pthread_mutex_lock(&st->mu);
	/* A bounded number of files in flight: each one is a temp file. */
	while (st->pending >= st->jobs && st->failed == NULL)
		pthread_cond_wait(&st->cv, &st->mu);
	if (failed_locked(st)) {
		pthread_mutex_unlock(&st->mu);
		if (j->native)
			st->ops->w_abort(j->native);
		stage_release(j->fd, j->path);
		free(j->name);
		free(j);
		return -1;
	}
	if (st->nthreads < st->jobs) {
		if (pthread_create(&st->threads[st->nthreads], NULL, worker,
			st) == 0)
			st->nthreads++;
		else if (st->nthreads == 0) {
			pthread_mutex_unlock(&st->mu);
			err_set("cannot start an upload thread");
			if (j->native)
				st->ops->w_abort(j->native);
			stage_release(j->fd, j->path);
			free(j->name);
			free(j);
			return -1;
		}
	}
	if (st->qtail)
		st->qtail->next = j;
	else
		st->qhead = j;
	st->qtail = j;
	st->pending++;
	pthread_cond_broadcast(&st->cv);
	pthread_mutex_unlock(&st->mu);
	return rc;
}

void
store_writer_abort(struct store_writer *w)
{
	if (w == NULL)
		return;
	if (w->native) {
		w->st->ops->w_abort(w->native);
		free(w->name);
		free(w);
		return;
	}
	writer_free(w);
}

int
store_put(struct store *st, const char *name, const void *p, size_t n,
    bool noreplace)
{
	struct store_writer *w;

	if (store_create(st, name, &w))
		return -1;
	if (fileio_write_full(store_writer_fd(w), p, n)) {
		err_prefix("'%s'", name);
		store_writer_abort(w);
		return -1;
	}
	return store_writer_commit(w, noreplace);
}

/* ---- reading ---- */

int
store_open_read(struct store *st, const char *name, int *fd)
{
	uint64_t listed;
	int r, tfd;

	*fd = -1;
	if (check_name(name))
		return -1;
	if (st->ops->open_read)
		return st->ops->open_read(st->impl, name, fd);
	if (st->ops->get == NULL) {
		err_set("'%s': this store is write-only", st->url);
		return -1;
	}
	/* The listed size bounds what the backend accepts: a server cannot
	 * fill $TMPDIR with an endless answer.  Not listed (or the listing
	 * failed): the backend's own bound. */
	if (!st->ops->cache_listing || store_stat(st, name, &listed) != 0)
		listed = STORE_SIZE_UNKNOWN;
	/* Download into an unlinked temp file: the caller reads a file. */
	tfd = fileio_anon_temp();
	if (tfd < 0)
		return -1;
	r = st->ops->get(st->impl, name, tfd, listed);
	if (r == 0 && lseek(tfd, 0, SEEK_SET) != 0) {
		err_setp("temporary file");
		r = -1;
	}
	if (r) {
		close(tfd);
		return r;
	}
	*fd = tfd;
	return 0;
}

int
store_stat(struct store *st, const char *name, uint64_t *size)
{
	char dir[1100];
	const char *base;
	struct cache_dir *c;
	long i;
	int rc;

	if (check_name(name))
		return -1;
	if (!st->ops->cache_listing)
		return st->ops->stat(st->impl, name, size);
	/* One listing per directory answers every later question: restore
	 * looks a segment up under several names. */
	base = split_name(name, dir, sizeof(dir));
	pthread_mutex_lock(&st->mu);
	c = cache_dir(st, dir);
	if (c == NULL) {
		rc = -1;
	} else {
		i = cache_index(c, base);
		rc = (i >= 0 && c->sizes[i] != UINT64_MAX) ? 0 : 1;
		if (rc == 0)
			*size = c->sizes[i];
	}
	pthread_mutex_unlock(&st->mu);
	return rc;
}

int
store_delete(struct store *st, const char *name)
{
	int rc;

	if (check_name(name) || store_flush(st))
		return -1;
	rc = st->ops->del(st->impl, name);
	if (rc == 0)
		cache_note(st, name, UINT64_MAX);
	return rc;
}

struct collect {
	const char *dir;
	char **v;
	size_t n, cap;
};

static int
collect_cb(void *arg, const char *name, uint64_t size)
{
	struct collect *c = arg;

	(void)size;
	if (!listable(c->dir, name))
		return 0;
	if (c->n == c->cap) {
		size_t ncap = c->cap ? c->cap * 2 : 64;
		char **nv = realloc(c->v, ncap * sizeof(*nv));

		if (nv == NULL) {
			err_set("out of memory");
			return -1;
		}
		c->v = nv;
		c->cap = ncap;
	}
	if ((c->v[c->n] = strdup(name)) == NULL) {
		err_set("out of memory");
		return -1;
	}
	c->n++;
	return 0;
}

int
store_list(struct store *st, const char *dir,
    int (*cb)(void *arg, const char *name), void *arg)
{
	struct collect c = { dir, NULL, 0, 0 };
	int rc = -1;

	if (dir[0] && check_name(dir))
		return -1;
	if (st->ops->cache_listing) {
		struct cache_dir *cd;

		pthread_mutex_lock(&st->mu);
		cd = cache_dir(st, dir);
		rc = cd ? 0 : -1;
		if (cd) {
			cache_sort(cd);
			for (size_t i = 0; i < cd->n && rc == 0; i++)
				if (cd->sizes[i] != UINT64_MAX)
					rc = collect_cb(&c, cd->names[i], 0);
		}
		pthread_mutex_unlock(&st->mu);
	} else {
		rc = st->ops->list(st->impl, dir, collect_cb, &c);
	}
	if (rc == 0) {
		/* Callbacks run without the lock, in byte order. */
		if (c.n)
			qsort(c.v, c.n, sizeof(*c.v), cmp_names);
		for (size_t i = 0; i < c.n && rc == 0; i++)
			rc = cb(arg, c.v[i]);
	}
	for (size_t i = 0; i < c.n; i++)
		free(c.v[i]);
	free(c.v);
	return rc;
}

struct temps {
	const char *dir;
	struct cache_dir c; /* only its names and sizes */
};

static int
temp_cb(void *arg, const char *name, uint64_t size)
{
	struct temps *t = arg;

	if (strncmp(name, ".tmp.", 5) != 0 || !listable(t->dir, name + 1))
		return 0;
	return cache_add(&t->c, name, size);
}

int
store_list_temp(struct store *st, const char *dir,
    int (*cb)(void *arg, const char *name, uint64_t size), void *arg)
{
	struct temps t;
	int rc;

	memset(&t, 0, sizeof(t));
	t.dir = dir;
	if (dir[0] && check_name(dir))
		return -1;
	/* Not from the cache, which holds no dot files. */
	rc = st->ops->list ? st->ops->list(st->impl, dir, temp_cb, &t) : 0;
	for (size_t i = 0; i < t.c.n && rc == 0; i++)
		rc = cb(arg, t.c.names[i], t.c.sizes[i]);
	for (size_t i = 0; i < t.c.n; i++)
		free(t.c.names[i]);
	free(t.c.names);
	free(t.c.sizes);
	return rc;
}

int
store_hash(struct store *st, const char *name, enum hash_alg alg,
    char out[HASH_STR_MAX], uint64_t *size)
{
	unsigned char *tmp = NULL;
	uint64_t total = 0;
	struct hash h;
	int fd, r = store_open_read(st, name, &fd);

	if (r)
		return r;
	tmp = malloc(65536);
	if (tmp == NULL || hash_init(&h, alg)) {
		if (tmp == NULL)
			err_set("out of memory");
		free(tmp);
		close(fd);
		return -1;
	}
	for (;;) {
		ssize_t n = fileio_read_full(fd, tmp, 65536);

		if (n < 0) {
			err_prefix("%s", name);
			hash_abort(&h);
			free(tmp);
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		hash_update(&h, tmp, (size_t)n);
		total += (uint64_t)n;
	}
	free(tmp);
	close(fd);
	if (size)
		*size = total;
	return hash_final(&h, out);
}
