/*
 * cmd_util: the cumulus-util command (reference section 4): listing,
 * reading, verifying and restoring snapshots.  The space and database
 * commands (clean, gc, forget, ...) are dispatched to cmd_space.c.
 */
#include <sys/stat.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "cli.h"
#include "codec.h"
#include "descriptor.h"
#include "err.h"
#include "escape.h"
#include "hash.h"
#include "localdb.h"
#include "meta.h"
#include "restore.h"
#include "scrub.h"
#include "sigcheck.h"
#include "snapshot.h"
#include "source.h"
#include "store.h"
#include "tar.h"

struct util {
	const char *store_url;
	bool verbose;
	bool dry_run;
	struct store *st;
	struct sigcheck sig; /* sig.key NULL: signatures not required */
};

/* Every reading command opens snapshots here, so --verify-key holds for
 * all of them. */
static int
open_snapshot(struct util *u, const char *name, struct snapshot **s)
{
	return snapshot_open_verified(u->st, name,
	    u->sig.key ? &u->sig : NULL, s);
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "Usage: cumulus-util [OPTION]... COMMAND [ARGS]\n"
	    "Options:\n"
	    "  --store=DIR|file:///DIR  the backup store (default: .)\n"
	    "  --localdb=DIR            the local database directory\n"
	    "  -v, --verbose            more output\n"
	    "  -n, --dry-run            change nothing\n"
	    "  --verify-key=KEYID       refuse snapshots whose descriptor is not\n"
	    "                           signed by KEYID (default: $CUMULUS_VERIFY_KEY;\n"
	    "                           keyring in $LBS_GPG_HOME)\n"
	    "Commands:\n"
	    "  list-snapshots\n"
	    "  list-snapshot-sizes\n"
	    "  read-snapshots NAME...\n"
	    "  read-metadata NAME\n"
	    "  verify-snapshots NAME...\n"
	    "  verify-snapshots --read-data-subset=N%%   (scrub N%% of the segments)\n"
	    "  object-sums [SEGMENT...]\n"
	    "  restore-snapshot [--force] [--threads=N] NAME DEST [PATH...]\n");
}

static int
fail(const char *what)
{
	fprintf(stderr, "cumulus-util: %s%s%s\n", what ? what : "",
	    what ? ": " : "", err_msg());
	return CLI_FAIL;
}

static int
open_store(struct util *u)
{
	if (store_open(u->store_url, false, &u->st)) {
		fprintf(stderr, "cumulus-util: %s\n", err_msg());
		return -1;
	}
	return 0;
}

/* ---- list-snapshots, list-snapshot-sizes ---- */

static int
cmd_list(struct util *u)
{
	char **names;
	size_t n;

	if (snapshot_list_names(u->st, &names, &n))
		return fail(NULL);
	for (size_t i = 0; i < n; i++)
		printf("%s\n", cli_name(names[i]));
	snapshot_names_free(names, n);
	return CLI_OK;
}

static int
segment_size(struct util *u, const char *uuid, uint64_t *size)
{
	char *path;
	int r = snapshot_find_segment(u->st, uuid, &path);

	*size = 0;
	if (r)
		return -1;
	r = store_stat(u->st, path, size);
	free(path);
	return r ? -1 : 0;
}

static bool
in_list(char **v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], s) == 0)
			return true;
	return false;
}

