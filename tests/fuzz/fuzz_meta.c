/*
 * fuzz_meta: stanza parsing of arbitrary text (src/format/meta.h), line
 * by line as the metadata-log reader does.  Properties: no crash; every
 * field read back by key is found; formatting a stanza and parsing the
 * result gives the same values.  A violation abort()s.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "meta.h"

static void
feed(struct stanza *s, const char *p, size_t n)
{
	size_t pos = 0;

	while (pos < n) {
		const char *nl = memchr(p + pos, '\n', n - pos);
		size_t len = nl ? (size_t)(nl - (p + pos)) : n - pos;

		if (meta_line_kind(p + pos, len) == META_LINE_BLANK)
			break; /* one stanza is enough */
		if (stanza_add_line(s, p + pos, len))
			break;
		pos += len + 1;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct stanza a, b;
	struct buf text;

	stanza_init(&a);
	stanza_init(&b);
	buf_init(&text, STANZA_MAX_BYTES);
	feed(&a, (const char *)data, size);
	for (size_t i = 0; i < a.n; i++)
		if (stanza_get(&a, a.text.data + a.key_off[i], NULL) == NULL)
			abort();
	if (stanza_format(&a, &text) == 0) {
		feed(&b, text.data ? text.data : "", text.len);
		/* Values ending in blanks or holding blank lines do not
		 * survive the text form; compare only the others. */
		for (size_t i = 0; i < a.n; i++) {
			const char *k = a.text.data + a.key_off[i];
			const char *v = a.text.data + a.val_off[i];
			const char *w = stanza_get(&b, k, NULL);
			size_t vl = a.val_len[i];

			if (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t' ||
				      v[vl - 1] == '\r' || strstr(v, "\n\n") ||
				      v[0] == ' ' || v[0] == '\t'))
				continue;
			if (strchr(v, '\n') || memchr(v, '\r', vl))
				continue;
			if (w == NULL || strcmp(v, w) != 0)
				abort();
		}
	}
	buf_release(&text);
	stanza_release(&a);
	stanza_release(&b);
	return 0;
}
