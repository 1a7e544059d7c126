/*
 * tap.h: a minimal TAP producer for unit tests.  Each check prints
 * "ok N - what" or "not ok N - what"; tap_done() prints the plan and
 * returns the exit status.
 */
#ifndef CUMULUS_TAP_H
#define CUMULUS_TAP_H

#include <stdio.h>
#include <string.h>

static int tap_n, tap_failed;

#define ok(cond, ...)                                                      \
	do {                                                                   \
		int ok_c_ = !!(cond);                                             \
		printf("%sok %d - ", ok_c_ ? "" : "not ", ++tap_n);                \
		printf(__VA_ARGS__);                                               \
		printf("\n");                                                      \
		if (!ok_c_) {                                                      \
			tap_failed++;                                                  \
			printf("#   failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
		}                                                                  \
	} while (0)

#define is_str(got, want, ...)                                             \
	do {                                                                   \
		const char *g_ = (got), *w_ = (want);                              \
		ok(g_ && w_ && strcmp(g_, w_) == 0, __VA_ARGS__);                  \
		if (!(g_ && w_ && strcmp(g_, w_) == 0))                            \
			printf("#   got '%s'\n#   want '%s'\n", g_ ? g_ : "(null)",  \
			    w_ ? w_ : "(null)");                                       \
	} while (0)

static inline int
tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#endif
