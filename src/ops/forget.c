/*
 * forget: retention policies and snapshot deletion (see forget.h).
 */
#include "forget.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "snapshot.h"
#include "store.h"

int
forget_parse_duration(const char *s, int64_t *seconds)
{
	int64_t total = 0;
	const char *p = s;

	if (s == NULL || *s == '\0')
		goto bad;
	while (*p) {
		int64_t v = 0, unit;

		if (!isdigit((unsigned char)*p))
			goto bad;
		while (isdigit((unsigned char)*p)) {
			if (v > (INT64_MAX - 9) / 10)
				goto bad;
			v = v * 10 + (*p++ - '0');
		}
		switch (*p) {
		case '\0': unit = 1; break;
		case 's': unit = 1; p++; break;
		case 'h': unit = 3600; p++; break;
		case 'd': unit = 86400; p++; break;
		case 'w': unit = 7 * 86400; p++; break;
		case 'm': unit = 30 * 86400; p++; break;
		case 'y': unit = 365 * 86400; p++; break;
		default: goto bad;
		}
		if (v > INT64_MAX / unit || total > INT64_MAX - v * unit)
			goto bad;
		total += v * unit;
	}
	*seconds = total;
	return 0;
bad:
	err_set("invalid duration '%s' (e.g. 1d, 36h, 1y6m, 0)",
	    s ? s : "");
	return -1;
}

bool
forget_policy_set(const struct forget_policy *p)
{
	return p->last || p->hourly || p->daily || p->weekly || p->monthly ||
	    p->yearly || p->within >= 0;
}

bool
forget_parse_name(const char *name, char *scheme, size_t size, time_t *t)
{
	size_t len = strlen(name);
	const char *ts;
	struct tm tm;
	char *end;

	scheme[0] = '\0';
	if (len < 15)
		return false;
	ts = name + len - 15;
	if (ts > name && ts[-1] != '-')
		return false;
	for (size_t i = 0; i < 15; i++)
		if (i == 8 ? ts[i] != 'T' : !isdigit((unsigned char)ts[i]))
			return false;
	memset(&tm, 0, sizeof(tm));
	end = strptime(ts, "%Y%m%dT%H%M%S", &tm);
	if (end == NULL || *end != '\0')
		return false;
	*t = timegm(&tm);
	if (ts > name)
		snprintf(scheme, size, "%.*s", (int)(ts - name - 1), name);
	return true;
}

static int
cmp_items(const void *a, const void *b)
{
	const struct forget_item *x = a, *y = b;
	int c = strcmp(x->scheme, y->scheme);

	if (c)
		return c;
	if (x->parsed != y->parsed)
		return x->parsed ? 1 : -1;
	if (x->time != y->time)
		return x->time > y->time ? -1 : 1;
	return strcmp(y->name, x->name);
}

void
forget_items_free(struct forget_item *v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i].name);
	free(v);
}

static void
add_reason(struct forget_item *it, const char *why)
{
	size_t len = strlen(it->reasons);

	snprintf(it->reasons + len, sizeof(it->reasons) - len, "%s%s",
	    len ? ", " : "", why);
	it->keep = true;
}

/* The bucket of ${t} for rule ${k} (UTC); rule 0 ("last") never repeats. */
static long long
bucket(int k, time_t t, size_t idx)
{
	struct tm tm;
	char s[32];

	gmtime_r(&t, &tm);
	switch (k) {
	case 0: return (long long)idx;
	case 1: strftime(s, sizeof(s), "%Y%m%d%H", &tm); break;
	case 2: strftime(s, sizeof(s), "%Y%m%d", &tm); break;
	case 3: strftime(s, sizeof(s), "%G%V", &tm); break;
	case 4: strftime(s, sizeof(s), "%Y%m", &tm); break;
	default: strftime(s, sizeof(s), "%Y", &tm); break;
	}
	return atoll(s);
}

