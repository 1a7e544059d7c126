/* test_codec: round trips through the system's compressors, the decoded
 * size bound, truncation, unknown extensions. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "codec.h"
#include "err.h"
#include "source.h"
#include "tap.h"

/* Decode file ${path} as ${ext} with bound ${max} into ${out}.  0 or -1. */
static int
decode(const char *path, const char *ext, uint64_t max, struct buf *out)
{
	struct source raw, dec;
	char tmp[1000];
	int fd = open(path, O_RDONLY), rc = 0;
	ssize_t n;

	if (fd < 0)
		return -1;
	source_from_fd(&raw, fd);
	if (codec_open_decoder(ext, &raw, max, &dec))
		return -1;
	while ((n = dec.read(dec.ctx, tmp, sizeof(tmp))) > 0)
		if (buf_append(out, tmp, (size_t)n))
			rc = -1;
	if (n < 0)
		rc = -1;
	if (source_close(&dec))
		rc = -1;
	return rc;
}

int
main(void)
{
	static const char *const ext[] = { ".zst", ".bz2", ".gz", ".xz",
		".tar" };
	static const char *const cmd[] = { "zstd -q -c", "bzip2 -c",
		"gzip -c", "xz -c", "cat" };
	char dir[] = "/tmp/test_codec.XXXXXX";
	char in[256], enc[256], sh[2048];
	struct buf want, got;
	FILE *f;

	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(in, sizeof(in), "%s/in", dir);
	f = fopen(in, "w");
	buf_init(&want, BUF_UNLIMITED);
	for (int i = 0; i < 300000; i++)
		buf_putc(&want, "abcdefghij\n"[(i * 7 + i / 13) % 11]);
	fwrite(want.data, 1, want.len, f);
	fclose(f);
	for (int k = 0; k < 5; k++) {
		snprintf(enc, sizeof(enc), "%s/x%s", dir, ext[k]);
		/* Two concatenated streams: decoders must read both. */
		snprintf(sh, sizeof(sh), "(%s <%s; %s <%s) >%s", cmd[k], in,
		    cmd[k], in, enc);
		if (system(sh) != 0) {
			ok(1, "%s # SKIP compressor missing", ext[k]);
			continue;
		}
		buf_init(&got, BUF_UNLIMITED);
		ok(decode(enc, enc, 1 << 20, &got) == 0 &&
			got.len == 2 * want.len &&
			memcmp(got.data, want.data, want.len) == 0 &&
			memcmp(got.data + want.len, want.data, want.len) == 0,
		    "%s: concatenated round trip", ext[k]);
		buf_reset(&got);
		ok(decode(enc, ext[k], 400000, &got) < 0 &&
			strstr(err_msg(), "exceeds the limit"),
		    "%s: output bound enforced (%s)", ext[k], err_msg());
		buf_release(&got);
		if (k == 4)
			continue;
		snprintf(sh, sizeof(sh), "%s <%s >%s.full && head -c "
		    "$(($(stat -c %%s %s.full) / 2)) %s.full >%s", cmd[k], in,
		    enc, enc, enc, enc);
		if (system(sh) != 0)
			continue;
		buf_init(&got, BUF_UNLIMITED);
		ok(decode(enc, ext[k], 1 << 20, &got) < 0,
		    "%s: truncated stream fails (%s)", ext[k], err_msg());
		buf_release(&got);
		/* Garbage instead of a stream. */
		f = fopen(enc, "w");
		fputs("this is not compressed data at all, not at all\n", f);
		fclose(f);
		buf_init(&got, BUF_UNLIMITED);
		ok(decode(enc, ext[k], 1 << 20, &got) < 0,
		    "%s: garbage fails (%s)", ext[k], err_msg());
		buf_release(&got);
	}
	buf_init(&got, BUF_UNLIMITED);
	ok(decode(in, "x.tar.rot13", 100, &got) < 0 &&
		strstr(err_msg(), ".rot13"),
	    "unknown extension named: %s", err_msg());
	buf_release(&got);
	ok(codec_known("a.tar.zst") && codec_known("a.tar") &&
		codec_known("a.tar.gpg") && !codec_known("a.tar.lzo"),
	    "codec_known");
	buf_release(&want);
	snprintf(sh, sizeof(sh), "rm -rf %s", dir);
	if (system(sh) != 0)
		return 1;
	return tap_done();
}
