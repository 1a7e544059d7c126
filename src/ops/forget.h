/*
 * forget: deleting snapshots from a store, one by one or by a retention
 * policy with restic's semantics (reference 3.8, 6.5).
 *
 * Snapshot times come from the names ("[scheme-]YYYYmmddTHHMMSS", UTC);
 * a name that does not parse is never chosen for deletion.  Policies apply
 * per scheme, and the newest snapshot of every scheme is always kept.
 * Deleting a snapshot removes its descriptor, then its .sha1sums and .meta
 * files; its segments stay until garbage collection (gc.h).
 */
#ifndef CUMULUS_FORGET_H
#define CUMULUS_FORGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct store;

/* Counts: 0 = not used, -1 = unlimited. */
struct forget_policy {
	int last, hourly, daily, weekly, monthly, yearly;
	int64_t within; /* seconds before the scheme's newest; < 0: unused */
};

struct forget_item {
	char *name;
	char scheme[256]; /* "" when none */
	time_t time;      /* from the name; valid if ${parsed} */
	bool parsed;
	bool selected;    /* in the --scheme filter */
	bool keep;
	char reasons[160]; /* why kept: "last, daily, ..." */
};

/*
 * Parse a duration "<n><unit>..." (units s, h, d, w, m = 30 days,
 * y = 365 days; "1y6m", "36h"; a bare number is seconds).  0 or -1.
 */
int forget_parse_duration(const char *s, int64_t *seconds);
/* Whether any rule of ${p} is set. */
bool forget_policy_set(const struct forget_policy *p);
/*
 * Split ${name} into scheme and time.  true if it ends in a valid
 * YYYYmmddTHHMMSS.
 */
bool forget_parse_name(const char *name, char *scheme, size_t size,
    time_t *t);
/*
 * Apply ${p} to the snapshot ${names} (any order) of the schemes matching
 * ${scheme} (NULL: all; "" selects snapshots without a scheme).  *${out}
 * gets ${n} items sorted by scheme, then newest first; unselected items
 * are kept.  Free with forget_items_free().  0 or -1.
 */
int forget_plan(char *const *names, size_t n, const struct forget_policy *p,
    const char *scheme, struct forget_item **out);
void forget_items_free(struct forget_item *v, size_t n);
/*
 * Delete snapshot ${name}: every descriptor file of it, then its side
 * files.  0, 1 if it has no descriptor, -1 on error.
 */
int forget_delete_snapshot(struct store *st, const char *name);

#endif