static int
cmd_sizes(struct util *u)
{
	char **names, **prev = NULL;
	size_t n, nprev = 0;
	int rc = CLI_OK;

	if (snapshot_list_names(u->st, &names, &n))
		return fail(NULL);
	for (size_t i = 0; i < n; i++) {
		struct snapshot *s;
		const struct descriptor *d;
		uint64_t total = 0, added = 0, removed = 0, sz;
		unsigned nadd = 0, nrem = 0;
		char **cur;

		if (open_snapshot(u, names[i], &s)) {
			fail(names[i]);
			rc = CLI_FAIL;
			continue;
		}
		d = snapshot_descriptor(s);
		for (size_t k = 0; k < d->nsegments; k++) {
			if (segment_size(u, d->segments[k], &sz)) {
				fprintf(stderr, "cumulus-util: %s: segment %s "
						"missing\n",
				    names[i], d->segments[k]);
				rc = CLI_FAIL;
			}
			total += sz;
			if (!in_list(prev, nprev, d->segments[k])) {
				added += sz;
				nadd++;
			}
		}
		for (size_t k = 0; k < nprev; k++)
			if (!descriptor_has_segment(d, prev[k])) {
				segment_size(u, prev[k], &sz);
				removed += sz;
				nrem++;
			}
		printf("%s: %.3f +%.3f -%.3f (+%u/-%u segments)\n",
		    cli_name(names[i]), total / 1048576.0, added / 1048576.0,
		    removed / 1048576.0, nadd, nrem);
		/* Keep this snapshot's segment list for the next one. */
		cur = calloc(d->nsegments + 1, sizeof(char *));
		for (size_t k = 0; cur && k < d->nsegments; k++)
			cur[k] = strdup(d->segments[k]);
		snapshot_names_free(prev, nprev);
		prev = cur;
		nprev = cur ? d->nsegments : 0;
		snapshot_close(s);
	}
	snapshot_names_free(prev, nprev);
	snapshot_names_free(names, n);
	return rc;
}

/* ---- read-snapshots, read-metadata ---- */

static void
print_field(const char *key, const char *v)
{
	if (v)
		printf("%s: %s\n", key, v);
}

static int
cmd_read_snapshots(struct util *u, int argc, char **argv)
{
	int rc = CLI_OK;

	if (argc < 1) {
		usage(stderr);
		return CLI_USAGE;
	}
	for (int i = 0; i < argc; i++) {
		struct snapshot *s;
		const struct descriptor *d;

		if (open_snapshot(u, argv[i], &s)) {
			rc = fail(argv[i]);
			continue;
		}
		d = snapshot_descriptor(s);
		printf("#### Snapshot %s (%s)\n", argv[i],
		    snapshot_descriptor_path(s));
		print_field("Format", d->format ? d->format : "(none)");
		printf("Version: (");
		for (size_t k = 0; k < d->nversion; k++)
			printf("%s%d", k ? ", " : "", d->version[k]);
		printf(")%s\n", descriptor_is_v011(d) ?
			" [N] asserts the object size" :
			" [N] is a prefix");
		print_field("Producer", d->producer);
		print_field("Date", d->date);
		print_field("Scheme", d->scheme);
		print_field("Backup-Intent", d->backup_intent);
		print_field("Root", d->root_text);
		print_field("Checksums", d->checksums);
		print_field("Segment-metadata", d->segment_metadata);
		printf("Segments: %zu\n", d->nsegments);
		for (size_t k = 0; k < d->nsegments; k++)
			printf("    %s\n", d->segments[k]);
		snapshot_close(s);
	}
	return rc;
}

static int
cmd_read_metadata(struct util *u, int argc, char **argv)
{
	struct snapshot *s;
	struct meta_iter *it;
	const char *line;
	size_t n;
	bool blank = true; /* also drops leading blank lines */
	int r;

	if (argc != 1) {
		usage(stderr);
		return CLI_USAGE;
	}
	if (open_snapshot(u, argv[0], &s))
		return fail(argv[0]);
	if (snapshot_meta_open(s, &it)) {
		snapshot_close(s);
		return fail(argv[0]);
	}
	while ((r = meta_iter_line(it, &line, &n)) == 1) {
		bool b = meta_line_kind(line, n) == META_LINE_BLANK;

		/* Runs of blank lines become one. */
		if (b && blank)
			continue;
		blank = b;
		if (b)
			n = 0;
		fwrite(line, 1, n, stdout);
		putchar('\n');
	}
	meta_iter_close(it);
	if (r < 0) {
		fflush(stdout);
		fail(argv[0]);
	}
	snapshot_close(s);
	return r < 0 ? CLI_FAIL : CLI_OK;
}

/* ---- verify-snapshots ---- */

