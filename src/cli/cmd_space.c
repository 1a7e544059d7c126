/*
 * cmd_space: the space commands of cumulus-util: delete-snapshot, forget,
 * gc, prune-db, clean, check-db, rebuild-db.  cmd_util.c hands these
 * commands over with the whole command line; options may come before or
 * after the command name.
 */
#include <sys/stat.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "err.h"
#include "forget.h"
#include "gc.h"
#include "lease.h"
#include "localdb.h"
#include "localdb_space.h"
#include "rebuild.h"
#include "snapshot.h"
#include "store.h"

struct space {
	const char *store_url;
	const char *localdb;
	bool dry_run, verbose, force;
	struct store *st;
	struct localdb *db;
	/* forget */
	struct forget_policy policy;
	const char *scheme;
	/* gc */
	int64_t min_age;
	/* clean */
	double threshold;
	char **args;
	int nargs;
};

static void
usage_space(FILE *f)
{
	fprintf(f,
	    "Space commands (cumulus-util [--store=URL] [--localdb=DIR] CMD):\n"
	    "  delete-snapshot NAME...\n"
	    "  forget [--keep-last N] [--keep-hourly N] [--keep-daily N]\n"
	    "         [--keep-weekly N] [--keep-monthly N] [--keep-yearly N]\n"
	    "         [--keep-within DURATION] [--scheme NAME] [--dry-run]\n"
	    "  gc [--dry-run] [--min-age=DURATION]      (default 1d)\n"
	    "     [--force]                             (ignore backup leases)\n"
	    "  prune-db [--dry-run]                     (needs --store too)\n"
	    "  clean [--threshold=X] [--dry-run]        (default 7.0)\n"
	    "  check-db\n"
	    "  rebuild-db                               (needs --store too)\n"
	    "DURATION: <n><unit>..., units s h d w m(=30d) y(=365d), e.g. 36h\n");
}

static int
sfail(const char *what)
{
	fprintf(stderr, "cumulus-util: %s%s%s\n", what ? what : "",
	    what ? ": " : "", err_msg());
	return CLI_FAIL;
}

/* "--opt=V", or "--opt V" taking the next argument.  1 matched, 0 not,
 * -1 missing value. */
static int
opt_value(const char *opt, int argc, char **argv, int *i, const char **v)
{
	size_t n = strlen(opt);

	if (strncmp(argv[*i], opt, n) != 0)
		return 0;
	if (argv[*i][n] == '=') {
		*v = argv[*i] + n + 1;
		return 1;
	}
	if (argv[*i][n] != '\0')
		return 0;
	if (*i + 1 >= argc)
		return -1;
	*v = argv[++*i];
	return 1;
}

static int
parse_count(const char *opt, const char *v, int *out)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || end == v || *end || n < -1 || n > 1000000) {
		fprintf(stderr, "cumulus-util: %s: bad count '%s' (N >= 0, or"
		    " -1 for unlimited)\n", opt, v);
		return -1;
	}
	*out = (int)n;
	return 0;
}

