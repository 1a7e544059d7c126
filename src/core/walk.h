/*
 * walk: the scanner's directory walk, optionally on a thread of its own.
 *
 * The backup records entries in the metadata log's order: each root in
 * turn, then depth first, siblings in byte order of their names.  The walk
 * lists and sorts every directory, applies the --exclude patterns and
 * lstat()s each entry, in that order, and hands the entries out one at a
 * time.  With a thread, it runs ahead of the caller by up to a few hundred
 * entries: in a backup where nothing changed, the system calls of the walk
 * are about two fifths of the work, and they overlap with the rest.
 *
 * Directories are opened by the walk (O_NOFOLLOW, relative to their
 * parent's descriptor), so the caller opens files relative to the same
 * descriptor the entry was found in, never by path.
 */
#ifndef CUMULUS_WALK_H
#define CUMULUS_WALK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

struct walk;

struct walk_root {
	const char *dir; /* the directory to open: "/", ".", "a/b" */
	const char *name; /* the root's name in it ("." for the directory) */
	const char *path; /* the root's path as recorded */
};

enum walk_kind {
	/* An entry: ${err} is 0 and ${sb} its lstat() data, or ${err} is
	 * the lstat() errno.  A directory opened (${fd} >= 0) is followed by
	 * its children, then by its WALK_END; one not opened has ${fd} -1 and
	 * ${err_open}, and no children.  ${err_open} is EMFILE, without a
	 * try, for a directory so deep that opening it would leave fewer
	 * than 384 descriptors below RLIMIT_NOFILE for the rest. */
	WALK_ENTRY,
	/* The end of a directory's children: ${path} is the directory's;
	 * ${err} is 0, or the errno of listing it (no children came). */
	WALK_END,
	/* The directory of a root could not be opened: ${path} is the
	 * root as given (walk_root.dir and .name joined), ${err} the
	 * errno.  The root is skipped.  (A root's directory needs search
	 * permission only: it is opened with O_PATH, never listed.) */
	WALK_ROOT_ERROR,
};

struct walk_item {
	enum walk_kind kind;
	const char *path; /* as recorded */
	size_t path_len;
	const char *name; /* within ${parent} */
	/* The directory the entry was found in, open until the walk is past
	 * that directory's WALK_END: for openat(), readlinkat() (for a
	 * root, an O_PATH descriptor: good for nothing else). */
	int parent;
	int err;
	int fd; /* WALK_ENTRY of a directory: -1 if it could not be opened */
	int err_open;
	struct stat sb;
};

/*
 * Walk ${roots} in order (the caller sorts them), skipping paths that
 * match one of ${excludes} (exclude.h).  ${thread}: walk ahead on a thread
 * of its own (falls back to walking in line if the thread cannot be
 * started).  The arrays and strings must outlive the walk.  NULL when out
 * of memory (error recorded).
 */
struct walk *walk_open(const struct walk_root *roots, size_t nroots,
    const char *const *excludes, size_t nexcludes, bool thread);

/*
 * The next item, valid until the next call: 1 and ${*item}, 0 at the end,
 * -1 on failure of the walk itself (out of memory; error recorded).
 * Problems with single entries are items, not failures.
 */
int walk_next(struct walk *w, const struct walk_item **item);

/* Stop the walk (its thread too) and release everything it holds. */
void walk_free(struct walk *w);

#endif
