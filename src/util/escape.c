/* escape: metadata string %-encoding (see escape.h). */
#include "escape.h"

#include "buf.h"

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
escape_encode(struct buf *out, const void *p, size_t n)
{
	static const char hexd[] = "0123456789abcdef";
	const unsigned char *s = p;

	if (buf_reserve(out, n))
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = s[i];

		if (c >= 0x2b && c <= 0x7e && c != '@') {
			if (buf_putc(out, c))
				return -1;
		} else {
			char e[3] = { '%', hexd[c >> 4], hexd[c & 15] };

			if (buf_append(out, e, 3))
				return -1;
		}
	}
	return 0;
}

int
escape_decode(struct buf *out, const char *s, size_t n)
{
	if (buf_reserve(out, n))
		return -1;
	for (size_t i = 0; i < n; i++) {
		int hi, lo;

		if (s[i] == '%' && i + 2 < n &&
		    (hi = hexval((unsigned char)s[i + 1])) >= 0 &&
		    (lo = hexval((unsigned char)s[i + 2])) >= 0) {
			if (buf_putc(out, hi << 4 | lo))
				return -1;
			i += 2;
		} else if (buf_putc(out, s[i])) {
			return -1;
		}
	}
	return 0;
}
