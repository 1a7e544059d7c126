/*
 * cmd_backup: the "cumulus" command (man cumulus(1)).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup.h"
#include "buf.h"
#include "cli.h"
#include "err.h"
#include "escape.h"
#include "store.h"

static const char usage_text[] =
    "Usage: cumulus [OPTION]... --dest=DIR PATHS...\n"
    "Make an incremental snapshot of PATHS in the store DIR.\n"
    "\n"
    "  --dest=URL               store: DIR, file:///DIR or s3://BUCKET/PREFIX\n"
    "  --localdb=DIR            local database directory (default: --dest)\n"
    "  --scheme=NAME            name of this set of snapshots\n"
    "  --intent=FLOAT           backup intent (1 daily, 7 weekly, ...)\n"
    "  --filter=CMD             segment filter (default: built-in zstd)\n"
    "  --filter-extension=EXT   extension after .tar (default: .zst)\n"
    "  --signature-filter=CMD   filter the descriptor (e.g. to sign it)\n"
    "  --exclude=PATTERN        skip a path or glob pattern (repeatable)\n"
    "  --full-metadata          write all metadata, reuse none\n"
    "  --rebuild-statcache      re-read every file\n"
    "  --segment-size=BYTES     target stored segment size (default 4 MiB)\n"
    "  --threads=N              compression and read-ahead threads (default:\n"
    "                           cores + 1; 1 on one core)\n"
    "  --tmpdir=DIR             temporary files (default $TMPDIR or /tmp)\n"
    "  --upload-script=CMD      send files to CMD's PUT protocol instead of\n"
    "                           --dest (e.g. \"cumulus-store s3://b/p\");\n"
    "                           needs --localdb\n"
    "  --upload-jobs=N          parallel uploads to a remote store (default 4)\n"
    "  -v, --verbose            list each path\n"
    "      --help               show this help\n"
    "      --version            show the version\n"
    "\n"
    "Exit status: 0 success, 1 failure (no snapshot written), 2 usage\n"
    "error, 3 snapshot written with warnings (some files skipped).\n";

struct ui {
	bool tty;
	bool progress_shown;
};

static void
ui_clear(struct ui *ui)
{
	if (ui->progress_shown) {
		fputs("\r\033[K", stderr);
		ui->progress_shown = false;
	}
}

static void
on_warn(void *arg, const char *msg)
{
	ui_clear(arg);
	fprintf(stderr, "cumulus: warning: %s\n", msg);
}

static void
on_entry(void *arg, const char *path, const char *status)
{
	struct buf b;

	ui_clear(arg);
	/* Paths may hold any byte; show them escaped, one per line. */
	buf_init(&b, BUF_UNLIMITED);
	if (escape_encode(&b, path, strlen(path)) == 0)
		printf("%s\n", buf_str(&b));
	if (status)
		printf("    [%s]\n", status);
	buf_release(&b);
}

static void
on_progress(void *arg, const struct backup_stats *st)
{
	struct ui *ui = arg;

	if (!ui->tty)
		return;
	fprintf(stderr, "\r\033[K%" PRIu64 " entries, %" PRIu64
			" files, %.1f MiB read, %.1f MiB stored",
	    st->entries, st->files, st->bytes_read / 1048576.0,
	    st->bytes_stored / 1048576.0);
	ui->progress_shown = true;
}

static int
parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	if (*end == 'k' || *end == 'K')
		v <<= 10, end++;
	else if (*end == 'm' || *end == 'M')
		v <<= 20, end++;
	else if (*end == 'g' || *end == 'G')
		v <<= 30, end++;
	if (*end || v < 4096)
		return -1;
	*out = v;
	return 0;
}

