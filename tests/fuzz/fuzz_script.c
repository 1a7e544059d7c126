/*
 * fuzz_script: the upload-script answer parser (store_script_parse_reply
 * and store_script_reply_ok, src/store/store_backend.h).  The first input
 * byte sets the size of the pieces the rest arrives in (as pipe reads
 * would cut it), with the same buffer limits as store_script.c.
 * Properties, for every input:
 *   - each line taken is exactly the bytes consumed from the stream,
 *     minus the "\n" and at most one "\r" before it;
 *   - nothing is taken while no newline is buffered, and the unread
 *     bytes are always the stream's next bytes;
 *   - an answer is "stored" if and only if the line was "OK\n" or
 *     "OK\r\n";
 *   - a failure (line too long) records an error and only happens for a
 *     line over the limit.
 * A violation abort()s.
 */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "fuzz.h"
#include "store_backend.h"

#define LINE_LIMIT 4096

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf in, line;
	size_t piece, fed = 0, used = 0; /* stream bytes given, parsed */

	if (size == 0)
		return 0;
	piece = (size_t)data[0] + 1;
	data++;
	size--;
	buf_init(&in, LINE_LIMIT * 2);
	buf_init(&line, LINE_LIMIT);
	err_clear();
	while (fed < size) {
		size_t n = size - fed < piece ? size - fed : piece;
		int r;

		/* store_script.c gives up when the unread bytes overflow. */
		if (buf_append(&in, data + fed, n))
			break;
		fed += n;
		while ((r = store_script_parse_reply(&in, &line)) == 1) {
			const uint8_t *s = data + used;
			size_t took, l = line.len;
			bool ok = store_script_reply_ok(&line);

			if (in.len > fed - used)
				abort();
			took = fed - used - in.len;
			/* The line, an optional CR, then the newline. */
			if (took != l + 1 && took != l + 2)
				abort();
			if (s[took - 1] != '\n' || (took == l + 2 &&
			    s[l] != '\r'))
				abort();
			if (l && memcmp(s, line.data, l) != 0)
				abort();
			if (memchr(s, '\n', took - 1) != NULL)
				abort();
			if (ok != ((took == 3 && memcmp(s, "OK\n", 3) == 0) ||
			    (took == 4 && memcmp(s, "OK\r\n", 4) == 0)))
				abort();
			used += took;
		}
		if (r == -1) {
			if (err_msg()[0] == '\0' || in.len <= LINE_LIMIT)
				abort();
			break;
		}
		/* Nothing complete left, and the rest is the stream's tail. */
		if (in.len != fed - used || (in.len &&
		    (memchr(in.data, '\n', in.len) != NULL ||
		    memcmp(in.data, data + used, in.len) != 0)))
			abort();
	}
	buf_release(&in);
	buf_release(&line);
	err_clear();
	return 0;
}
