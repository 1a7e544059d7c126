/*
 * localdb_scrub: the scrub_checked table (see localdb_scrub.h).  A member
 * of the localdb family: it shares the handle through localdb_internal.h.
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "localdb.h"
#include "localdb_internal.h"
#include "localdb_scrub.h"

static int
scrub_table(struct localdb *db)
{
	char *msg = NULL;

	if (sqlite3_exec(db->h, "CREATE TABLE IF NOT EXISTS scrub_checked ("
		" segment TEXT PRIMARY KEY, checked INTEGER NOT NULL)",
		NULL, NULL, &msg) != SQLITE_OK) {
		err_set("local database: scrub table: %s",
		    msg ? msg : sqlite3_errmsg(db->h));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

struct ordered {
	char *name;
	int64_t checked; /* -1: never */
};

static int
cmp_ordered(const void *a, const void *b)
{
	const struct ordered *x = a, *y = b;

	if (x->checked != y->checked)
		return x->checked < y->checked ? -1 : 1;
	return strcmp(x->name, y->name);
}

int
localdb_scrub_order(struct localdb *db, char **names, size_t n)
{
	struct ordered *v;
	sqlite3_stmt *s = NULL;
	int rc = -1;

	if (scrub_table(db))
		return -1;
	if (n == 0)
		return 0;
	if ((v = calloc(n, sizeof(*v))) == NULL) {
		err_set("out of memory");
		return -1;
	}
	if (sqlite3_prepare_v2(db->h, "SELECT checked FROM scrub_checked"
		" WHERE segment = ?", -1, &s, NULL) != SQLITE_OK)
		goto sqlerr;
	for (size_t i = 0; i < n; i++) {
		int r;

		v[i].name = names[i];
		v[i].checked = -1;
		sqlite3_reset(s);
		if (sqlite3_bind_text(s, 1, names[i], -1, SQLITE_STATIC) !=
		    SQLITE_OK)
			goto sqlerr;
		r = sqlite3_step(s);
		if (r == SQLITE_ROW)
			v[i].checked = sqlite3_column_int64(s, 0);
		else if (r != SQLITE_DONE)
			goto sqlerr;
	}
	qsort(v, n, sizeof(*v), cmp_ordered);
	for (size_t i = 0; i < n; i++)
		names[i] = v[i].name;
	rc = 0;
	goto out;
sqlerr:
	err_set("local database: scrub order: %s", sqlite3_errmsg(db->h));
out:
	sqlite3_finalize(s);
	free(v);
	return rc;
}

int
localdb_scrub_mark(struct localdb *db, const char *segment, int64_t when)
{
	sqlite3_stmt *s = NULL;
	int r;

	if (scrub_table(db))
		return -1;
	if (sqlite3_prepare_v2(db->h, "INSERT OR REPLACE INTO scrub_checked"
		" (segment, checked) VALUES (?, ?)", -1, &s, NULL) != SQLITE_OK ||
	    sqlite3_bind_text(s, 1, segment, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 2, when) != SQLITE_OK ||
	    (r = sqlite3_step(s)) != SQLITE_DONE) {
		err_set("local database: scrub mark: %s", sqlite3_errmsg(db->h));
		sqlite3_finalize(s);
		return -1;
	}
	sqlite3_finalize(s);
	return 0;
}
