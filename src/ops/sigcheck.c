/*
 * sigcheck: descriptor signatures checked with gpgv (see sigcheck.h).
 *
 * gpgv gets the descriptor on standard input, writes the signed text to
 * standard output and its status lines to descriptor 3.  All three, and
 * its standard error, are anonymous memory files, so nothing can deadlock
 * on a pipe and nothing is left on disk.
 */
#include "sigcheck.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "fileio.h"

extern char **environ;

/* Status text beyond this is not believed (one signature: a few lines). */
#define STATUS_MAX ((size_t)1 << 20)

/* Normalise ${key} into upper-case hex in ${hex}.  0, or -1. */
static int
norm_key(const char *key, char hex[SIGCHECK_FPR_MAX + 1])
{
	size_t n = 0;

	if (key == NULL)
		goto bad;
	if (key[0] == '0' && (key[1] == 'x' || key[1] == 'X'))
		key += 2;
	for (; *key; key++) {
		char c = *key;

		if (c == ' ')
			continue; /* fingerprints are often printed in groups */
		if (c >= 'a' && c <= 'f')
			c = (char)(c - 'a' + 'A');
		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F')) ||
		    n >= SIGCHECK_FPR_MAX)
			goto bad;
		hex[n++] = c;
	}
	hex[n] = '\0';
	if (n == 8 || n == 16 || n == 40 || n == 64)
		return 0;
bad:
	err_set("'%.100s' is not a key ID or fingerprint (8, 16, 40 or 64 "
		"hex digits)",
	    key ? key : "");
	return -1;
}

int
sigcheck_key_valid(const char *key)
{
	char hex[SIGCHECK_FPR_MAX + 1];

	return norm_key(key, hex);
}

/* An anonymous file, above the standard descriptors and 3. */
static int
memfile(const char *name)
{
	int fd = memfd_create(name, MFD_CLOEXEC), hi;

	if (fd < 0) {
		err_setp("memfd_create");
		return -1;
	}
	hi = fcntl(fd, F_DUPFD_CLOEXEC, 10);
	close(fd);
	if (hi < 0)
		err_setp("fcntl");
	return hi;
}

/* Read all of ${fd} from its start into ${out} (bounded by out->max). */
static int
slurp(int fd, struct buf *out)
{
	if (lseek(fd, 0, SEEK_SET) < 0) {
		err_setp("lseek");
		return -1;
	}
	return fileio_read_fd(fd, out);
}

/* The keyring of ${home}: the keybox of gpg 2.1+, else the old file. */
static int
find_keyring(const char *home, struct buf *path)
{
	static const char *const names[] = { "pubring.kbx", "pubring.gpg",
		"trustedkeys.kbx", "trustedkeys.gpg" };
	struct stat sb;

	for (size_t i = 0; i < 4; i++) {
		buf_reset(path);
		if (buf_printf(path, "%s/%s", home, names[i]))
			return -1;
		if (stat(path->data, &sb) == 0 && S_ISREG(sb.st_mode))
			return 0;
	}
	err_set("no public keyring (pubring.kbx, pubring.gpg) in '%s'", home);
	return -1;
}

/* Does fingerprint ${fpr} end in ${want}? */
static bool
fpr_matches(const char *fpr, const char *want)
{
	size_t fl = strlen(fpr), wl = strlen(want);

	return fl >= wl && strcasecmp(fpr + fl - wl, want) == 0;
}

struct status {
	unsigned newsig, goodsig, validsig, badsig, errsig, other_bad;
	unsigned plaintext, error;
	bool nodata, no_pubkey;
	char fpr[SIGCHECK_FPR_MAX + 1];
	char primary[SIGCHECK_FPR_MAX + 1];
	char keyid[SIGCHECK_FPR_MAX + 1];
};

