/*
 * test_bulkwrite: a large file written through bulkwrite (bulkwrite.h)
 * has exactly the bytes added, in any split, with or without the helper
 * thread; all-zero blocks become holes; a write that fails on the helper
 * thread is reported to the caller.  Direct writes that the filesystem
 * refuses half way, or takes in part, fall back to the page cache with
 * the same result; the descriptor gets its flags back, after a failure
 * too.  The faults come from a wrapper of pwrite64 (the Makefile links
 * this test with -Wl,--wrap=pwrite64).
 */
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bulkwrite.h"
#include "err.h"
#include "prng.h"
#include "tap.h"

static char dir[64];

/* What the wrapper of pwrite64 does to direct writes. */
enum inject {
	INJECT_NONE,
	INJECT_EINVAL_THIRD, /* the third fails with EINVAL */
	INJECT_SHORT, /* each writes at most 5120 bytes */
	INJECT_ENOSPC, /* each fails with ENOSPC */
};
static _Atomic int inject, direct_writes, buffered_writes;

ssize_t __real_pwrite64(int fd, const void *p, size_t n, off_t off);
ssize_t __wrap_pwrite64(int fd, const void *p, size_t n, off_t off);

ssize_t
__wrap_pwrite64(int fd, const void *p, size_t n, off_t off)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || !(fl & O_DIRECT)) {
		buffered_writes++;
		return __real_pwrite64(fd, p, n, off);
	}
	direct_writes++;
	if (inject == INJECT_EINVAL_THIRD && direct_writes == 3) {
		errno = EINVAL;
		return -1;
	}
	if (inject == INJECT_ENOSPC) {
		errno = ENOSPC;
		return -1;
	}
	if (inject == INJECT_SHORT && n > 5120)
		n = 5120;
	return __real_pwrite64(fd, p, n, off);
}

static bool
has_direct(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl >= 0 && (fl & O_DIRECT);
}

static uint64_t prng_state = 88172645463325252ULL;

static int
create(const char *name)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
}

/* Whether ${fd} holds exactly the ${n} bytes of ${want}: read through the
 * same descriptor, which must have lost O_DIRECT (an unaligned read
 * would fail with EINVAL). */
static bool
same(int fd, const unsigned char *want, size_t n)
{
	unsigned char *got = malloc(n + 1);
	size_t have = 0;
	ssize_t r;
	bool eq;

	while ((r = pread(fd, got + have, n + 1 - have, (off_t)have)) > 0)
		have += (size_t)r;
	eq = r == 0 && have == n && memcmp(got, want, n) == 0;
	free(got);
	return eq;
}

/*
 * Write ${n} bytes: random data in pieces of random length, with runs
 * given as zeros (p NULL) and runs of zero bytes in memory, into a file
 * through buffers of ${cap} bytes.  Check the content and size.
 */
static void
check_split(const char *name, size_t n, size_t cap, bool threaded)
{
	unsigned char *want = malloc(n ? n : 1);
	int fd = create(name);
	struct bulkwrite *w = bulkwrite_start(fd, cap, threaded);
	size_t at = 0;
	int rc = w ? 0 : -1;
	struct stat sb;

	for (size_t i = 0; i < n; i++)
		want[i] = (unsigned char)prng_next(&prng_state);
	while (rc == 0 && at < n) {
		size_t k = 1 + prng_next(&prng_state) % (cap * 3 / 2);
		unsigned kind = (unsigned)(prng_next(&prng_state) % 4);

		if (k > n - at)
			k = n - at;
		if (kind == 0) {
			memset(want + at, 0, k);
			rc = bulkwrite_add(w, NULL, k);
		} else {
			if (kind == 1)
				memset(want + at, 0, k);
			rc = bulkwrite_add(w, want + at, k);
		}
		at += k;
	}
	if (rc == 0)
		rc = bulkwrite_finish(w);
	ok(rc == 0 && bulkwrite_size(w) == n && fstat(fd, &sb) == 0
	        && (size_t)sb.st_size == n && same(fd, want, n),
	    "%s: %zu bytes through %zu-byte buffers, %s (%s)", name, n, cap,
	    threaded ? "helper thread" : "in line", rc ? err_msg() : "ok");
	bulkwrite_free(w);
	close(fd);
	free(want);
}

