/*
 * statcache: the stat cache of the previous backup (reference 2.7), in the
 * original's format so either program reads the other's file.
 *
 * File: <localdb>/statcache2, or statcache2-<scheme>.  One entry per
 * dumped filesystem entry, in metadata-log order (component-wise path
 * order, see statcache_path_cmp()):
 *
 *	@@<reference of the stored stanza>
 *	<stanza: "key: value" lines, continuation lines start with whitespace>
 *	<blank line>
 *
 * Fields are read as the original reads them: a line is split at its first
 * ':', the value loses its leading whitespace, a continuation line is
 * appended as "\n" + line, a repeated key replaces the earlier value,
 * lines without ':' are ignored.  The "name:" value is the %-escaped path.
 *
 * The reader streams: it keeps one entry in memory, never the file.
 */
#ifndef CUMULUS_STATCACHE_H
#define CUMULUS_STATCACHE_H

#include <stdbool.h>
#include <stddef.h>

struct statcache;
struct statcache_entry;
struct statcache_writer;

/* Longest line or field accepted from a statcache file. */
#define STATCACHE_LINE_MAX ((size_t)256 << 20)

/*
 * Compare paths component by component (reference 1.5.1): split at '/',
 * compare components byte-wise (unsigned), and a path whose components
 * run out first sorts first.  So "a" < "a/b" < "a-b".  <0, 0 or >0.
 */
int statcache_path_cmp(const char *a, size_t alen, const char *b,
    size_t blen);

/*
 * The file name for ${scheme} (NULL or "" for none) into ${out}, which
 * has ${size} bytes.  0, or -1 if the scheme contains '/' or the name does
 * not fit.
 */
int statcache_file_name(const char *scheme, char *out, size_t size);

/*
 * Open the statcache of ${scheme} in ${localdb_dir} for reading.  A missing
 * file gives a reader that finds nothing.  *${out} is released with
 * statcache_close().  0 or -1.
 */
int statcache_open(const char *localdb_dir, const char *scheme,
    struct statcache **out);
/* Close the reader.  NULL-safe. */
void statcache_close(struct statcache *sc);
/*
 * Find the entry of ${path} (${pathlen} raw bytes, not escaped).  Calls
 * must come in increasing statcache_path_cmp() order: the reader skips
 * the entries sorting before ${path} for good.  1 with *${entry} set (valid
 * until the next call that finds or skips past it, or until close), 0 if
 * not present, -1 on a read or format error (recorded; after it the reader
 * finds nothing more, so a backup may go on without the cache).
 */
int statcache_lookup(struct statcache *sc, const char *path, size_t pathlen,
    struct statcache_entry **entry);

/* The reference after "@@" (where the stanza is stored). */
const char *statcache_entry_ref(const struct statcache_entry *e);
/* The value of field ${key}, NULL if absent. */
const char *statcache_entry_get(const struct statcache_entry *e,
    const char *key);
/* Number of distinct fields. */
size_t statcache_entry_count(const struct statcache_entry *e);
/* Field ${i} (< count), in first-appearance order. */
void statcache_entry_field(const struct statcache_entry *e, size_t i,
    const char **key, const char **value);
/*
 * Whether ${stanza} (${len} bytes of "key: value\n" lines) read by the
 * rules above gives exactly the fields of ${e} (same keys, same values, any
 * order): the original's test for reusing old metadata.  -1 on error
 * (out of memory), else 1 or 0.
 */
int statcache_entry_equal_text(const struct statcache_entry *e,
    const char *stanza, size_t len);

/*
 * Start writing a new statcache for ${scheme} in ${localdb_dir}, as a
 * temp file in that directory.  *${out} must end with
 * statcache_writer_commit() or statcache_writer_abort().  0 or -1.
 */
int statcache_writer_open(const char *localdb_dir, const char *scheme,
    struct statcache_writer **out);
/*
 * Remove the temp files of statcache writers that died (a killed backup)
 * from ${localdb_dir}: a live writer holds a lock on its temp file, so
 * only abandoned ones go.  Returns how many were removed.
 */
int statcache_clean_temps(const char *localdb_dir);
/*
 * Append the entry "@@${ref}\n" + ${stanza} + "\n".  ${stanza} is the
 * stanza's "key: value\n" lines exactly as stored in the metadata log (a
 * missing final newline is added); it must not contain a blank line, nor
 * ${ref} a newline.  Buffered.  0 or -1 (then only abort remains useful).
 */
int statcache_writer_add(struct statcache_writer *w, const char *ref,
    const char *stanza, size_t len);
/*
 * Flush, fsync and rename the file over the old statcache, fsync the
 * directory.  Always frees ${w}.  0 or -1 (the old file is then intact).
 */
int statcache_writer_commit(struct statcache_writer *w);
/* Drop the new file and free ${w}.  NULL-safe. */
void statcache_writer_abort(struct statcache_writer *w);

#endif
