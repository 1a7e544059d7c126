/*
 * fuzz_exclude: the --exclude matcher (exclude_match, src/format/exclude.h).
 * The input is lines: every line but the last is a pattern, the last is
 * the path.  Properties, for every input:
 *   - a pattern equal to the path (leading '/' aside) matches it;
 *   - a pattern with no glob characters matches exactly when it is the
 *     path (leading '/' aside), or has no '/' at all (a leading one
 *     counts) and is the path's last component;
 *   - "*" matches every path;
 *   - adding a pattern never makes a matching path stop matching;
 *   - the answer for a set is the OR of the answers for each pattern.
 * A violation abort()s; libFuzzer's -timeout bounds the time per input.
 */
#include <stdlib.h>
#include <string.h>

#include "exclude.h"
#include "fuzz.h"

#define MAX_PATTERNS 16

static bool
is_literal(const char *p)
{
	return strpbrk(p, "*?[\\") == NULL;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), *line[MAX_PATTERNS + 1];
	const char *pats[MAX_PATTERNS + 2], *path, *base;
	size_t n = 0;
	bool any = false, all;

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0'; /* an embedded NUL just ends that line early */
	line[n++] = text;
	for (char *p = text; *p != '\0' && n <= MAX_PATTERNS; p++) {
		if (*p == '\n') {
			*p = '\0';
			line[n++] = p + 1;
		}
	}
	path = line[n - 1];
	base = strrchr(path, '/');
	base = base ? base + 1 : path;
	for (size_t i = 0; i + 1 < n; i++) {
		const char *pat = line[i], *bare = pat;
		bool m = exclude_match(&pat, 1, path);

		while (*bare == '/')
			bare++;
		if (strcmp(bare, path) == 0 && !m)
			abort();
		if (is_literal(bare) &&
		    m != (strcmp(bare, path) == 0 ||
			     (strchr(pat, '/') == NULL &&
				 strcmp(bare, base) == 0)))
			abort();
		any = any || m;
		pats[i] = pat;
	}
	if (exclude_match(pats, n - 1, path) != any)
		abort();
	pats[n - 1] = "*";
	all = exclude_match(pats, n, path);
	if (!all || !exclude_match(&pats[n - 1], 1, path))
		abort();
	free(text);
	return 0;
}
