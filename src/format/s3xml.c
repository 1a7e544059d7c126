/*
 * s3xml: bounded extraction of elements from S3 XML responses (s3xml.h).
 * Not a general XML parser: S3 responses are flat, attribute-free at the
 * elements we read, and never use CDATA there.
 */
#include "s3xml.h"

#include <string.h>

#include "buf.h"
#include "err.h"

/* The byte range [*start, *end) of the text of the first <tag> element
 * in [p, p+n).  1 found, 0 absent, -1 unterminated. */
static int
element(const char *p, size_t n, const char *tag, const char **start,
    const char **end)
{
	char open[80], close[80];
	size_t tl = strlen(tag);
	const char *s, *e;

	if (tl + 4 > sizeof(open))
		return -1;
	open[0] = '<';
	memcpy(open + 1, tag, tl);
	open[tl + 1] = '>';
	close[0] = '<';
	close[1] = '/';
	memcpy(close + 2, tag, tl);
	close[tl + 2] = '>';
	s = memmem(p, n, open, tl + 2);
	if (s == NULL)
		return 0;
	s += tl + 2;
	e = memmem(s, (size_t)(p + n - s), close, tl + 3);
	if (e == NULL) {
		err_set("S3 response: <%s> is not closed", tag);
		return -1;
	}
	*start = s;
	*end = e;
	return 1;
}

static int
put_utf8(struct buf *out, unsigned long c)
{
	unsigned char u[4];
	size_t n;

	if (c < 0x80) {
		u[0] = (unsigned char)c;
		n = 1;
	} else if (c < 0x800) {
		u[0] = (unsigned char)(0xc0 | (c >> 6));
		u[1] = (unsigned char)(0x80 | (c & 0x3f));
		n = 2;
	} else if (c < 0x10000) {
		u[0] = (unsigned char)(0xe0 | (c >> 12));
		u[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3f));
		u[2] = (unsigned char)(0x80 | (c & 0x3f));
		n = 3;
	} else {
		u[0] = (unsigned char)(0xf0 | (c >> 18));
		u[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3f));
		u[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3f));
		u[3] = (unsigned char)(0x80 | (c & 0x3f));
		n = 4;
	}
	return buf_append(out, u, n);
}

/* Decode XML text with entities; control characters are refused. */
static int
decode(const char *s, const char *e, struct buf *out)
{
	static const struct {
		const char *name;
		char c;
	} ents[] = { { "amp;", '&' }, { "lt;", '<' }, { "gt;", '>' },
		{ "quot;", '"' }, { "apos;", '\'' } };

	while (s < e) {
		const char *semi;
		size_t i;

		if (*s != '&') {
			if (((unsigned char)*s < 0x20 && *s != '\t' &&
				*s != '\n' && *s != '\r') ||
			    *s == 0x7f)
				goto control;
			if (*s == '<')
				goto bad;
			if (buf_putc(out, *s))
				return -1;
			s++;
			continue;
		}
		s++;
		semi = memchr(s, ';', (size_t)(e - s) < 12 ? (size_t)(e - s) : 12);
		if (semi == NULL)
			goto bad;
		for (i = 0; i < sizeof(ents) / sizeof(*ents); i++) {
			size_t l = strlen(ents[i].name);

			if ((size_t)(semi + 1 - s) == l &&
			    memcmp(s, ents[i].name, l) == 0)
				break;
		}
		if (i < sizeof(ents) / sizeof(*ents)) {
			if (buf_putc(out, ents[i].c))
				return -1;
		} else if (*s == '#') {
			unsigned long c = 0;
			const char *d = s + 1;
			int base = 10;

			if (d < semi && (*d == 'x' || *d == 'X')) {
				base = 16;
				d++;
			}
			if (d == semi)
				goto bad;
			for (; d < semi; d++) {
				int v;

				if (*d >= '0' && *d <= '9')
					v = *d - '0';
				else if (base == 16 && *d >= 'a' && *d <= 'f')
					v = *d - 'a' + 10;
				else if (base == 16 && *d >= 'A' && *d <= 'F')
					v = *d - 'A' + 10;
				else
					goto bad;
				c = c * (unsigned long)base + (unsigned long)v;
				if (c > 0x10ffff)
					goto bad;
			}
			/* No NULs or controls (C0, DEL, C1) smuggled in by
			 * reference. */
			if (c < 0x20 || (c >= 0x7f && c <= 0x9f))
				goto control;
			if (c >= 0xd800 && c <= 0xdfff)
				goto bad;
			if (put_utf8(out, c))
				return -1;
		} else {
			goto bad;
		}
		s = semi + 1;
	}
	return 0;
bad:
	err_set("S3 response: malformed XML text");
	return -1;
control:
	err_set("S3 response: control character in the XML text");
	return -1;
}

