/*
 * fuzz_ref: object reference parsing and formatting (src/format/ref.h).
 * Properties, for every input that ref_parse() accepts:
 *   - ref_format() succeeds and its output parses back to the same ref;
 *   - the output spells the same thing as the input: equal once leading
 *     zeros of numbers are dropped (so a number that overflowed, or a
 *     character the parser skipped, shows up).  zero[s+n] is the one
 *     accepted spelling that formats differently (as zero[n]).
 * A violation abort()s.
 */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fuzz.h"
#include "ref.h"

static int
same_ref(const struct ref *a, const struct ref *b)
{
	return a->kind == b->kind && strcmp(a->segment, b->segment) == 0 &&
	    a->seq == b->seq && strcmp(a->checksum, b->checksum) == 0 &&
	    a->range == b->range && a->start == b->start &&
	    a->length == b->length;
}

/* ${s} with leading zeros dropped from the numbers outside "(...)". */
static void
canonical(const char *s, size_t n, struct buf *out)
{
	int in_checksum = 0;
	size_t i = 0;

	while (i < n) {
		char c = s[i++];

		if (buf_putc(out, c))
			abort();
		if (c == '(' || c == ')')
			in_checksum = c == '(';
		else if (!in_checksum && strchr("/[+=", c) != NULL)
			while (i + 1 < n && s[i] == '0' &&
			    strchr("0123456789abcdef", s[i + 1]) != NULL)
				i++;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	struct ref r1, r2;
	struct buf text, want, got;

	if (ref_parse(in, size, &r1) != 0)
		return 0;
	buf_init(&text, 4096);
	if (ref_format(&r1, &text) != 0)
		abort();
	if (ref_parse(text.data, text.len, &r2) != 0 || !same_ref(&r1, &r2))
		abort();
	if (r1.kind == REF_OBJECT || memchr(in, '+', size) == NULL) {
		buf_init(&want, 4096);
		buf_init(&got, 4096);
		canonical(in, size, &want);
		canonical(text.data, text.len, &got);
		if (want.len != got.len || memcmp(want.data, got.data, got.len))
			abort();
		buf_release(&want);
		buf_release(&got);
	}
	buf_release(&text);
	return 0;
}
