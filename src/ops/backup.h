/*
 * backup: one snapshot, from the paths on the command line to a committed
 * descriptor (docs/design.md, "Backup").
 *
 * Data flows one way: the scanner walks the tree in the metadata log's
 * order; each regular file is either taken from the statcache (unchanged
 * stat data) or read in 1 MiB blocks that are hashed, looked up in the
 * local database and, if new, appended to a data segment; the stanza goes
 * to the metadata log writer.  Commit order: segments and the .sha1sums
 * file are durable, then the descriptor is published (the commit point),
 * then the database commits, then the statcache is replaced.  A failure or
 * kill at any point leaves earlier snapshots intact and a database and
 * statcache from which the next backup succeeds.
 */
#ifndef CUMULUS_BACKUP_H
#define CUMULUS_BACKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct backup_stats {
	uint64_t entries;     /* stanzas written */
	uint64_t files;       /* regular files */
	uint64_t files_read;  /* regular files whose data was read */
	uint64_t bytes_read;  /* file data read */
	uint64_t bytes_new;   /* file data stored as new objects */
	uint64_t bytes_stored; /* segment bytes written to the store */
	uint64_t segments;    /* segments written */
	unsigned warnings;    /* entries skipped or possibly inconsistent */
};

struct backup_callbacks {
	/* A problem with one entry; the backup goes on. */
	void (*warn)(void *arg, const char *msg);
	/* -v: each entry (raw path) and its status ("new", "old", ...). */
	void (*entry)(void *arg, const char *path, const char *status);
	/* Called about twice a second. */
	void (*progress)(void *arg, const struct backup_stats *st);
	void *arg;
};

struct backup_options {
	const char *dest;    /* store URL or directory */
	const char *localdb; /* NULL: dest */
	const char *scheme;  /* NULL: none */
	double intent;       /* <= 0: 1 */
	const char *filter;  /* NULL: in-process zstd */
	const char *filter_extension;
	const char *signature_filter;
	const char *const *excludes;
	size_t nexcludes;
	bool full_metadata;
	bool rebuild_statcache;
	bool verbose;
	uint64_t segment_size; /* 0: 4 MiB */
	int threads;           /* 0: backup_worker_count()'s default */
	const char *const *paths;
	size_t npaths;
};

struct backup_result {
	char name[256]; /* snapshot name */
	struct backup_stats stats;
	/* raw/stored bytes per segment group, for the summary */
	struct {
		char group[32];
		uint64_t raw, stored;
	} groups[8];
	size_t ngroups;
};

/* Whether ${scheme} (NULL: none) is a usable scheme name: no '/', no
 * whitespace, no leading '.'.  0, or -1 (error recorded). */
int backup_check_scheme(const char *scheme);

/* Compression and read-ahead workers for --threads=${threads} (0: the
 * default) with ${cores} online cores: ${threads}, else one more than the
 * cores when there are several (1 with one, or when sysconf failed), at
 * most 64. */
int backup_worker_count(int threads, long cores);

/*
 * Run one backup.  0 when the snapshot is committed (result->stats.warnings
 * says whether entries were skipped), -1 when nothing was committed (error
 * recorded).
 */
int backup_run(const struct backup_options *o, const struct backup_callbacks *cb,
    struct backup_result *result);

#endif