static int
count_sink(void *arg, const void *p, size_t n)
{
	(void)p;
	*(uint64_t *)arg += n;
	return 0;
}

/* Find a side file "snapshot-NAME<suffix>" in meta/, checksums/, root. */
static char *
find_side(struct store *st, const char *name, const char *suffix)
{
	static const char *const dirs[] = { "meta/", "checksums/", "" };
	static const char *const exts[] = { "", ".bz2", ".gz", ".zst", ".xz",
		".gpg" };

	for (size_t i = 0; i < 3; i++)
		for (size_t k = 0; k < 6; k++) {
			struct buf b;
			uint64_t size;

			buf_init(&b, 4096);
			if (buf_printf(&b, "%ssnapshot-%s%s%s", dirs[i], name,
				suffix, exts[k]) == 0 &&
			    store_stat(st, b.data, &size) == 0)
				return buf_detach(&b, NULL);
			buf_release(&b);
		}
	return NULL;
}

/* Check a descriptor-named hash of a side file. */
static int
check_side_hash(struct util *u, const char *path, const char *want)
{
	enum hash_alg alg;
	char got[HASH_STR_MAX];
	uint64_t size;

	if (want == NULL)
		return 0;
	if (hash_parse(want, &alg) ||
	    store_hash(u->st, path, alg, got, &size)) {
		fprintf(stderr, "Error: %s: %s\n", path, err_msg());
		return 1;
	}
	if (strcmp(got, want) != 0) {
		fprintf(stderr, "Error: %s: checksum %s, descriptor says %s\n",
		    path, got, want);
		return 1;
	}
	return 0;
}

/* Compare one stored segment file with its recorded hash. */
static int
check_segment_file(struct util *u, const char *file, const char *want,
    const char *size_s)
{
	enum hash_alg alg;
	char got[HASH_STR_MAX], *path = NULL;
	uint64_t size;
	int r = 1;

	if (strchr(file, '/')) {
		path = strdup(file);
	} else {
		/* A bare name: look in every segment directory. */
		static const char *const dirs[] = { "segments0/", "segments1/",
			"", "segments/" };

		for (size_t i = 0; i < 4 && path == NULL; i++) {
			struct buf b;

			buf_init(&b, 4096);
			if (buf_printf(&b, "%s%s", dirs[i], file) == 0 &&
			    store_stat(u->st, b.data, &size) == 0)
				path = buf_detach(&b, NULL);
			buf_release(&b);
		}
	}
	if (path == NULL) {
		fprintf(stderr, "Error: segment file %s is missing\n", file);
		return 1;
	}
	if (hash_parse(want, &alg) ||
	    (r = store_hash(u->st, path, alg, got, &size)) != 0) {
		fprintf(stderr, "Error: %s: %s\n", path,
		    r > 0 ? "missing" : err_msg());
		free(path);
		return 1;
	}
	r = 0;
	if (strcmp(got, want) != 0) {
		fprintf(stderr, "Error: %s: checksum %s, expected %s\n", path,
		    got, want);
		r = 1;
	}
	if (size_s && strtoull(size_s, NULL, 10) != size) {
		fprintf(stderr, "Error: %s: %" PRIu64 " bytes, expected %s\n",
		    path, size, size_s);
		r = 1;
	}
	free(path);
	return r;
}

/* .sha1sums: "<hex> *<file>" lines. */
static int
verify_sha1sums(struct util *u, const struct descriptor *d, const char *name)
{
	char *path = find_side(u->st, name, ".sha1sums");
	struct buf text;
	int errors = 0;

	if (path == NULL)
		return 0;
	errors += check_side_hash(u, path, d->checksums);
	buf_init(&text, DESCRIPTOR_MAX);
	if (snapshot_read_side_file(u->st, path, DESCRIPTOR_MAX, &text)) {
		fprintf(stderr, "Error: %s\n", err_msg());
		errors++;
	}
	for (char *p = text.data; p && *p;) {
		char *nl = strchr(p, '\n'), *sp;
		char want[HASH_STR_MAX];

		if (nl)
			*nl = '\0';
		sp = strchr(p, ' ');
		if (sp && sp - p == 40 && (sp[1] == '*' || sp[1] == ' ')) {
			snprintf(want, sizeof(want), "sha1=%.40s", p);
			errors += check_segment_file(u, sp + 2, want, NULL);
		} else if (*p) {
			fprintf(stderr, "Error: %s: malformed line\n", path);
			errors++;
		}
		p = nl ? nl + 1 : NULL;
	}
	buf_release(&text);
	free(path);
	return errors;
}