int
cli_backup_main(int argc, char **argv)
{
	enum {
		O_DEST = 256, O_LOCALDB, O_SCHEME, O_INTENT, O_FILTER, O_EXT,
		O_SIG, O_EXCLUDE, O_FULL, O_REBUILD, O_TMPDIR, O_UPLOAD, O_HELP,
		O_VERSION, O_SEGSIZE, O_THREADS, O_JOBS
	};
	static const struct option opts[] = {
		{ "dest", required_argument, NULL, O_DEST },
		{ "localdb", required_argument, NULL, O_LOCALDB },
		{ "scheme", required_argument, NULL, O_SCHEME },
		{ "intent", required_argument, NULL, O_INTENT },
		{ "filter", required_argument, NULL, O_FILTER },
		{ "filter-extension", required_argument, NULL, O_EXT },
		{ "signature-filter", required_argument, NULL, O_SIG },
		{ "exclude", required_argument, NULL, O_EXCLUDE },
		{ "full-metadata", no_argument, NULL, O_FULL },
		{ "rebuild-statcache", no_argument, NULL, O_REBUILD },
		{ "tmpdir", required_argument, NULL, O_TMPDIR },
		{ "upload-script", required_argument, NULL, O_UPLOAD },
		{ "upload-jobs", required_argument, NULL, O_JOBS },
		{ "segment-size", required_argument, NULL, O_SEGSIZE },
		{ "threads", required_argument, NULL, O_THREADS },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, O_HELP },
		{ "version", no_argument, NULL, O_VERSION },
		{ NULL, 0, NULL, 0 }
	};
	struct backup_options o;
	struct backup_callbacks cb;
	struct backup_result res;
	struct ui ui = { isatty(2) != 0, false };
	const char **excludes = calloc((size_t)argc + 1, sizeof(char *));
	bool ext_given = false;
	char *script_url = NULL;
	const char *upload = NULL;
	int c, rc;

	memset(&o, 0, sizeof(o));
	o.intent = 1.0;
	if (excludes == NULL) {
		fprintf(stderr, "cumulus: out of memory\n");
		return CLI_FAIL;
	}
	while ((c = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
		switch (c) {
		case O_DEST:
			o.dest = optarg;
			break;
		case O_LOCALDB:
			o.localdb = optarg;
			break;
		case O_SCHEME:
			o.scheme = optarg[0] ? optarg : NULL;
			break;
		case O_INTENT: {
			char *end;

			o.intent = strtod(optarg, &end);
			/* As the original: unusable values mean daily. */
			if (*end || !(o.intent > 0))
				o.intent = 1.0;
			break;
		}
		case O_FILTER:
			o.filter = optarg;
			break;
		case O_EXT:
			o.filter_extension = optarg;
			ext_given = true;
			break;
		case O_SIG:
			o.signature_filter = optarg[0] ? optarg : NULL;
			break;
		case O_EXCLUDE:
			excludes[o.nexcludes++] = optarg;
			break;
		case O_FULL:
			o.full_metadata = true;
			break;
		case O_REBUILD:
			o.rebuild_statcache = true;
			break;
		case O_TMPDIR:
			setenv("TMPDIR", optarg, 1);
			break;
		case O_UPLOAD:
			upload = optarg;
			break;
		case O_JOBS: {
			char *end;
			long j = strtol(optarg, &end, 10);

			if (*end || j < 1 || j > 32) {
				fprintf(stderr, "cumulus: --upload-jobs must be "
						"1 to 32\n");
				free(excludes);
				return CLI_USAGE;
			}
			store_set_default_jobs((unsigned)j);
			break;
		}
		case O_SEGSIZE:
			if (parse_size(optarg, &o.segment_size)) {
				fprintf(stderr, "cumulus: invalid --segment-size "
						"'%s'\n",
				    optarg);
				free(excludes);
				return CLI_USAGE;
			}
			break;
		case O_THREADS:
			o.threads = atoi(optarg);
			if (o.threads < 1 || o.threads > 256) {
				fprintf(stderr, "cumulus: invalid --threads '%s'\n",
				    optarg);
				free(excludes);
				return CLI_USAGE;
			}
			break;
		case 'v':
			o.verbose = true;
			break;
		case O_HELP:
			fputs(usage_text, stdout);
			free(excludes);
			return CLI_OK;
		case O_VERSION:
			printf("cumulus %s\n", CUMULUS_VERSION);
			free(excludes);
			return CLI_OK;
		default:
			fputs(usage_text, stderr);
			free(excludes);
			return CLI_USAGE;
		}
	}
	/* The upload script is a write-only store: nothing can be read
	 * back, so the database must be local. */
	if (upload) {
		if (o.dest || o.localdb == NULL || upload[0] == '\0') {
			fprintf(stderr, "cumulus: --upload-script needs --localdb "
					"and replaces --dest\n");
			free(excludes);
			return CLI_USAGE;
		}
		if (asprintf(&script_url, "script:%s", upload) < 0) {
			fprintf(stderr, "cumulus: out of memory\n");
			free(excludes);
			return CLI_FAIL;
		}
		o.dest = script_url;
	}
	if (o.dest && o.localdb == NULL && strstr(o.dest, "://") &&
	    strncmp(o.dest, "file://", 7) != 0) {
		fprintf(stderr, "cumulus: a remote --dest needs --localdb\n");
		free(excludes);
		return CLI_USAGE;
	}
	if (o.dest == NULL || optind >= argc) {
		fprintf(stderr, "cumulus: %s\n",
		    o.dest == NULL ? "--dest is required" : "no paths given");
		fputs(usage_text, stderr);
		free(excludes);
		free(script_url);
		return CLI_USAGE;
	}
	if (backup_check_scheme(o.scheme)) {
		fprintf(stderr, "cumulus: %s\n", err_msg());
		free(excludes);
		return CLI_USAGE;
	}
	/* A user filter without an extension: the original's default. */
	if (o.filter && !ext_given)
		o.filter_extension = strcmp(o.filter, "bzip2 -c") == 0 ? ".bz2" : "";
	o.excludes = excludes;
	o.paths = (const char *const *)(argv + optind);
	o.npaths = (size_t)(argc - optind);
	cb.warn = on_warn;
	cb.entry = on_entry;
	cb.progress = on_progress;
	cb.arg = &ui;
	rc = backup_run(&o, &cb, &res);
	ui_clear(&ui);
	free(excludes);
	free(script_url);
	if (rc) {
		fprintf(stderr, "cumulus: backup failed: %s\n", err_msg());
		return CLI_FAIL;
	}
	printf("Snapshot %s: %" PRIu64 " entries, %" PRIu64 " files (%" PRIu64
	       " read), %.1f MiB read, %.1f MiB new, %.1f MiB stored in %" PRIu64
	       " segments%s\n",
	    res.name, res.stats.entries, res.stats.files, res.stats.files_read,
	    res.stats.bytes_read / 1048576.0, res.stats.bytes_new / 1048576.0,
	    res.stats.bytes_stored / 1048576.0, res.stats.segments,
	    res.stats.warnings ? " (with warnings)" : "");
	return res.stats.warnings ? CLI_WARNINGS : CLI_OK;
}
