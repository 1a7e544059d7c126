/*
 * localdb_scrub: which segments a scrub (cumulus-util verify-snapshots
 * --read-data-subset) checked when, in the extension table
 * scrub_checked(segment, checked), created IF NOT EXISTS on first use; the
 * original's tools ignore it.  Successive scrubs take the segments never
 * checked first, then the least recently checked, so they cover the whole
 * store before repeating.  0 or -1 (error recorded).
 */
#ifndef CUMULUS_LOCALDB_SCRUB_H
#define CUMULUS_LOCALDB_SCRUB_H

#include <stddef.h>
#include <stdint.h>

struct localdb;

/* Sort ${names} (segment UUIDs): never checked first, then by the time of
 * the last check, oldest first; ties by name. */
int localdb_scrub_order(struct localdb *db, char **names, size_t n);
/* Record that ${segment} was checked at ${when} (seconds since 1970). */
int localdb_scrub_mark(struct localdb *db, const char *segment, int64_t when);

#endif