static int
parse_args(struct space *s, int argc, char **argv, const char **cmd)
{
	static const char *const counts[] = { "--keep-last", "--keep-hourly",
		"--keep-daily", "--keep-weekly", "--keep-monthly",
		"--keep-yearly" };
	int *cp[] = { &s->policy.last, &s->policy.hourly, &s->policy.daily,
		&s->policy.weekly, &s->policy.monthly, &s->policy.yearly };

	*cmd = NULL;
	s->args = calloc((size_t)argc + 1, sizeof(char *));
	if (s->args == NULL) {
		fprintf(stderr, "cumulus-util: out of memory\n");
		return -1;
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v;
		int r = 0;
		bool done = false;

		if (strcmp(a, "-n") == 0 || strcmp(a, "--dry-run") == 0) {
			s->dry_run = true;
			continue;
		}
		if (strcmp(a, "--force") == 0) {
			s->force = true;
			continue;
		}
		if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
			s->verbose = true;
			continue;
		}
		if ((r = opt_value("--store", argc, argv, &i, &v)) == 1) {
			s->store_url = v;
			continue;
		}
		if (r == 0 && (r = opt_value("--localdb", argc, argv, &i,
		    &v)) == 1) {
			s->localdb = v;
			continue;
		}
		if (r == 0 && ((r = opt_value("--intent", argc, argv, &i,
		    &v)) == 1 || (r = opt_value("--verify-key", argc, argv, &i,
		    &v)) == 1))
			continue; /* other commands' options */
		if (r == 0 && (r = opt_value("--scheme", argc, argv, &i,
		    &v)) == 1) {
			s->scheme = v;
			continue;
		}
		if (r == 0 && (r = opt_value("--keep-within", argc, argv, &i,
		    &v)) == 1) {
			if (forget_parse_duration(v, &s->policy.within))
				return sfail("--keep-within") ? -1 : -1;
			continue;
		}
		if (r == 0 && (r = opt_value("--min-age", argc, argv, &i,
		    &v)) == 1) {
			if (forget_parse_duration(v, &s->min_age))
				return sfail("--min-age") ? -1 : -1;
			continue;
		}
		if (r == 0 && (r = opt_value("--threshold", argc, argv, &i,
		    &v)) == 1) {
			char *end;

			errno = 0;
			s->threshold = strtod(v, &end);
			if (errno || end == v || *end || !(s->threshold >= 0)) {
				fprintf(stderr, "cumulus-util: --threshold: bad"
				    " value '%s'\n", v);
				return -1;
			}
			continue;
		}
		for (size_t k = 0; r == 0 && k < 6 && !done; k++)
			if ((r = opt_value(counts[k], argc, argv, &i, &v)) == 1) {
				if (parse_count(counts[k], v, cp[k]))
					return -1;
				done = true;
			}
		if (done)
			continue;
		if (r < 0) {
			fprintf(stderr, "cumulus-util: %s needs a value\n", a);
			return -1;
		}
		if (a[0] == '-' && a[1] != '\0') {
			fprintf(stderr, "cumulus-util: unknown option %s\n", a);
			return -1;
		}
		if (*cmd == NULL)
			*cmd = a;
		else
			s->args[s->nargs++] = argv[i];
	}
	return 0;
}

static int
need_store(struct space *s, const char *cmd)
{
	if (s->store_url == NULL) {
		fprintf(stderr, "cumulus-util: %s needs --store=URL\n", cmd);
		return -1;
	}
	if (store_open(s->store_url, false, &s->st)) {
		sfail(NULL);
		return -1;
	}
	return 0;
}

static int
need_db(struct space *s, const char *cmd)
{
	struct stat sb;
	char path[4096];

	if (s->localdb == NULL) {
		fprintf(stderr, "cumulus-util: %s needs --localdb=DIR\n", cmd);
		return -1;
	}
	/* Opening creates a database: only rebuild-db may do that, in a
	 * private directory (the statcache names every file). */
	if (strcmp(cmd, "rebuild-db") == 0 && mkdir(s->localdb, 0700) &&
	    errno != EEXIST) {
		fprintf(stderr, "cumulus-util: cannot create '%s': %s\n",
		    s->localdb, strerror(errno));
		return -1;
	}
	snprintf(path, sizeof(path), "%s/%s", s->localdb, LOCALDB_FILE);
	if (strcmp(cmd, "rebuild-db") != 0 && stat(path, &sb) != 0) {
		fprintf(stderr, "cumulus-util: %s: no local database '%s'\n",
		    cmd, path);
		return -1;
	}
	if (localdb_open(s->localdb, &s->db)) {
		bool hinted = strstr(err_msg(), "rebuild-db") != NULL;

		sfail(cmd);
		/* A damaged file already got the hint; any other failure to
		 * open gets it too, since rebuilding is the repair. */
		if (!hinted)
			fprintf(stderr, "cumulus-util: the local database is a"
			    " cache: move it away and run\n  cumulus-util"
			    " --store=URL --localdb=%s rebuild-db\n",
			    s->localdb);
		return -1;
	}
	return 0;
}

