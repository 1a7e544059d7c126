/*
 * descriptor: the snapshot descriptor ("Format: ...", "Root: ...",
 * "Segments: ..."), optionally wrapped in an OpenPGP clear signature
 * (the armour is stripped; the signature is not verified here).
 */
#ifndef CUMULUS_DESCRIPTOR_H
#define CUMULUS_DESCRIPTOR_H

#include <stdbool.h>
#include <stddef.h>

#include "meta.h"
#include "ref.h"

/* Descriptors larger than this are refused (16 MiB). */
#define DESCRIPTOR_MAX ((size_t)16 << 20)
#define DESCRIPTOR_VERSION_MAX 8

struct descriptor {
	struct stanza fields; /* every "key: value" after armour removal */
	int version[DESCRIPTOR_VERSION_MAX];
	size_t nversion; /* 0: no Format line, version () */
	/* Pointers into ${fields}, NULL when absent. */
	const char *format;
	const char *producer;
	const char *date;
	const char *scheme;
	const char *backup_intent;
	const char *root_text;
	const char *checksums;
	const char *segment_metadata;
	struct ref root;
	char **segments; /* sorted as in the file; each [0-9a-f-]+ */
	size_t nsegments;
};

/*
 * Parse ${n} bytes of descriptor text into ${d} (initialised here).
 * Refuses formats newer than v0.11, a missing or malformed Root, and
 * malformed segment names.  0, or -1 (error recorded; ${d} is released).
 */
int descriptor_parse(const char *text, size_t n, struct descriptor *d);
void descriptor_release(struct descriptor *d);
/* Whether the descriptor's format is v0.11 or later (bare [N] asserts). */
bool descriptor_is_v011(const struct descriptor *d);
/* Whether segment ${uuid} is listed in Segments. */
bool descriptor_has_segment(const struct descriptor *d, const char *uuid);
/*
 * Parse a Format value ("LBS Snapshot v0.8", "Cumulus Snapshot v0.11")
 * into ${v} (at most ${max} parts).  Number of parts, or -1 (error).
 */
int descriptor_parse_format(const char *s, int *v, size_t max);

#endif
