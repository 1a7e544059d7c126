/*
 * cli: the command layer.  Only code under src/cli prints to stdout, reads
 * options and chooses exit codes.  Exit codes (man cumulus(1)):
 *   0 success, 1 failure (nothing committed), 2 usage error,
 *   3 committed with warnings (some files skipped or damaged).
 */
#ifndef CUMULUS_CLI_H
#define CUMULUS_CLI_H

enum cli_exit {
	CLI_OK = 0,
	CLI_FAIL = 1,
	CLI_USAGE = 2,
	CLI_WARNINGS = 3
};

/*
 * ${name} (a name from a store, which a hostile store chooses) made safe to
 * print: control characters (C0, DEL, C1) and bytes that are not UTF-8
 * become \xHH.  The result lives until the fourth call after this one in
 * the same thread (so a printf can take a few); long names are cut.
 */
const char *cli_name(const char *name);

int cli_backup_main(int argc, char **argv);
int cli_util_main(int argc, char **argv);
/* cumulus-util's space commands (gc, forget, clean, ...): the whole
 * cumulus-util command line. */
int cli_space_main(int argc, char **argv);
int cli_sync_main(int argc, char **argv);
int cli_store_main(int argc, char **argv);

#endif