/* ---- delete-snapshot, forget ---- */

static int
cmd_delete(struct space *s)
{
	int rc = CLI_OK;

	if (s->nargs < 1) {
		usage_space(stderr);
		return CLI_USAGE;
	}
	for (int i = 0; i < s->nargs; i++) {
		int r = s->dry_run ? 0 : forget_delete_snapshot(s->st,
		    s->args[i]);

		if (s->dry_run) {
			char *path;

			r = snapshot_find_descriptor(s->st, s->args[i], &path);
			if (r == 0)
				free(path);
		}
		if (r < 0) {
			rc = sfail(s->args[i]);
		} else if (r > 0) {
			fprintf(stderr, "cumulus-util: %s: no such snapshot\n",
			    s->args[i]);
			rc = CLI_FAIL;
		} else {
			printf("%s snapshot %s\n", s->dry_run ?
			    "Would delete" : "Deleted", s->args[i]);
		}
	}
	if (rc == CLI_OK && !s->dry_run)
		printf("Run gc to delete the segments no snapshot uses any"
		    " more.\n");
	return rc;
}

static int
cmd_forget(struct space *s)
{
	struct forget_item *v;
	char **names;
	size_t n, ndel = 0;
	int rc = CLI_OK;

	if (!forget_policy_set(&s->policy)) {
		fprintf(stderr, "cumulus-util: forget: no policy given"
		    " (--keep-last, --keep-daily, ...); nothing deleted\n");
		return CLI_USAGE;
	}
	if (snapshot_list_names(s->st, &names, &n))
		return sfail(NULL);
	if (forget_plan(names, n, &s->policy, s->scheme, &v)) {
		snapshot_names_free(names, n);
		return sfail("forget");
	}
	snapshot_names_free(names, n);
	for (size_t i = 0; i < n; i++) {
		if (!v[i].selected)
			continue;
		if (v[i].keep) {
			printf("keep   %s (%s)\n", cli_name(v[i].name),
			    v[i].reasons);
			continue;
		}
		ndel++;
		if (s->dry_run) {
			printf("would delete %s\n", cli_name(v[i].name));
			continue;
		}
		if (forget_delete_snapshot(s->st, v[i].name) < 0) {
			rc = sfail(v[i].name);
			continue;
		}
		printf("delete %s\n", cli_name(v[i].name));
	}
	printf("%zu snapshot%s %sdeleted\n", ndel, ndel == 1 ? "" : "s",
	    s->dry_run ? "would be " : "");
	forget_items_free(v, n);
	return rc;
}

/* ---- gc ---- */

static void
gc_deleted(void *arg, const char *path, uint64_t size, const char *why)
{
	const struct space *s = arg;

	printf("%s %s: %s (%" PRIu64 " bytes)\n",
	    s->dry_run ? "Would delete" : "Delete", why, cli_name(path), size);
}

static void
gc_missing(void *arg, const char *snapshot, const char *uuid)
{
	(void)arg;
	fflush(stdout);
	fprintf(stderr, "WARNING: segment %s, used by snapshot %s (and maybe"
	    " others), is MISSING from the store\n", cli_name(uuid),
	    cli_name(snapshot));
}

static void
gc_young(void *arg, const char *path)
{
	const struct space *s = arg;

	if (s->verbose)
		printf("Keep (younger than --min-age): %s\n", cli_name(path));
}

static void
gc_busy(void *arg, const char *lease, int64_t age, unsigned n)
{
	(void)arg;
	fflush(stdout);
	fprintf(stderr, "cumulus-util: gc: %u backup%s running on this store"
	    " (lease %s, refreshed %" PRId64 " s ago): nothing deleted, since"
	    " it may reuse unreferenced segments.  Run gc again when it has"
	    " finished (--force ignores the lease of a backup known to be"
	    " dead; leases go stale after %d s).\n", n, n == 1 ? " is" :
	    "s are", lease, age, LEASE_TTL);
}

