/*
 * store: the file backend (a directory).  Every write goes through the
 * fileio publish protocol, so a crash never leaves a partial file under a
 * store name; leftover ".tmp.*" files are ignored by readers and removed
 * by garbage collection.
 */
#include "store.h"

#include <sys/stat.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "fileio.h"

struct store {
	char *url;
	char *dir;
};

struct store_writer {
	struct fileio_tmp tmp;
};

static int
mkdir_p(const char *path)
{
	char *p = strdup(path);
	int rc = 0;

	if (p == NULL) {
		err_set("out of memory");
		return -1;
	}
	for (char *s = p + 1;; s++) {
		if (*s == '/' || *s == '\0') {
			char c = *s;

			*s = '\0';
			if (mkdir(p, 0755) && errno != EEXIST) {
				err_setp("cannot create directory '%s'", p);
				rc = -1;
				break;
			}
			*s = c;
			if (c == '\0')
				break;
		}
	}
	free(p);
	return rc;
}

int
store_open(const char *url, bool create, struct store **out)
{
	const char *path = url;
	struct store *st;
	struct stat sb;

	*out = NULL;
	if (strncmp(url, "file://", 7) == 0) {
		path = url + 7;
		if (path[0] != '/') {
			err_set("store URL '%s': file:// URLs need an absolute "
				"path (file:///path)",
			    url);
			return -1;
		}
	} else if (strstr(url, "://") != NULL) {
		err_set("store URL '%s': this build supports only local "
			"directories and file:/// URLs",
		    url);
		return -1;
	}
	if (path[0] == '\0') {
		err_set("empty store path");
		return -1;
	}
	if (create && mkdir_p(path))
		return -1;
	if (stat(path, &sb)) {
		err_setp("store '%s'", path);
		return -1;
	}
	if (!S_ISDIR(sb.st_mode)) {
		err_set("store '%s' is not a directory", path);
		return -1;
	}
	st = calloc(1, sizeof(*st));
	if (st == NULL || (st->url = strdup(url)) == NULL ||
	    (st->dir = strdup(path)) == NULL) {
		store_close(st);
		err_set("out of memory");
		return -1;
	}
	*out = st;
	return 0;
}

void
store_close(struct store *st)
{
	if (st == NULL)
		return;
	free(st->url);
	free(st->dir);
	free(st);
}

const char *
store_local_dir(const struct store *st)
{
	return st->dir;
}

const char *
store_url(const struct store *st)
{
	return st->url;
}

/* Names come from descriptors and command lines: refuse anything that
 * could leave the store directory. */
static int
check_name(const char *name)
{
	const char *p = name;

	if (name[0] == '\0' || name[0] == '/')
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
	return 0;
bad:
	err_set("invalid store file name '%.200s'", name);
	return -1;
}

/* Split ${name} into the directory to write in and the base name. */
static int
full_dir(const struct store *st, const char *name, struct buf *dir,
    const char **base)
{
	const char *slash = strrchr(name, '/');

	buf_init(dir, 1 << 16);
	if (buf_puts(dir, st->dir))
		return -1;
	if (slash) {
		if (buf_putc(dir, '/') ||
		    buf_append(dir, name, (size_t)(slash - name)))
			return -1;
		*base = slash + 1;
	} else {
		*base = name;
	}
	return 0;
}

int
store_create(struct store *st, const char *name, struct store_writer **out)
{
	struct store_writer *w;
	struct buf dir;
	const char *base;
	int rc = -1;

	*out = NULL;
	if (check_name(name))
		return -1;
	w = calloc(1, sizeof(*w));
	if (w == NULL) {
		err_set("out of memory");
		return -1;
	}
	if (full_dir(st, name, &dir, &base) == 0 &&
	    (strchr(name, '/') == NULL || mkdir_p(dir.data) == 0) &&
	    fileio_tmp_open(&w->tmp, dir.data, base) == 0) {
		*out = w;
		rc = 0;
	} else {
		free(w);
	}
	buf_release(&dir);
	return rc;
}

int
store_writer_fd(const struct store_writer *w)
{
	return w->tmp.fd;
}

int
store_writer_commit(struct store_writer *w, bool noreplace)
{
	int rc = fileio_tmp_commit(&w->tmp, noreplace);

	free(w);
	return rc;
}

void
store_writer_abort(struct store_writer *w)
{
	if (w == NULL)
		return;
	fileio_tmp_abort(&w->tmp);
	free(w);
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

static int
full_path(const struct store *st, const char *name, struct buf *out)
{
	buf_init(out, 1 << 16);
	if (check_name(name))
		return -1;
	return buf_printf(out, "%s/%s", st->dir, name);
}

int
store_open_read(struct store *st, const char *name, int *fd)
{
	struct buf path;
	int rc = -1;

	*fd = -1;
	if (full_path(st, name, &path) == 0) {
		*fd = open(path.data, O_RDONLY | O_CLOEXEC);
		if (*fd >= 0)
			rc = 0;
		else if (errno == ENOENT || errno == ENOTDIR)
			rc = 1;
		else
			err_setp("cannot open '%s'", path.data);
	}
	buf_release(&path);
	return rc;
}

int
store_stat(struct store *st, const char *name, uint64_t *size)
{
	struct buf path;
	struct stat sb;
	int rc = -1;

	if (full_path(st, name, &path) == 0) {
		if (stat(path.data, &sb) == 0) {
			*size = (uint64_t)sb.st_size;
			rc = S_ISREG(sb.st_mode) ? 0 : 1;
		} else if (errno == ENOENT || errno == ENOTDIR) {
			rc = 1;
		} else {
			err_setp("cannot stat '%s'", path.data);
		}
	}
	buf_release(&path);
	return rc;
}

int
store_delete(struct store *st, const char *name)
{
	struct buf path;
	int rc = -1;

	if (full_path(st, name, &path) == 0) {
		if (unlink(path.data) == 0)
			rc = 0;
		else if (errno == ENOENT)
			rc = 1;
		else
			err_setp("cannot delete '%s'", path.data);
	}
	buf_release(&path);
	return rc;
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
store_list(struct store *st, const char *dir,
    int (*cb)(void *arg, const char *name), void *arg)
{
	struct buf path;
	DIR *d;
	struct dirent *e;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int rc = -1;

	buf_init(&path, 1 << 16);
	if (buf_puts(&path, st->dir))
		goto out;
	if (dir[0] && (check_name(dir) || buf_printf(&path, "/%s", dir)))
		goto out;
	d = opendir(path.data);
	if (d == NULL) {
		rc = (errno == ENOENT || errno == ENOTDIR) ? 0 : -1;
		if (rc)
			err_setp("cannot list '%s'", path.data);
		goto out;
	}
	while ((e = readdir(d)) != NULL) {
		struct stat sb;

		if (e->d_name[0] == '.')
			continue; /* ".", "..", and temp files */
		if (fstatat(dirfd(d), e->d_name, &sb, 0) || !S_ISREG(sb.st_mode))
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			char **nn = realloc(names, ncap * sizeof(*names));

			if (nn == NULL) {
				err_set("out of memory");
				closedir(d);
				goto out;
			}
			names = nn;
			cap = ncap;
		}
		if ((names[n] = strdup(e->d_name)) == NULL) {
			err_set("out of memory");
			closedir(d);
			goto out;
		}
		n++;
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), cmp_names);
	rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = cb(arg, names[i]);
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	buf_release(&path);
	return rc;
}
