/*
 * tar: segment writer headers and a streaming, bounds-checked reader.
 */
#include "tar.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "source.h"

static void
put_octal(unsigned char *field, size_t width, uint64_t v)
{
	/* width-1 octal digits then NUL, as "%0*llo". */
	field[width - 1] = '\0';
	for (size_t i = width - 1; i-- > 0;) {
		field[i] = (unsigned char)('0' + (v & 7));
		v >>= 3;
	}
}

int
tar_header(unsigned char hdr[TAR_BLOCK], const char *name, uint64_t size,
    int64_t mtime)
{
	size_t nlen = strlen(name);
	unsigned sum = 0;

	if (nlen >= 100 || size >= (uint64_t)1 << 33 || mtime < 0) {
		err_set("tar member '%s' cannot be represented", name);
		return -1;
	}
	memset(hdr, 0, TAR_BLOCK);
	memcpy(hdr, name, nlen);
	memcpy(hdr + 100, "0000600", 8);
	memcpy(hdr + 108, "0000000", 8);
	memcpy(hdr + 116, "0000000", 8);
	put_octal(hdr + 124, 12, size);
	put_octal(hdr + 136, 12, (uint64_t)mtime & 077777777777);
	memset(hdr + 148, ' ', 8);
	hdr[156] = '0';
	memcpy(hdr + 257, "ustar  ", 8);
	memcpy(hdr + 265, "root", 4);
	memcpy(hdr + 297, "root", 4);
	for (int i = 0; i < TAR_BLOCK; i++)
		sum += hdr[i];
	/* "%06o\0 " */
	put_octal(hdr + 148, 7, sum);
	hdr[155] = ' ';
	return 0;
}

size_t
tar_padding(uint64_t size)
{
	return (size_t)((TAR_BLOCK - size % TAR_BLOCK) % TAR_BLOCK);
}

void
tar_reader_init(struct tar_reader *t, struct source *src, uint64_t max_member)
{
	t->src = src;
	t->remaining = 0;
	t->pad = 0;
	t->max_member = max_member;
}

static int
skip(struct tar_reader *t, uint64_t n)
{
	unsigned char tmp[4096];

	while (n > 0) {
		size_t want = n > sizeof(tmp) ? sizeof(tmp) : (size_t)n;
		ssize_t r = source_read_full(t->src, tmp, want);

		if (r < 0)
			return -1;
		if ((size_t)r != want) {
			err_set("truncated tar archive");
			return -1;
		}
		n -= want;
	}
	return 0;
}

static int
parse_num(const unsigned char *f, size_t width, uint64_t *out)
{
	uint64_t v = 0;
	size_t i = 0;
	bool any = false;

	if (f[0] & 0x80) {
		/* GNU base-256: big-endian, top bit is the marker. */
		if (f[0] != 0x80)
			return -1;
		for (i = 1; i < width; i++) {
			if (v >> 55)
				return -1;
			v = v << 8 | f[i];
		}
		*out = v;
		return 0;
	}
	while (i < width && f[i] == ' ')
		i++;
	for (; i < width && f[i] >= '0' && f[i] <= '7'; i++) {
		if (v >> 60)
			return -1;
		v = v << 3 | (uint64_t)(f[i] - '0');
		any = true;
	}
	for (; i < width; i++)
		if (f[i] != ' ' && f[i] != '\0')
			return -1;
	if (!any)
		v = 0;
	*out = v;
	return 0;
}

int
tar_next(struct tar_reader *t, struct tar_member *m)
{
	unsigned char hdr[TAR_BLOCK];
	uint64_t chk, sum = 0;
	ssize_t r;
	bool zero = true;

	if (skip(t, t->remaining + t->pad))
		return -1;
	t->remaining = t->pad = 0;
	r = source_read_full(t->src, hdr, TAR_BLOCK);
	if (r < 0)
		return -1;
	if (r == 0)
		return 0;
	if (r != TAR_BLOCK) {
		err_set("truncated tar header");
		return -1;
	}
	for (int i = 0; i < TAR_BLOCK; i++)
		if (hdr[i]) {
			zero = false;
			break;
		}
	if (zero)
		return 0; /* end-of-archive marker */
	if (parse_num(hdr + 148, 8, &chk)) {
		err_set("malformed tar header checksum");
		return -1;
	}
	for (int i = 0; i < TAR_BLOCK; i++)
		sum += (i >= 148 && i < 156) ? ' ' : hdr[i];
	if (sum != chk) {
		err_set("tar header checksum mismatch");
		return -1;
	}
	if (parse_num(hdr + 124, 12, &m->size)) {
		err_set("malformed tar member size");
		return -1;
	}
	m->type = (char)hdr[156];
	if (m->type == '\0')
		m->type = '0';
	if (memcmp(hdr + 257, "ustar", 5) == 0 && hdr[345] != '\0') {
		/* POSIX prefix field. */
		size_t pl = strnlen((const char *)hdr + 345, 155);

		memcpy(m->name, hdr + 345, pl);
		m->name[pl] = '/';
		memcpy(m->name + pl + 1, hdr, strnlen((const char *)hdr, 100));
		m->name[pl + 1 + strnlen((const char *)hdr, 100)] = '\0';
	} else {
		memcpy(m->name, hdr, 100);
		m->name[strnlen((const char *)hdr, 100)] = '\0';
	}
	if (m->size > t->max_member) {
		err_set("tar member '%.100s' of %llu bytes exceeds the limit",
		    m->name, (unsigned long long)m->size);
		return -1;
	}
	t->remaining = m->size;
	t->pad = tar_padding(m->size);
	return 1;
}

ssize_t
tar_read(struct tar_reader *t, void *p, size_t n)
{
	ssize_t r;

	if (n > t->remaining)
		n = (size_t)t->remaining;
	if (n == 0)
		return 0;
	r = source_read_full(t->src, p, n);
	if (r < 0)
		return -1;
	if ((size_t)r != n) {
		err_set("truncated tar member");
		return -1;
	}
	t->remaining -= n;
	return r;
}
