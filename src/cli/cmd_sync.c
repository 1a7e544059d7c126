/*
 * cmd_sync: cumulus-sync [OPTION]... SOURCE DEST [SNAPSHOT]...
 * Copies snapshots between stores of any kind (src/ops/sync.h).
 */
#include <getopt.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "err.h"
#include "store.h"
#include "sync.h"

static const char usage_text[] =
    "Usage: cumulus-sync [OPTION]... SOURCE DEST [SNAPSHOT]...\n"
    "Copy snapshots (default: all) with the segments they need from the\n"
    "store SOURCE to the store DEST (DIR, file:///DIR, s3://BUCKET/PREFIX).\n"
    "Files DEST already has (same size and same SHA-1, read back from a\n"
    "remote DEST) are skipped; each descriptor is written last.\n"
    "\n"
    "  --upload-jobs=N   parallel uploads to a remote DEST (default 4)\n"
    "  --size-only       a remote file of the right size counts as present\n"
    "                    (no read-back; faster, trusts the upload checks)\n"
    "  -v, --verbose     list each file copied\n"
    "      --help        show this help\n";

static void
on_copy(void *arg, const char *path, uint64_t size)
{
	if (*(int *)arg)
		printf("copy %s (%" PRIu64 " bytes)\n", cli_name(path), size);
}

int
cli_sync_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "upload-jobs", required_argument, NULL, 'j' },
		{ "size-only", no_argument, NULL, 's' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct store *src = NULL, *dst = NULL;
	struct sync_callbacks cb;
	struct sync_stats stats;
	int verbose = 0, c, rc;
	bool size_only = false;

	while ((c = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
		switch (c) {
		case 'j': {
			char *end;
			long j = strtol(optarg, &end, 10);

			if (*end || j < 1 || j > 32) {
				fprintf(stderr, "cumulus-sync: --upload-jobs "
						"must be 1 to 32\n");
				return CLI_USAGE;
			}
			store_set_default_jobs((unsigned)j);
			break;
		}
		case 's':
			size_only = true;
			break;
		case 'v':
			verbose = 1;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return CLI_OK;
		default:
			fputs(usage_text, stderr);
			return CLI_USAGE;
		}
	}
	if (argc - optind < 2) {
		fputs(usage_text, stderr);
		return CLI_USAGE;
	}
	if (store_open(argv[optind], false, &src) ||
	    store_open(argv[optind + 1], true, &dst)) {
		fprintf(stderr, "cumulus-sync: %s\n", err_msg());
		store_close(src);
		return CLI_FAIL;
	}
	cb.copying = on_copy;
	cb.arg = &verbose;
	cb.size_only = size_only;
	rc = sync_snapshots(src, dst,
	    argc - optind > 2 ? (const char *const *)(argv + optind + 2) : NULL,
	    (size_t)(argc - optind - 2), &cb, &stats);
	if (rc)
		fprintf(stderr, "cumulus-sync: %s\n", err_msg());
	printf("%" PRIu64 " snapshots: %" PRIu64 " files required, %" PRIu64
	       " already present, %" PRIu64 " copied (%.1f MiB)\n",
	    stats.snapshots, stats.required, stats.present, stats.copied,
	    stats.bytes_copied / 1048576.0);
	store_close(dst);
	store_close(src);
	return rc ? CLI_FAIL : CLI_OK;
}
