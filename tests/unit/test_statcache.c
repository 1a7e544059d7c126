/*
 * test_statcache: path order, reading the original's statcache2, and
 * write/read round trips with hostile names.
 */
#include <sys/stat.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "escape.h"
#include "fileio.h"
#include "statcache.h"
#include "tap.h"

/* A string literal and its length. */
#define S(lit) lit, sizeof(lit) - 1

static char tmpdir[256];

static const char *
top(void)
{
	const char *t = getenv("CUMULUS_TOP");

	return t ? t : ".";
}

static int
cmp(const char *a, const char *b)
{
	return statcache_path_cmp(a, strlen(a), b, strlen(b));
}

static void
test_order(void)
{
	/* in component-wise order */
	static const char *const sorted[] = { "", "a", "a/b", "a/b/c",
	    "a/b-c", "a/bc", "a/c", "a-b", "a0", "ab", "b", "b/\x01",
	    "b/a", "\xff", "\xff/x" };
	size_t n = sizeof(sorted) / sizeof(sorted[0]);
	int bad = 0;

	ok(cmp("a/b", "a-b") < 0 && cmp("a-b", "a/b") > 0,
	    "a/b sorts before a-b");
	ok(cmp("a", "a/b") < 0 && cmp("a/b", "a") > 0, "a sorts before a/b");
	ok(cmp("a/b", "a/b") == 0 && cmp("", "") == 0, "equal paths");
	ok(cmp("x/\xff", "x/a") > 0, "bytes compare unsigned");
	ok(statcache_path_cmp("a\nb", 3, "a\nc", 3) < 0 &&
	    statcache_path_cmp("a", 1, "a\0", 2) < 0, "lengths, not NULs");
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < n; j++) {
			int c = cmp(sorted[i], sorted[j]);

			if ((i < j && c >= 0) || (i == j && c != 0) ||
			    (i > j && c <= 0))
				bad++;
		}
	ok(bad == 0, "total order on %zu paths (%d wrong)", n, bad);
}

/* Split the raw file into (reference, stanza) pairs by hand. */
struct raw_entry {
	char *ref;
	char *stanza;
	size_t len;
	char *name; /* unescaped */
	size_t namelen;
};

static size_t
split_raw(const char *text, size_t len, struct raw_entry *out, size_t max)
{
	const char *p = text, *end = text + len;
	size_t n = 0;

	while (p < end && n < max) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *stop = memmem(nl + 1, (size_t)(end - nl - 1),
		    "\n\n", 2);
		const char *nm;
		struct buf b;

		out[n].ref = strndup(p + 2, (size_t)(nl - p - 2));
		out[n].len = (size_t)(stop + 1 - (nl + 1));
		out[n].stanza = strndup(nl + 1, out[n].len);
		nm = strstr(out[n].stanza, "name: ") + 6;
		buf_init(&b, BUF_UNLIMITED);
		escape_decode(&b, nm, strcspn(nm, "\n"));
		out[n].name = buf_detach(&b, &out[n].namelen);
		n++;
		p = stop + 2;
	}
	return n;
}

static void
free_raw(struct raw_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(e[i].ref);
		free(e[i].stanza);
		free(e[i].name);
	}
}

#define MAXE 200