static int
cmd_gc(struct space *s)
{
	struct gc_options o;
	struct gc_stats st;

	memset(&o, 0, sizeof(o));
	o.dry_run = s->dry_run;
	o.force = s->force;
	o.min_age = s->min_age;
	o.db = s->db;
	o.deleted = gc_deleted;
	o.missing = gc_missing;
	o.young = gc_young;
	o.busy = gc_busy;
	o.arg = s;
	if (gc_run(s->st, &o, &st))
		return sfail("gc");
	printf("%" PRIu64 " snapshots, %" PRIu64 " segments referenced;"
	    " %s %" PRIu64 " files, %" PRIu64 " bytes%s\n",
	    st.snapshots, st.referenced,
	    s->dry_run ? "would delete" : "deleted", st.deleted, st.reclaimed,
	    s->dry_run ? " would be reclaimed" : " reclaimed");
	if (st.young)
		printf("%" PRIu64 " unreferenced files younger than --min-age"
		    " kept\n", st.young);
	if (st.missing) {
		fprintf(stderr, "cumulus-util: gc: %" PRIu64 " referenced"
		    " segment%s MISSING: the snapshots using them cannot be"
		    " fully restored\n", st.missing,
		    st.missing == 1 ? " is" : "s are");
		return CLI_FAIL;
	}
	return st.busy ? CLI_WARNINGS : CLI_OK;
}

/* ---- prune-db, clean, check-db ---- */

static void
say_line(void *arg, const char *msg)
{
	(void)arg;
	printf("%s\n", msg);
}

struct seglist {
	char **v;
	size_t n, cap;
};

static int
collect_seg(void *arg, const char *uuid, const char *path)
{
	struct seglist *l = arg;

	(void)path;
	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 64;
		char **nv = realloc(l->v, ncap * sizeof(*nv));

		if (nv == NULL)
			return -1;
		l->v = nv;
		l->cap = ncap;
	}
	if ((l->v[l->n] = strdup(uuid)) == NULL)
		return -1;
	l->n++;
	return 0;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
cmd_prune(struct space *s)
{
	struct localdb_prune_stats st;
	struct seglist segs = { NULL, 0, 0 };
	char **names;
	size_t n;
	int rc = CLI_OK;

	if (snapshot_list_names(s->st, &names, &n))
		return sfail(NULL);
	if (snapshot_each_segment(s->st, collect_seg, &segs)) {
		if (err_msg()[0] == '\0')
			err_set("out of memory");
		rc = sfail(NULL);
		goto out;
	}
	if (segs.n)
		qsort(segs.v, segs.n, sizeof(*segs.v), cmp_str);
	if (localdb_prune(s->db, names, n, segs.v, segs.n, s->dry_run,
	    say_line, NULL, &st)) {
		rc = sfail("prune-db");
		goto out;
	}
	printf("%s%" PRIu64 " snapshots dropped, %" PRIu64 " segments marked"
	    " missing, %" PRIu64 " segments and %" PRIu64 " objects"
	    " forgotten\n", s->dry_run ? "(dry run) " : "",
	    st.snapshots_dropped, st.segments_missing, st.segments_dropped,
	    st.blocks_dropped);
out:
	snapshot_names_free(names, n);
	snapshot_names_free(segs.v, segs.n);
	return rc;
}

static void
clean_seg(void *arg, const struct localdb_clean_segment *c)
{
	const struct space *s = arg;

	printf("%s segment %s [%s]: utilization %.3f, age %.1f days,"
	    " benefit %.2f, %" PRIu64 " live of %" PRIu64 " bytes, %" PRIu64
	    " stored\n", s->dry_run ? "Would clean" : "Cleaning", c->segment,
	    c->type[0] ? c->type : "?", c->utilization, c->age, c->benefit,
	    c->live_bytes, c->data_size, c->disk_size);
}

