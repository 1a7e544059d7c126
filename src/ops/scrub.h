/*
 * scrub: check a sample of a store's segments (cumulus-util
 * verify-snapshots --read-data-subset=N%): each chosen segment file's
 * SHA-1 against the .sha1sums of the snapshots that list it, then its whole
 * decoded tar, every object read (bounded like a restore).  With a local
 * database, successive runs take the segments never checked, then the
 * least recently checked (localdb_scrub.h), so they cover the store before
 * repeating; without one, the first N% by name.
 */
#ifndef CUMULUS_SCRUB_H
#define CUMULUS_SCRUB_H

#include <stddef.h>
#include <stdint.h>

struct store;
struct localdb;

struct scrub_result {
	size_t segments;  /* listed by some snapshot */
	size_t checked;   /* read this run */
	size_t bad;       /* checked and found wrong, or unreadable snapshots */
	uint64_t objects; /* objects decoded */
	uint64_t bytes;   /* stored bytes read */
};

/* Called per checked segment (or snapshot that cannot be read): ${problem}
 * NULL when it is sound. */
typedef void (*scrub_report)(void *arg, const char *what, const char *problem);

/* Check ${percent} (1..100) of the segments of ${st}, at least one;
 * ${db} may be NULL.  0 when it ran (res->bad says what it found), -1 when
 * it could not (error recorded). */
int scrub_run(struct store *st, struct localdb *db, unsigned percent,
    scrub_report report, void *arg, struct scrub_result *res);

#endif
