/*
 * ref: object references, "<segment>/<seq>(<checksum>)[<range>]" and
 * "zero[<range>]" (docs/format.md, "Object references").
 *
 * The meaning of a bare "[N]" depends on the descriptor version: before
 * v0.11 it is a prefix slice, from v0.11 on a size assertion.  The parser
 * keeps the spelling (REF_RANGE_BARE); ref_resolve() applies the version.
 */
#ifndef CUMULUS_REF_H
#define CUMULUS_REF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hash.h"

struct buf;

enum ref_kind { REF_OBJECT, REF_ZERO };
enum ref_range {
	REF_RANGE_NONE,  /* whole object */
	REF_RANGE_SLICE, /* [start+length] */
	REF_RANGE_BARE,  /* [length]: version-dependent */
	REF_RANGE_EXACT  /* [=length]: whole object, asserted size */
};

/* Longest segment name we accept (a UUID is 36). */
#define REF_SEGMENT_MAX 64

struct ref {
	enum ref_kind kind;
	char segment[REF_SEGMENT_MAX + 1];
	uint64_t seq;
	char checksum[HASH_STR_MAX]; /* "" when absent */
	enum ref_range range;
	uint64_t start;
	uint64_t length;
};

/*
 * Parse ${n} characters at ${s} (no surrounding whitespace) into ${r}.
 * Strict about structure and numbers (no overflow, lengths bounded by
 * 2^62).  0, or -1 (error recorded).
 */
int ref_parse(const char *s, size_t n, struct ref *r);
/* Append the text form of ${r} to ${out}.  0 or -1. */
int ref_format(const struct ref *r, struct buf *out);
/* Fill ${r} as a reference to object ${seq} of ${segment}, no range. */
void ref_set_object(struct ref *r, const char *segment, uint64_t seq);

/*
 * Given the full object size ${objsize} and whether the descriptor is
 * v0.11 or later (${v011}), compute the byte range [*off, *off + *len)
 * the reference selects.  0, or -1 when the range or an assertion does not
 * fit the object (error recorded).
 */
int ref_resolve(const struct ref *r, uint64_t objsize, bool v011,
    uint64_t *off, uint64_t *len);
/* Bytes the reference yields, when known without the object (zero, slice,
 * exact); -1 when the object size is needed. */
int64_t ref_known_length(const struct ref *r, bool v011);
/*
 * Merge ${b} into ${a} when both are slices of the same object with the
 * same checksum and ${b} starts where ${a} ends (or both are zero refs).
 * Returns true if merged.
 */
bool ref_merge(struct ref *a, const struct ref *b);

#endif