/* .meta: stanzas with checksum, disk_size and path of each segment. */
static int
verify_meta(struct util *u, const struct descriptor *d, const char *name)
{
	char *path = find_side(u->st, name, ".meta");
	struct buf text;
	struct stanza st;
	int errors = 0;
	char *p;

	if (path == NULL)
		return 0;
	errors += check_side_hash(u, path, d->segment_metadata);
	buf_init(&text, DESCRIPTOR_MAX);
	stanza_init(&st);
	if (snapshot_read_side_file(u->st, path, DESCRIPTOR_MAX, &text)) {
		fprintf(stderr, "Error: %s\n", err_msg());
		errors++;
	}
	p = text.data;
	for (;;) {
		char *nl = p ? strchr(p, '\n') : NULL;
		size_t len = p ? (nl ? (size_t)(nl - p) : strlen(p)) : 0;

		if (p == NULL || meta_line_kind(p, len) == META_LINE_BLANK) {
			const char *sp = stanza_get(&st, "path", NULL);
			const char *sum = stanza_get(&st, "checksum", NULL);

			if (sp && sum)
				errors += check_segment_file(u, sp, sum,
				    stanza_get(&st, "disk_size", NULL));
			stanza_clear(&st);
		} else if (stanza_add_line(&st, p, len)) {
			errors++;
			break;
		}
		if (p == NULL || nl == NULL || *p == '\0')
			break;
		p = nl + 1;
	}
	if (stanza_get(&st, "path", NULL) && stanza_get(&st, "checksum", NULL))
		errors += check_segment_file(u, stanza_get(&st, "path", NULL),
		    stanza_get(&st, "checksum", NULL),
		    stanza_get(&st, "disk_size", NULL));
	stanza_release(&st);
	buf_release(&text);
	free(path);
	return errors;
}

static int
verify_one(struct util *u, const char *name)
{
	struct snapshot *s;
	const struct descriptor *d;
	struct meta_iter *it;
	struct stanza st;
	char *const *touched;
	size_t ntouched;
	int errors = 0, r;
	bool header = false;

	if (open_snapshot(u, name, &s)) {
		fail(name);
		return 1;
	}
	d = snapshot_descriptor(s);
	printf("#### Snapshot %s\n## Root: %s\n", name, d->root_text);
	if (snapshot_meta_open(s, &it)) {
		fail(name);
		snapshot_close(s);
		return 1;
	}
	stanza_init(&st);
	while ((r = meta_iter_next(it, &st)) == 1) {
		const char *type = stanza_get(&st, "type", NULL);
		const char *fname = stanza_get(&st, "name", NULL);
		uint64_t got = 0;

		if (fname == NULL)
			fname = stanza_get(&st, "path", NULL);
		if (fname == NULL)
			fname = "(unnamed)";
		if (type == NULL || (strcmp(type, "f") && strcmp(type, "-")))
			continue;
		printf("%s [%s bytes]\n", fname,
		    stanza_get(&st, "size", NULL) ?
			stanza_get(&st, "size", NULL) :
			"?");
		if (snapshot_read_file(s, &st, count_sink, &got, NULL)) {
			fflush(stdout);
			fprintf(stderr, "Error: %s: %s\n", fname, err_msg());
			errors++;
		}
	}
	if (r < 0) {
		fflush(stdout);
		fprintf(stderr, "Error: metadata log: %s\n", err_msg());
		errors++;
	}
	meta_iter_close(it);
	stanza_release(&st);
	fflush(stdout);
	snapshot_touched(s, &touched, &ntouched);
	for (size_t i = 0; i < ntouched; i++)
		if (!descriptor_has_segment(d, touched[i])) {
			if (!header)
				printf("Error: Some segments not listed in "
				       "descriptor!\n");
			header = true;
			printf("%s\n", touched[i]);
			errors++;
		}
	header = false;
	for (size_t i = 0; i < d->nsegments; i++) {
		bool used = false;

		for (size_t k = 0; k < ntouched && !used; k++)
			used = strcmp(touched[k], d->segments[i]) == 0;
		if (!used) {
			if (!header)
				printf("Warning: Extra unused segments listed in "
				       "descriptor!\n");
			header = true;
			printf("%s\n", d->segments[i]);
		}
	}
	fflush(stdout);
	errors += verify_sha1sums(u, d, name);
	errors += verify_meta(u, d, name);
	snapshot_close(s);
	return errors;
}

