/*
 * faultinj: an LD_PRELOAD shim that makes the Nth call of one kind of
 * system call kill the process or fail, so tests can crash or starve an
 * operation at every point it reaches without hooks in the product.
 *
 *   FAULT_OP     write | fsync | rename | link | unlink | any | malloc
 *                ("write" covers write/pwrite/writev; "rename" rename*,
 *                "link" link/linkat, "unlink" unlink/unlinkat/rmdir,
 *                "fsync" fsync/fdatasync; "any" the five system call
 *                kinds together; "malloc" malloc/calloc/realloc, in the
 *                program and every library it uses, all threads)
 *   FAULT_N      the 1-based call that fails; 0 or unset: only count
 *   FAULT_MODE   kill (SIGKILL, the default) | enospc | eio | enomem
 *   FAULT_COUNTS a file to which the counts of each kind are appended at
 *                exit ("write N\nfsync N\n...")
 *   FAULT_READ_NAME, FAULT_READ_AT
 *                independently of the above: read() of a file of that
 *                name (its last path component) fails with EIO once the
 *                file's offset is FAULT_READ_AT bytes or more (a medium
 *                error part-way through a file)
 *
 * Only the process that loaded the shim first counts: children (filters)
 * see FAULT_PID differ from their pid and pass through.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

/* K_SYS: the system call kinds ("any"); K_MALLOC is counted apart. */
enum kind { K_WRITE, K_FSYNC, K_RENAME, K_LINK, K_UNLINK, K_SYS,
	K_MALLOC = K_SYS, K_N };
static const char *const kind_names[K_N] = { "write", "fsync", "rename",
	"link", "unlink", "malloc" };
static atomic_long counts[K_N];
static int target = -1; /* kind, or K_N for any */
static long fail_at;
static int fail_errno; /* 0: kill */
static int active;
static const char *read_name;
static off_t read_at;

__attribute__((constructor)) static void
fi_init(void)
{
	const char *op = getenv("FAULT_OP"), *n = getenv("FAULT_N");
	const char *mode = getenv("FAULT_MODE"), *pid = getenv("FAULT_PID");
	char me[32];

	snprintf(me, sizeof(me), "%ld", (long)getpid());
	if (pid && strcmp(pid, me) != 0)
		return; /* a child of the process under test */
	setenv("FAULT_PID", me, 1);
	active = 1;
	read_name = getenv("FAULT_READ_NAME");
	read_at = getenv("FAULT_READ_AT") ? atoll(getenv("FAULT_READ_AT")) : 0;
	fail_at = n ? atol(n) : 0;
	if (op) {
		for (int i = 0; i < K_N; i++)
			if (strcmp(op, kind_names[i]) == 0)
				target = i;
		if (strcmp(op, "any") == 0)
			target = K_N;
	}
	if (mode && strcmp(mode, "enospc") == 0)
		fail_errno = ENOSPC;
	else if (mode && strcmp(mode, "eio") == 0)
		fail_errno = EIO;
	else if (mode && strcmp(mode, "enomem") == 0)
		fail_errno = ENOMEM;
}

__attribute__((destructor)) static void
fi_fini(void)
{
	const char *f = getenv("FAULT_COUNTS");
	FILE *fp;

	if (!active || f == NULL || (fp = fopen(f, "a")) == NULL)
		return;
	for (int i = 0; i < K_N; i++)
		fprintf(fp, "%s %ld\n", kind_names[i], (long)counts[i]);
	fclose(fp);
}

/* 1 when this call must fail (errno set), after counting it. */
static int
hit(enum kind k)
{
	long n;

	if (!active)
		return 0;
	n = ++counts[k];
	if (fail_at <= 0 || (target != (int)k && target != K_N))
		return 0;
	if (target == K_N) {
		long total = 0;

		if (k == K_MALLOC)
			return 0;
		for (int i = 0; i < K_SYS; i++)
			total += counts[i];
		n = total;
	}
	if (n != fail_at)
		return 0;
	if (fail_errno == 0)
		kill(getpid(), SIGKILL);
	errno = fail_errno;
	return 1;
}

#define REAL(name) ((__typeof__(&name))dlsym(RTLD_NEXT, #name))

ssize_t
read(int fd, void *p, size_t n)
{
	if (active && read_name != NULL) {
		char link[64], path[4096];
		ssize_t len;

		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		len = readlink(link, path, sizeof(path) - 1);
		if (len > 0) {
			const char *base;

			path[len] = '\0';
			base = strrchr(path, '/');
			base = base ? base + 1 : path;
			if (strcmp(base, read_name) == 0 &&
			    lseek(fd, 0, SEEK_CUR) >= read_at) {
				errno = EIO;
				return -1;
			}
		}
	}
	return REAL(read)(fd, p, n);
}

/* glibc's own entry points: dlsym() may allocate, so the wrappers must
 * not need it. */
void *__libc_malloc(size_t n);
void *__libc_calloc(size_t k, size_t n);
void *__libc_realloc(void *p, size_t n);

void *
malloc(size_t n)
{
	if (hit(K_MALLOC))
		return NULL;
	return __libc_malloc(n);
}

void *
calloc(size_t k, size_t n)
{
	if (hit(K_MALLOC))
		return NULL;
	return __libc_calloc(k, n);
}

void *
realloc(void *p, size_t n)
{
	if (hit(K_MALLOC))
		return NULL;
	return __libc_realloc(p, n);
}

ssize_t
write(int fd, const void *p, size_t n)
{
	/* Messages on stdout/stderr are not the operation's data. */
	if (fd > 2 && hit(K_WRITE))
		return -1;
	return REAL(write)(fd, p, n);
}

ssize_t
pwrite(int fd, const void *p, size_t n, off_t off)
{
	if (hit(K_WRITE))
		return -1;
	return REAL(pwrite)(fd, p, n, off);
}

ssize_t
pwrite64(int fd, const void *p, size_t n, off_t off)
{
	if (hit(K_WRITE))
		return -1;
	return REAL(pwrite64)(fd, p, n, off);
}

ssize_t
writev(int fd, const struct iovec *iov, int cnt)
{
	if (fd > 2 && hit(K_WRITE))
		return -1;
	return REAL(writev)(fd, iov, cnt);
}

int
fsync(int fd)
{
	if (hit(K_FSYNC))
		return -1;
	return REAL(fsync)(fd);
}

int
fdatasync(int fd)
{
	if (hit(K_FSYNC))
		return -1;
	return REAL(fdatasync)(fd);
}

int
rename(const char *a, const char *b)
{
	if (hit(K_RENAME))
		return -1;
	return REAL(rename)(a, b);
}

int
renameat(int da, const char *a, int db, const char *b)
{
	if (hit(K_RENAME))
		return -1;
	return REAL(renameat)(da, a, db, b);
}

int
renameat2(int da, const char *a, int db, const char *b, unsigned flags)
{
	if (hit(K_RENAME))
		return -1;
	return REAL(renameat2)(da, a, db, b, flags);
}

int
link(const char *a, const char *b)
{
	if (hit(K_LINK))
		return -1;
	return REAL(link)(a, b);
}

int
linkat(int da, const char *a, int db, const char *b, int flags)
{
	if (hit(K_LINK))
		return -1;
	return REAL(linkat)(da, a, db, b, flags);
}

int
unlink(const char *a)
{
	if (hit(K_UNLINK))
		return -1;
	return REAL(unlink)(a);
}

int
unlinkat(int d, const char *a, int flags)
{
	if (hit(K_UNLINK))
		return -1;
	return REAL(unlinkat)(d, a, flags);
}
