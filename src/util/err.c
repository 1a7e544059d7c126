/* err: per-thread last-error message (see err.h). */
#include "err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char err_buf[1024];

/* The length of the UTF-8 sequence at ${p} (at most ${n} bytes) if it is
 * valid and not a C1 control (U+0080..U+009F), which some terminals obey
 * as they do ESC; else 0. */
static size_t
utf8_ok(const unsigned char *p, size_t n)
{
	size_t len;
	unsigned long cp;

	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t k = 1; k < len; k++) {
		if ((p[k] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[k] & 0x3f);
	}
	if (cp <= 0x9f || (len == 3 && cp < 0x800) ||
	    (len == 4 && cp < 0x10000) || (cp >= 0xd800 && cp <= 0xdfff) ||
	    cp > 0x10ffff)
		return 0;
	return len;
}

void
err_printable(char *dst, size_t cap, const char *src)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)src;
	size_t n = 0, left = strlen(src);

	while (left > 0) {
		size_t len = p[0] < 0x80 ? 1 : utf8_ok(p, left);

		if (len == 0 || (len == 1 && (p[0] < 0x20 || p[0] == 0x7f))) {
			if (n + 4 >= cap)
				break;
			dst[n++] = '\\';
			dst[n++] = 'x';
			dst[n++] = hex[p[0] >> 4];
			dst[n++] = hex[p[0] & 15];
			len = 1;
		} else {
			if (n + len >= cap)
				break;
			memcpy(dst + n, p, len);
			n += len;
		}
		p += len;
		left -= len;
	}
	dst[n] = '\0';
}

/* Record the formatted message, with ${tail} (or nothing) after it. */
static void record(const char *tail, const char *fmt, va_list ap)
    ERR_PRINTF(2, 0);

static void
record(const char *tail, const char *fmt, va_list ap)
{
	char raw[sizeof(err_buf)];
	size_t n;

	vsnprintf(raw, sizeof(raw), fmt, ap);
	n = strlen(raw);
	if (tail)
		snprintf(raw + n, sizeof(raw) - n, ": %s", tail);
	err_printable(err_buf, sizeof(err_buf), raw);
}

void
err_vformat(char *dst, size_t cap, const char *fmt, va_list ap)
{
	char raw[4096];

	vsnprintf(raw, sizeof(raw), fmt, ap);
	err_printable(dst, cap, raw);
}

void
err_set(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	record(NULL, fmt, ap);
	va_end(ap);
}

void
err_setp(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	record(strerror(saved), fmt, ap);
	va_end(ap);
	errno = saved;
}

void
err_prefix(const char *fmt, ...)
{
	char old[sizeof(err_buf)];
	va_list ap;

	/* The old message is escaped already; its backslashes stay. */
	memcpy(old, err_buf, sizeof(old));
	va_start(ap, fmt);
	record(old, fmt, ap);
	va_end(ap);
}

const char *
err_msg(void)
{
	return err_buf;
}

void
err_clear(void)
{
	err_buf[0] = '\0';
}
