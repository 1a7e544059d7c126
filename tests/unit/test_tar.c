/* test_tar: header writing, and the reader over a memory source:
 * members, padding, end markers, truncation and corruption. */
#include <string.h>

#include "buf.h"
#include "err.h"
#include "source.h"
#include "tap.h"
#include "tar.h"

struct mem {
	const unsigned char *p;
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

static void
add(struct buf *b, const char *name, const char *data)
{
	unsigned char hdr[TAR_BLOCK];
	static const char zeros[TAR_BLOCK];

	tar_header(hdr, name, strlen(data), 1600000000);
	buf_append(b, hdr, TAR_BLOCK);
	buf_append(b, data, strlen(data));
	buf_append(b, zeros, tar_padding(strlen(data)));
}

/* Read all members of ${b}[0..n): their names and data joined. */
static int
read_all(const struct buf *b, size_t n, uint64_t max, struct buf *out)
{
	struct mem m = { (const unsigned char *)b->data, n, 0 };
	struct source s = { mem_read, NULL, &m };
	struct tar_reader t;
	struct tar_member mem;
	int r;

	tar_reader_init(&t, &s, max);
	while ((r = tar_next(&t, &mem)) == 1) {
		char tmp[100];
		ssize_t k;

		buf_printf(out, "%s=", mem.name);
		while ((k = tar_read(&t, tmp, sizeof(tmp))) > 0)
			buf_append(out, tmp, (size_t)k);
		if (k < 0)
			return -1;
		buf_puts(out, ";");
	}
	return r;
}

int
main(void)
{
	static const char zeros[2 * TAR_BLOCK];
	unsigned char hdr[TAR_BLOCK];
	struct buf b, out;
	char long_name[120];

	ok(tar_padding(0) == 0 && tar_padding(1) == 511 &&
		tar_padding(512) == 0,
	    "padding");
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	ok(tar_header(hdr, long_name, 1, 0) < 0, "name of 100+ bytes refused");
	ok(tar_header(hdr, "x/00000000", 5, 1600000000) == 0 &&
		memcmp(hdr + 257, "ustar  ", 8) == 0 && hdr[156] == '0' &&
		memcmp(hdr + 124, "00000000005", 12) == 0,
	    "old GNU header fields");

	buf_init(&b, 1 << 20);
	buf_init(&out, 1 << 20);
	add(&b, "u/00000000", "hello");
	add(&b, "u/00000001", "");
	add(&b, "u/00000002", "world!");
	buf_append(&b, zeros, sizeof(zeros));
	ok(read_all(&b, b.len, 100, &out) == 0, "reads a stream");
	is_str(buf_str(&out), "u/00000000=hello;u/00000001=;u/00000002=world!;",
	    "members and data");
	buf_reset(&out);
	ok(read_all(&b, b.len - sizeof(zeros), 100, &out) == 0,
	    "clean EOF without end blocks");
	buf_reset(&out);
	ok(read_all(&b, 700, 100, &out) < 0, "truncated data fails: %s",
	    err_msg());
	buf_reset(&out);
	ok(read_all(&b, 300, 100, &out) < 0, "truncated header fails");
	buf_reset(&out);
	ok(read_all(&b, b.len, 5, &out) < 0 && strstr(err_msg(), "limit"),
	    "member over the limit fails");
	buf_reset(&out);
	b.data[10] ^= 1;
	ok(read_all(&b, b.len, 100, &out) < 0 && strstr(err_msg(), "checksum"),
	    "corrupt header fails: %s", err_msg());
	buf_release(&b);
	buf_release(&out);
	return tap_done();
}
