/*
 * walk.c: the directory walk of a backup, in line or on a thread of its
 * own (walk.h).
 *
 * One generator, gen_step(), produces the items from an explicit stack of
 * open directories.  In line, walk_next() calls it directly.  With a
 * thread, the thread calls it and copies the items into batches of up to
 * BATCH_ITEMS, NBATCH of them in a ring; a batch is handed over when it is
 * full, or at once when the caller is waiting.
 *
 * Descriptors: a directory's descriptor belongs to its stack frame while
 * the generator lists and walks it, then to its WALK_END item, and is
 * closed when the caller asks for the item after that one.  Every item
 * naming it as ${parent} comes before, so the caller's openat() calls
 * always see it open.  Directories finished by the thread but not yet by
 * the caller hold descriptors too: at most MAX_PENDING_CLOSE of them
 * before the thread waits.
 */
#include "walk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "err.h"
#include "exclude.h"

enum {
	BATCH_ITEMS = 256,
	NBATCH = 4,
	MAX_PENDING_CLOSE = 128,
	ARENA_MIN = 32 * 1024,
	/* Descriptors left to the rest of a backup below RLIMIT_NOFILE:
	 * its read-ahead holds up to 128 files, and segments, the
	 * database, the statcache, filters and the store want some too. */
	FD_RESERVE = 256,
	MIN_DEPTH = 16,
};

struct frame {
	int fd; /* owned */
	char **names; /* sorted children (owned), or NULL for a root's dir */
	size_t n, i; /* names, and the next one */
	size_t path_len; /* the directory's path: w->path[0, path_len) */
	bool root; /* the directory of root w->next_root: one name */
	bool dot; /* the directory recorded as ".": children are "name" */
	int err_list; /* errno of listing it */
};

/* An item in a batch: its strings are offsets into the batch's arena. */
struct slot {
	struct walk_item it;
	size_t path_off, name_off;
	int close_fd; /* closed once the caller is past this slot */
	bool skip; /* nothing for the caller: only close_fd */
};

struct batch {
	struct slot *slots;
	size_t n, next;
	char *arena;
	size_t used, cap;
	bool last; /* the walk ends after this batch */
	bool failed; /* ... because of ${fatal} */
	char fatal[200];
};

struct walk {
	const struct walk_root *roots;
	size_t nroots, next_root;
	/* Directories deeper than this are not opened (one descriptor a
	 * level): a deep tree costs a warning, not the whole backup. */
	size_t max_depth;
	const char *const *excludes;
	size_t nexcludes;

	/* The generator's state: on the walk's thread when there is one. */
	struct frame *frames;
	size_t nframes, capframes;
	char *path;
	size_t path_cap;
	struct walk_item out; /* what gen_step() produced */
	int out_close;
	bool out_skip;

	/* The caller's. */
	int close_fd;
	struct walk_item item;
	struct batch *cur;

	/* Shared, with a thread. */
	bool threaded;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv_full; /* a batch was handed over */
	/* A batch was given back, or finished directories closed. */
	pthread_cond_t cv_free;
	uint64_t prod, cons; /* batches handed over, and given back */
	bool consumer_waiting;
	atomic_bool cancel;
	atomic_int pending_close;
	struct batch batches[NBATCH];
};

/* ---- the generator ---- */

static int
cmp_names(const void *a, const void *c)
{
	return strcmp(*(char *const *)a, *(char *const *)c);
}