/* Copy the ${k}th space-separated word of ${s} (0 = first) to ${out}. */
static void
word(const char *s, int k, char out[SIGCHECK_FPR_MAX + 1])
{
	size_t n = 0;

	out[0] = '\0';
	for (; k > 0 && *s; k--) {
		s += strcspn(s, " ");
		s += strspn(s, " ");
	}
	while (s[n] && s[n] != ' ' && s[n] != '\n' && n < SIGCHECK_FPR_MAX) {
		out[n] = s[n];
		n++;
	}
	out[n] = '\0';
}

static void
parse_status(const char *text, struct status *st)
{
	static const char prefix[] = "[GNUPG:] ";

	memset(st, 0, sizeof(*st));
	while (*text) {
		const char *nl = strchr(text, '\n');
		const char *kw = text + sizeof(prefix) - 1;

		if (strncmp(text, prefix, sizeof(prefix) - 1) != 0)
			goto next;
#define IS(word_) (strncmp(kw, word_, strlen(word_)) == 0 && \
	(kw[strlen(word_)] == ' ' || kw[strlen(word_)] == '\n' || \
	    kw[strlen(word_)] == '\0'))
		if (IS("NEWSIG"))
			st->newsig++;
		else if (IS("PLAINTEXT"))
			st->plaintext++;
		else if (IS("ERROR"))
			st->error++;
		else if (IS("GOODSIG")) {
			st->goodsig++;
			word(kw, 1, st->keyid);
		} else if (IS("VALIDSIG")) {
			/* VALIDSIG <fpr> <date> ... <primary-fpr> */
			st->validsig++;
			word(kw, 1, st->fpr);
			word(kw, 10, st->primary);
		} else if (IS("BADSIG"))
			st->badsig++;
		else if (IS("ERRSIG")) {
			st->errsig++;
			word(kw, 1, st->keyid);
		} else if (IS("NO_PUBKEY"))
			st->no_pubkey = true;
		else if (IS("NODATA"))
			st->nodata = true;
		else if (IS("EXPSIG") || IS("EXPKEYSIG") || IS("REVKEYSIG"))
			st->other_bad++;
#undef IS
	next:
		if (nl == NULL)
			break;
		text = nl + 1;
	}
}

/* Run gpgv with the four descriptors in place.  Its exit status, or -1. */
static int
run_gpgv(char *const argv[], int in, int out, int errf, int status)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int rc, wst;

	if (posix_spawn_file_actions_init(&fa)) {
		err_set("out of memory");
		return -1;
	}
	rc = posix_spawn_file_actions_adddup2(&fa, in, 0) ||
	    posix_spawn_file_actions_adddup2(&fa, out, 1) ||
	    posix_spawn_file_actions_adddup2(&fa, errf, 2) ||
	    posix_spawn_file_actions_adddup2(&fa, status, 3);
	if (rc == 0)
		rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc) {
		errno = rc;
		err_setp("cannot run '%s' to check the signature", argv[0]);
		return -1;
	}
	while (waitpid(pid, &wst, 0) < 0) {
		if (errno != EINTR) {
			err_setp("waiting for '%s'", argv[0]);
			return -1;
		}
	}
	if (WIFEXITED(wst))
		return WEXITSTATUS(wst);
	err_set("'%s' was killed by signal %d", argv[0],
	    WIFSIGNALED(wst) ? WTERMSIG(wst) : 0);
	return -1;
}

/* The first line of gpgv's complaints, for the error message (its
 * warning about keyring locks says nothing about the descriptor). */
static void
first_line(const struct buf *b, char *out, size_t size)
{
	const char *s = buf_str(b);

	out[0] = '\0';
	while (*s) {
		size_t n = strcspn(s, "\n");

		if (!memmem(s, n, "lock for", 8)) {
			snprintf(out, size, "%.*s", (int)(n > 200 ? 200 : n),
			    s);
			return;
		}
		s += n + (s[n] ? 1 : 0);
	}
}

int
sigcheck_verify(const struct sigcheck *sc, const char *text, size_t n,
    struct buf *out, char fpr[SIGCHECK_FPR_MAX + 1])
{
	char want[SIGCHECK_FPR_MAX + 1], gerr[256];
	const char *home = sc->gpg_home;
	int fds[4] = { -1, -1, -1, -1 }; /* in, out, err, status */
	struct buf homebuf, keyring, status, errtext;
	struct status st;
	int rc = -1, ex;

