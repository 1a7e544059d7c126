/*
 * codec: streaming decoders chosen by file extension (see codec.h).
 */
#include "codec.h"

#include <bzlib.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <lzma.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "err.h"
#include "run.h"
#include "source.h"

enum codec_kind { K_PLAIN, K_ZSTD, K_BZ2, K_GZ, K_XZ, K_GPG };

#define IN_SIZE 65536

struct dec {
	enum codec_kind kind;
	struct source raw;
	unsigned char *in;
	size_t in_len, in_pos;
	bool in_eof;
	bool done;      /* the encoded stream ended cleanly */
	bool open;      /* inside a frame/member: EOF now is truncation */
	bool failed;    /* a read failed: later reads fail too */
	uint64_t total; /* decoded bytes handed out */
	unsigned members; /* gzip members started */
	uint64_t max;
	ZSTD_DCtx *zstd;
	bz_stream bz;
	z_stream gz;
	lzma_stream xz;
	/* gpg: a thread pumps raw into the child, we read its output. */
	pid_t pid;
	int out_fd;
	pthread_t pump;
	bool pump_started;
	bool pump_failed;
	int pump_fd;
};

static enum codec_kind
kind_of(const char *name, bool *ok)
{
	const char *slash = strrchr(name, '/');
	const char *base = slash ? slash + 1 : name;
	const char *dot = strrchr(base, '.');
	const char *ext = dot ? dot + 1 : "";

	*ok = true;
	if (strcmp(ext, "zst") == 0)
		return K_ZSTD;
	if (strcmp(ext, "bz2") == 0)
		return K_BZ2;
	if (strcmp(ext, "gz") == 0)
		return K_GZ;
	if (strcmp(ext, "xz") == 0)
		return K_XZ;
	if (strcmp(ext, "gpg") == 0)
		return K_GPG;
	if (strcmp(ext, "tar") == 0 || dot == NULL)
		return K_PLAIN;
	*ok = false;
	return K_PLAIN;
}

bool
codec_known(const char *name)
{
	bool ok;

	kind_of(name, &ok);
	return ok;
}

/* Refill the input buffer when it is used up.  0 or -1. */
static int
fill(struct dec *d)
{
	ssize_t r;

	if (d->in_pos < d->in_len || d->in_eof)
		return 0;
	r = d->raw.read(d->raw.ctx, d->in, IN_SIZE);
	if (r < 0)
		return -1;
	d->in_pos = 0;
	d->in_len = (size_t)r;
	if (r == 0)
		d->in_eof = true;
	return 0;
}

/*
 * One decoding step into ${p}: consumes input, sets *got.  The caller
 * loops until output appears or the stream ends.
 */
