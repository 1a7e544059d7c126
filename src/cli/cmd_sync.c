/* cmd_sync: placeholder until cumulus-sync is implemented. */
#include <stdio.h>

#include "cli.h"

int
cli_sync_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "cumulus-sync: not available in this version\n");
	return CLI_FAIL;
}
