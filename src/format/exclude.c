/*
 * exclude.c: matching paths against --exclude patterns (glibc fnmatch,
 * whose matcher does not backtrack exponentially on runs of '*').
 */
#include "exclude.h"

#include <fnmatch.h>
#include <string.h>

bool
exclude_match(const char *const *patterns, size_t npatterns, const char *path)
{
	const char *base = strrchr(path, '/');

	base = base ? base + 1 : path;
	for (size_t i = 0; i < npatterns; i++) {
		const char *pat = patterns[i];
		/* Decided before the leading '/' go: "/tmp" is the recorded
		 * path "tmp" only, not every entry called tmp. */
		const bool anchored = strchr(pat, '/') != NULL;

		while (*pat == '/')
			pat++;
		if (strcmp(pat, path) == 0
		    || fnmatch(pat, path, FNM_PATHNAME) == 0
		    || (!anchored && fnmatch(pat, base, 0) == 0))
			return true;
	}
	return false;
}
