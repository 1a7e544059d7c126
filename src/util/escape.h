/*
 * escape: the %-encoding of names and strings in the metadata log.
 *
 * Bytes 0x2b..0x7e except '@' are copied; every other byte becomes '%'
 * and two lowercase hex digits.  Decoding accepts either case and keeps a
 * malformed '%' literally (the original C decoder dropped it).
 */
#ifndef CUMULUS_ESCAPE_H
#define CUMULUS_ESCAPE_H

#include <stddef.h>

struct buf;

/* Append the encoding of ${n} bytes at ${p} to ${out}.  0 or -1. */
int escape_encode(struct buf *out, const void *p, size_t n);
/* Append the decoding of ${n} characters at ${s} to ${out}.  0 or -1. */
int escape_decode(struct buf *out, const char *s, size_t n);

#endif
