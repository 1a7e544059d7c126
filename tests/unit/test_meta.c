/* test_meta: stanza parsing and formatting. */
#include <string.h>

#include "meta.h"
#include "tap.h"

static void
feed(struct stanza *s, const char *text)
{
	while (*text) {
		const char *nl = strchr(text, '\n');
		size_t n = nl ? (size_t)(nl - text) : strlen(text);

		stanza_add_line(s, text, n);
		text += n + (nl ? 1 : 0);
	}
}

int
main(void)
{
	struct stanza s;
	struct buf out;
	size_t len;

	ok(meta_line_kind("", 0) == META_LINE_BLANK, "empty line is blank");
	ok(meta_line_kind(" \t", 2) == META_LINE_BLANK, "spaces are blank");
	ok(meta_line_kind("name: x", 7) == META_LINE_FIELD, "field");
	ok(meta_line_kind("    a/1", 7) == META_LINE_CONT, "continuation");
	ok(meta_line_kind("@a/1", 4) == META_LINE_INCLUDE, "include");
	ok(meta_line_kind("no colon", 8) == META_LINE_JUNK, "junk");
	ok(meta_line_kind("bad key: v", 10) == META_LINE_JUNK,
	    "key with a space is junk");
	ok(meta_line_kind(":v", 2) == META_LINE_JUNK, "empty key is junk");

	stanza_init(&s);
	feed(&s, "name: a%20b\ntype: f\ndata: x/1[3]\n    x/2[4]\n"
		 "junk line\nsize: 7\n");
	is_str(stanza_get(&s, "name", NULL), "a%20b", "name value");
	is_str(stanza_get(&s, "data", &len), "x/1[3]\n    x/2[4]",
	    "continuation kept byte for byte");
	ok(len == strlen("x/1[3]\n    x/2[4]"), "continuation length");
	is_str(stanza_get(&s, "size", NULL), "7",
	    "field after a continuation and junk");
	ok(stanza_get(&s, "junk line", NULL) == NULL, "junk ignored");
	feed(&s, "type: d\n");
	is_str(stanza_get(&s, "type", NULL), "d", "repeated key: last wins");
	buf_init(&out, 4096);
	stanza_format(&s, &out);
	is_str(buf_str(&out),
	    "name: a%20b\ndata: x/1[3]\n    x/2[4]\nsize: 7\ntype: d\n",
	    "format: name first, then keys in byte order");
	stanza_clear(&s);
	ok(s.n == 0 && stanza_get(&s, "name", NULL) == NULL, "clear");
	feed(&s, "    orphan continuation\ndata: \n");
	ok(s.n == 1, "orphan continuation ignored");
	is_str(stanza_get(&s, "data", NULL), "", "empty value");
	stanza_clear(&s);
	for (int i = 0; i < STANZA_MAX_FIELDS; i++) {
		char line[32];

		snprintf(line, sizeof(line), "k%d: v", i);
		stanza_add_line(&s, line, strlen(line));
	}
	ok(stanza_add_line(&s, "one-more: v", 11) < 0, "field count bounded");
	stanza_release(&s);
	buf_release(&out);
	return tap_done();
}
