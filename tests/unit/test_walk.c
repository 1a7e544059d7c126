/*
 * test_walk: the directory walk, in line and on its thread, against a
 * plain recursive walk of the same tree: order, exclusions, parents that
 * stay open, roots that cannot be opened, and no descriptor left open
 * when the walk is stopped anywhere.
 */
#include <sys/stat.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "exclude.h"
#include "tap.h"
#include "walk.h"

static char tmpdir[256];
static const char *excl[] = { "t/excl", "*.o" };

static void
mkfile(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd < 0 || write(fd, "x", 1) != 1) {
		perror(path);
		exit(2);
	}
	close(fd);
}

static void
mkdir_or_die(const char *path)
{
	if (mkdir(path, 0755) && errno != EEXIST) {
		perror(path);
		exit(2);
	}
}

/* t/: 600 files in a/, 300 empty directories in many/, a chain of 200
 * directories in deep/, a symbolic link, excluded entries. */
static void
make_tree(void)
{
	char p[8192];

	snprintf(p, sizeof(p), "%s/t", tmpdir);
	mkdir_or_die(p);
	if (chdir(p)) {
		perror(p);
		exit(2);
	}
	mkdir_or_die("a");
	for (int i = 0; i < 600; i++) {
		snprintf(p, sizeof(p), "a/f%03d", i);
		mkfile(p);
	}
	mkdir_or_die("many");
	for (int i = 0; i < 300; i++) {
		snprintf(p, sizeof(p), "many/d%03d", i);
		mkdir_or_die(p);
	}
	strcpy(p, "deep");
	for (int i = 0; i < 200; i++) {
		mkdir_or_die(p);
		strcat(p, "/x");
		mkfile(p);
		p[strlen(p) - 1] = 'd';
	}
	mkdir_or_die("excl");
	mkfile("excl/hidden");
	mkfile("b.o");
	mkfile("B");
	mkfile("b");
	if (symlink("a", "sym")) {
		perror("symlink");
		exit(2);
	}
	if (chdir("/")) {
		perror("/");
		exit(2);
	}
}

static int
cmp_names(const void *a, const void *c)
{
	return strcmp(*(char *const *)a, *(char *const *)c);
}

static char
type_of(mode_t m)
{
	return S_ISDIR(m) ? 'd' : S_ISLNK(m) ? 'l' : S_ISREG(m) ? 'f' : '?';
}

/* The reference: the same walk, written as plainly as possible. */
static void
ref_walk(struct buf *out, int dfd, const char *path)
{
	DIR *d = fdopendir(dup(dfd));
	struct dirent *de;
	char **names = NULL;
	size_t n = 0;

	while (d && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0
		    || strcmp(de->d_name, "..") == 0)
			continue;
		char **nn = realloc(names, (n + 1) * sizeof(*names));

		if (nn == NULL || (nn[n] = strdup(de->d_name)) == NULL) {
			perror("reference walk");
			exit(2);
		}
		names = nn;
		n++;
	}
	if (d)
		closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), cmp_names);
	for (size_t i = 0; i < n; i++) {
		char child[8192];
		struct stat sb;

		if (strcmp(path, ".") == 0)
			snprintf(child, sizeof(child), "%s", names[i]);
		else
			snprintf(child, sizeof(child), "%s/%s", path, names[i]);
		if (exclude_match(excl, 2, child)
		    || fstatat(dfd, names[i], &sb, AT_SYMLINK_NOFOLLOW))
			continue;
		buf_printf(out, "E %s %c\n", child, type_of(sb.st_mode));
		if (S_ISDIR(sb.st_mode)) {
			int fd = openat(dfd, names[i], O_RDONLY | O_DIRECTORY);

			ref_walk(out, fd, child);
			close(fd);
			buf_printf(out, "X %s\n", child);
		}
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* Run a walk to its end; the items as text.  *bad counts entries whose
 * parent descriptor does not hold them. */
static int
run_walk(struct walk *w, struct buf *out, int *bad)
{
	const struct walk_item *it;
	int r;

	*bad = 0;
	while ((r = walk_next(w, &it)) > 0) {
		struct stat sb;

		switch (it->kind) {
		case WALK_ENTRY:
			buf_printf(out, "E %s %c\n", it->path,
			    it->err ? '!' : type_of(it->sb.st_mode));
			if (strlen(it->path) != it->path_len)
				(*bad)++;
			else if (it->err == 0
			    && (fstatat(it->parent, it->name, &sb,
			            AT_SYMLINK_NOFOLLOW)
			        || sb.st_ino != it->sb.st_ino))
				(*bad)++;
			break;
		case WALK_END:
			buf_printf(
			    out, "X %s%s\n", it->path, it->err ? " !" : "");
			break;
		case WALK_ROOT_ERROR:
			buf_printf(out, "R %s %d\n", it->path, it->err);
			break;
		}
	}
	return r;
}

static int
count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	while (d && readdir(d))
		n++;
	if (d)
		closedir(d);
	return n;
}