/* Data, a long run of zeros, data, then zeros to the end: the zeros are
 * holes and the size is still right. */
static void
check_holes(bool threaded)
{
	const size_t cap = 64 << 10, mid = 4 << 20, tail = 256 << 10;
	size_t n = 4096 + mid + 8192 + tail;
	unsigned char *want = calloc(1, n);
	int fd = create("holes");
	struct bulkwrite *w = bulkwrite_start(fd, cap, threaded);
	struct stat sb;
	int rc;

	memset(want, 'a', 4096);
	memset(want + 4096 + mid, 'b', 8192);
	rc = w == NULL || bulkwrite_add(w, want, 4096)
	    || bulkwrite_add(w, NULL, mid)
	    || bulkwrite_add(w, want + 4096 + mid, 8192)
	    || bulkwrite_add(w, want + 4096 + mid + 8192, tail)
	    || bulkwrite_finish(w);
	ok(rc == 0 && fstat(fd, &sb) == 0 && (size_t)sb.st_size == n
	        && same(fd, want, n),
	    "holes, %s: content and size", threaded ? "helper" : "in line");
	/* 12 KiB of data; allow the filesystem some metadata blocks. */
	ok(rc == 0 && (uint64_t)sb.st_blocks * 512 <= 64 << 10,
	    "holes, %s: %lld bytes allocated for 12 KiB of data in %zu bytes",
	    threaded ? "helper" : "in line", (long long)sb.st_blocks * 512, n);
	bulkwrite_free(w);
	close(fd);
	free(want);
}

/*
 * With direct writes faulted by ${how}: 1234567 bytes of data and zero
 * runs, through the helper or not, come out exact, and the descriptor
 * loses O_DIRECT.
 */
static void
check_fallback(const char *name, int how, bool threaded)
{
	const size_t n = 1234567;
	unsigned char *want = malloc(n);
	int fd = create(name);
	struct bulkwrite *w = bulkwrite_start(fd, 65536, threaded);
	int rc = w ? 0 : -1;
	bool writes_as_expected;
	struct stat sb;

	for (size_t i = 0; i < n; i++)
		want[i] = (i / 100000) % 3 == 0
		    ? 0
		    : (unsigned char)prng_next(&prng_state);
	inject = how;
	direct_writes = buffered_writes = 0;
	for (size_t at = 0; rc == 0 && at < n; at += 7777) {
		size_t k = n - at < 7777 ? n - at : 7777;

		rc = bulkwrite_add(w, want + at, k);
	}
	if (rc == 0)
		rc = bulkwrite_finish(w);
	inject = INJECT_NONE;
	/* After EINVAL the rest goes through the page cache; after short
	 * writes each next one starts where the last stopped: direct if the
	 * device takes 512-byte alignment, else through the cache. */
	writes_as_expected = how == INJECT_SHORT
	    ? direct_writes > (int)(n / 65536) + 1
	    : direct_writes >= 2 && buffered_writes > 0;
	ok(rc == 0 && fstat(fd, &sb) == 0 && (size_t)sb.st_size == n
	        && same(fd, want, n) && writes_as_expected,
	    "%s, %s: exact, %d direct writes, %d through the page cache (%s)",
	    name, threaded ? "helper" : "in line", (int)direct_writes,
	    (int)buffered_writes, rc ? err_msg() : "ok");
	ok(!has_direct(fd), "%s, %s: the descriptor has lost O_DIRECT", name,
	    threaded ? "helper" : "in line");
	bulkwrite_free(w);
	close(fd);
	free(want);
}

/* Direct writes that fail with ENOSPC: the caller hears of it, and the
 * descriptor gets its flags back from a failed bulkwrite_finish(), or
 * from bulkwrite_free() without one. */
