/*
 * store_script: the upload-script protocol of the original program
 * (--upload-script=CMD; reference 2.10 and 5.1), as a write-only store.
 *
 * "/bin/sh -c CMD" starts once, with pipes on its standard input and
 * output (stderr and the environment are inherited).  For each finished
 * file we send "PUT <type> <name> <local-path>\n", each token %-encoded,
 * and wait for one line: exactly "OK" means the file is stored; anything
 * else, or end of file, fails the write.  The staged file is removed
 * after the answer.  Unlike the original, the helper starts before the
 * first file is sent (no race), and staged files live in $TMPDIR.
 *
 * Nothing is ever read back: stat() says absent, list() is empty, and
 * open_read() is refused, so the local database is required.
 */
#include "store_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "escape.h"
#include "fileio.h"
#include "run.h"

#define LINE_MAX_ 4096

struct script {
	char *cmd;
	pid_t pid;
	int to;   /* helper's stdin */
	int from; /* helper's stdout */
	struct buf in; /* unread answer bytes */
	bool dead;
};

static int
sc_open(const char *url, bool create, void **impl)
{
	struct script *sc;
	int in[2] = { -1, -1 }, out[2] = { -1, -1 };

	(void)create;
	sc = calloc(1, sizeof(*sc));
	if (sc == NULL || (sc->cmd = strdup(url + 7)) == NULL) {
		free(sc);
		err_set("out of memory");
		return -1;
	}
	sc->to = sc->from = -1;
	buf_init(&sc->in, LINE_MAX_ * 2);
	if (sc->cmd[0] == '\0') {
		err_set("empty upload script");
		goto fail;
	}
	run_ignore_sigpipe();
	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC)) {
		err_setp("pipe");
		goto fail;
	}
	if (run_spawn_sh(sc->cmd, in[0], out[1], &sc->pid))
		goto fail;
	close(in[0]);
	close(out[1]);
	sc->to = in[1];
	sc->from = out[0];
	*impl = sc;
	return 0;
fail:
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (out[i] >= 0)
			close(out[i]);
	}
	buf_release(&sc->in);
	free(sc->cmd);
	free(sc);
	return -1;
}

static void
sc_close(void *impl)
{
	struct script *sc = impl;

	/* End of input ends the helper; its exit status is not an error
	 * any more: every file it was given was confirmed with "OK". */
	if (sc->to >= 0)
		close(sc->to);
	if (sc->pid > 0) {
		int status;

		while (waitpid(sc->pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	if (sc->from >= 0)
		close(sc->from);
	buf_release(&sc->in);
	free(sc->cmd);
	free(sc);
}

/* The protocol's file type, from the name (0.9 types). */
static const char *
file_type(const char *name)
{
	const char *base = strrchr(name, '/');
	size_t l;

	base = base ? base + 1 : name;
	l = strlen(base);
	if (strncmp(base, "snapshot-", 9) == 0) {
		if (l > 4 && strcmp(base + l - 4, ".lbs") == 0)
			return "snapshots";
		if (l > 8 && strcmp(base + l - 8, ".cumulus") == 0)
			return "snapshots";
		if (strstr(base, ".meta"))
			return "meta";
		return "checksums";
	}
	return "segments";
}

/*
 * The answers are parsed by the two pure functions below (declared in
 * store_backend.h) so that tests/fuzz/fuzz_script.c can feed them any
 * bytes a hostile or broken helper might write.
 */
int
store_script_parse_reply(struct buf *in, struct buf *line)
{
	char *nl = in->len ? memchr(in->data, '\n', in->len) : NULL;
	size_t l, drop;

	if (nl == NULL)
		return 0;
	drop = (size_t)(nl - in->data) + 1;
	l = drop - 1;
	/* A helper written for a CRLF world still answers "OK\r\n". */
	if (l && in->data[l - 1] == '\r')
		l--;
	buf_reset(line);
	if (buf_append(line, in->data, l)) {
		err_set("upload script: answer line too long");
		return -1;
	}
	memmove(in->data, in->data + drop, in->len - drop);
	in->len -= drop;
	return 1;
}

bool
store_script_reply_ok(const struct buf *line)
{
	/* Exactly "OK": an embedded NUL ("OK\0junk") is not an OK. */
	return line->len == 2 && memcmp(line->data, "OK", 2) == 0;
}

/* One answer line, without its newline.  0, or -1 at EOF or error. */
static int
read_line(struct script *sc, struct buf *line)
{
	for (;;) {
		char tmp[512];
		ssize_t n;
		int r = store_script_parse_reply(&sc->in, line);

		if (r)
			return r > 0 ? 0 : -1;
		n = read(sc->from, tmp, sizeof(tmp));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err_setp("error reading response from upload script");
			return -1;
		}
		if (n == 0) {
			err_set("error reading response from upload script "
				"(it exited)");
			return -1;
		}
		if (buf_append(&sc->in, tmp, (size_t)n)) {
			err_set("upload script: answer line too long");
			return -1;
		}
	}
}

static int
sc_put(void *impl, const char *name, int fd, const char *path,
    bool noreplace)
{
	struct script *sc = impl;
	struct buf cmd, line;
	const char *type = file_type(name);
	int rc = -1;

	(void)noreplace;
	if (sc->dead) {
		err_set("upload script: stopped after an earlier error");
		return -1;
	}
	/* The helper reads the file by name: make it durable first, as
	 * it may hand the bytes on from another process. */
	if (fsync(fd)) {
		err_setp("staged file for '%s'", name);
		return -1;
	}
	buf_init(&cmd, 1 << 16);
	buf_init(&line, LINE_MAX_);
	if (buf_puts(&cmd, "PUT ") || escape_encode(&cmd, type, strlen(type)) ||
	    buf_putc(&cmd, ' ') || escape_encode(&cmd, name, strlen(name)) ||
	    buf_putc(&cmd, ' ') || escape_encode(&cmd, path, strlen(path)) ||
	    buf_putc(&cmd, '\n'))
		goto out;
	if (fileio_write_full(sc->to, cmd.data, cmd.len)) {
		err_prefix("cannot send to the upload script");
		sc->dead = true;
		goto out;
	}
	if (read_line(sc, &line)) {
		sc->dead = true;
		goto out;
	}
	if (!store_script_reply_ok(&line)) {
		err_set("error response from upload script for '%s': '%.200s'",
		    name, buf_str(&line));
		sc->dead = true;
		goto out;
	}
	rc = 0;
out:
	buf_release(&cmd);
	buf_release(&line);
	return rc;
}

static int
sc_stat(void *impl, const char *name, uint64_t *size)
{
	(void)impl;
	(void)name;
	(void)size;
	return 1;
}

static int
sc_del(void *impl, const char *name)
{
	(void)impl;
	err_set("'%s': an upload script cannot delete files", name);
	return -1;
}

static int
sc_list(void *impl, const char *dir, store_list_cb cb, void *arg)
{
	(void)impl;
	(void)dir;
	(void)cb;
	(void)arg;
	return 0;
}

const struct store_ops store_script_ops = {
	.scheme = "script:",
	.open = sc_open,
	.close = sc_close,
	.put = sc_put,
	.put_needs_path = true,
	.default_jobs = 1,
	.max_jobs = 1,
	.stat = sc_stat,
	.del = sc_del,
	.list = sc_list,
};
