/*
 * bulkwrite: write one large new file, sequentially, through a helper
 * thread and with direct I/O where the filesystem allows it.
 *
 * A restore of a large file spends most of its time in the kernel copying
 * data into page-cache pages; on a virtual machine the first touch of each
 * page costs several microseconds, and a file's buffered writes are
 * serialized by its inode lock, so more threads do not help.  Direct I/O
 * skips the page cache (and does not evict the user's cached files), and
 * the helper thread writes one buffer while the caller fills the next.
 * Blocks of 4 KiB that are all zero become holes.
 */
#ifndef CUMULUS_BULKWRITE_H
#define CUMULUS_BULKWRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bulkwrite;

/*
 * Start writing the empty file ${fd} (it stays the caller's: it is not
 * closed here, and must stay open until bulkwrite_free()), in buffers of
 * ${bufsize} bytes (a multiple of 4096), with a helper thread if
 * ${threaded}.  NULL with error set.
 */
struct bulkwrite *bulkwrite_start(int fd, size_t bufsize, bool threaded);
/* Append ${n} bytes, or ${n} zero bytes if ${p} is NULL.  0, or -1 with
 * error set (this write, or one that failed earlier on the helper
 * thread); after an error the file is incomplete and only
 * bulkwrite_free() is left to call. */
int bulkwrite_add(struct bulkwrite *w, const void *p, size_t n);
/* Write what is left and set the file's size.  0, or -1 with error set.
 * Either way ${fd} has its own status flags back (without O_DIRECT). */
int bulkwrite_finish(struct bulkwrite *w);
/* Stop the helper thread, give ${fd} its status flags back if
 * bulkwrite_finish() did not, and free ${w} (NULL is fine). */
void bulkwrite_free(struct bulkwrite *w);
/* Bytes added by the calls to bulkwrite_add() that succeeded. */
uint64_t bulkwrite_size(const struct bulkwrite *w);

#endif