static int
step(struct dec *d, void *p, size_t n, size_t *got)
{
	size_t avail = d->in_len - d->in_pos;

	*got = 0;
	switch (d->kind) {
	case K_PLAIN:
	case K_GPG:
		break;
	case K_ZSTD: {
		ZSTD_inBuffer ib = { d->in + d->in_pos, avail, 0 };
		ZSTD_outBuffer ob = { p, n, 0 };
		size_t rc;

		if (avail == 0 && !d->open) {
			d->done = true;
			return 0;
		}
		rc = ZSTD_decompressStream(d->zstd, &ob, &ib);
		if (ZSTD_isError(rc)) {
			err_set("corrupt zstd stream: %s", ZSTD_getErrorName(rc));
			return -1;
		}
		d->in_pos += ib.pos;
		d->open = rc != 0;
		*got = ob.pos;
		/* At EOF inside a frame, no output means no more will come. */
		if (avail == 0 && ob.pos == 0 && d->open) {
			err_set("truncated zstd stream");
			return -1;
		}
		return 0;
	}
	case K_BZ2: {
		int rc;

		if (avail == 0 && !d->open) {
			d->done = true;
			return 0;
		}
		if (!d->open) {
			/* A new stream (bzip2 files may be concatenated). */
			memset(&d->bz, 0, sizeof(d->bz));
			if (BZ2_bzDecompressInit(&d->bz, 0, 0) != BZ_OK) {
				err_set("cannot start bzip2 decoder");
				return -1;
			}
			d->open = true;
		}
		d->bz.next_in = (char *)d->in + d->in_pos;
		d->bz.avail_in = (unsigned)avail;
		d->bz.next_out = p;
		d->bz.avail_out = (unsigned)n;
		rc = BZ2_bzDecompress(&d->bz);
		d->in_pos = d->in_len - d->bz.avail_in;
		*got = n - d->bz.avail_out;
		if (rc == BZ_STREAM_END) {
			BZ2_bzDecompressEnd(&d->bz);
			d->open = false;
		} else if (rc != BZ_OK) {
			err_set("corrupt bzip2 stream (error %d)", rc);
			return -1;
		} else if (avail == 0 && *got == 0) {
			err_set("truncated bzip2 stream");
			return -1;
		}
		return 0;
	}
	case K_GZ: {
		int rc;

		if (avail == 0 && !d->open) {
			d->done = true;
			return 0;
		}
		if (!d->open) {
			/* A new member (gzip files may be concatenated). */
			if (d->in[d->in_pos] != 0x1f && d->members > 0) {
				d->done = true; /* trailing zeros, as gzip -d */
				return 0;
			}
			d->members++;
			if (inflateReset(&d->gz) != Z_OK) {
				err_set("cannot reset gzip decoder");
				return -1;
			}
			d->open = true;
		}
		d->gz.next_in = d->in + d->in_pos;
		d->gz.avail_in = (uInt)avail;
		d->gz.next_out = p;
		d->gz.avail_out = (uInt)n;
		rc = inflate(&d->gz, Z_NO_FLUSH);
		d->in_pos = d->in_len - d->gz.avail_in;
		*got = n - d->gz.avail_out;
		if (rc == Z_STREAM_END)
			d->open = false;
		else if (rc != Z_OK && rc != Z_BUF_ERROR) {
			err_set("corrupt gzip stream: %s",
			    d->gz.msg ? d->gz.msg : "inflate error");
			return -1;
		} else if (avail == 0 && *got == 0) {
			err_set("truncated gzip stream");
			return -1;
		}
		return 0;
	}
	case K_XZ: {
		lzma_ret rc;

		d->xz.next_in = d->in + d->in_pos;
		d->xz.avail_in = avail;
		d->xz.next_out = p;
		d->xz.avail_out = n;
		rc = lzma_code(&d->xz, d->in_eof ? LZMA_FINISH : LZMA_RUN);
		d->in_pos = d->in_len - d->xz.avail_in;
		*got = n - d->xz.avail_out;
		if (rc == LZMA_STREAM_END) {
			d->done = *got == 0;
			return 0;
		}
		if (rc == LZMA_BUF_ERROR && d->in_eof) {
			err_set("truncated xz stream");
			return -1;
		}
		if (rc != LZMA_OK && rc != LZMA_BUF_ERROR) {
			err_set("corrupt xz stream (error %d)", (int)rc);
			return -1;
		}
		return 0;
	}
	}
	return 0;
}