/* --localdb, kept for the scrub's memory of what it checked. */
static const char *util_localdb;

static void
scrub_print(void *arg, const char *what, const char *problem)
{
	if (problem == NULL) {
		printf("OK %s\n", what);
		return;
	}
	fflush(stdout);
	fprintf(stderr, "Error: %s: %s\n", what, problem);
}

/* verify-snapshots --read-data-subset=N%: a sampled segment scrub. */
static int
cmd_scrub(struct util *u, const char *spec)
{
	struct localdb *db = NULL;
	struct scrub_result res;
	char *end;
	unsigned long pct = strtoul(spec, &end, 10);
	int r;

	if (end == spec || (*end != '%' && *end != '\0') ||
	    (*end == '%' && end[1] != '\0') || pct < 1 || pct > 100) {
		fprintf(stderr, "cumulus-util: --read-data-subset must be "
				"1%% to 100%%\n");
		return CLI_USAGE;
	}
	if (util_localdb && localdb_open(util_localdb, &db))
		return fail("local database");
	r = scrub_run(u->st, db, (unsigned)pct, scrub_print, NULL, &res);
	localdb_close(db);
	if (r)
		return fail("verify-snapshots");
	printf("checked %zu of %zu segments (%" PRIu64 " objects, %" PRIu64
	       " bytes): %zu bad\n", res.checked, res.segments, res.objects,
	    res.bytes, res.bad);
	return res.bad ? CLI_FAIL : CLI_OK;
}

static int
cmd_verify(struct util *u, int argc, char **argv)
{
	int errors = 0;

	if (argc == 1 && strncmp(argv[0], "--read-data-subset=", 19) == 0)
		return cmd_scrub(u, argv[0] + 19);

	if (argc < 1) {
		usage(stderr);
		return CLI_USAGE;
	}
	for (int i = 0; i < argc; i++)
		errors += verify_one(u, argv[i]);
	if (errors)
		fprintf(stderr, "cumulus-util: %d error%s found\n", errors,
		    errors == 1 ? "" : "s");
	return errors ? CLI_FAIL : CLI_OK;
}

/* ---- object-sums ---- */

static int
sums_segment(void *arg, const char *uuid, const char *path)
{
	struct util *u = arg;
	struct source raw, dec;
	struct tar_reader tr;
	struct tar_member m;
	int fd, r;

	r = store_open_read(u->st, path, &fd);
	if (r) {
		if (r > 0)
			err_set("%s: not found", path);
		fail(uuid);
		return 0;
	}
	source_from_fd(&raw, fd);
	if (codec_open_decoder(path, &raw, CODEC_SEGMENT_MAX, &dec)) {
		fail(path);
		return 0;
	}
	tar_reader_init(&tr, &dec, CODEC_SEGMENT_MAX);
	while ((r = tar_next(&tr, &m)) == 1) {
		struct hash h;
		char out[HASH_STR_MAX];
		unsigned char tmp[65536];
		ssize_t n;

		if (m.type != '0' && m.type != '7')
			continue;
		if (hash_init(&h, HASH_SHA256)) {
			r = -1;
			break;
		}
		while ((n = tar_read(&tr, tmp, sizeof(tmp))) > 0)
			hash_update(&h, tmp, (size_t)n);
		if (n < 0 || hash_final(&h, out)) {
			if (n < 0)
				hash_abort(&h);
			r = -1;
			break;
		}
		printf("%s:%" PRIu64 ":%s\n", m.name, m.size, out);
	}
	if (r < 0) {
		fflush(stdout);
		fail(path);
	}
	if (source_close(&dec) && r >= 0)
		fail(path);
	return 0;
}

