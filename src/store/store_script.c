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
 * The helper is untrusted to behave: an answer or its exit after the end
 * of input may take at most CUMULUS_SCRIPT_TIMEOUT seconds (default an
 * hour), then it is killed; whatever it prints after its last answer is
 * read and dropped, so a chatty helper cannot block on a full pipe while
 * we wait for it.  As in the original, a non-zero exit status after the
 * last file is reported (store_finish()), not ignored.
 *
 * Nothing is ever read back: stat() says absent, list() is empty, and
 * open_read() is refused, so the local database is required.
 */
#include "store_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "escape.h"
#include "fileio.h"
#include "run.h"

#define LINE_MAX_ 4096
#define TIMEOUT_DEFAULT_S 3600
/* After a failure elsewhere the helper has nothing left to do. */
#define ABORT_GRACE_MS 10000

struct script {
	char *cmd;
	pid_t pid;
	int to;   /* helper's stdin */
	int from; /* helper's stdout */
	struct buf in; /* unread answer bytes */
	int timeout_ms; /* for one answer, or for the exit after the end */
	bool dead;
	bool finished; /* store_finish() waited for the helper */
};

/* CUMULUS_SCRIPT_TIMEOUT in milliseconds, or -1 if it is malformed. */
static int
timeout_setting(void)
{
	const char *v = getenv("CUMULUS_SCRIPT_TIMEOUT");
	char *end;
	long s;

	if (v == NULL || *v == '\0')
		return TIMEOUT_DEFAULT_S * 1000;
	errno = 0;
	s = strtol(v, &end, 10);
	if (errno || *end || s < 1 || s > INT_MAX / 1000) {
		err_set("CUMULUS_SCRIPT_TIMEOUT must be a number of seconds "
			"from 1 to %d, not '%.40s'",
		    INT_MAX / 1000, v);
		return -1;
	}
	return (int)(s * 1000);
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until ${fd} is readable, or until ${deadline} (now_ms()).  0 when
 * readable (or at end of file), 1 at the deadline, -1 on error. */
static int
wait_readable(int fd, int64_t deadline)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int64_t left = deadline - now_ms();
		int r;

		if (left <= 0)
			return 1;
		r = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR) {
			err_setp("waiting for the upload script");
			return -1;
		}
	}
}

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
	if ((sc->timeout_ms = timeout_setting()) < 0)
		goto fail;
	if (sc->cmd[0] == '\0') {
		err_set("empty upload script");
		goto fail;
	}
	run_ignore_sigpipe();
	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC)) {
		err_setp("pipe");
		goto fail;
	}
	if (run_spawn_sh_group(sc->cmd, in[0], out[1], &sc->pid))
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

/*
 * End of input ends the helper.  Until it exits, read and drop what it
 * still prints (it may block writing otherwise), for at most the
 * timeout in all; then wait for its exit in what is left of it.
 */
static int
end_helper(struct script *sc, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	int rc;

	if (sc->to >= 0) {
		close(sc->to);
		sc->to = -1;
	}
	while (sc->from >= 0) {
		char tmp[4096];
		ssize_t n;

		if (wait_readable(sc->from, deadline))
			break; /* its exit wait below kills it */
		n = read(sc->from, tmp, sizeof(tmp));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
	}
	if (sc->from >= 0) {
		close(sc->from);
		sc->from = -1;
	}
	if (sc->pid <= 0)
		return 0;
	{
		int64_t left = deadline - now_ms();

		rc = run_wait_timeout(sc->pid, "upload script",
		    left < 1 ? 1 : (int)left);
	}
	if (rc == -2)
		err_set("upload script did not exit within %d s of the end of "
			"its input, and was killed",
		    timeout_ms / 1000);
	sc->pid = 0;
	return rc;
}

static int
sc_finish(void *impl)
{
	struct script *sc = impl;

	sc->dead = true; /* nothing may be sent after this */
	sc->finished = true;
	return end_helper(sc, sc->timeout_ms);
}

static void
sc_close(void *impl)
{
	struct script *sc = impl;

	/* Not finished: the backup failed, and the helper's status adds
	 * nothing to that error. */
	if (!sc->finished) {
		char *saved = strdup(err_msg());

		end_helper(sc, sc->timeout_ms < ABORT_GRACE_MS ?
			sc->timeout_ms : ABORT_GRACE_MS);
		if (saved) /* already escaped: recording it again is a copy */
			err_set("%s", saved);
		free(saved);
	}
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
	const int64_t deadline = now_ms() + sc->timeout_ms;

	for (;;) {
		char tmp[512];
		ssize_t n;
		int r = store_script_parse_reply(&sc->in, line);

		if (r)
			return r > 0 ? 0 : -1;
		r = wait_readable(sc->from, deadline);
		if (r > 0) {
			err_set("no response from upload script within %d s",
			    sc->timeout_ms / 1000);
			return -1;
		}
		if (r < 0)
			return -1;
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
	.finish = sc_finish,
	.put = sc_put,
	.put_needs_path = true,
	.default_jobs = 1,
	.max_jobs = 1,
	.stat = sc_stat,
	.del = sc_del,
	.list = sc_list,
};
