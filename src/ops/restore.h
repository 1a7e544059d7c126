/*
 * restore: recreate a snapshot (or selected paths and the directories
 * above them) under a destination directory.
 *
 * The store is hostile.  Nothing is created, followed or written outside
 * DEST: names are split on '/' after decoding and refused when absolute
 * or holding "..", "." or empty components; every directory is entered
 * with openat(O_NOFOLLOW | O_DIRECTORY) from DEST, so a symlink restored
 * earlier cannot redirect a later entry; a name seen twice is refused the
 * second time.
 *
 * Memory stays bounded: a first pass over the metadata log creates
 * directories and special files and writes the regular files to restore
 * into a temporary on-disk SQLite database; a second pass restores them
 * ordered by segment, so each segment is normally decoded once.  Modes
 * and times of directories are applied last, deepest first.
 */
#ifndef CUMULUS_RESTORE_H
#define CUMULUS_RESTORE_H

#include <stdbool.h>
#include <stddef.h>

struct snapshot;

struct restore_opts {
	const char *dest;         /* created if missing */
	const char *const *paths; /* restrict to these (and their parents) */
	size_t npaths;
	bool force; /* allow a non-empty DEST (existing non-directories at
		     * restored names are replaced) */
	/* Told about every entry that could not be restored (the message
	 * names it, %-escaped, and the segment when one is at fault). */
	void (*warn)(void *arg, const char *msg);
	/* Told about each entry as it is restored (may be NULL). */
	void (*progress)(void *arg, const char *path);
	void *arg;
	/* Threads: with more than one, files up to 1 MiB are created and
	 * written by threads - 1 writer threads while this one decodes the
	 * next (0: the number of cores). */
	int threads;
};

/*
 * Restore ${s} as ${o} says.  The number of entries that failed (0 when
 * everything was restored), or -1 when the restore could not run at all
 * (error recorded: unreadable metadata log, DEST not empty, ...).
 */
int restore_snapshot(struct snapshot *s, const struct restore_opts *o);

#endif
