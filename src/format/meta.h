/*
 * meta: stanzas of the metadata log ("key: value" lines, continuation
 * lines, a blank line ends a stanza) and their exact text form.
 *
 * A reader feeds the log one line at a time (without the newline) to
 * meta_line_kind() and stanza_add_line(); expanding "@" include lines is
 * the caller's job (it needs to fetch objects).  A writer fills a stanza
 * with stanza_set() and renders it with stanza_format(): "name" first, the
 * other keys in byte order, exactly as the original writer does.
 */
#ifndef CUMULUS_META_H
#define CUMULUS_META_H

#include <stddef.h>

#include "buf.h"

#define STANZA_MAX_FIELDS 64
/* Upper bound of one stanza's text (a data list of a ~4 TB file). */
#define STANZA_MAX_BYTES ((size_t)256 << 20)

enum meta_line {
	META_LINE_BLANK,   /* empty or only whitespace: ends a stanza */
	META_LINE_FIELD,   /* key: value */
	META_LINE_CONT,    /* starts with space or tab: continues a value */
	META_LINE_INCLUDE, /* @reference */
	META_LINE_JUNK     /* anything else (ignored, as the original) */
};

struct stanza {
	struct buf text; /* key NUL value NUL ... */
	size_t n;
	size_t key_off[STANZA_MAX_FIELDS];
	size_t val_off[STANZA_MAX_FIELDS];
	size_t val_len[STANZA_MAX_FIELDS];
};

/* Classify one line (${n} bytes, no newline). */
enum meta_line meta_line_kind(const char *line, size_t n);

void stanza_init(struct stanza *s);
void stanza_release(struct stanza *s);
/* Forget all fields, keeping memory. */
void stanza_clear(struct stanza *s);
/*
 * Add a FIELD or CONT line.  A continuation appends "\n" + the line to the
 * previous value (reproducing a multi-line value byte for byte); one
 * without a previous field is ignored.  0, or -1 on too many fields or too
 * much text (error recorded).
 */
int stanza_add_line(struct stanza *s, const char *line, size_t n);
/* Set ${key} to ${len} bytes of ${value} (replacing it).  0 or -1. */
int stanza_set(struct stanza *s, const char *key, const char *value,
    size_t len);
/* Set ${key} to a C string. */
int stanza_set_str(struct stanza *s, const char *key, const char *value);
/* The value of ${key} (NUL-terminated; its length in *len if non-NULL), or
 * NULL when absent.  Valid until the stanza changes. */
const char *stanza_get(const struct stanza *s, const char *key, size_t *len);
/* Append "key: value\n" lines, "name" first, then keys in byte order. */
int stanza_format(const struct stanza *s, struct buf *out);

#endif
