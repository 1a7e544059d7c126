/*
 * test_forget: forget's retention planning (restic's rules, per scheme,
 * on the UTC times in the names) with expectations worked out by hand
 * from the calendar, plus name and duration parsing.
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "forget.h"
#include "tap.h"

/* The store's snapshots, in no particular order. */
static char *names[] = {
	"home-20250110T100000", "home-20250101T100000", "etc-20250301T100000",
	"home-20250301T100000", "home-20250102T100000", "20250301T120000",
	"home-20250215T100000", "home-garbage", "home-20250101T200000",
};
#define NNAMES (sizeof(names) / sizeof(names[0]))

/* Calendar of the "home" scheme (2025, not a leap year):
 *   0301 Sat ISO W09   0215 Sat W07   0110 Fri W02
 *   0102 Thu W01       0101 Wed W01 (10:00 and 20:00) */

static char kept[2048], reasons[2048];

/* Plan with ${p}; "kept" gets the kept names in plan order (scheme, then
 * newest first), "reasons" each "name=reasons" of the kept ones. */
static int
plan(const struct forget_policy *p, const char *scheme)
{
	struct forget_item *v;

	kept[0] = reasons[0] = '\0';
	if (forget_plan(names, NNAMES, p, scheme, &v))
		return -1;
	for (size_t i = 0; i < NNAMES; i++) {
		if (!v[i].keep)
			continue;
		snprintf(kept + strlen(kept), sizeof(kept) - strlen(kept),
		    "%s%s", kept[0] ? " " : "", v[i].name);
		snprintf(reasons + strlen(reasons),
		    sizeof(reasons) - strlen(reasons), "%s%s=%s",
		    reasons[0] ? "; " : "", v[i].name, v[i].reasons);
	}
	forget_items_free(v, NNAMES);
	return 0;
}

/* A policy with only one rule set. */
static struct forget_policy
rule(int last, int hourly, int daily, int weekly, int monthly, int yearly,
    int64_t within)
{
	struct forget_policy p = { last, hourly, daily, weekly, monthly,
		yearly, within };

	return p;
}

/* What every plan below keeps besides "home": the scheme-less snapshot
 * and the undated name (never chosen), and etc's only snapshot (its
 * scheme's newest). */
#define OTHERS "home-garbage 20250301T120000 etc-20250301T100000 "

