/*
 * tar: the segment container.  The writer emits exactly the original's
 * old-GNU headers (docs/format.md, "Segments"); the reader accepts any
 * ustar/GNU stream and hands back regular members one at a time.
 */
#ifndef CUMULUS_TAR_H
#define CUMULUS_TAR_H

#include <stdint.h>
#include <sys/types.h>

struct source;

#define TAR_BLOCK 512

/* Fill ${hdr} with the header of a member ${name} (< 100 bytes) of ${size}
 * bytes written at ${mtime}.  0, or -1 if the name or size do not fit. */
int tar_header(unsigned char hdr[TAR_BLOCK], const char *name, uint64_t size,
    int64_t mtime);
/* Zero bytes that must follow ${size} bytes of data. */
size_t tar_padding(uint64_t size);

struct tar_member {
	char name[257]; /* prefix/name joined, NUL-terminated */
	uint64_t size;
	char type; /* '0' for regular files */
};

struct tar_reader {
	struct source *src; /* borrowed */
	uint64_t remaining; /* data bytes left in the current member */
	uint64_t pad;       /* padding after the current member */
	uint64_t max_member; /* members larger than this are an error */
};

/* Start reading from ${src}; members over ${max_member} bytes fail. */
void tar_reader_init(struct tar_reader *t, struct source *src,
    uint64_t max_member);
/*
 * Skip what is left of the current member and read the next header into
 * ${m}.  Returns 1 with a member, 0 at the end of the archive (two zero
 * blocks or a clean EOF), -1 on a malformed stream (error recorded).
 * Members of every type are returned; the caller skips non-regular ones.
 */
int tar_next(struct tar_reader *t, struct tar_member *m);
/* Read up to ${n} bytes of the current member.  Count (0 at its end), -1. */
ssize_t tar_read(struct tar_reader *t, void *p, size_t n);

#endif
