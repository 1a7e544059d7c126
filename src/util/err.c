/* err: per-thread last-error message (see err.h). */
#include "err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char err_buf[1024];

static void
escape(char *dst, size_t cap, const char *src)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;

	for (; *src != '\0'; src++) {
		unsigned char c = (unsigned char)*src;

		if (c >= 0x20 && c != 0x7f) {
			if (n + 1 >= cap)
				break;
			dst[n++] = (char)c;
		} else {
			if (n + 4 >= cap)
				break;
			dst[n++] = '\\';
			dst[n++] = 'x';
			dst[n++] = hex[c >> 4];
			dst[n++] = hex[c & 15];
		}
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
	escape(err_buf, sizeof(err_buf), raw);
}

void
err_vformat(char *dst, size_t cap, const char *fmt, va_list ap)
{
	char raw[4096];

	vsnprintf(raw, sizeof(raw), fmt, ap);
	escape(dst, cap, raw);
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