	buf_init(&homebuf, PATH_MAX);
	buf_init(&keyring, PATH_MAX);
	buf_init(&status, STATUS_MAX);
	buf_init(&errtext, STATUS_MAX);
	if (norm_key(sc->key, want))
		goto out;
	/* The keyring: the named home, else gpg's own default. */
	if (home == NULL || *home == '\0')
		home = getenv("GNUPGHOME");
	if (home == NULL || *home == '\0') {
		const char *h = getenv("HOME");

		if (buf_printf(&homebuf, "%s/.gnupg", h ? h : ""))
			goto out;
		home = homebuf.data;
	}
	if (find_keyring(home, &keyring))
		goto out;
	for (int i = 0; i < 4; i++)
		if ((fds[i] = memfile("cumulus-sigcheck")) < 0)
			goto out;
	if (fileio_write_full(fds[0], text, n) || lseek(fds[0], 0, SEEK_SET)) {
		err_setp("writing the descriptor for gpgv");
		goto out;
	}
	{
		/* Writable copies: exec's argv is not const. */
		char o_home[] = "--homedir", o_ring[] = "--keyring",
		     o_status[] = "--status-fd", three[] = "3",
		     o_out[] = "--output", dash[] = "-", dash2[] = "-";
		char *prog = strdup(sc->gpgv ? sc->gpgv : "gpgv");
		char *homecopy = strdup(home);
		char *argv[] = { prog, o_home, homecopy, o_ring, keyring.data,
			o_status, three, o_out, dash, dash2, NULL };

		if (prog == NULL || homecopy == NULL) {
			err_set("out of memory");
			ex = -1;
		} else
			ex = run_gpgv(argv, fds[0], fds[1], fds[2], fds[3]);
		free(prog);
		free(homecopy);
	}
	if (ex < 0)
		goto out;
	if (slurp(fds[3], &status) || slurp(fds[2], &errtext))
		goto out;
	parse_status(buf_str(&status), &st);
	first_line(&errtext, gerr, sizeof(gerr));
	/* Refuse everything but one good signature, saying why. */
	if (st.newsig == 0 && st.goodsig == 0 && st.badsig == 0 &&
	    st.errsig == 0) {
		err_set("descriptor is not signed%s%s%s",
		    gerr[0] ? " (gpgv: " : "", gerr, gerr[0] ? ")" : "");
		goto out;
	}
	if (st.newsig > 1 || st.plaintext > 1 || st.error ||
	    st.goodsig + st.badsig + st.errsig > 1) {
		err_set("descriptor is not one signed message (more than one "
			"signature or signed text)");
		goto out;
	}
	if (st.badsig) {
		err_set("BAD signature: the descriptor was altered after "
			"signing");
		goto out;
	}
	if (st.errsig) {
		err_set("signature by key %s cannot be checked%s", st.keyid,
		    st.no_pubkey ? ": the key is not in the keyring" : "");
		goto out;
	}
	if (ex != 0 || st.goodsig != 1 || st.validsig != 1 || st.other_bad ||
	    st.fpr[0] == '\0') {
		err_set("signature does not verify (gpgv exit status %d%s%s)",
		    ex, gerr[0] ? ": " : "", gerr);
		goto out;
	}
	if (!fpr_matches(st.fpr, want) && !fpr_matches(st.primary, want)) {
		err_set("descriptor is signed by key %s, not by the required "
			"key %s",
		    st.primary[0] ? st.primary : st.fpr, want);
		goto out;
	}
	if (slurp(fds[1], out))
		goto out;
	if (fpr)
		snprintf(fpr, SIGCHECK_FPR_MAX + 1, "%s",
		    st.primary[0] ? st.primary : st.fpr);
	rc = 0;
out:
	for (int i = 0; i < 4; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	buf_release(&homebuf);
	buf_release(&keyring);
	buf_release(&status);
	buf_release(&errtext);
	return rc;
}