static void
test_fixture(void)
{
	char dir[300], p[400];
	struct buf text;
	struct raw_entry raw[MAXE];
	struct statcache *sc;
	struct statcache_entry *e;
	struct statcache_writer *w;
	size_t n, found = 0, refs = 0, stanzas = 0, in_order = 1;
	int r;

	snprintf(dir, sizeof(dir), "%s/tests/golden/head-bzip2/localdb", top());
	snprintf(p, sizeof(p), "%s/statcache2", dir);
	buf_init(&text, BUF_UNLIMITED);
	ok(fileio_read_file(p, &text) == 0, "read fixture statcache2");
	n = split_raw(text.data, text.len, raw, MAXE);
	ok(n > 50, "fixture has %zu entries", n);
	for (size_t i = 1; i < n; i++)
		if (statcache_path_cmp(raw[i - 1].name, raw[i - 1].namelen,
		    raw[i].name, raw[i].namelen) >= 0)
			in_order = 0;
	ok(in_order, "the original wrote it in statcache_path_cmp order");

	ok(statcache_open(dir, NULL, &sc) == 0, "open reader");
	for (size_t i = 0; i < n; i++) {
		char miss[600];
		size_t ml;

		/* a path just before this one, absent from the file */
		ml = (size_t)snprintf(miss, sizeof(miss), "%.*s",
		    (int)raw[i].namelen, raw[i].name);
		if (ml > 0 && miss[ml - 1] != '/' && i > 0 &&
		    statcache_path_cmp(raw[i - 1].name, raw[i - 1].namelen,
		    miss, ml - 1) < 0 &&
		    statcache_lookup(sc, miss, ml - 1, &e) != 0)
			break;
		r = statcache_lookup(sc, raw[i].name, raw[i].namelen, &e);
		if (r != 1)
			continue;
		found++;
		if (strcmp(statcache_entry_ref(e), raw[i].ref) == 0)
			refs++;
		if (statcache_entry_equal_text(e, raw[i].stanza,
		    raw[i].len) == 1)
			stanzas++;
	}
	ok(found == n, "every entry found in order (%zu of %zu)", found, n);
	ok(refs == n, "references match");
	ok(stanzas == n, "fields equal the stored stanza text");
	ok(statcache_lookup(sc, S("zzz"), &e) == 0 && e == NULL,
	    "past the end: not found");
	statcache_close(sc);

	/* selected hostile names, skipping the rest */
	ok(statcache_open(dir, NULL, &sc) == 0, "reopen");
	ok(statcache_lookup(sc, S("tree/big.bin"), &e) == 1 &&
	    strchr(statcache_entry_get(e, "data"), '\n') != NULL &&
	    strstr(statcache_entry_get(e, "data"), "\n    ") != NULL &&
	    statcache_entry_get(e, "data")[0] != ' ',
	    "multi-line data value: continuation lines joined by \\n");
	ok(statcache_lookup(sc, S("tree/names/ leading-space"), &e) == 1 &&
	    strcmp(statcache_entry_get(e, "name"),
	    "tree/names/%20leading-space") == 0, "name with a leading space");
	ok(statcache_lookup(sc, S("tree/names/bad-\xff\xfe-bytes"), &e) == 1,
	    "non-UTF-8 name");
	ok(statcache_lookup(sc, S("tree/names/new\nline"), &e) == 1 &&
	    strcmp(statcache_entry_get(e, "type"), "f") == 0,
	    "name with a newline");
	ok(statcache_lookup(sc, S("tree/names/pct%41.txt"), &e) == 1 &&
	    statcache_lookup(sc, S("tree/names/pctA.txt"), &e) == 0,
	    "%%41 not decoded twice");
	ok(statcache_lookup(sc, S("tree/names/with space.txt"), &e) == 1,
	    "name with a space");
	ok(statcache_entry_get(e, "nosuchkey") == NULL, "absent key: NULL");
	ok(statcache_lookup(sc, S("tree/names"), &e) == 0,
	    "earlier path after a later one: not found");
	statcache_close(sc);

	/* writing the same entries reproduces the file byte for byte */
	snprintf(p, sizeof(p), "%s/rewrite", tmpdir);
	mkdir(p, 0755);
	ok(statcache_writer_open(p, NULL, &w) == 0, "writer");
	r = 0;
	for (size_t i = 0; i < n; i++)
		r |= statcache_writer_add(w, raw[i].ref, raw[i].stanza,
		    raw[i].len);
	ok(r == 0 && statcache_writer_commit(w) == 0, "write all entries");
	{
		struct buf again;

		buf_init(&again, BUF_UNLIMITED);
		snprintf(p, sizeof(p), "%s/rewrite/statcache2", tmpdir);
		ok(fileio_read_file(p, &again) == 0 &&
		    again.len == text.len &&
		    memcmp(again.data, text.data, text.len) == 0,
		    "identical to the original's file");
		buf_release(&again);
	}
	free_raw(raw, n);
	buf_release(&text);
}

struct item {
	const char *name;
	size_t len;
};

static int
item_cmp(const void *a, const void *b)
{
	const struct item *x = a, *y = b;

	return statcache_path_cmp(x->name, x->len, y->name, y->len);
}

