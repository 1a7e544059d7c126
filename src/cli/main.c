/*
 * main: the multi-call entry point.  The program name (argv[0]'s base
 * name) selects the tool: cumulus, cumulus-util, cumulus-sync,
 * cumulus-store.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "err.h"
#include "hash.h"

int
main(int argc, char **argv)
{
	const char *slash = strrchr(argv[0], '/');
	const char *name = slash ? slash + 1 : argv[0];

	if (hash_library_init()) {
		fprintf(stderr, "%s: %s\n", name, err_msg());
		return 1;
	}
	if (strcmp(name, "cumulus-util") == 0)
		return cli_util_main(argc, argv);
	if (strcmp(name, "cumulus-sync") == 0)
		return cli_sync_main(argc, argv);
	if (strcmp(name, "cumulus-store") == 0)
		return cli_store_main(argc, argv);
	return cli_backup_main(argc, argv);
}