int
main(void)
{
	struct forget_policy p;
	char scheme[64];
	time_t t;
	int64_t d;

	/* ---- names ---- */
	ok(forget_parse_name("home-20250101T100000", scheme, sizeof(scheme),
	    &t) && strcmp(scheme, "home") == 0 && t == 1735725600,
	    "scheme and UTC time of home-20250101T100000");
	ok(forget_parse_name("20250301T120000", scheme, sizeof(scheme), &t) &&
	    scheme[0] == '\0' && t == 1740830400, "a name without a scheme");
	ok(forget_parse_name("a-b-20250301T120000", scheme, sizeof(scheme),
	    &t) && strcmp(scheme, "a-b") == 0, "a scheme with a dash");
	ok(!forget_parse_name("home-garbage", scheme, sizeof(scheme), &t),
	    "an undated name does not parse");
	ok(!forget_parse_name("home20250301T120000", scheme, sizeof(scheme),
	    &t), "the time must follow a dash");
	ok(!forget_parse_name("home-20251301T120000", scheme, sizeof(scheme),
	    &t), "month 13 does not parse");

	/* ---- durations ---- */
	ok(forget_parse_duration("1y6m", &d) == 0 && d == 545 * 86400,
	    "1y6m = 365 + 6 * 30 days");
	ok(forget_parse_duration("36h", &d) == 0 && d == 129600, "36h");
	ok(forget_parse_duration("1w2d", &d) == 0 && d == 9 * 86400, "1w2d");
	ok(forget_parse_duration("90", &d) == 0 && d == 90,
	    "a bare number is seconds");
	ok(forget_parse_duration("0", &d) == 0 && d == 0, "0");
	ok(forget_parse_duration("", &d) == -1 && *err_msg(), "empty refused");
	ok(forget_parse_duration("5x", &d) == -1, "unknown unit refused");
	ok(forget_parse_duration("h", &d) == -1, "unit without count refused");
	ok(forget_parse_duration("99999999999999999999s", &d) == -1,
	    "overflow refused");

	/* ---- policies ---- */
	p = rule(0, 0, 0, 0, 0, 0, -1);
	ok(!forget_policy_set(&p), "an empty policy is not set");
	ok(plan(&p, NULL) == 0, "plan an empty policy");
	is_str(kept, OTHERS "home-20250301T100000",
	    "empty policy: only each scheme's newest");
	ok(strstr(reasons, "home-20250301T100000=newest") != NULL,
	    "kept as the newest: %s", reasons);
	ok(strstr(reasons, "home-garbage=name without a date") != NULL,
	    "an undated name is never chosen");

	p = rule(2, 0, 0, 0, 0, 0, -1);
	ok(forget_policy_set(&p) && plan(&p, NULL) == 0, "plan --keep-last 2");
	is_str(kept, OTHERS "home-20250301T100000 home-20250215T100000",
	    "--keep-last 2");

	p = rule(0, 0, 2, 0, 0, 0, -1);
	plan(&p, NULL);
	is_str(kept, OTHERS "home-20250301T100000 home-20250215T100000",
	    "--keep-daily 2");

	/* Newest first: the first snapshot of 1 January is the 20:00 one. */
	p = rule(0, 0, 10, 0, 0, 0, -1);
	plan(&p, NULL);
	is_str(kept, OTHERS "home-20250301T100000 home-20250215T100000"
	    " home-20250110T100000 home-20250102T100000 home-20250101T200000",
	    "--keep-daily 10: one per day, the day's newest");
	p = rule(0, 0, -1, 0, 0, 0, -1);
	plan(&p, NULL);
	is_str(kept, OTHERS "home-20250301T100000 home-20250215T100000"
	    " home-20250110T100000 home-20250102T100000 home-20250101T200000",
	    "--keep-daily unlimited (-1)");

	p = rule(0, -1, 0, 0, 0, 0, -1);
	plan(&p, NULL);
	is_str(kept, OTHERS "home-20250301T100000 home-20250215T100000"
	    " home-20250110T100000 home-20250102T100000 home-20250101T200000"
	    " home-20250101T100000", "--keep-hourly unlimited keeps all six");

	/* 2 and 1 January share ISO week 2025-W01. */
	p = rule(0, 0, 0, 10, 0, 0, -1);
	plan(&p, NULL);
	is_str(kept, OTHERS "home-20250301T100000 home-20250215T100000"
	    " home-20250110T100000 home-20250102T100000",
	    "--keep-weekly 10: ISO weeks W09 W07 W02 W01");

	p = rule(0, 0, 0, 0, 2, 0, -1);
	plan(&p, NULL);
	is_str(kept, OTHERS "home-20250301T100000 home-20250215T100000",
	    "--keep-monthly 2");
	p = rule(0, 0, 0, 0, 10, 0, -1);
	plan(&p, NULL);
	is_str(kept, OTHERS "home-20250301T100000 home-20250215T100000"
	    " home-20250110T100000", "--keep-monthly 10: January's newest");

	p = rule(0, 0, 0, 0, 0, 5, -1);
	plan(&p, NULL);
	is_str(kept, OTHERS "home-20250301T100000", "--keep-yearly 5: 2025");

	/* 1 March - 45 days = 15 January, 10:00. */
	p = rule(0, 0, 0, 0, 0, 0, 45 * 86400);
	plan(&p, NULL);
	is_str(kept, OTHERS "home-20250301T100000 home-20250215T100000",
	    "--keep-within 45d of the scheme's newest");
	p = rule(0, 0, 0, 0, 0, 0, 50 * 86400);
	plan(&p, NULL);
	is_str(kept, OTHERS "home-20250301T100000 home-20250215T100000"
	    " home-20250110T100000", "--keep-within 50d reaches 10 January");
	p = rule(0, 0, 0, 0, 0, 0, 0);
	plan(&p, NULL);
	is_str(kept, OTHERS "home-20250301T100000",
	    "--keep-within 0 keeps the newest only");

	/* Rules add up; each kept snapshot says why. */
	p = rule(1, 0, 0, 0, 2, 0, -1);
	plan(&p, NULL);
	is_str(kept, OTHERS "home-20250301T100000 home-20250215T100000",
	    "--keep-last 1 --keep-monthly 2");
	ok(strstr(reasons, "home-20250301T100000=last, monthly") != NULL &&
	    strstr(reasons, "home-20250215T100000=monthly") != NULL,
	    "reasons: %s", reasons);

	/* --scheme: the other schemes are not touched. */
	p = rule(1, 0, 0, 0, 0, 0, -1);
	plan(&p, "etc");
	ok(strstr(kept, "home-20250101T100000") != NULL &&
	    strstr(reasons, "home-20250101T100000=other scheme") != NULL,
	    "--scheme etc keeps every home snapshot");
	plan(&p, "home");
	is_str(kept, OTHERS "home-20250301T100000",
	    "--scheme home --keep-last 1");
	ok(strstr(reasons, "etc-20250301T100000=other scheme") != NULL,
	    "etc is another scheme: %s", reasons);

	return tap_done();
}