static void
free_names(char **names, size_t n)
{
	if (names == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* The sorted names in directory ${fd}: 0, an errno > 0 if it cannot be
 * listed, or -1 when out of memory. */
static int
list_dir(int fd, char ***out, size_t *nout)
{
	DIR *d;
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int dfd = dup(fd);

	*out = NULL;
	*nout = 0;
	if (dfd < 0)
		return errno ? errno : EIO;
	if ((d = fdopendir(dfd)) == NULL) {
		int e = errno ? errno : EIO;

		close(dfd);
		return e;
	}
	for (;;) {
		/* NULL is the end, or, with errno set, a listing that failed
		 * part-way (EIO): then the directory has no children, and
		 * the caller warns, rather than some of them silently. */
		errno = 0;
		if ((de = readdir(d)) == NULL) {
			int e = errno;

			if (e == 0)
				break;
			closedir(d);
			free_names(names, n);
			return e;
		}
		if (de->d_name[0] == '.'
		    && (de->d_name[1] == '\0'
		        || (de->d_name[1] == '.' && de->d_name[2] == '\0')))
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 32;
			char **nn = realloc(names, ncap * sizeof(*names));

			if (nn == NULL)
				goto oom;
			names = nn;
			cap = ncap;
		}
		if ((names[n] = strdup(de->d_name)) == NULL)
			goto oom;
		n++;
	}
	closedir(d);
	/* Siblings in byte order: the metadata log's (and statcache's). */
	if (n)
		qsort(names, n, sizeof(*names), cmp_names);
	*out = names;
	*nout = n;
	return 0;
oom:
	closedir(d);
	free_names(names, n);
	err_set("out of memory");
	return -1;
}

static int
push_frame(struct walk *w, const struct frame *f)
{
	if (w->nframes == w->capframes) {
		size_t ncap = w->capframes ? w->capframes * 2 : 16;
		struct frame *nf = realloc(w->frames, ncap * sizeof(*nf));

		if (nf == NULL) {
			err_set("out of memory");
			return -1;
		}
		w->frames = nf;
		w->capframes = ncap;
	}
	w->frames[w->nframes++] = *f;
	return 0;
}

static int
path_reserve(struct walk *w, size_t len)
{
	if (len + 1 <= w->path_cap)
		return 0;
	size_t ncap = w->path_cap ? w->path_cap : 256;

	while (ncap < len + 1)
		ncap *= 2;
	char *np = realloc(w->path, ncap);

	if (np == NULL) {
		err_set("out of memory");
		return -1;
	}
	w->path = np;
	w->path_cap = ncap;
	return 0;
}

/* The root as given, ${r->dir}/${r->name}, into w->path. */
static int
root_given(struct walk *w, const struct walk_root *r)
{
	size_t dl = strlen(r->dir), nl = strlen(r->name);
	const bool here = strcmp(r->dir, ".") == 0;
	const bool self = strcmp(r->name, ".") == 0;

	if (path_reserve(w, dl + 1 + nl))
		return -1;
	if (here || self)
		snprintf(w->path, w->path_cap, "%s", here ? r->name : r->dir);
	else
		snprintf(w->path, w->path_cap, "%s%s%s", r->dir,
		    dl && r->dir[dl - 1] == '/' ? "" : "/", r->name);
	return 0;
}

/*
 * The next item into w->out.  w->out_close: a directory descriptor to
 * close once the caller is past the item (or -1); w->out_skip: the item
 * is only that.  1, 0 at the end, or -1 when out of memory.
 */
static int
gen_step(struct walk *w)
{
	struct walk_item *it = &w->out;

	w->out_close = -1;
	w->out_skip = false;
	for (;;) {
		struct frame *f;
		const char *name;
		size_t len;
		int parent;

		if (w->nframes == 0) {
			const struct walk_root *r;
			int fd;

			if (w->next_root == w->nroots)
				return 0;
			r = &w->roots[w->next_root];
			/* O_PATH: only the root is listed, never its
			 * directory, which may be search-only (0711). */
			fd = open(r->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
			if (fd < 0) {
				int e = errno ? errno : EIO;

				if (root_given(w, r))
					return -1;
				memset(it, 0, sizeof(*it));
				it->kind = WALK_ROOT_ERROR;
				it->path = it->name = w->path;
				it->path_len = strlen(w->path);
				it->err = e;
				it->parent = it->fd = -1;
				w->next_root++;
				return 1;
			}
			struct frame rf = { .fd = fd, .n = 1, .root = true };

			if (push_frame(w, &rf)) {
				close(fd);
				return -1;
			}
			continue;
		}
		f = &w->frames[w->nframes - 1];
		if (f->i == f->n) {
			struct frame done = *f;

			w->nframes--;
			free_names(done.names, done.n);
			w->out_close = done.fd;
			if (done.root) {
				/* Nothing for the caller, but the thread copies
				 * it: no stale or NULL strings (a root that was
				 * excluded left none). */
				memset(it, 0, sizeof(*it));
				it->path = it->name = "";
				it->parent = it->fd = -1;
				w->next_root++;
				w->out_skip = true;
				return 1;
			}
			memset(it, 0, sizeof(*it));
			it->kind = WALK_END;
			w->path[done.path_len] = '\0';
			it->path = done.dot ? "." : w->path;
			it->path_len = done.dot ? 1 : done.path_len;
			it->name = it->path;
			it->err = done.err_list;
			it->parent = -1;
			it->fd = done.fd;
			return 1;
		}
		if (f->root) {
			const struct walk_root *r = &w->roots[w->next_root];

			name = r->name;
			len = strlen(r->path);
			if (path_reserve(w, len))
				return -1;
			memcpy(w->path, r->path, len + 1);
		} else {
			size_t nl;

			name = f->names[f->i];
			nl = strlen(name);
			len = f->dot ? nl : f->path_len + 1 + nl;
			if (path_reserve(w, len))
				return -1;
			if (!f->dot)
				w->path[f->path_len] = '/';
			memcpy(w->path + len - nl, name, nl + 1);
		}
		f->i++;
		if (exclude_match(w->excludes, w->nexcludes, w->path))
			continue;
		parent = f->fd;
		memset(it, 0, sizeof(*it));
		it->kind = WALK_ENTRY;
		it->path = w->path;
		it->path_len = len;
		it->name = name;
		it->parent = parent;
		it->fd = -1;
		if (fstatat(parent, name, &it->sb, AT_SYMLINK_NOFOLLOW)) {
			it->err = errno ? errno : EIO;
			return 1;
		}
		if (!S_ISDIR(it->sb.st_mode))
			return 1;
		if (w->nframes >= w->max_depth) {
			it->err_open = EMFILE;
			return 1;
		}
		int fd = openat(parent, name,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

		if (fd < 0) {
			it->err_open = errno ? errno : EIO;
			return 1;
		}
		struct frame df = {
			.fd = fd,
			.path_len = len,
			.dot = len == 1 && w->path[0] == '.',
		};
		int e = list_dir(fd, &df.names, &df.n);

		df.err_list = e;
		if (e < 0 || push_frame(w, &df)) {
			free_names(df.names, df.n);
			close(fd);
			return -1;
		}
		it->fd = fd;
		return 1;
	}
}

/* ---- the walk's thread ---- */

static int
batch_add(struct batch *b, const struct walk_item *it, int close_fd, bool skip)
{
	size_t nl = strlen(it->name), need = it->path_len + 1 + nl + 1;
	struct slot *s;

	if (b->used + need > b->cap) {
		size_t ncap = b->cap ? b->cap : ARENA_MIN;
		char *na;

		while (ncap < b->used + need)
			ncap *= 2;
		if ((na = realloc(b->arena, ncap)) == NULL) {
			err_set("out of memory");
			return -1;
		}
		b->arena = na;
		b->cap = ncap;
	}
	s = &b->slots[b->n++];
	s->it = *it;
	s->path_off = b->used;
	memcpy(b->arena + b->used, it->path, it->path_len + 1);
	b->used += it->path_len + 1;
	s->name_off = b->used;
	memcpy(b->arena + b->used, it->name, nl + 1);
	b->used += nl + 1;
	s->close_fd = close_fd;
	s->skip = skip;
	return 0;
}

/* The batch to fill next, once the caller has given it back; NULL when
 * cancelled. */
static struct batch *
next_batch(struct walk *w)
{
	struct batch *b = NULL;

	pthread_mutex_lock(&w->mu);
	while (!atomic_load(&w->cancel)
	    && (w->prod >= w->cons + NBATCH
	        || atomic_load(&w->pending_close) > MAX_PENDING_CLOSE / 2))
		pthread_cond_wait(&w->cv_free, &w->mu);
	if (!atomic_load(&w->cancel)) {
		b = &w->batches[w->prod % NBATCH];
		b->n = b->next = b->used = 0;
	}
	pthread_mutex_unlock(&w->mu);
	return b;
}

static void
publish(struct walk *w)
{
	pthread_mutex_lock(&w->mu);
	w->prod++;
	w->consumer_waiting = false;
	pthread_cond_signal(&w->cv_full);
	pthread_mutex_unlock(&w->mu);
}

static void *
walk_main(void *arg)
{
	struct walk *w = arg;
	struct batch *b;

	(void)pthread_setname_np(pthread_self(), "cumulus-walk");
	if ((b = next_batch(w)) == NULL)
		return NULL;
	for (;;) {
		int r = atomic_load(&w->cancel) ? 0 : gen_step(w);

		if (r == 1
		    && batch_add(b, &w->out, w->out_close, w->out_skip)) {
			/* The descriptor is nobody's now: the caller will
			 * not see the item. */
			if (w->out_close >= 0)
				close(w->out_close);
			r = -1;
		}
		if (r <= 0) {
			b->last = true;
			if (r < 0) {
				b->failed = true;
				snprintf(b->fatal, sizeof(b->fatal), "%s",
				    err_msg()[0] ? err_msg() : "out of memory");
			}
			publish(w);
			return NULL;
		}
		if (w->out_close >= 0)
			atomic_fetch_add(&w->pending_close, 1);
		bool waiting;

		pthread_mutex_lock(&w->mu);
		waiting = w->consumer_waiting;
		pthread_mutex_unlock(&w->mu);
		if (b->n == BATCH_ITEMS || waiting
		    || atomic_load(&w->pending_close) >= MAX_PENDING_CLOSE) {
			publish(w);
			if ((b = next_batch(w)) == NULL)
				return NULL;
		}
	}
}

/* ---- the caller's side ---- */

/* How deep the walk may go, the same with a thread or without (the
 * snapshot does not depend on it): the thread's finished directories
 * (MAX_PENDING_CLOSE) and FD_RESERVE fit below the descriptor limit. */
static size_t
depth_limit(void)
{
	struct rlimit rl;
	rlim_t lim = 1 << 20;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
	    && rl.rlim_cur < lim)
		lim = rl.rlim_cur;
	if (lim < FD_RESERVE + MAX_PENDING_CLOSE + MIN_DEPTH)
		return MIN_DEPTH;
	return (size_t)(lim - FD_RESERVE - MAX_PENDING_CLOSE);
}

struct walk *
walk_open(const struct walk_root *roots, size_t nroots,
    const char *const *excludes, size_t nexcludes, bool thread)
{
	struct walk *w = calloc(1, sizeof(*w));

	if (w == NULL) {
		err_set("out of memory");
		return NULL;
	}
	w->roots = roots;
	w->nroots = nroots;
	w->max_depth = depth_limit();
	w->excludes = excludes;
	w->nexcludes = nexcludes;
	w->close_fd = -1;
	atomic_init(&w->cancel, false);
	atomic_init(&w->pending_close, 0);
	if (!thread)
		return w;
	for (size_t i = 0; i < NBATCH; i++) {
		w->batches[i].slots = malloc(BATCH_ITEMS * sizeof(struct slot));
		if (w->batches[i].slots == NULL) {
			walk_free(w);
			err_set("out of memory");
			return NULL;
		}
	}
	if (pthread_mutex_init(&w->mu, NULL))
		return w;
	if (pthread_cond_init(&w->cv_full, NULL)) {
		pthread_mutex_destroy(&w->mu);
		return w;
	}
	if (pthread_cond_init(&w->cv_free, NULL)) {
		pthread_cond_destroy(&w->cv_full);
		pthread_mutex_destroy(&w->mu);
		return w;
	}
	w->threaded = true;
	if (pthread_create(&w->thread, NULL, walk_main, w) != 0) {
		/* Walk in line instead. */
		w->threaded = false;
		pthread_cond_destroy(&w->cv_free);
		pthread_cond_destroy(&w->cv_full);
		pthread_mutex_destroy(&w->mu);
	}
	return w;
}

static void
closed_one(struct walk *w)
{
	/* The thread waits for this many at most: wake it at the mark. */
	if (atomic_fetch_sub(&w->pending_close, 1) - 1
	    == MAX_PENDING_CLOSE / 2) {
		pthread_mutex_lock(&w->mu);
		pthread_cond_signal(&w->cv_free);
		pthread_mutex_unlock(&w->mu);
	}
}

int
walk_next(struct walk *w, const struct walk_item **item)
{
	for (;;) {
		if (w->close_fd >= 0) {
			close(w->close_fd);
			w->close_fd = -1;
			if (w->threaded)
				closed_one(w);
		}
		if (!w->threaded) {
			int r = gen_step(w);

			if (r <= 0)
				return r;
			w->close_fd = w->out_close;
			if (w->out_skip)
				continue;
			*item = &w->out;
			return 1;
		}
		struct batch *b = w->cur;

		if (b == NULL || b->next == b->n) {
			if (b && b->last) {
				if (b->failed) {
					err_set("%s", b->fatal);
					return -1;
				}
				return 0;
			}
			pthread_mutex_lock(&w->mu);
			if (b) {
				w->cons++;
				pthread_cond_signal(&w->cv_free);
			}
			while (w->cons == w->prod) {
				w->consumer_waiting = true;
				pthread_cond_wait(&w->cv_full, &w->mu);
			}
			w->consumer_waiting = false;
			w->cur = &w->batches[w->cons % NBATCH];
			pthread_mutex_unlock(&w->mu);
			continue;
		}
		const struct slot *s = &b->slots[b->next++];

		w->close_fd = s->close_fd;
		if (s->skip)
			continue;
		w->item = s->it;
		w->item.path = b->arena + s->path_off;
		w->item.name = b->arena + s->name_off;
		*item = &w->item;
		return 1;
	}
}

void
walk_free(struct walk *w)
{
	if (w == NULL)
		return;
	if (w->threaded) {
		pthread_mutex_lock(&w->mu);
		atomic_store(&w->cancel, true);
		pthread_cond_broadcast(&w->cv_free);
		pthread_mutex_unlock(&w->mu);
		pthread_join(w->thread, NULL);
		/* Descriptors of items handed over and not reached. */
		for (uint64_t k = w->cons; k < w->prod; k++) {
			struct batch *b = &w->batches[k % NBATCH];
			size_t from = b == w->cur ? b->next : 0;

			for (size_t i = from; i < b->n; i++)
				if (b->slots[i].close_fd >= 0)
					close(b->slots[i].close_fd);
		}
		pthread_cond_destroy(&w->cv_free);
		pthread_cond_destroy(&w->cv_full);
		pthread_mutex_destroy(&w->mu);
	}
	if (w->close_fd >= 0)
		close(w->close_fd);
	for (size_t i = 0; i < w->nframes; i++) {
		close(w->frames[i].fd);
		free_names(w->frames[i].names, w->frames[i].n);
	}
	for (size_t i = 0; i < NBATCH; i++) {
		free(w->batches[i].slots);
		free(w->batches[i].arena);
	}
	free(w->frames);
	free(w->path);
	free(w);
}
