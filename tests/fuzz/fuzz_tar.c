/*
 * fuzz_tar: the segment tar reader (src/format/tar.h) over a memory
 * source.  Properties: no crash, never reads more member data than the
 * header announced, never returns a member over the limit.  A violation
 * abort()s.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "source.h"
#include "tar.h"

struct mem {
	const uint8_t *p;
	size_t n, pos;
};

static ssize_t
mem_read(void *ctx, void *p, size_t n)
{
	struct mem *m = ctx;

	if (n > m->n - m->pos)
		n = m->n - m->pos;
	memcpy(p, m->p + m->pos, n);
	m->pos += n;
	return (ssize_t)n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mem m = { data, size, 0 };
	struct source s = { mem_read, NULL, &m };
	struct tar_reader t;
	struct tar_member mem;
	const uint64_t max = 1 << 20;

	tar_reader_init(&t, &s, max);
	for (int i = 0; i < 1000 && tar_next(&t, &mem) == 1; i++) {
		unsigned char tmp[4096];
		uint64_t got = 0;
		ssize_t k;

		if (mem.size > max || strlen(mem.name) >= sizeof(mem.name))
			abort();
		while ((k = tar_read(&t, tmp, sizeof(tmp))) > 0)
			got += (uint64_t)k;
		if (k == 0 && got != mem.size)
			abort();
		if (k < 0)
			break;
	}
	return 0;
}
