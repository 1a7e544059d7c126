/*
 * fileio: complete reads and writes, and durable publication of files.
 *
 * Every loop here retries on EINTR and short counts.  Files reach their
 * final name by the publish protocol: write a temp file in the same
 * directory, fsync it, close it, link or rename it to its name, fsync the
 * directory.  A crash at any point leaves either no file of that name or
 * the complete file, plus at most a ".tmp.*" file that fileio_clean_temps()
 * removes.
 */
#ifndef CUMULUS_FILEIO_H
#define CUMULUS_FILEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct buf;

/* Write all ${n} bytes.  0, or -1 (error recorded; a 0-byte write is ENOSPC). */
int fileio_write_full(int fd, const void *p, size_t n);
/* Read up to ${n} bytes, stopping early only at EOF: a descriptor with
 * O_NONBLOCK that says EAGAIN is made blocking.  Count, or -1. */
ssize_t fileio_read_full(int fd, void *p, size_t n);
/* The same for a regular file opened with O_NONBLOCK (against a FIFO in
 * its place): EAGAIN is an error, as a special file that says it (such as
 * /proc/kmsg) could block forever. */
ssize_t fileio_read_file_full(int fd, void *p, size_t n);
/* pread version of fileio_read_full. */
ssize_t fileio_pread_full(int fd, void *p, size_t n, off_t off);
/* Append the whole file ${path} to ${out} (bounded by out->max).  0 or -1. */
int fileio_read_file(const char *path, struct buf *out);
/* Append everything readable from ${fd} to ${out}.  0 or -1. */
int fileio_read_fd(int fd, struct buf *out);

/*
 * A file being written under a temporary name in directory ${dir}.  Once
 * committed it carries its final name; aborted, it is gone.
 */
struct fileio_tmp {
	int fd;
	int dirfd;
	char *tmpname;
	char *name;
};

/* An unlinked temporary file in $TMPDIR (else /tmp), open for reading
 * and writing: a descriptor, or -1. */
int fileio_anon_temp(void);

/* Create a temp file for ${name} in ${dir}.  0 or -1. */
int fileio_tmp_open(struct fileio_tmp *t, const char *dir, const char *name);
/*
 * fsync, close, publish under the final name and fsync the directory.
 * With ${noreplace}, an existing file of that name is an error (EEXIST).
 * Always releases ${t}.  0 or -1.
 */
int fileio_tmp_commit(struct fileio_tmp *t, bool noreplace);
/* Remove the temp file and release ${t}.  Safe after a failed commit. */
void fileio_tmp_abort(struct fileio_tmp *t);
/* Write ${n} bytes as file ${dir}/${name} through the publish protocol. */
int fileio_publish(const char *dir, const char *name, const void *p, size_t n,
    bool noreplace);
/*
 * Write-behind: once ${size} (bytes written to ${fd} so far) is at least
 * ${every} past *${mark}, start writing them back to the disk without
 * waiting and move the mark, so a later fsync waits for the tail only.
 * Advisory: errors are left for that fsync.
 */
void fileio_write_behind(int fd, uint64_t *mark, uint64_t size,
    uint64_t every);
/* fsync the directory ${dir}.  0 or -1. */
int fileio_fsync_dir(const char *dir);
/* mkdir -p: create ${path} and missing parents with ${mode}.  0 or -1. */
int fileio_mkdir_p(const char *path, unsigned mode);
/*
 * Remove leftover ".tmp.${name}*" files (any ".tmp.*" when ${name} is
 * NULL) in ${dir} that no process holds a flock() on: a writer that locks
 * its temp file keeps it.  Returns how many were removed.
 */
int fileio_clean_temps(const char *dir, const char *name);

#endif