static void
test_roundtrip(void)
{
	static struct item items[] = {
		{ "d", 1 }, { "d/a-b", 5 }, { "d/a", 3 }, { "d/a/b", 5 },
		{ "d/new\nline", 10 }, { "d/ space ", 9 }, { "d/\xff\xfe", 4 },
		{ "d/100%", 6 }, { "d/@at", 5 }, { "d/tab\there", 10 },
		{ "d/%41", 5 }, { "d/\x01", 3 }, { "d/a/\x7f", 5 },
		{ "d/long", 6 },
	};
	size_t n = sizeof(items) / sizeof(items[0]);
	char dir[300], p[400];
	struct statcache_writer *w;
	struct statcache *sc;
	struct statcache_entry *e;
	struct buf stanza, expect, got;
	int r = 0, good = 0, eqs = 0, neqs = 0;

	snprintf(dir, sizeof(dir), "%s/rt", tmpdir);
	mkdir(dir, 0755);
	qsort(items, n, sizeof(items[0]), item_cmp);
	buf_init(&stanza, BUF_UNLIMITED);
	buf_init(&expect, BUF_UNLIMITED);
	buf_init(&got, BUF_UNLIMITED);
	ok(statcache_writer_open(dir, "my-scheme", &w) == 0, "writer");
	for (size_t i = 0; i < n; i++) {
		buf_reset(&stanza);
		buf_puts(&stanza, "name: ");
		escape_encode(&stanza, items[i].name, items[i].len);
		buf_printf(&stanza, "\nsize: %zu\ndata: seg/%08zx[1]", i, i);
		/* a long entry, larger than the write buffer */
		for (size_t k = 0; k < (i == n - 1 ? 20000 : 2); k++)
			buf_printf(&stanza, "\n    seg/%08zx[%zu+1]", i, k);
		buf_puts(&stanza, "\n");
		r |= statcache_writer_add(w, "ref/00000000(sha224=00)[1+2]",
		    stanza.data, stanza.len);
		buf_printf(&expect, "@@ref/00000000(sha224=00)[1+2]\n%s\n",
		    stanza.data);
	}
	ok(r == 0, "entries added");
	ok(statcache_writer_add(w, "x", "a: b\n\nc: d\n", 11) == -1 &&
	    statcache_writer_add(w, "x\ny", "a: b\n", 5) == -1,
	    "blank lines in stanzas and newlines in refs refused");
	ok(statcache_writer_commit(w) == 0, "commit");
	snprintf(p, sizeof(p), "%s/statcache2-my-scheme", dir);
	ok(fileio_read_file(p, &got) == 0 && got.len == expect.len &&
	    memcmp(got.data, expect.data, got.len) == 0,
	    "file is @@ref, stanza, blank line per entry");

	ok(statcache_open(dir, "my-scheme", &sc) == 0, "reader");
	for (size_t i = 0; i < n; i++) {
		char want[32];

		if (statcache_lookup(sc, items[i].name, items[i].len,
		    &e) != 1)
			continue;
		snprintf(want, sizeof(want), "%zu", i);
		if (strcmp(statcache_entry_get(e, "size"), want) == 0 &&
		    strcmp(statcache_entry_ref(e),
		    "ref/00000000(sha224=00)[1+2]") == 0)
			good++;
		/* the same text, re-formatted, compares equal */
		buf_reset(&stanza);
		for (size_t k = 0; k < statcache_entry_count(e); k++) {
			const char *key, *val;

			statcache_entry_field(e, k, &key, &val);
			buf_printf(&stanza, "%s: %s\n", key, val);
		}
		if (statcache_entry_equal_text(e, stanza.data, stanza.len))
			eqs++;
		buf_puts(&stanza, "extra: 1\n");
		if (statcache_entry_equal_text(e, stanza.data, stanza.len) == 0)
			neqs++;
	}
	ok(good == (int)n, "all %zu hostile names found (%d)", n, good);
	ok(eqs == (int)n && neqs == (int)n,
	    "equal_text: re-formatted equal, with an extra field not");
	statcache_close(sc);

	/* reading rules: repeated keys, junk lines, empty key, no name */
	{
		static const char odd[] =
		    "junk before the first entry\n"
		    "@@r0\n"
		    "type: f\n\n"
		    "@@r1\n"
		    "name: d\n"
		    "mode:0644\n"
		    "no colon here\n"
		    "mode:   0755\n"
		    "data: x\n"
		    "\ty\n"
		    ": empty\n"
		    "  not a continuation: z\n"
		    "\n\n"
		    "@@r2\n"
		    "name: e\n"
		    "data: last";

		fileio_publish(dir, "statcache2", odd, sizeof(odd) - 1, false);
		ok(statcache_open(dir, "", &sc) == 0, "reader of odd file");
		ok(statcache_lookup(sc, S("d"), &e) == 1 &&
		    strcmp(statcache_entry_ref(e), "r1") == 0 &&
		    strcmp(statcache_entry_get(e, "mode"), "0755") == 0 &&
		    strcmp(statcache_entry_get(e, "data"), "x\n\ty") == 0 &&
		    strcmp(statcache_entry_get(e, ""), "empty") == 0 &&
		    strcmp(statcache_entry_get(e,
		    "  not a continuation"), "z") == 0 &&
		    statcache_entry_count(e) == 5,
		    "fields read as the original");
		ok(statcache_lookup(sc, S("e"), &e) == 1 &&
		    strcmp(statcache_entry_get(e, "data"), "last") == 0,
		    "last entry without final newline");
		statcache_close(sc);
	}

	/* missing file, aborted writer */
	ok(statcache_open(dir, "none", &sc) == 0 &&
	    statcache_lookup(sc, S("d"), &e) == 0, "missing file: empty");
	statcache_close(sc);
	ok(statcache_writer_open(dir, "my-scheme", &w) == 0 &&
	    statcache_writer_add(w, "r", "name: zz\n", 9) == 0,
	    "second writer");
	statcache_writer_abort(w);
	buf_reset(&got);
	ok(fileio_read_file(p, &got) == 0 && got.len == expect.len &&
	    fileio_clean_temps(dir, NULL) == 0, "abort keeps the old file, no temp");
	ok(statcache_open(dir, "a/b", &sc) == -1, "scheme with '/' refused");
	buf_release(&stanza);
	buf_release(&expect);
	buf_release(&got);
}

int
main(void)
{
	char cmd[300];

	snprintf(tmpdir, sizeof(tmpdir), "%s/test_statcache.XXXXXX",
	    getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_order();
	test_fixture();
	test_roundtrip();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", tmpdir);
	return tap_done();
}
