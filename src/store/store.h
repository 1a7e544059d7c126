/*
 * store: where snapshots live.  A store is opened from a URL and offers
 * whole-file operations on names relative to its root ("x.tar.zst",
 * "snapshots/snapshot-x.cumulus").  The URL picks the backend:
 *   DIR or file:///DIR          a local directory (store_file.c)
 *   s3://BUCKET[/PREFIX]        S3-compatible object storage (store_s3.c)
 *   sftp://[USER@]HOST[:PORT]/PATH  a directory over SSH; /~/PATH is
 *                               relative to the login directory
 *                               (store_sftp.c)
 *   script:CMD                  the upload-script protocol, write-only
 *                               (store_script.c; --upload-script)
 *
 * Writes are atomic: a file appears under its name complete and durable,
 * or not at all (local: temp file, fsync, link, fsync of the directory;
 * remote: the bytes are staged in a temp file under $TMPDIR and uploaded,
 * and the call returns when the server has confirmed their checksum).
 * Names are checked: no "..", no absolute names, no empty components.
 *
 * Ordering: asynchronous commits (store_writer_commit_async) may run in
 * parallel on upload threads, but every synchronous write or delete first
 * waits for all of them and fails if any failed.  So a file written
 * synchronously (a descriptor) is never stored before the files committed
 * asynchronously before it (its segments).
 */
#ifndef CUMULUS_STORE_H
#define CUMULUS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hash.h"

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
/*
 * Like store_writer_commit(), but a remote store may upload in the
 * background (at most store_set_jobs() uploads in flight; this call waits
 * for a free slot).  A failure shows up here or at the next synchronous
 * write, delete or store_flush().  Always releases ${w}.  0 or -1.
 */
int store_writer_commit_async(struct store_writer *w, bool noreplace);
void store_writer_abort(struct store_writer *w);
/* Wait for every asynchronous commit.  0, or -1 if any failed. */
int store_flush(struct store *st);
/*
 * After the last write: flush, then end the backend's session and report
 * a failure seen only at its end (an upload script's non-zero exit
 * status).  Nothing can be written after it.  0 or -1.
 */
int store_finish(struct store *st);
/* Parallel uploads for asynchronous commits (0: the backend's default;
 * clamped to what the backend allows). */
void store_set_jobs(struct store *st, unsigned jobs);
/* The jobs setting of stores opened from now on in this process (the
 * command layer's --upload-jobs; 0: each backend's default). */
void store_set_default_jobs(unsigned jobs);
/* Write a whole file from memory (atomic, durable).  0 or -1. */
int store_put(struct store *st, const char *name, const void *p, size_t n,
    bool noreplace);

/* Open ${name} for reading: 0 with *fd set, 1 if absent, -1 on error. */
int store_open_read(struct store *st, const char *name, int *fd);
/* Size of ${name}: 0 with *size, 1 if absent, -1 on error. */
int store_stat(struct store *st, const char *name, uint64_t *size);
/*
 * Hash the stored file ${name} with ${alg} into ${out} ("<alg>=<hex>") and
 * its length into *${size} (may be NULL): 0, 1 if absent, -1 on error.
 */
int store_hash(struct store *st, const char *name, enum hash_alg alg,
    char out[HASH_STR_MAX], uint64_t *size);
/* Delete ${name}: 0, 1 if absent, -1 on error. */
int store_delete(struct store *st, const char *name);
/*
 * Call ${cb} with each plain file name in directory ${dir} ("" for the
 * root), in byte order.  A missing directory lists nothing.  Stops and
 * returns the callback's value if it is non-zero.  0 or -1.
 */
int store_list(struct store *st, const char *dir,
    int (*cb)(void *arg, const char *name), void *arg);
/*
 * Call ${cb} with each temp file (".tmp.*", what an interrupted upload
 * leaves behind; store_list() hides them) directly in ${dir}, and its
 * size: for gc, which deletes them.  Stops and returns the callback's
 * value if it is non-zero.  0 or -1.
 */
int store_list_temp(struct store *st, const char *dir,
    int (*cb)(void *arg, const char *name, uint64_t size), void *arg);

#endif
