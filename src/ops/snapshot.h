/*
 * snapshot: reading snapshots from a store, in any layout the original
 * programs or ours wrote (reference 1.1.4, 1.9): locating descriptors and
 * segments, fetching objects through a small bounded cache of decoded
 * segments, expanding the metadata log one stanza at a time, and
 * reassembling a regular file's contents with every checksum verified.
 */
#ifndef CUMULUS_SNAPSHOT_H
#define CUMULUS_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "descriptor.h"
#include "meta.h"
#include "ref.h"

struct store;
struct buf;
struct snapshot;
struct meta_iter;
struct sigcheck;

/*
 * Segments are read by streaming: each of the SNAPSHOT_CACHE_SEGMENTS
 * entries keeps a decoder positioned after the last object it read, so
 * reading a segment's objects in increasing order decodes it once and
 * holds one object at a time.  Going backwards reopens the segment; a
 * segment reopened more than SNAPSHOT_REOPEN_LIMIT times is decoded whole
 * into memory instead, when it is at most SNAPSHOT_CACHE_SEGMENT_MAX.
 * Until snapshot_plan_end() all SNAPSHOT_CACHE_SEGMENTS entries are used:
 * the metadata log of a snapshot after many backups reads the logs of
 * several earlier ones in turn, and with three entries each turn evicted
 * a decoder and decoded a 24 MB log from its start again (1.2 s of a
 * 5.5 s restore).  The data then uses SNAPSHOT_DATA_SEGMENTS.
 */
#define SNAPSHOT_CACHE_SEGMENTS 8
#define SNAPSHOT_DATA_SEGMENTS 3
#define SNAPSHOT_REOPEN_LIMIT 8
#define SNAPSHOT_CACHE_SEGMENT_MAX ((size_t)64 << 20)
/* Objects read by streaming, up to SNAPSHOT_OBJECT_CACHE_MAX each, are
 * kept (least recently used out first, SNAPSHOT_OBJECT_CACHE_BYTES in
 * all), so an object read again soon (a chunk several files share, two
 * ranges of one object) is not decoded again. */
#define SNAPSHOT_OBJECT_CACHE_BYTES ((size_t)2 << 20)
#define SNAPSHOT_OBJECT_CACHE_MAX ((size_t)1024 << 10)
/* Include depth of the metadata log and of v0.2 indirect data lists. */
#define SNAPSHOT_MAX_DEPTH 32

/* All snapshot names of the store (every layout), sorted and unique.
 * Free with snapshot_names_free().  0 or -1. */
int snapshot_list_names(struct store *st, char ***names, size_t *n);
void snapshot_names_free(char **names, size_t n);
/* The descriptor file of ${name}: 0 with *path (malloc'd, relative to the
 * store), 1 when there is none, -1 on error. */
int snapshot_find_descriptor(struct store *st, const char *name, char **path);
/* The stored file of segment ${uuid}, searched as reference 1.1.4 says
 * (plus any other "<uuid>.tar*" file).  0 with *path, 1 absent, -1. */
int snapshot_find_segment(struct store *st, const char *uuid, char **path);
/* Call ${cb} with the UUID and path of every segment file of the store,
 * in path order.  Stops at the callback's non-zero value.  0 or -1. */
int snapshot_each_segment(struct store *st,
    int (*cb)(void *arg, const char *uuid, const char *path), void *arg);
/* Read a side file ${path} (bounded by ${max}) decoded by extension
 * (".sha1sums", ".meta.bz2", ...) into ${out}.  0 or -1. */
int snapshot_read_side_file(struct store *st, const char *path, size_t max,
    struct buf *out);

/* Open snapshot ${name} of ${st} (borrowed): read and check its
 * descriptor.  0 or -1. */
int snapshot_open(struct store *st, const char *name, struct snapshot **out);
/* The same, refusing the snapshot unless its descriptor carries a good
 * signature as ${sig} says (NULL: no check); then only the signed text
 * is parsed.  0 or -1. */
int snapshot_open_verified(struct store *st, const char *name,
    const struct sigcheck *sig, struct snapshot **out);
void snapshot_close(struct snapshot *s);
/* Fingerprint of the key whose signature was checked, else NULL. */
const char *snapshot_signer(const struct snapshot *s);
const struct descriptor *snapshot_descriptor(const struct snapshot *s);
/* Path of the descriptor file in the store. */
const char *snapshot_descriptor_path(const struct snapshot *s);
const char *snapshot_name(const struct snapshot *s);
/* The distinct segments read so far (sorted). */
void snapshot_touched(const struct snapshot *s, char *const **list,
    size_t *n);

/*
 * Byte sink: ${p} == NULL means ${n} zero bytes (a hole).  Non-zero
 * aborts the read (the callback records the error).
 */
typedef int (*snapshot_sink)(void *arg, const void *p, size_t n);

/*
 * Deliver the bytes reference ${r} selects (zero refs included) to
 * ${sink}.  The object's checksum, when the reference has one, is checked
 * over the whole object; range and size assertions follow the descriptor
 * version.  Errors name the segment, except those of ${sink} itself,
 * passed on as they are.  0 or -1.
 */
int snapshot_fetch(struct snapshot *s, const struct ref *r, snapshot_sink sink,
    void *arg);
/* Append the selected bytes to ${out} (bounded by out->max).  Errors name
 * the segment, an object too large for ${out} too.  0 or -1. */
int snapshot_fetch_buf(struct snapshot *s, const struct ref *r,
    struct buf *out);

/* Iterate over the metadata log of ${s}, expanding "@" lines. */
int snapshot_meta_open(struct snapshot *s, struct meta_iter **it);
/*
 * The next line of the expanded log (no newline); an "@" line yields an
 * empty line in its place.  1 with a line (valid until the next call),
 * 0 at the end, -1 on error.
 */
int meta_iter_line(struct meta_iter *it, const char **line, size_t *n);
/* The next stanza, into ${st} (cleared first).  1, 0 at the end, or -1. */
int meta_iter_next(struct meta_iter *it, struct stanza *st);
void meta_iter_close(struct meta_iter *it);

/*
 * Reassemble the contents of the regular file described by ${st}: expand
 * its "data" list (v0.2 "@" indirections too), deliver the bytes to
 * ${sink}, and check "size" and "checksum" at the end.  ${failed_segment}
 * (may be NULL) receives the segment whose object failed, if any; an
 * error of ${sink} itself names none.  0 or -1.
 */
int snapshot_read_file(struct snapshot *s, const struct stanza *st,
    snapshot_sink sink, void *arg, char failed_segment[REF_SEGMENT_MAX + 1]);
/*
 * Announce that the regular file described by ${st} will be read (its
 * direct references are counted; "@" lists are not).  Once a read is
 * planned, an object read by streaming is kept in memory only while
 * planned reads of it are left, so the chunks many files share and the
 * blocks their slices point into are decoded once.  0 or -1.
 */
int snapshot_plan_file(struct snapshot *s, const struct stanza *st);
/* Every read is planned: forget the objects read only once.  0 or -1. */
int snapshot_plan_end(struct snapshot *s);
/* The segment of the first object ${st}'s data refers to (for ordering
 * a restore by segment); "" when the file has no object data. */
void snapshot_first_segment(const struct stanza *st,
    char seg[REF_SEGMENT_MAX + 1]);

#endif
