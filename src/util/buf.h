/*
 * buf: a growable byte buffer with a hard maximum size.
 *
 * The data is always followed by a NUL byte (not counted in len), so text
 * can be used as a C string.  The maximum bounds everything read from
 * untrusted input: an append that would pass it fails with an error instead
 * of growing without bound.
 */
#ifndef CUMULUS_BUF_H
#define CUMULUS_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
	char *data; /* NULL until the first append */
	size_t len;
	size_t cap;
	size_t max; /* appends beyond this many bytes fail */
};

#define BUF_UNLIMITED ((size_t)-1 / 2)

/* Start an empty buffer that may grow to ${max} bytes. */
void buf_init(struct buf *b, size_t max);
/* Free the memory; the buffer is empty afterwards and may be reused. */
void buf_release(struct buf *b);
/* Make the buffer empty, keeping its memory. */
void buf_reset(struct buf *b);
/* Make room for ${n} more bytes.  0, or -1 (error recorded). */
int buf_reserve(struct buf *b, size_t n);
/* Append ${n} bytes.  0, or -1 (error recorded). */
static inline int buf_append(struct buf *b, const void *p, size_t n);
/* Append a C string.  0 or -1. */
int buf_puts(struct buf *b, const char *s);
/* Append one byte.  0 or -1. */
static inline int buf_putc(struct buf *b, int c);
/* Append printf output.  0 or -1. */
int buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Take the data; the caller frees it with free().  The buffer is empty. */
char *buf_detach(struct buf *b, size_t *len);
/* The data as a C string ("" when empty). */
const char *buf_str(const struct buf *b);

/* The out-of-line paths of buf_append() and buf_putc(). */
int buf_append_slow(struct buf *b, const void *p, size_t n);
int buf_putc_slow(struct buf *b, int c);

/* Inline fast paths, when the bytes fit in the memory already there (and
 * therefore under the maximum): formatting metadata appends byte by byte. */
static inline int
buf_append(struct buf *b, const void *p, size_t n)
{
	if (n < b->cap && b->len < b->cap - n && b->len + n <= b->max) {
		__builtin_memcpy(b->data + b->len, p, n);
		b->len += n;
		b->data[b->len] = '\0';
		return 0;
	}
	return buf_append_slow(b, p, n);
}

static inline int
buf_putc(struct buf *b, int c)
{
	if (b->len + 1 < b->cap && b->len < b->max) {
		b->data[b->len++] = (char)c;
		b->data[b->len] = '\0';
		return 0;
	}
	return buf_putc_slow(b, c);
}

#endif