/* Apply the policy to one scheme's items v[0..n) (newest first). */
static void
plan_scheme(struct forget_item *v, size_t n, const struct forget_policy *p)
{
	static const char *const why[] = { "last", "hourly", "daily",
		"weekly", "monthly", "yearly" };
	int count[6] = { p->last, p->hourly, p->daily, p->weekly, p->monthly,
		p->yearly };
	long long lastb[6];
	bool have[6] = { false };
	time_t newest = 0;
	bool any = false;

	for (size_t i = 0; i < n; i++)
		if (v[i].parsed && (!any || v[i].time > newest)) {
			newest = v[i].time;
			any = true;
		}
	for (size_t i = 0; i < n; i++) {
		struct forget_item *it = &v[i];

		if (!it->parsed) {
			add_reason(it, "name without a date");
			continue;
		}
		/* restic: the first snapshot of each new bucket, newest
		 * first, while the rule's count lasts. */
		for (int k = 0; k < 6; k++) {
			long long b;

			if (count[k] == 0)
				continue;
			b = bucket(k, it->time, i);
			if (have[k] && b == lastb[k])
				continue;
			lastb[k] = b;
			have[k] = true;
			if (count[k] > 0)
				count[k]--;
			add_reason(it, why[k]);
		}
		if (p->within >= 0 && newest - it->time <= p->within)
			add_reason(it, "within");
	}
	/* Never leave a scheme without its newest snapshot. */
	for (size_t i = 0; i < n; i++)
		if (v[i].parsed) {
			if (!v[i].keep)
				add_reason(&v[i], "newest");
			break;
		}
}

int
forget_plan(char *const *names, size_t n, const struct forget_policy *p,
    const char *scheme, struct forget_item **out)
{
	struct forget_item *v;

	*out = NULL;
	if ((v = calloc(n ? n : 1, sizeof(*v))) == NULL) {
		err_set("out of memory");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if ((v[i].name = strdup(names[i])) == NULL) {
			forget_items_free(v, i);
			err_set("out of memory");
			return -1;
		}
		v[i].parsed = forget_parse_name(names[i], v[i].scheme,
		    sizeof(v[i].scheme), &v[i].time);
		v[i].selected = scheme == NULL ||
		    strcmp(scheme, v[i].scheme) == 0;
	}
	if (n)
		qsort(v, n, sizeof(*v), cmp_items);
	for (size_t i = 0; i < n;) {
		size_t j = i;

		while (j < n && strcmp(v[j].scheme, v[i].scheme) == 0)
			j++;
		if (v[i].selected)
			plan_scheme(v + i, j - i, p);
		else
			for (size_t k = i; k < j; k++)
				add_reason(&v[k], "other scheme");
		i = j;
	}
	*out = v;
	return 0;
}

int
forget_delete_snapshot(struct store *st, const char *name)
{
	static const char *const dirs[] = { "", "snapshots/", "meta/",
		"checksums/" };
	static const char *const sides[] = { ".sha1sums", ".meta" };
	static const char *const exts[] = { "", ".bz2", ".gz", ".zst", ".xz",
		".gpg" };
	struct buf b;
	char *path;
	int r, found = 0;

	/* The descriptors first: once they are gone, the snapshot is. */
	while ((r = snapshot_find_descriptor(st, name, &path)) == 0) {
		r = store_delete(st, path);
		if (r < 0) {
			err_prefix("deleting '%s'", path);
			free(path);
			return -1;
		}
		free(path);
		found = 1;
	}
	if (r < 0)
		return -1;
	buf_init(&b, 4096);
	for (size_t i = 0; i < 4; i++)
		for (size_t k = 0; k < 2; k++)
			for (size_t e = 0; e < 6; e++) {
				buf_reset(&b);
				if (buf_printf(&b, "%ssnapshot-%s%s%s", dirs[i],
				    name, sides[k], exts[e]) ||
				    store_delete(st, b.data) < 0) {
					buf_release(&b);
					return -1;
				}
			}
	buf_release(&b);
	return found ? 0 : 1;
}