static ssize_t
dec_read(void *ctx, void *p, size_t n)
{
	struct dec *d = ctx;
	size_t got = 0;

	if (d->failed) {
		err_set("read after a decoding error");
		return -1;
	}
	if (n == 0 || d->done)
		return 0;
	/* Ask for at most one byte beyond the bound, to detect a bomb. */
	if (n > d->max - d->total + 1)
		n = (size_t)(d->max - d->total + 1);
	if (d->kind == K_PLAIN || d->kind == K_GPG) {
		ssize_t r;

		if (d->kind == K_PLAIN)
			r = d->raw.read(d->raw.ctx, p, n);
		else {
			do
				r = read(d->out_fd, p, n);
			while (r < 0 && errno == EINTR);
			if (r < 0)
				err_setp("reading from gpg");
		}
		if (r < 0)
			goto fail;
		if (r == 0)
			d->done = true;
		got = (size_t)r;
	} else {
		while (got == 0 && !d->done) {
			if (fill(d) || step(d, p, n, &got))
				goto fail;
		}
	}
	d->total += got;
	if (d->total > d->max) {
		err_set("decoded data exceeds the limit of %" PRIu64 " bytes",
		    d->max);
		goto fail;
	}
	return (ssize_t)got;
fail:
	d->failed = true;
	return -1;
}

static int
dec_close(void *ctx)
{
	struct dec *d = ctx;
	int rc = 0;

	switch (d->kind) {
	case K_ZSTD:
		ZSTD_freeDCtx(d->zstd);
		break;
	case K_BZ2:
		if (d->open)
			BZ2_bzDecompressEnd(&d->bz);
		break;
	case K_GZ:
		inflateEnd(&d->gz);
		break;
	case K_XZ:
		lzma_end(&d->xz);
		break;
	case K_GPG:
		/* Closing our end first lets a blocked child finish. */
		if (d->out_fd >= 0)
			close(d->out_fd);
		if (d->pump_started)
			pthread_join(d->pump, NULL);
		if (d->pid > 0 && run_wait(d->pid, "gpg decryption"))
			rc = -1;
		else if (d->pump_failed) {
			err_set("reading the encrypted file failed");
			rc = -1;
		}
		break;
	case K_PLAIN:
		break;
	}
	if (d->kind != K_GPG || !d->pump_started) {
		if (source_close(&d->raw) && rc == 0)
			rc = -1;
	}
	free(d->in);
	free(d);
	return rc;
}

/* The thread feeding the encrypted file into gpg's standard input. */
static void *
pump_main(void *arg)
{
	struct dec *d = arg;
	unsigned char tmp[65536];

	(void)pthread_setname_np(pthread_self(), "cumulus-pump");
	for (;;) {
		ssize_t r = d->raw.read(d->raw.ctx, tmp, sizeof(tmp));
		size_t off = 0;

		if (r < 0)
			d->pump_failed = true;
		if (r <= 0)
			break;
		while (off < (size_t)r) {
			ssize_t w = write(d->pump_fd, tmp + off, (size_t)r - off);

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				goto out; /* gpg stopped reading: its status tells */
			off += (size_t)w;
		}
	}
out:
	close(d->pump_fd);
	source_close(&d->raw);
	return NULL;
}

/* Find cumulus-filter-gpg next to our own binary, else in PATH. */
static char *
find_filter_gpg(void)
{
	char self[PATH_MAX], cand[PATH_MAX + 32];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	const char *path = getenv("PATH");

	if (n > 0) {
		char *slash;

		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			snprintf(cand, sizeof(cand), "%s/cumulus-filter-gpg", self);
			if (access(cand, X_OK) == 0)
				return strdup(cand);
		}
	}
	while (path && *path) {
		const char *end = strchr(path, ':');
		size_t len = end ? (size_t)(end - path) : strlen(path);

		if (len > 0 && len < PATH_MAX) {
			snprintf(cand, sizeof(cand), "%.*s/cumulus-filter-gpg",
			    (int)len, path);
			if (access(cand, X_OK) == 0)
				return strdup(cand);
		}
		path = end ? end + 1 : NULL;
	}
	return NULL;
}

