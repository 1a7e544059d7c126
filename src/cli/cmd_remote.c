/*
 * cmd_remote: cumulus-store (the upload helper for remote stores, not
 * available in this version).  cumulus-sync lives in cmd_sync.c.
 */
#include <stdio.h>

#include "cli.h"

int
cli_store_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "cumulus-store: remote stores are not available in "
			"this version\n");
	return CLI_FAIL;
}
