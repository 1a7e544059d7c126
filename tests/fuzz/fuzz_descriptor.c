/*
 * fuzz_descriptor: descriptor parsing (src/format/descriptor.h) of
 * arbitrary bytes.  Properties: no crash; an accepted descriptor has a
 * Root object reference, a version no newer than v0.11, and segment
 * names of [0-9a-f-] only.  A violation abort()s.
 */
#include <stdlib.h>
#include <string.h>

#include "descriptor.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct descriptor d;

	if (descriptor_parse((const char *)data, size, &d))
		return 0;
	if (d.root.kind != REF_OBJECT || d.nversion > DESCRIPTOR_VERSION_MAX)
		abort();
	if (d.nversion >= 2 && d.version[0] == 0 && d.version[1] > 11)
		abort();
	for (size_t i = 0; i < d.nsegments; i++)
		if (d.segments[i][0] == '\0' ||
		    strspn(d.segments[i], "0123456789abcdef-") !=
			strlen(d.segments[i]))
			abort();
	(void)descriptor_is_v011(&d);
	descriptor_release(&d);
	return 0;
}