int
s3xml_find(const char *xml, size_t n, const char *tag, struct buf *out)
{
	const char *s, *e;
	int r = element(xml, n, tag, &s, &e);

	if (r <= 0)
		return r;
	return decode(s, e, out) ? -1 : 1;
}

static int
parse_size(const char *s, const char *e, uint64_t *out)
{
	uint64_t v = 0;

	while (s < e && (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t'))
		s++;
	if (s == e)
		return -1;
	for (; s < e; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		if (v > (UINT64_MAX / 2 - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 0;
}

/*
 * A key is UTF-8 (S3 says so) without control characters: C0, DEL and C1
 * (U+0080..U+009F, and raw bytes 0x80..0x9f outside a sequence, which a
 * terminal in an 8-bit locale takes for C1) could drive the terminal of
 * whoever lists the store.
 */
static bool
key_text_ok(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned char c = p[i];
		size_t len;
		unsigned long cp;

		if (c < 0x80) {
			if (c < 0x20 || c == 0x7f)
				return false;
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			len = 2;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			len = 3;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			len = 4;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (n - i < len)
			return false;
		for (size_t k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i + k] & 0x3f);
		}
		/* Overlong forms, surrogates, beyond U+10FFFF, C1. */
		if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff ||
		    cp <= 0x9f)
			return false;
		i += len;
	}
	return true;
}

int
s3xml_parse_list(const char *xml, size_t n,
    int (*cb)(void *arg, const char *key, uint64_t size), void *arg,
    bool *truncated, struct buf *token)
{
	const char *p = xml, *end = xml + n, *s, *e;
	struct buf key, t;
	int r, rc = -1;

	*truncated = false;
	buf_init(&key, S3XML_KEY_MAX);
	buf_init(&t, 64);
	if (memmem(xml, n, "<ListBucketResult", 17) == NULL) {
		err_set("S3 response: not a ListBucketResult");
		goto out;
	}
	for (;;) {
		const char *ks, *ke, *ss, *se;
		uint64_t size;

		r = element(p, (size_t)(end - p), "Contents", &s, &e);
		if (r < 0)
			goto out;
		if (r == 0)
			break;
		buf_reset(&key);
		if (element(s, (size_t)(e - s), "Key", &ks, &ke) != 1 ||
		    element(s, (size_t)(e - s), "Size", &ss, &se) != 1) {
			err_set("S3 response: object without Key or Size");
			goto out;
		}
		if (decode(ks, ke, &key))
			goto out;
		if (key.len == 0 || strlen(buf_str(&key)) != key.len ||
		    parse_size(ss, se, &size)) {
			err_set("S3 response: bad object entry");
			goto out;
		}
		if (!key_text_ok((const unsigned char *)key.data, key.len)) {
			err_set("S3 response: control character or invalid "
				"UTF-8 in a key");
			goto out;
		}
		r = cb(arg, key.data, size);
		if (r) {
			rc = r;
			goto out;
		}
		p = e + 11; /* past "</Contents>" */
	}
	r = s3xml_find(xml, n, "IsTruncated", &t);
	if (r < 0)
		goto out;
	*truncated = r == 1 && strcmp(buf_str(&t), "true") == 0;
	if (*truncated) {
		buf_reset(token);
		r = s3xml_find(xml, n, "NextContinuationToken", token);
		if (r <= 0 || token->len == 0) {
			if (r >= 0)
				err_set("S3 response: truncated listing with%s "
					"continuation token",
				    r == 0 ? "out a" : " an empty");
			goto out;
		}
	}
	rc = 0;
out:
	buf_release(&key);
	buf_release(&t);
	return rc;
}