static int
cmd_object_sums(struct util *u, int argc, char **argv)
{
	int rc = CLI_OK;

	if (argc == 0) {
		if (snapshot_each_segment(u->st, sums_segment, u) < 0)
			return fail(NULL);
		return err_msg()[0] ? CLI_FAIL : CLI_OK;
	}
	for (int i = 0; i < argc; i++) {
		char uuid[REF_SEGMENT_MAX + 1], *path;
		size_t len = strspn(argv[i], "0123456789abcdef-");

		/* Accept a UUID or a segment file name. */
		snprintf(uuid, sizeof(uuid), "%.*s", (int)len, argv[i]);
		if (snapshot_find_segment(u->st, uuid, &path)) {
			if (err_msg()[0] == '\0')
				err_set("no such segment");
			rc = fail(argv[i]);
			continue;
		}
		err_clear();
		sums_segment(u, uuid, path);
		if (err_msg()[0])
			rc = CLI_FAIL;
		free(path);
	}
	return rc;
}

/* ---- restore-snapshot ---- */

static void
warn_cb(void *arg, const char *msg)
{
	(void)arg;
	fflush(stdout);
	fprintf(stderr, "Warning: %s\n", msg);
}

static void
progress_cb(void *arg, const char *path)
{
	struct buf b;

	(void)arg;
	buf_init(&b, 1 << 20);
	if (escape_encode(&b, path, strlen(path)) == 0)
		printf("extract: %s\n", buf_str(&b));
	buf_release(&b);
}

static int
cmd_restore(struct util *u, int argc, char **argv)
{
	struct restore_opts o;
	struct snapshot *s;
	const char *args[3] = { NULL, NULL, NULL };
	const char **paths;
	size_t na = 0, np = 0;
	int r;

	memset(&o, 0, sizeof(o));
	paths = calloc((size_t)argc + 1, sizeof(char *));
	if (paths == NULL) {
		err_set("out of memory");
		return fail("restore-snapshot");
	}
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--force") == 0 || strcmp(argv[i], "-f") == 0) {
			o.force = true;
		} else if (strncmp(argv[i], "--threads=", 10) == 0) {
			char *end;
			long t = strtol(argv[i] + 10, &end, 10);

			if (end == argv[i] + 10 || *end || t < 1 || t > 256) {
				fprintf(stderr, "cumulus-util: invalid --threads "
						"'%s'\n",
				    argv[i] + 10);
				free(paths);
				return CLI_USAGE;
			}
			o.threads = (int)t;
		} else if (na < 2)
			args[na++] = argv[i];
		else
			paths[np++] = argv[i];
	}
	if (na < 2) {
		free(paths);
		usage(stderr);
		return CLI_USAGE;
	}
	o.dest = args[1];
	o.paths = paths;
	o.npaths = np;
	o.warn = warn_cb;
	o.progress = u->verbose ? progress_cb : NULL;
	if (open_snapshot(u, args[0], &s)) {
		free(paths);
		return fail(args[0]);
	}
	r = restore_snapshot(s, &o);
	snapshot_close(s);
	free(paths);
	if (r < 0)
		return fail("restore-snapshot");
	if (r > 0) {
		fprintf(stderr, "cumulus-util: %d entr%s could not be restored as "
		    "recorded\n",
		    r, r == 1 ? "y" : "ies");
		return CLI_FAIL;
	}
	return CLI_OK;
}

/* ---- dispatch ---- */

/* Space commands: cmd_space.c parses the whole command line again. */
static const char *const other_issue[] = { "clean", "gc", "garbage-collect",
	"prune-db", "delete-snapshot", "forget", "rebuild-db", "check-db",
	NULL };

