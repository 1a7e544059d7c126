/*
 * ref: parsing and formatting of object references.  Everything parsed
 * here comes from a store and is hostile: numbers are range checked and
 * every character is accounted for.
 */
#include "ref.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "err.h"

/* Lengths and offsets above this are refused (no file is that large). */
#define REF_NUM_MAX ((uint64_t)1 << 62)

static int
parse_dec(const char *s, size_t n, size_t *pos, uint64_t *out)
{
	uint64_t v = 0;
	size_t start = *pos;

	while (*pos < n && s[*pos] >= '0' && s[*pos] <= '9') {
		uint64_t d = (uint64_t)(s[*pos] - '0');

		/* Check before multiplying: the product must not wrap. */
		if (v > (REF_NUM_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
		(*pos)++;
	}
	if (*pos == start)
		return -1;
	*out = v;
	return 0;
}

static int
parse_range(const char *s, size_t n, size_t *pos, struct ref *r)
{
	uint64_t a, b;

	/* *pos is just after '['. */
	if (*pos < n && s[*pos] == '=') {
		(*pos)++;
		if (parse_dec(s, n, pos, &a))
			return -1;
		r->range = REF_RANGE_EXACT;
		r->length = a;
	} else {
		if (parse_dec(s, n, pos, &a))
			return -1;
		if (*pos < n && s[*pos] == '+') {
			(*pos)++;
			if (parse_dec(s, n, pos, &b))
				return -1;
			if (a > REF_NUM_MAX - b)
				return -1;
			r->range = REF_RANGE_SLICE;
			r->start = a;
			r->length = b;
		} else {
			r->range = REF_RANGE_BARE;
			r->length = a;
		}
	}
	if (*pos >= n || s[*pos] != ']')
		return -1;
	(*pos)++;
	return 0;
}

int
ref_parse(const char *s, size_t n, struct ref *r)
{
	size_t pos = 0, seglen, seqlen = 0;

	memset(r, 0, sizeof(*r));
	if (n >= 5 && memcmp(s, "zero[", 5) == 0) {
		pos = 5;
		r->kind = REF_ZERO;
		if (parse_range(s, n, &pos, r) || pos != n ||
		    r->range == REF_RANGE_EXACT)
			goto bad;
		/* zero[s+n] is n zero bytes (the 0.9 parser accepts it). */
		r->start = 0;
		r->range = REF_RANGE_BARE;
		return 0;
	}
	r->kind = REF_OBJECT;
	while (pos < n && ((s[pos] >= '0' && s[pos] <= '9') ||
			      (s[pos] >= 'a' && s[pos] <= 'f') || s[pos] == '-'))
		pos++;
	seglen = pos;
	if (seglen == 0 || seglen > REF_SEGMENT_MAX || pos >= n || s[pos] != '/')
		goto bad;
	memcpy(r->segment, s, seglen);
	r->segment[seglen] = '\0';
	pos++;
	while (pos < n && ((s[pos] >= '0' && s[pos] <= '9') ||
			      (s[pos] >= 'a' && s[pos] <= 'f'))) {
		if (++seqlen > 16)
			goto bad;
		r->seq = r->seq << 4 |
		    (uint64_t)(s[pos] <= '9' ? s[pos] - '0' : s[pos] - 'a' + 10);
		pos++;
	}
	if (seqlen == 0)
		goto bad;
	if (pos < n && s[pos] == '(') {
		const char *close = memchr(s + pos, ')', n - pos);
		size_t clen;
		enum hash_alg alg;

		if (close == NULL)
			goto bad;
		clen = (size_t)(close - (s + pos + 1));
		if (clen == 0 || clen >= HASH_STR_MAX ||
		    memchr(s + pos + 1, '\0', clen) != NULL)
			goto bad;
		memcpy(r->checksum, s + pos + 1, clen);
		r->checksum[clen] = '\0';
		if (hash_parse(r->checksum, &alg))
			goto bad;
		pos += clen + 2;
	}
	if (pos < n && s[pos] == '[') {
		pos++;
		if (parse_range(s, n, &pos, r))
			goto bad;
	}
	if (pos != n)
		goto bad;
	return 0;
bad:
	err_set("malformed object reference '%.*s'", (int)(n > 120 ? 120 : n),
	    s);
	return -1;
}

void
ref_set_object(struct ref *r, const char *segment, uint64_t seq)
{
	memset(r, 0, sizeof(*r));
	r->kind = REF_OBJECT;
	snprintf(r->segment, sizeof(r->segment), "%s", segment);
	r->seq = seq;
}

/* Decimal digits of ${v} at ${p}; returns the end. */
static char *
put_dec(char *p, uint64_t v)
{
	char d[20];
	size_t n = 0;

	do {
		d[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	while (n > 0)
		*p++ = d[--n];
	return p;
}

/* ${v} in lower-case hex, at least 8 digits ("%08x"); returns the end. */
static char *
put_hex8(char *p, uint64_t v)
{
	char d[16];
	size_t n = 0;

	do {
		d[n++] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v != 0);
	while (n < 8)
		d[n++] = '0';
	while (n > 0)
		*p++ = d[--n];
	return p;
}

int
ref_format(const struct ref *r, struct buf *out)
{
	/* By hand rather than printf: backups format one or more references
	 * per file, and vsnprintf was a tenth of a no-change backup. */
	char t[REF_SEGMENT_MAX + 2 * 20 + 8], *p = t;
	size_t seglen;

	if (r->kind == REF_ZERO) {
		memcpy(p, "zero[", 5);
		p = put_dec(p + 5, r->length);
		*p++ = ']';
		return buf_append(out, t, (size_t)(p - t));
	}
	seglen = strnlen(r->segment, REF_SEGMENT_MAX);
	if (buf_append(out, r->segment, seglen))
		return -1;
	*p++ = '/';
	p = put_hex8(p, r->seq);
	if (buf_append(out, t, (size_t)(p - t)))
		return -1;
	p = t;
	if (r->checksum[0] &&
	    (buf_putc(out, '(') ||
		buf_append(out, r->checksum, strlen(r->checksum)) ||
		buf_putc(out, ')')))
		return -1;
	switch (r->range) {
	case REF_RANGE_NONE:
		return 0;
	case REF_RANGE_SLICE:
		*p++ = '[';
		p = put_dec(p, r->start);
		*p++ = '+';
		break;
	case REF_RANGE_BARE:
		*p++ = '[';
		break;
	case REF_RANGE_EXACT:
		*p++ = '[';
		*p++ = '=';
		break;
	}
	p = put_dec(p, r->length);
	*p++ = ']';
	return buf_append(out, t, (size_t)(p - t));
}

int
ref_resolve(const struct ref *r, uint64_t objsize, bool v011, uint64_t *off,
    uint64_t *len)
{
	switch (r->range) {
	case REF_RANGE_NONE:
		*off = 0;
		*len = objsize;
		return 0;
	case REF_RANGE_EXACT:
		if (objsize != r->length)
			goto size;
		*off = 0;
		*len = objsize;
		return 0;
	case REF_RANGE_BARE:
		if (v011 && objsize != r->length)
			goto size;
		if (r->length > objsize)
			goto range;
		*off = 0;
		*len = r->length;
		return 0;
	case REF_RANGE_SLICE:
		if (r->start > objsize || r->length > objsize - r->start)
			goto range;
		*off = r->start;
		*len = r->length;
		return 0;
	}
range:
	err_set("reference %s/%08" PRIx64 " selects bytes beyond the object "
		"(%" PRIu64 " bytes)",
	    r->segment, r->seq, objsize);
	return -1;
size:
	err_set("object %s/%08" PRIx64 " has %" PRIu64
		" bytes, its reference says %" PRIu64,
	    r->segment, r->seq, objsize, r->length);
	return -1;
}

int64_t
ref_known_length(const struct ref *r, bool v011)
{
	if (r->kind == REF_ZERO)
		return (int64_t)r->length;
	switch (r->range) {
	case REF_RANGE_SLICE:
	case REF_RANGE_EXACT:
	case REF_RANGE_BARE:
		return (int64_t)r->length;
	case REF_RANGE_NONE:
		break;
	}
	(void)v011;
	return -1;
}

bool
ref_merge(struct ref *a, const struct ref *b)
{
	if (a->kind == REF_ZERO && b->kind == REF_ZERO) {
		if (a->length > REF_NUM_MAX - b->length)
			return false;
		a->length += b->length;
		return true;
	}
	if (a->kind != REF_OBJECT || b->kind != REF_OBJECT ||
	    a->range != REF_RANGE_SLICE || b->range != REF_RANGE_SLICE ||
	    a->seq != b->seq || strcmp(a->segment, b->segment) != 0 ||
	    strcmp(a->checksum, b->checksum) != 0 ||
	    a->start + a->length != b->start)
		return false;
	a->length += b->length;
	return true;
}