static int
start_gpg(struct dec *d)
{
	int inp[2] = { -1, -1 }, outp[2] = { -1, -1 };
	char *filter = find_filter_gpg();
	const char *home = getenv("LBS_GPG_HOME");
	char *argv[8];
	char homebuf[PATH_MAX];
	int i = 0, rc;

	if (pipe2(inp, O_CLOEXEC) || pipe2(outp, O_CLOEXEC)) {
		err_setp("pipe");
		goto fail;
	}
	if (filter) {
		argv[i++] = filter;
		argv[i++] = (char *)"--decrypt";
	} else {
		argv[i++] = (char *)"gpg";
		argv[i++] = (char *)"--quiet";
		argv[i++] = (char *)"--batch";
		if (home && *home && strlen(home) < sizeof(homebuf)) {
			strcpy(homebuf, home);
			argv[i++] = (char *)"--homedir";
			argv[i++] = homebuf;
		}
		argv[i++] = (char *)"--decrypt";
	}
	argv[i] = NULL;
	run_ignore_sigpipe();
	rc = run_spawn_argv(argv, inp[0], outp[1], &d->pid);
	free(filter);
	close(inp[0]);
	close(outp[1]);
	inp[0] = outp[1] = -1;
	if (rc)
		goto fail;
	d->out_fd = outp[0];
	d->pump_fd = inp[1];
	if (pthread_create(&d->pump, NULL, pump_main, d)) {
		err_set("cannot start a thread");
		close(inp[1]);
		close(outp[0]);
		d->out_fd = -1;
		run_wait(d->pid, "gpg");
		d->pid = 0;
		return -1;
	}
	d->pump_started = true;
	return 0;
fail:
	for (int k = 0; k < 2; k++) {
		if (inp[k] >= 0)
			close(inp[k]);
		if (outp[k] >= 0)
			close(outp[k]);
	}
	return -1;
}

int
codec_open_decoder(const char *name, struct source *raw, uint64_t max_out,
    struct source *out)
{
	bool ok;
	enum codec_kind kind = kind_of(name, &ok);
	struct dec *d;

	if (!ok) {
		const char *dot = strrchr(name, '.');

		err_set("cannot decode '%s': unknown extension '%s'", name,
		    dot ? dot : name);
		source_close(raw);
		return -1;
	}
	d = calloc(1, sizeof(*d));
	if (d == NULL || (kind != K_PLAIN && kind != K_GPG &&
			     (d->in = malloc(IN_SIZE)) == NULL)) {
		free(d);
		source_close(raw);
		err_set("out of memory");
		return -1;
	}
	d->kind = kind;
	d->raw = *raw;
	d->max = max_out > UINT64_MAX - 2 ? UINT64_MAX - 2 : max_out;
	d->out_fd = -1;
	raw->read = NULL;
	raw->close = NULL;
	raw->ctx = NULL;
	switch (kind) {
	case K_ZSTD:
		d->zstd = ZSTD_createDCtx();
		if (d->zstd == NULL)
			goto nomem;
		/* Refuse frames needing windows over 128 MiB of memory. */
		ZSTD_DCtx_setParameter(d->zstd, ZSTD_d_windowLogMax, 27);
		break;
	case K_GZ:
		/* 15 + 32: gzip or zlib header, detected automatically. */
		if (inflateInit2(&d->gz, 15 + 32) != Z_OK)
			goto nomem;
		d->open = false;
		/* inflateReset on the first member needs an inited stream. */
		break;
	case K_XZ: {
		lzma_stream init = LZMA_STREAM_INIT;

		d->xz = init;
		if (lzma_stream_decoder(&d->xz, (uint64_t)256 << 20,
			LZMA_CONCATENATED) != LZMA_OK)
			goto nomem;
		break;
	}
	case K_GPG:
		if (start_gpg(d)) {
			source_close(&d->raw);
			free(d);
			return -1;
		}
		break;
	case K_BZ2:
	case K_PLAIN:
		break;
	}
	out->read = dec_read;
	out->close = dec_close;
	out->ctx = d;
	return 0;
nomem:
	err_set("cannot start the decoder for '%s'", name);
	source_close(&d->raw);
	free(d->in);
	free(d);
	return -1;
}
