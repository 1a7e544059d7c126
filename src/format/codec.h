/*
 * codec: decoding of stored files by their extension.  ".zst", ".bz2",
 * ".gz" and ".xz" are decoded in-process, ".tar" (or no extension) is
 * passed through, ".gpg" goes through a child process
 * (cumulus-filter-gpg --decrypt, else gpg --decrypt).
 *
 * Every decoder enforces a bound on the decoded size: a stored file is
 * hostile, and a small file that inflates without end (a decompression
 * bomb) must be an error, not an out-of-memory.
 */
#ifndef CUMULUS_CODEC_H
#define CUMULUS_CODEC_H

#include <stdbool.h>
#include <stdint.h>

struct source;

/* Segments never decode to more than this (1 GiB). */
#define CODEC_SEGMENT_MAX ((uint64_t)1 << 30)

/*
 * Wrap ${raw} (taken: closed with the decoder, or at once on failure) in
 * a decoder chosen by the extension of ${name} (a file name or just an
 * extension like ".zst").  Reading more than ${max_out} decoded bytes, or
 * a truncated or corrupt stream, fails the read.  Closing ${out} fails if
 * a filter child exited non-zero.  0, or -1 (error recorded; an unknown
 * extension is named).
 */
int codec_open_decoder(const char *name, struct source *raw, uint64_t max_out,
    struct source *out);
/* Whether the extension of ${name} is one codec_open_decoder() knows. */
bool codec_known(const char *name);

#endif