static void
test_tree(bool thread)
{
	const char *mode = thread ? "thread" : "in line";
	struct walk_root root = { tmpdir, "t", "t" };
	struct buf want, got;
	struct walk *w;
	int dfd, bad, fds = count_fds();

	buf_init(&want, BUF_UNLIMITED);
	buf_init(&got, BUF_UNLIMITED);
	{
		char t[512];

		snprintf(t, sizeof(t), "%s/t", tmpdir);
		dfd = open(t, O_RDONLY | O_DIRECTORY);
	}
	buf_printf(&want, "E t d\n");
	ref_walk(&want, dfd, "t");
	buf_printf(&want, "X t\n");
	close(dfd);

	w = walk_open(&root, 1, excl, 2, thread);
	ok(w != NULL, "%s: open", mode);
	ok(run_walk(w, &got, &bad) == 0, "%s: walks to the end", mode);
	if (getenv("WALK_DEBUG")) {
		FILE *f = fopen("/tmp/walk-want", "w");

		fwrite(want.data, 1, want.len, f);
		fclose(f);
		f = fopen("/tmp/walk-got", "w");
		fwrite(got.data, 1, got.len, f);
		fclose(f);
	}
	ok(got.len > 10000 && got.len == want.len
	        && memcmp(got.data, want.data, got.len) == 0,
	    "%s: the same items, in the same order, as a plain walk (%zu "
	    "bytes)",
	    mode, got.len);
	ok(bad == 0, "%s: every entry is in its parent descriptor (%d not)",
	    mode, bad);
	ok(strstr(got.data, "excl") == NULL && strstr(got.data, "b.o") == NULL,
	    "%s: excluded paths are not walked", mode);
	ok(strstr(got.data, "E t/sym l\n") != NULL
	        && strstr(got.data, "t/sym/") == NULL,
	    "%s: a symbolic link is an entry, not followed", mode);
	ok(strstr(got.data, "E t/B f\nE t/a d\n") != NULL,
	    "%s: siblings in byte order", mode);
	ok(walk_next(w, &(const struct walk_item *) { NULL }) == 0,
	    "%s: the end stays the end", mode);
	walk_free(w);
	ok(count_fds() == fds, "%s: no descriptor left open", mode);
	buf_release(&want);
	buf_release(&got);
}

/* Stop after ${k} items: nothing stays open. */
static void
test_stop(bool thread)
{
	const char *mode = thread ? "thread" : "in line";
	struct walk_root root = { tmpdir, "t", "t" };
	static const int stops[] = { 0, 1, 2, 5, 250, 700, 1000, 1150 };
	int leaks = 0, fds = count_fds();

	for (size_t i = 0; i < sizeof(stops) / sizeof(stops[0]); i++) {
		struct walk *w = walk_open(&root, 1, excl, 2, thread);
		const struct walk_item *it;

		for (int k = 0; k < stops[i] && walk_next(w, &it) > 0; k++)
			;
		walk_free(w);
		if (count_fds() != fds)
			leaks++;
	}
	ok(leaks == 0, "%s: stopped anywhere, no descriptor left open (%d)",
	    mode, leaks);
}

/* A caller slower than the walk: the thread keeps at most 128 finished
 * directories open (walk.c's MAX_PENDING_CLOSE), plus those it is in. */
static void
test_bounded(void)
{
	struct walk_root root = { tmpdir, "t", "t" };
	/* Counted before the thread starts: counted after, the directories
	 * it had already opened were not seen as its (most 0, a false
	 * failure in CI). */
	int fds = count_fds(), most = 0, r;
	struct walk *w = walk_open(&root, 1, excl, 2, true);
	const struct walk_item *it;
	struct timespec pause = { 0, 20 * 1000 * 1000 };

	while ((r = walk_next(w, &it)) > 0) {
		if (it->kind == WALK_ENTRY
		    && strncmp(it->path, "t/many/d", 8) == 0
		    && it->path[10] == '0') {
			int n;

			nanosleep(&pause, NULL);
			if ((n = count_fds() - fds) > most)
				most = n;
		}
	}
	walk_free(w);
	ok(r == 0 && most > 8 && most <= 128 + 8,
	    "thread: ahead of a slow caller, at most 136 directories open (%d)",
	    most);
}