int
cli_util_main(int argc, char **argv)
{
	struct util u = { ".", false, false, NULL, { NULL, NULL, NULL } };
	const char *cmd;
	int i, rc;

	/* The environment names a default key; the option overrides it. */
	u.sig.key = getenv("CUMULUS_VERIFY_KEY");
	u.sig.gpg_home = getenv("LBS_GPG_HOME");

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strncmp(a, "--store=", 8) == 0)
			u.store_url = a + 8;
		else if (strcmp(a, "--store") == 0 && i + 1 < argc)
			u.store_url = argv[++i];
		else if (strncmp(a, "--localdb=", 10) == 0)
			util_localdb = a + 10; /* only the scrub uses it */
		else if (strcmp(a, "--localdb") == 0 && i + 1 < argc)
			util_localdb = argv[++i];
		else if (strncmp(a, "--intent=", 9) == 0)
			; /* not needed by the reading commands */
		else if (strcmp(a, "--intent") == 0 && i + 1 < argc)
			i++;
		else if (strncmp(a, "--verify-key=", 13) == 0)
			u.sig.key = a + 13;
		else if (strcmp(a, "--verify-key") == 0 && i + 1 < argc)
			u.sig.key = argv[++i];
		else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0)
			u.verbose = true;
		else if (strcmp(a, "-n") == 0 || strcmp(a, "--dry-run") == 0)
			u.dry_run = true;
		else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			return CLI_OK;
		} else if (strcmp(a, "--version") == 0) {
			printf("cumulus-util %s\n", CUMULUS_VERSION);
			return CLI_OK;
		} else if (a[0] == '-' && a[1] != '\0') {
			fprintf(stderr, "cumulus-util: unknown option %s\n", a);
			usage(stderr);
			return CLI_USAGE;
		} else
			break;
	}
	if (i >= argc) {
		usage(stderr);
		return CLI_USAGE;
	}
	/* An empty key (--verify-key=) turns a default off. */
	if (u.sig.key && *u.sig.key == '\0')
		u.sig.key = NULL;
	if (u.sig.key && sigcheck_key_valid(u.sig.key)) {
		fprintf(stderr, "cumulus-util: --verify-key: %s\n", err_msg());
		return CLI_USAGE;
	}
	cmd = argv[i++];
	argc -= i;
	argv += i;
	for (size_t k = 0; other_issue[k]; k++)
		if (strcmp(cmd, other_issue[k]) == 0)
			return cli_space_main(argc + i, argv - i);
	if (strcmp(cmd, "list-snapshots") && strcmp(cmd, "list-snapshot-sizes") &&
	    strcmp(cmd, "read-snapshots") && strcmp(cmd, "read-metadata") &&
	    strcmp(cmd, "verify-snapshots") && strcmp(cmd, "object-sums") &&
	    strcmp(cmd, "restore-snapshot")) {
		fprintf(stderr, "Unknown command: %s\n", cmd);
		usage(stderr);
		return CLI_USAGE;
	}
	if (open_store(&u))
		return CLI_FAIL;
	if (strcmp(cmd, "list-snapshots") == 0)
		rc = cmd_list(&u);
	else if (strcmp(cmd, "list-snapshot-sizes") == 0)
		rc = cmd_sizes(&u);
	else if (strcmp(cmd, "read-snapshots") == 0)
		rc = cmd_read_snapshots(&u, argc, argv);
	else if (strcmp(cmd, "read-metadata") == 0)
		rc = cmd_read_metadata(&u, argc, argv);
	else if (strcmp(cmd, "verify-snapshots") == 0)
		rc = cmd_verify(&u, argc, argv);
	else if (strcmp(cmd, "object-sums") == 0)
		rc = cmd_object_sums(&u, argc, argv);
	else
		rc = cmd_restore(&u, argc, argv);
	store_close(u.st);
	if (fflush(stdout) && rc == CLI_OK)
		rc = CLI_FAIL;
	return rc;
}
