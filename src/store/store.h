/*
 * store: where snapshots live.  A store is opened from a URL (a plain
 * path or file:///path; other schemes belong to the remote backends) and
 * offers whole-file operations on names relative to its root ("x.tar.zst",
 * "snapshots/snapshot-x.cumulus").
 *
 * Writes are atomic: a file appears under its name complete and durable,
 * or not at all (temp file, fsync, link/rename, fsync of the directory).
 * Names are checked: no "..", no absolute names, no empty components.
 */
#ifndef CUMULUS_STORE_H
#define CUMULUS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;
struct store_writer;

/* Open the store at ${url}; with ${create}, make the directory if needed.
 * 0, or -1 (error recorded). */
int store_open(const char *url, bool create, struct store **out);
void store_close(struct store *st);
/* The local directory of a file store (NULL for remote stores). */
const char *store_local_dir(const struct store *st);
/* The URL the store was opened with. */
const char *store_url(const struct store *st);

/*
 * Start writing file ${name}.  The caller writes through
 * store_writer_fd() and finishes with store_writer_commit() or
 * store_writer_abort(); both release the writer.
 */
int store_create(struct store *st, const char *name, struct store_writer **w);
int store_writer_fd(const struct store_writer *w);
/* Publish durably.  With ${noreplace} an existing file is an error.
 * Always releases ${w}.  0 or -1. */
int store_writer_commit(struct store_writer *w, bool noreplace);
void store_writer_abort(struct store_writer *w);
/* Write a whole file from memory (atomic, durable).  0 or -1. */
int store_put(struct store *st, const char *name, const void *p, size_t n,
    bool noreplace);

/* Open ${name} for reading: 0 with *fd set, 1 if absent, -1 on error. */
int store_open_read(struct store *st, const char *name, int *fd);
/* Size of ${name}: 0 with *size, 1 if absent, -1 on error. */
int store_stat(struct store *st, const char *name, uint64_t *size);
/* Delete ${name}: 0, 1 if absent, -1 on error. */
int store_delete(struct store *st, const char *name);
/*
 * Call ${cb} with each plain file name in directory ${dir} ("" for the
 * root), in byte order.  A missing directory lists nothing.  Stops and
 * returns the callback's value if it is non-zero.  0 or -1.
 */
int store_list(struct store *st, const char *dir,
    int (*cb)(void *arg, const char *name), void *arg);

#endif