static void
test_roots(bool thread)
{
	const char *mode = thread ? "thread" : "in line";
	char adir[512], deep[600];
	struct walk_root roots[4];
	const char *want_head
	    = "R /nonexistent-cumulus-walk/x 2\nE . d\nE f000 f\n";
	struct buf got;
	struct walk *w;
	int bad;

	snprintf(adir, sizeof(adir), "%s/t/a", tmpdir);
	snprintf(deep, sizeof(deep), "%s/t/deep/d", tmpdir);
	roots[0] = (struct walk_root) { "/nonexistent-cumulus-walk", "x", "x" };
	roots[1] = (struct walk_root) { adir, ".", "." };
	roots[2] = (struct walk_root) { deep, "x", "t/deep/d/x" };
	roots[3] = (struct walk_root) { deep, "missing", "t/deep/d/missing" };
	buf_init(&got, BUF_UNLIMITED);
	w = walk_open(roots, 4, NULL, 0, thread);
	ok(run_walk(w, &got, &bad) == 0 && bad == 0, "%s: roots walked", mode);
	walk_free(w);
	if (getenv("WALK_DEBUG"))
		fwrite(got.data, 1, got.len, stderr);
	ok(strncmp(got.data, want_head, strlen(want_head)) == 0,
	    "%s: a root whose directory is missing is an error item naming "
	    "the root as given; the children of '.' are bare names",
	    mode);
	ok(strstr(got.data, "E f599 f\nX .\nE t/deep/d/x f\n") != NULL,
	    "%s: '.' ends as '.', then a file root", mode);
	ok(strstr(got.data, "E t/deep/d/missing !\n") != NULL,
	    "%s: a root that does not exist is an entry with its lstat error",
	    mode);
	buf_release(&got);
}

/* A root that is itself excluded: nothing, and no crash (the thread once
 * copied the strings of an item it never set). */
static void
test_excluded_root(bool thread)
{
	const char *mode = thread ? "thread" : "in line";
	const char *pat = "t";
	struct walk_root roots[2]
	    = { { tmpdir, "t", "t" }, { tmpdir, "t", "t" } };
	struct buf got;
	struct walk *w;
	int bad;

	buf_init(&got, BUF_UNLIMITED);
	w = walk_open(roots, 2, &pat, 1, thread);
	ok(w && run_walk(w, &got, &bad) == 0 && got.len == 0,
	    "%s: an excluded root gives nothing", mode);
	walk_free(w);
	buf_release(&got);
}

/* --exclude patterns (exclude.h): a pattern with a '/' anywhere, a
 * leading one too, is matched against the whole recorded path only. */
static void
test_exclude(void)
{
	static const struct {
		const char *pat, *path;
		bool match;
	} cases[] = {
		{ "tmp", "tmp", true },
		{ "tmp", "work/tmp", true },
		{ "*.o", "d/e/b.o", true },
		{ "/tmp", "tmp", true },
		{ "/tmp", "work/tmp", false },
		{ "/tmp", "var/tmp", false },
		{ "/tmp", "tmp/x", false },
		{ "//tmp", "work/tmp", false },
		{ "/*.o", "b.o", true },
		{ "/*.o", "d/b.o", false },
		{ "work/tmp", "work/tmp", true },
		{ "/work/tmp", "work/tmp", true },
		{ "work/tmp", "x/work/tmp", false },
		{ "work/*", "work/tmp", true },
		{ "work/*", "work/tmp/notes", false },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *pat = cases[i].pat;

		ok(exclude_match(&pat, 1, cases[i].path) == cases[i].match,
		    "exclude '%s' %s '%s'", pat,
		    cases[i].match ? "matches" : "does not match",
		    cases[i].path);
	}
}

int
main(void)
{
	const char *t = getenv("TMPDIR");

	snprintf(
	    tmpdir, sizeof(tmpdir), "%s/cumulus-walk-XXXXXX", t ? t : "/tmp");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	test_exclude();
	make_tree();
	for (int thread = 0; thread < 2; thread++) {
		test_tree(thread);
		test_stop(thread);
		test_roots(thread);
		test_excluded_root(thread);
	}
	test_bounded();
	{
		char cmd[512];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			printf("# could not remove %s\n", tmpdir);
	}
	return tap_done();
}
