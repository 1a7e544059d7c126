/* cli_name: names from a store, made safe to print (see cli.h). */
#include "cli.h"

#include <stddef.h>

#include "err.h"

#define SLOTS 4
#define SLOT_SIZE 8192

const char *
cli_name(const char *name)
{
	static _Thread_local char slots[SLOTS][SLOT_SIZE];
	static _Thread_local unsigned next;
	char *out = slots[next++ % SLOTS];

	err_printable(out, SLOT_SIZE, name);
	return out;
}