static void
check_failed_flags(bool threaded, bool call_finish)
{
	unsigned char block[5000];
	int fd = create("enospc");
	struct bulkwrite *w = bulkwrite_start(fd, 8192, threaded);
	int rc = w ? 0 : -1;

	memset(block, 'x', sizeof(block));
	inject = INJECT_ENOSPC;
	for (int i = 0; rc == 0 && i < 10; i++)
		rc = bulkwrite_add(w, block, sizeof(block));
	if (rc == 0 || call_finish)
		rc = bulkwrite_finish(w) ? -1 : rc;
	inject = INJECT_NONE;
	ok(rc == -1 && strstr(err_msg(), strerror(ENOSPC)) != NULL,
	    "ENOSPC on a direct write, %s: the caller hears of it (%s)",
	    threaded ? "helper" : "in line", err_msg());
	bulkwrite_free(w);
	ok(!has_direct(fd),
	    "... and the descriptor has its flags back after bulkwrite_%s()",
	    call_finish ? "finish" : "free");
	close(fd);
}

/* /dev/full fails every write with ENOSPC: the caller hears of it, from
 * bulkwrite_add() or at the latest from bulkwrite_finish(). */
static void
check_full(bool threaded)
{
	int fd = open("/dev/full", O_WRONLY | O_CLOEXEC);
	struct bulkwrite *w
	    = fd < 0 ? NULL : bulkwrite_start(fd, 8192, threaded);
	unsigned char block[5000];
	int rc = 0;

	memset(block, 'x', sizeof(block));
	for (int i = 0; w && rc == 0 && i < 100; i++)
		rc = bulkwrite_add(w, block, sizeof(block));
	if (w && rc == 0)
		rc = bulkwrite_finish(w);
	ok(w && rc == -1 && strstr(err_msg(), strerror(ENOSPC)) != NULL,
	    "a full disk, %s: the error reaches the caller (%s)",
	    threaded ? "helper" : "in line", err_msg());
	bulkwrite_free(w);
	if (fd >= 0)
		close(fd);
}

int
main(void)
{
	const char *tmp = getenv("TMPDIR");
	int fd;
	struct bulkwrite *w;
	bool direct;

	snprintf(dir, sizeof(dir), "%s/cumulus-bulk-XXXXXX",
	    tmp && strlen(tmp) < 32 ? tmp : "/tmp");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}

	check_split("empty", 0, 4096, true);
	check_split("one", 1, 4096, false);
	check_split("block-1", 4095, 4096, true);
	check_split("block", 4096, 4096, false);
	check_split("buffer", 65536, 65536, true);
	check_split("buffer+1", 65537, 65536, true);
	for (int i = 0; i < 6; i++) {
		char name[32];

		snprintf(name, sizeof(name), "random-%d", i);
		check_split(name, (size_t)(prng_next(&prng_state) % (3 << 20)),
		    (size_t)(1 + i % 3) * 8192, i % 2 == 0);
	}
	check_split("large", (size_t)9 << 20, (size_t)1 << 20, true);
	check_holes(false);
	check_holes(true);
	check_full(false);
	check_full(true);

	fd = create("bad");
	w = bulkwrite_start(fd, 1000, true);
	ok(w == NULL && strstr(err_msg(), "multiple of 4096"),
	    "a buffer that is not a multiple of 4096 is refused (%s)",
	    err_msg());
	w = bulkwrite_start(fd, 4096, false);
	direct = w && has_direct(fd);
	bulkwrite_free(w);
	close(fd);

	if (direct) {
		check_fallback("einval", INJECT_EINVAL_THIRD, false);
		check_fallback("einval", INJECT_EINVAL_THIRD, true);
		check_fallback("short", INJECT_SHORT, false);
		check_fallback("short", INJECT_SHORT, true);
		for (int i = 0; i < 4; i++)
			check_failed_flags(i & 1, i & 2);
	} else {
		/* Nothing to fault: every write goes through the cache. */
		for (int i = 0; i < 16; i++)
			printf("ok %d - direct write faults # SKIP no direct "
			       "I/O in %s\n",
			    ++tap_n, dir);
	}

	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			printf("# could not remove %s\n", dir);
	}
	return tap_done();
}
