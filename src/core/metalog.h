/*
 * metalog: the metadata-log writer (docs/format.md, "Metadata log").
 *
 * Stanzas are collected until their text passes 64 KiB, then written as
 * one metadata object; a stanza identical to the one the previous snapshot
 * stored is not written again but referenced as a byte range of the old
 * object ("@ref" lines, merged when contiguous).  Every stanza is also
 * handed to the statcache writer with the reference where it now lives.
 * At the end the root object (one "@ref" line per metadata object) is
 * written and its reference returned for the descriptor.
 */
#ifndef CUMULUS_METALOG_H
#define CUMULUS_METALOG_H

#include <stddef.h>

struct buf;
struct localdb;
struct segment_writer;
struct statcache_writer;

struct metalog;

/* All borrowed; ${sc} may be NULL.  0 or -1. */
int metalog_open(struct segment_writer *sw, struct localdb *db,
    struct statcache_writer *sc, struct metalog **out);
/*
 * Add one stanza: ${text} is its "key: value\n" lines (no blank line).
 * ${reuse_ref}, if not NULL, is the reference under which the previous
 * snapshot stored exactly this text; it is used when that object is still
 * available.  0 or -1.
 */
int metalog_add(struct metalog *m, const char *text, size_t len,
    const char *reuse_ref);
/* Flush, write the root object, append its reference to ${root}, free. */
int metalog_finish(struct metalog *m, struct buf *root);
/* Abandon (NULL-safe). */
void metalog_free(struct metalog *m);

#endif
