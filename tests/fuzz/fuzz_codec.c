/*
 * fuzz_codec: the in-process decoders of src/format/codec.h (.zst, .bz2,
 * .gz, .xz) over a memory source.  Every input is fed to all four, so a
 * seed of one format also exercises the other three's magic checks.
 * Properties, for every input and codec:
 *   - opening succeeds (the extensions are known);
 *   - reading to the end or to an error never crashes and never yields
 *     more than the bound (MAX_OUT) of decoded bytes in total;
 *   - a read returns a count within the asked size, 0 or -1, and once
 *     it returned -1 or 0 the stream is not read again;
 *   - a failure records a non-empty error message.
 * A violation abort()s.
 */
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "err.h"
#include "fuzz.h"
#include "source.h"

#define MAX_OUT ((uint64_t)1 << 20)

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

/* Decode ${data} as ${ext}; abort() on a violated property. */
static void
decode(const char *ext, const uint8_t *data, size_t size)
{
	struct mem m = { data, size, 0 };
	struct source raw = { mem_read, NULL, &m }, out;
	static unsigned char tmp[65536];
	uint64_t total = 0;
	ssize_t k;
	/* Vary the read size a little, as real readers ask for headers
	 * (512) and bulk (64 KiB). */
	size_t want = size && (data[0] & 1) ? 512 : sizeof(tmp);

	err_clear();
	if (codec_open_decoder(ext, &raw, MAX_OUT, &out) != 0)
		abort();
	while ((k = out.read(out.ctx, tmp, want)) > 0) {
		if ((size_t)k > want)
			abort();
		total += (uint64_t)k;
		if (total > MAX_OUT)
			abort();
	}
	if (k < -1)
		abort();
	if (k == -1 && (err_msg() == NULL || err_msg()[0] == '\0'))
		abort();
	source_close(&out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const exts[] = { ".zst", ".bz2", ".gz", ".xz" };

	for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++)
		decode(exts[i], data, size);
	err_clear();
	return 0;
}
