/*
 * raceshim: an LD_PRELOAD shim that makes a tree change under a backup at
 * the exact moment a race would, for t2085 (no timing luck needed).  It
 * acts on files by their last path component:
 *
 *   "blocker"    read() says EAGAIN, as /proc/kmsg does when empty
 *   "rewritten"  after each read(), the file's times become now, as a
 *                write from another process in the middle would make them
 *   "swapped"    openat() first replaces it with a symlink to
 *                "swap-target", as if it were replaced after the walk
 *                saw a regular file
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int
fd_named(int fd, const char *name)
{
	char link[64], path[8192];
	ssize_t n;
	const char *base;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (n < 0)
		return 0;
	path[n] = '\0';
	base = strrchr(path, '/');
	return base != NULL && strcmp(base + 1, name) == 0;
}

ssize_t
read(int fd, void *p, size_t n)
{
	static ssize_t (*real)(int, void *, size_t);
	ssize_t r;

	if (real == NULL)
		real = (ssize_t(*)(int, void *, size_t))dlsym(RTLD_NEXT, "read");
	if (fd_named(fd, "blocker")) {
		errno = EAGAIN;
		return -1;
	}
	r = real(fd, p, n);
	if (r > 0 && fd_named(fd, "rewritten")) {
		int saved = errno;

		futimens(fd, NULL);
		errno = saved;
	}
	return r;
}

static void
swap(int dirfd, const char *name)
{
	const char *base = strrchr(name, '/');

	base = base ? base + 1 : name;
	if (strcmp(base, "swapped") == 0 && unlinkat(dirfd, name, 0) == 0)
		symlinkat("swap-target", dirfd, name);
}

int
openat(int dirfd, const char *name, int flags, ...)
{
	static int (*real)(int, const char *, int, ...);
	mode_t mode = 0;

	if (real == NULL)
		real = (int (*)(int, const char *, int, ...))dlsym(RTLD_NEXT,
		    "openat");
	if (flags & O_CREAT) {
		va_list ap;

		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	swap(dirfd, name);
	return real(dirfd, name, flags, mode);
}

int
openat64(int dirfd, const char *name, int flags, ...)
{
	mode_t mode = 0;

	if (flags & O_CREAT) {
		va_list ap;

		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	return openat(dirfd, name, flags, mode);
}