static int
cmd_clean(struct space *s)
{
	struct localdb_clean_report rep;

	if (localdb_clean(s->db, s->threshold, s->dry_run, clean_seg, s,
	    &rep))
		return sfail("clean");
	printf("%s%" PRIu64 " segments expired; the next backup rewrites up"
	    " to %" PRIu64 " bytes of live data; %" PRIu64 " stored bytes"
	    " become reclaimable once no kept snapshot uses them (forget,"
	    " then gc)\n", s->dry_run ? "(dry run) " : "", rep.segments,
	    rep.rewrite, rep.reclaimable);
	if (s->verbose && rep.ncutoffs) {
		printf("age cutoffs (days):");
		for (size_t i = 0; i < rep.ncutoffs; i++)
			printf(" %g", rep.cutoffs[i]);
		printf("\n");
	}
	return CLI_OK;
}

static int
cmd_check(struct space *s)
{
	int n = localdb_check(s->db, say_line, NULL);

	if (n < 0) {
		/* The message names the rebuild command when it applies. */
		sfail("check-db");
		return CLI_FAIL;
	}
	if (n != 0) {
		fprintf(stderr, "cumulus-util: the local database in %s is"
		    " damaged; it is a cache: move it away and run\n"
		    "  cumulus-util --store=URL --localdb=%s rebuild-db\n",
		    s->localdb, s->localdb);
		return CLI_FAIL;
	}
	printf("local database OK\n");
	return CLI_OK;
}

/* ---- rebuild-db ---- */

static void
rebuild_warn(void *arg, const char *msg)
{
	(void)arg;
	fflush(stdout);
	fprintf(stderr, "Warning: %s\n", msg);
}

static int
cmd_rebuild(struct space *s)
{
	struct rebuild_stats st;

	if (rebuild_db(s->st, s->db, s->localdb, rebuild_warn, NULL, &st))
		return sfail("rebuild-db");
	printf("rebuilt from %" PRIu64 " snapshots: %" PRIu64 " segments, %"
	    PRIu64 " objects (%" PRIu64 " with checksums), %" PRIu64
	    " statcache entries\n", st.snapshots, st.segments, st.objects,
	    st.checksums, st.statcache_entries);
	return st.warnings ? CLI_WARNINGS : CLI_OK;
}

int
cli_space_main(int argc, char **argv)
{
	struct space s;
	const char *cmd;
	int rc;

	memset(&s, 0, sizeof(s));
	s.policy.within = -1;
	s.min_age = 86400;
	s.threshold = LOCALDB_CLEAN_THRESHOLD;
	if (parse_args(&s, argc, argv, &cmd) || cmd == NULL) {
		free(s.args);
		usage_space(stderr);
		return CLI_USAGE;
	}
	if (strcmp(cmd, "garbage-collect") == 0)
		cmd = "gc";
	rc = CLI_FAIL;
	if (strcmp(cmd, "delete-snapshot") == 0 ||
	    strcmp(cmd, "forget") == 0) {
		if (need_store(&s, cmd) == 0)
			rc = cmd[0] == 'd' ? cmd_delete(&s) : cmd_forget(&s);
	} else if (strcmp(cmd, "gc") == 0) {
		if (need_store(&s, cmd) == 0 &&
		    (s.localdb == NULL || need_db(&s, cmd) == 0))
			rc = cmd_gc(&s);
	} else if (strcmp(cmd, "prune-db") == 0) {
		if (need_store(&s, cmd) == 0 && need_db(&s, cmd) == 0)
			rc = cmd_prune(&s);
	} else if (strcmp(cmd, "clean") == 0) {
		if (need_db(&s, cmd) == 0)
			rc = cmd_clean(&s);
	} else if (strcmp(cmd, "check-db") == 0) {
		if (need_db(&s, cmd) == 0)
			rc = cmd_check(&s);
	} else if (strcmp(cmd, "rebuild-db") == 0) {
		if (need_store(&s, cmd) == 0 && need_db(&s, cmd) == 0)
			rc = cmd_rebuild(&s);
	} else {
		usage_space(stderr);
		rc = CLI_USAGE;
	}
	localdb_close(s.db);
	store_close(s.st);
	free(s.args);
	if (fflush(stdout) && rc == CLI_OK)
		rc = CLI_FAIL;
	return rc;
}
