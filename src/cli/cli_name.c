/* cli_name: names from a store, made safe to print (see cli.h). */
#include "cli.h"

#include <stddef.h>

#define SLOTS 4
#define SLOT_SIZE 8192

/* The length of the UTF-8 sequence at ${p} (at most ${n} bytes) if it is
 * valid and not a C1 control (U+0080..U+009F), else 0. */
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

const char *
cli_name(const char *name)
{
	static const char hex[] = "0123456789abcdef";
	static _Thread_local char slots[SLOTS][SLOT_SIZE];
	static _Thread_local unsigned next;
	const unsigned char *p = (const unsigned char *)name;
	char *out = slots[next++ % SLOTS];
	size_t n = 0, left = 0;

	while (p[left])
		left++;
	while (left > 0) {
		size_t len = p[0] < 0x80 ? 1 : utf8_ok(p, left);

		if (len == 0 || (len == 1 && (p[0] < 0x20 || p[0] == 0x7f))) {
			if (n + 5 >= SLOT_SIZE)
				break;
			out[n++] = '\\';
			out[n++] = 'x';
			out[n++] = hex[p[0] >> 4];
			out[n++] = hex[p[0] & 15];
			len = 1;
		} else {
			if (n + len >= SLOT_SIZE)
				break;
			for (size_t k = 0; k < len; k++)
				out[n++] = (char)p[k];
		}
		p += len;
		left -= len;
	}
	out[n] = '\0';
	return out;
}
