/*
 * fuzz_s3list: ListObjectsV2 and error response parsing (src/format/s3xml.h).
 * Properties, for every input:
 *   - the parser returns 0 or -1 and never reads outside the input;
 *   - every key it reports is non-empty, at most S3XML_KEY_MAX bytes,
 *     without control characters (C0, DEL, C1), and every size fits
 *     in 63 bits;
 *   - a truncated page always comes with a non-empty token.
 * A violation abort()s.
 */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fuzz.h"
#include "s3xml.h"

static int
check_key(void *arg, const char *key, uint64_t size)
{
	size_t n = strlen(key);

	(void)arg;
	if (n == 0 || n > S3XML_KEY_MAX || size > UINT64_MAX / 2)
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)key[i] < 0x20 || key[i] == 0x7f ||
		    ((unsigned char)key[i] == 0xc2 &&
			(unsigned char)key[i + 1] >= 0x80 &&
			(unsigned char)key[i + 1] <= 0x9f))
			abort();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	struct buf token, code;
	bool truncated = false;
	int r;

	buf_init(&token, 4096);
	buf_init(&code, 256);
	r = s3xml_parse_list(in, size, check_key, NULL, &truncated, &token);
	if (r != 0 && r != -1)
		abort();
	if (r == 0 && truncated && token.len == 0)
		abort();
	r = s3xml_find(in, size, "Code", &code);
	if (r < -1 || r > 1)
		abort();
	buf_release(&token);
	buf_release(&code);
	return 0;
}
