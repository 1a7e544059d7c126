/*
 * fileio: complete reads/writes and the temp-file publish protocol.
 * See fileio.h for the crash guarantees.
 */
#include "fileio.h"

#include <sys/file.h>
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

int
fileio_write_full(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t w = write(fd, c, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			err_setp("write");
			return -1;
		}
		if (w == 0) {
			errno = ENOSPC;
			err_setp("write");
			return -1;
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Clear O_NONBLOCK on ${fd}.  0, or -1 (error recorded). */
static int
set_blocking(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 ||
	    ((fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)) {
		err_setp("fcntl");
		return -1;
	}
	return 0;
}

static ssize_t
read_full(int fd, void *p, size_t n, bool may_block)
{
	char *c = p;
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, c + got, n - got);

		if (r < 0 && errno == EINTR)
			continue;
		/* Whoever asks for every byte waits for them: a descriptor
		 * opened with O_NONBLOCK becomes blocking if it says EAGAIN.
		 * A regular file never does on Linux, so clearing the flag up
		 * front would be two system calls per file for nothing. */
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!may_block) {
				err_set("read would block (not a plain file)");
				return -1;
			}
			if (set_blocking(fd))
				return -1;
			continue;
		}
		if (r < 0) {
			err_setp("read");
			return -1;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

ssize_t
fileio_read_full(int fd, void *p, size_t n)
{
	return read_full(fd, p, n, true);
}

ssize_t
fileio_read_file_full(int fd, void *p, size_t n)
{
	return read_full(fd, p, n, false);
}

ssize_t
fileio_pread_full(int fd, void *p, size_t n, off_t off)
{
	char *c = p;
	size_t got = 0;

	while (got < n) {
		ssize_t r = pread(fd, c + got, n - got, off + (off_t)got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err_setp("read");
			return -1;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

int
fileio_read_fd(int fd, struct buf *out)
{
	for (;;) {
		/* 64 KiB steps, never asking for more room than the bound
		 * leaves; when full, one more byte tells "too large". */
		size_t room = out->max - out->len;
		size_t n = room < 65536 ? room : 65536;
		char probe;
		ssize_t r;

		if (n > 0 && buf_reserve(out, n))
			return -1;
		r = n > 0 ? read(fd, out->data + out->len, n) : read(fd, &probe, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err_setp("read");
			return -1;
		}
		if (r == 0)
			break;
		if (n == 0) {
			err_set("data larger than the limit of %zu bytes",
			    out->max);
			return -1;
		}
		out->len += (size_t)r;
		out->data[out->len] = '\0';
	}
	return 0;
}

int
fileio_read_file(const char *path, struct buf *out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int rc;

	if (fd < 0) {
		err_setp("cannot open '%s'", path);
		return -1;
	}
	rc = fileio_read_fd(fd, out);
	if (rc)
		err_prefix("'%s'", path);
	close(fd);
	return rc;
}

int
fileio_tmp_open(struct fileio_tmp *t, const char *dir, const char *name)
{
	static const char hexd[] = "0123456789abcdef";
	size_t n = strlen(name) + 32;

	t->fd = -1;
	t->tmpname = NULL;
	t->name = strdup(name);
	t->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (t->dirfd < 0) {
		err_setp("cannot open directory '%s'", dir);
		goto fail;
	}
	t->tmpname = malloc(n);
	if (t->name == NULL || t->tmpname == NULL) {
		err_set("out of memory");
		goto fail;
	}
	for (int tries = 0; tries < 100; tries++) {
		unsigned char rnd[6];
		char suffix[13];
		int ufd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

		if (ufd < 0 || fileio_read_full(ufd, rnd, sizeof(rnd)) != 6) {
			if (ufd >= 0)
				close(ufd);
			err_setp("cannot read /dev/urandom");
			goto fail;
		}
		close(ufd);
		for (int i = 0; i < 6; i++) {
			suffix[2 * i] = hexd[rnd[i] >> 4];
			suffix[2 * i + 1] = hexd[rnd[i] & 15];
		}
		suffix[12] = '\0';
		snprintf(t->tmpname, n, ".tmp.%s.%s", name, suffix);
		t->fd = openat(t->dirfd, t->tmpname,
		    O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
		if (t->fd >= 0)
			return 0;
		if (errno != EEXIST)
			break;
	}
	err_setp("cannot create a temporary file in '%s'", dir);
fail:
	if (t->dirfd >= 0)
		close(t->dirfd);
	free(t->tmpname);
	free(t->name);
	t->dirfd = -1;
	t->tmpname = t->name = NULL;
	return -1;
}

static void
tmp_release(struct fileio_tmp *t)
{
	if (t->fd >= 0)
		close(t->fd);
	if (t->dirfd >= 0)
		close(t->dirfd);
	free(t->tmpname);
	free(t->name);
	t->fd = t->dirfd = -1;
	t->tmpname = t->name = NULL;
}

void
fileio_tmp_abort(struct fileio_tmp *t)
{
	if (t->dirfd >= 0 && t->tmpname)
		unlinkat(t->dirfd, t->tmpname, 0);
	tmp_release(t);
}

int
fileio_tmp_commit(struct fileio_tmp *t, bool noreplace)
{
	int fd = t->fd;

	/* The data must be on disk before the name points at it. */
	if (fsync(fd)) {
		err_setp("fsync '%s'", t->name);
		goto fail;
	}
	t->fd = -1;
	if (close(fd)) {
		err_setp("close '%s'", t->name);
		goto fail;
	}
	if (noreplace) {
		/*
		 * One atomic step that refuses to clobber an existing file and
		 * leaves no second name behind.  Filesystems without
		 * RENAME_NOREPLACE get link (which also refuses to clobber)
		 * then unlink of the temp name; a crash between those leaves
		 * only a temp file.
		 */
		if (renameat2(t->dirfd, t->tmpname, t->dirfd, t->name,
			RENAME_NOREPLACE) == 0) {
			/* published */
		} else if (errno == EEXIST) {
			err_setp("'%s'", t->name);
			goto fail;
		} else if (errno != EINVAL && errno != ENOSYS &&
		    errno != EOPNOTSUPP) {
			err_setp("cannot publish '%s'", t->name);
			goto fail;
		} else if (linkat(t->dirfd, t->tmpname, t->dirfd, t->name, 0)) {
			err_setp("cannot publish '%s'", t->name);
			goto fail;
		} else {
			unlinkat(t->dirfd, t->tmpname, 0);
		}
	} else if (renameat(t->dirfd, t->tmpname, t->dirfd, t->name)) {
		err_setp("cannot rename into '%s'", t->name);
		goto fail;
	}
	/* The new directory entry must be durable before we report success. */
	if (fsync(t->dirfd)) {
		err_setp("fsync of the directory of '%s'", t->name);
		tmp_release(t);
		return -1;
	}
	tmp_release(t);
	return 0;
fail:
	fileio_tmp_abort(t);
	return -1;
}

int
fileio_publish(const char *dir, const char *name, const void *p, size_t n,
    bool noreplace)
{
	struct fileio_tmp t;

	if (fileio_tmp_open(&t, dir, name))
		return -1;
	if (fileio_write_full(t.fd, p, n)) {
		err_prefix("'%s/%s'", dir, name);
		fileio_tmp_abort(&t);
		return -1;
	}
	return fileio_tmp_commit(&t, noreplace);
}

void
fileio_write_behind(int fd, uint64_t *mark, uint64_t size, uint64_t every)
{
	if (size < *mark || size - *mark < every)
		return;
	sync_file_range(fd, (off_t)*mark, (off_t)(size - *mark),
	    SYNC_FILE_RANGE_WRITE);
	*mark = size;
}

int
fileio_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0) {
		err_setp("cannot open directory '%s'", dir);
		return -1;
	}
	if (fsync(fd)) {
		err_setp("fsync '%s'", dir);
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

int
fileio_clean_temps(const char *dir, const char *name)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t nl = name ? strlen(name) : 0;
	int n = 0;

	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		int fd;

		if (strncmp(e->d_name, ".tmp.", 5) != 0 ||
		    (name && strncmp(e->d_name + 5, name, nl) != 0))
			continue;
		fd = openat(dirfd(d), e->d_name,
		    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			continue;
		/* Unlinked by its temp name while locked: a writer that
		 * finished meanwhile renamed it, and that name is gone. */
		if (flock(fd, LOCK_EX | LOCK_NB) == 0 &&
		    unlinkat(dirfd(d), e->d_name, 0) == 0)
			n++;
		close(fd);
	}
	closedir(d);
	return n;
}

int
fileio_mkdir_p(const char *path, unsigned mode)
{
	char *p = strdup(path);
	int rc = 0;

	if (p == NULL) {
		err_set("out of memory");
		return -1;
	}
	/* Each prefix in turn; existing directories are fine. */
	for (char *s = p + 1;; s++) {
		if (*s == '/' || *s == '\0') {
			char c = *s;
			struct stat sb;

			*s = '\0';
			if (mkdir(p, (mode_t)mode) && errno != EEXIST) {
				err_setp("cannot create directory '%s'", p);
				rc = -1;
				break;
			}
			if (c == '\0' && (stat(p, &sb) || !S_ISDIR(sb.st_mode))) {
				err_set("'%s' is not a directory", p);
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
fileio_anon_temp(void)
{
	const char *tmpdir = getenv("TMPDIR");
	char *path;
	int fd;

	if (tmpdir == NULL || tmpdir[0] == '\0')
		tmpdir = "/tmp";
	fd = open(tmpdir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	/* Filesystems without O_TMPFILE: create and unlink at once. */
	if (asprintf(&path, "%s/cumulus-tmp.XXXXXX", tmpdir) < 0) {
		err_set("out of memory");
		return -1;
	}
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		err_setp("cannot create a temporary file in '%s'", tmpdir);
	else
		unlink(path);
	free(path);
	return fd;
}
