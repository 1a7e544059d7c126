/*
 * store_file: the file backend (a directory).  Every write goes through
 * the fileio publish protocol, so a crash never leaves a partial file
 * under a store name; leftover ".tmp.*" files are ignored by readers and
 * removed by garbage collection.
 */
#include "store_backend.h"

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

struct file_store {
	char *dir;
};

static int
f_open(const char *url, bool create, void **impl)
{
	const char *path = url;
	struct file_store *fs;
	struct stat sb;

	if (strncmp(url, "file://", 7) == 0) {
		path = url + 7;
		if (path[0] != '/') {
			err_set("store URL '%s': file:// URLs need an absolute "
				"path (file:///path)",
			    url);
			return -1;
		}
	}
	if (path[0] == '\0') {
		err_set("empty store path");
		return -1;
	}
	if (create && fileio_mkdir_p(path, 0755))
		return -1;
	if (stat(path, &sb)) {
		err_setp("store '%s'", path);
		return -1;
	}
	if (!S_ISDIR(sb.st_mode)) {
		err_set("store '%s' is not a directory", path);
		return -1;
	}
	fs = calloc(1, sizeof(*fs));
	if (fs == NULL || (fs->dir = strdup(path)) == NULL) {
		free(fs);
		err_set("out of memory");
		return -1;
	}
	*impl = fs;
	return 0;
}

static void
f_close(void *impl)
{
	struct file_store *fs = impl;

	free(fs->dir);
	free(fs);
}

static const char *
f_local_dir(void *impl)
{
	return ((struct file_store *)impl)->dir;
}

static int
f_create(void *impl, const char *name, void **out, int *fd)
{
	struct file_store *fs = impl;
	struct fileio_tmp *t;
	struct buf dir;
	const char *slash = strrchr(name, '/');
	const char *base = slash ? slash + 1 : name;
	int rc = -1;

	t = calloc(1, sizeof(*t));
	if (t == NULL) {
		err_set("out of memory");
		return -1;
	}
	/* The temp file lives in the final directory, so link() publishes. */
	buf_init(&dir, 1 << 16);
	if (buf_puts(&dir, fs->dir) == 0 &&
	    (slash == NULL ||
		(buf_putc(&dir, '/') == 0 &&
		    buf_append(&dir, name, (size_t)(slash - name)) == 0 &&
		    fileio_mkdir_p(dir.data, 0755) == 0)) &&
	    fileio_tmp_open(t, dir.data, base) == 0) {
		*out = t;
		*fd = t->fd;
		rc = 0;
	} else {
		free(t);
	}
	buf_release(&dir);
	return rc;
}

static int
f_commit(void *w, bool noreplace)
{
	int rc = fileio_tmp_commit(w, noreplace);

	free(w);
	return rc;
}

static void
f_abort(void *w)
{
	fileio_tmp_abort(w);
	free(w);
}

static int
full_path(const struct file_store *fs, const char *name, struct buf *out)
{
	buf_init(out, 1 << 16);
	return buf_printf(out, "%s/%s", fs->dir, name);
}

static int
f_open_read(void *impl, const char *name, int *fd)
{
	struct buf path;
	int rc = -1;

	if (full_path(impl, name, &path) == 0) {
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

static int
f_stat(void *impl, const char *name, uint64_t *size)
{
	struct buf path;
	struct stat sb;
	int rc = -1;

	if (full_path(impl, name, &path) == 0) {
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

static int
f_del(void *impl, const char *name)
{
	struct buf path;
	int rc = -1;

	if (full_path(impl, name, &path) == 0) {
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
f_list(void *impl, const char *dir, store_list_cb cb, void *arg)
{
	struct file_store *fs = impl;
	struct buf path;
	DIR *d;
	struct dirent *e;
	int rc = 0;

	buf_init(&path, 1 << 16);
	if (buf_puts(&path, fs->dir) ||
	    (dir[0] && buf_printf(&path, "/%s", dir))) {
		buf_release(&path);
		return -1;
	}
	d = opendir(path.data);
	if (d == NULL) {
		rc = (errno == ENOENT || errno == ENOTDIR) ? 0 : -1;
		if (rc)
			err_setp("cannot list '%s'", path.data);
		buf_release(&path);
		return rc;
	}
	while (rc == 0 && (e = readdir(d)) != NULL) {
		struct stat sb;

		if (e->d_name[0] == '.')
			continue; /* ".", "..", and temp files */
		if (fstatat(dirfd(d), e->d_name, &sb, 0) || !S_ISREG(sb.st_mode))
			continue;
		rc = cb(arg, e->d_name, (uint64_t)sb.st_size);
	}
	closedir(d);
	buf_release(&path);
	return rc;
}

const struct store_ops store_file_ops = {
	.scheme = NULL,
	.open = f_open,
	.close = f_close,
	.local_dir = f_local_dir,
	.w_create = f_create,
	.w_commit = f_commit,
	.w_abort = f_abort,
	.default_jobs = 1,
	.max_jobs = 1,
	.open_read = f_open_read,
	.stat = f_stat,
	.del = f_del,
	.list = f_list,
};
