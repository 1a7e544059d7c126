/* test_escape: %-encoding of names. */
#include <string.h>

#include "buf.h"
#include "escape.h"
#include "tap.h"

static const char *
enc(const void *p, size_t n, struct buf *b)
{
	buf_reset(b);
	escape_encode(b, p, n);
	return buf_str(b);
}

static const char *
dec(const char *s, struct buf *b)
{
	buf_reset(b);
	escape_decode(b, s, strlen(s));
	return buf_str(b);
}

int
main(void)
{
	struct buf b;
	unsigned char all[256];

	buf_init(&b, 4096);
	is_str(enc("abc/def.txt", 11, &b), "abc/def.txt", "plain copied");
	is_str(enc("a b", 3, &b), "a%20b", "space");
	is_str(enc("100%", 4, &b), "100%25", "percent");
	is_str(enc("@x+", 3, &b), "%40x+", "'@' escaped, '+' not");
	is_str(enc("\n\t\xff\x7f", 4, &b), "%0a%09%ff%7f", "controls and high");
	is_str(enc("*", 1, &b), "%2a", "0x2a escaped");
	is_str(dec("a%20b", &b), "a b", "decode");
	is_str(dec("%2F%2f", &b), "//", "either case");
	is_str(dec("pct%41.txt", &b), "pctA.txt", "percent-41 decodes");
	is_str(dec("100%", &b), "100%", "trailing percent kept");
	is_str(dec("1%2", &b), "1%2", "short escape kept");
	is_str(dec("%zz%", &b), "%zz%", "bad hex kept");
	for (int i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	{
		struct buf e, d;

		buf_init(&e, 4096);
		buf_init(&d, 4096);
		escape_encode(&e, all, 256);
		escape_decode(&d, e.data, e.len);
		ok(d.len == 256 && memcmp(d.data, all, 256) == 0,
		    "all bytes round trip");
		ok(strpbrk(e.data, " \n\t@") == NULL, "no unsafe bytes encoded");
		buf_release(&e);
		buf_release(&d);
	}
	buf_release(&b);
	return tap_done();
}
