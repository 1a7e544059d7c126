/*
 * store_sftp: a directory on an SSH server, through libssh2's SFTP.  The
 * only file that includes libssh2.
 *
 * URL sftp://[USER@]HOST[:PORT]/PATH: PATH is absolute on the server;
 * sftp://HOST/~/PATH is relative to the login directory (sftp://HOST/~
 * is the login directory itself).  %XX escapes are decoded in USER and
 * PATH; an IPv6 address is written in brackets.  USER defaults to the
 * local user, PORT to 22.
 *
 * Host key: checked against ~/.ssh/known_hosts (CUMULUS_SSH_KNOWN_HOSTS
 * names another file); an unknown or changed key is refused, never
 * learned.  Authentication is by public key only: every identity of
 * ssh-agent (if SSH_AUTH_SOCK is set), then the key file named by
 * CUMULUS_SSH_KEY or else ~/.ssh/id_ed25519, id_ecdsa and id_rsa (key
 * files without a passphrase; encrypted keys go through the agent).
 * CUMULUS_SFTP_TIMEOUT (seconds, default 60) bounds connecting and every
 * blocking exchange.
 *
 * Writes: the bytes go to a temp name (".tmp.NAME.RANDOM") in the target
 * directory, are fsynced when the server offers fsync@openssh.com, their
 * size is checked, then renamed to the final name.  SFTP's plain rename
 * never replaces an existing file on OpenSSH (it links), and with
 * noreplace the name is also checked first, for servers whose rename
 * would overwrite.  A replacing write removes the old file just before
 * its rename.
 *
 * libssh2 sessions are not thread-safe: each connection is used by one
 * thread at a time, taken from a pool (one is opened per concurrent
 * upload, and kept for the next call).  A pooled connection the server
 * dropped is replaced once, transparently.
 */
#include "store_backend.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libssh2.h>
#include <libssh2_sftp.h>
#include <openssl/evp.h>

#include "buf.h"
#include "err.h"
#include "fileio.h"

#define IO_SIZE (256 * 1024)
#define NAME_MAX_SFTP 1024

/* One SSH connection with its SFTP channel; one thread uses it at a time. */
struct conn {
	struct conn *next;
	int sock;
	LIBSSH2_SESSION *ss;
	LIBSSH2_SFTP *sftp;
	bool dead; /* transport error: never reuse */
};

struct sftp_store {
	char *user, *host;
	int port;
	char *prefix;  /* "" (login directory), "rel/" or "/abs/" */
	char *display; /* "sftp://user@host:port", for messages */
	long timeout_ms;
	pthread_mutex_t mu;
	struct conn *pool;
};

static pthread_once_t ssh_once = PTHREAD_ONCE_INIT;
static int ssh_init_rc;
static atomic_uint tmp_counter;

static void
ssh_init(void)
{
	ssh_init_rc = libssh2_init(0);
}

/* ---- URL ---- */

static int
hexdigit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode %XX escapes of ${s}[0..n); controls (and NUL) are refused. */
static char *
url_decode(const char *s, size_t n)
{
	char *out = malloc(n + 1), *o = out;

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];

		if (c == '%' && i + 2 < n && hexdigit(s[i + 1]) >= 0 &&
		    hexdigit(s[i + 2]) >= 0) {
			c = hexdigit(s[i + 1]) * 16 + hexdigit(s[i + 2]);
			i += 2;
		}
		if (c < 0x20 || c == 0x7f) {
			free(out);
			errno = EINVAL;
			return NULL;
		}
		*o++ = (char)c;
	}
	*o = '\0';
	return out;
}

static int
parse_url(struct sftp_store *s, const char *url)
{
	const char *p = url + 7, *at, *slash, *hend, *port = NULL;
	char *path = NULL;
	struct buf b;
	int rc = -1;

	slash = strchr(p, '/');
	if (slash == NULL) {
		err_set("store URL '%.200s': no path (sftp://[USER@]HOST"
			"[:PORT]/PATH, or /~/PATH for one relative to the "
			"login directory)",
		    url);
		return -1;
	}
	at = memchr(p, '@', (size_t)(slash - p));
	if (at) {
		s->user = url_decode(p, (size_t)(at - p));
		if (s->user == NULL || s->user[0] == '\0')
			goto bad;
		p = at + 1;
	}
	if (*p == '[') {
		hend = memchr(p, ']', (size_t)(slash - p));
		if (hend == NULL)
			goto bad;
		s->host = strndup(p + 1, (size_t)(hend - p - 1));
		hend++;
	} else {
		hend = memchr(p, ':', (size_t)(slash - p));
		if (hend == NULL)
			hend = slash;
		s->host = strndup(p, (size_t)(hend - p));
	}
	if (s->host == NULL || s->host[0] == '\0' ||
	    strspn(s->host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVW"
			    "XYZ0123456789.-_:%") != strlen(s->host))
		goto bad;
	s->port = 22;
	if (hend < slash) {
		char *end;
		long v;

		if (*hend != ':')
			goto bad;
		port = hend + 1;
		v = strtol(port, &end, 10);
		if (end != slash || end == port || v < 1 || v > 65535)
			goto bad;
		s->port = (int)v;
	}
	path = url_decode(slash, strlen(slash));
	if (path == NULL)
		goto bad;
	/* The prefix: no doubled slashes, ends in '/' unless empty. */
	buf_init(&b, 8192);
	{
		const char *q = path;

		if (strcmp(q, "/~") == 0 || strncmp(q, "/~/", 3) == 0)
			q += 2; /* relative to the login directory */
		else if (buf_putc(&b, '/'))
			goto out_b;
		for (; *q; q++) {
			if (*q == '/' && (b.len == 0 || b.data[b.len - 1] == '/'))
				continue;
			if (buf_putc(&b, *q))
				goto out_b;
		}
		if (b.len && b.data[b.len - 1] != '/' && buf_putc(&b, '/'))
			goto out_b;
	}
	s->prefix = b.len ? buf_detach(&b, NULL) : strdup("");
	if (s->prefix == NULL) {
		err_set("out of memory");
		goto out_b;
	}
	rc = 0;
out_b:
	buf_release(&b);
	free(path);
	return rc;
bad:
	free(path);
	err_set("store URL '%.200s': expected sftp://[USER@]HOST[:PORT]/PATH",
	    url);
	return -1;
}

/* ---- errors ---- */

static const char *
fx_text(unsigned long st)
{
	switch (st) {
	case LIBSSH2_FX_EOF: return "end of file";
	case LIBSSH2_FX_NO_SUCH_FILE: return "no such file";
	case LIBSSH2_FX_PERMISSION_DENIED: return "permission denied";
	case LIBSSH2_FX_FAILURE: return "failure";
	case LIBSSH2_FX_BAD_MESSAGE: return "bad message";
	case LIBSSH2_FX_NO_CONNECTION: return "no connection";
	case LIBSSH2_FX_CONNECTION_LOST: return "connection lost";
	case LIBSSH2_FX_OP_UNSUPPORTED: return "operation unsupported";
	case LIBSSH2_FX_INVALID_HANDLE: return "invalid handle";
	case LIBSSH2_FX_NO_SUCH_PATH: return "no such path";
	case LIBSSH2_FX_FILE_ALREADY_EXISTS: return "file already exists";
	case LIBSSH2_FX_WRITE_PROTECT: return "write protected";
	case LIBSSH2_FX_NO_MEDIA: return "no media";
	case LIBSSH2_FX_NO_SPACE_ON_FILESYSTEM: return "no space left";
	case LIBSSH2_FX_QUOTA_EXCEEDED: return "quota exceeded";
	case LIBSSH2_FX_DIR_NOT_EMPTY: return "directory not empty";
	case LIBSSH2_FX_NOT_A_DIRECTORY: return "not a directory";
	case LIBSSH2_FX_INVALID_FILENAME: return "invalid file name";
	case LIBSSH2_FX_LINK_LOOP: return "too many symbolic links";
	default: return "error";
	}
}

/* The SFTP status of the last failed call, or -1 if it was not a status
 * answer (a transport or protocol error). */
static long
fx_status(struct conn *c)
{
	if (libssh2_session_last_errno(c->ss) != LIBSSH2_ERROR_SFTP_PROTOCOL)
		return -1;
	return (long)libssh2_sftp_last_error(c->sftp);
}

/*
 * Record the error of the last failed call on ${c} about ${path}, and
 * mark the connection dead unless the server answered with a status.
 * Returns -1.
 */
static int
fail(const struct sftp_store *s, struct conn *c, const char *what,
    const char *path)
{
	long st = fx_status(c);
	char *msg = NULL;

	if (st >= 0) {
		err_set("%s%s%s: %s: %s (SFTP status %ld)", s->display,
		    path[0] == '/' ? "" : "/~/", path, what,
		    fx_text((unsigned long)st), st);
		return -1;
	}
	libssh2_session_last_error(c->ss, &msg, NULL, 0);
	c->dead = true;
	err_set("%s%s%s: %s: %s", s->display, path[0] == '/' ? "" : "/~/",
	    path, what, msg && msg[0] ? msg : "connection failed");
	return -1;
}

/* ---- connections ---- */

static void
conn_close(struct conn *c)
{
	if (c == NULL)
		return;
	if (c->sftp)
		libssh2_sftp_shutdown(c->sftp);
	if (c->ss) {
		if (!c->dead)
			libssh2_session_disconnect(c->ss, "done");
		libssh2_session_free(c->ss);
	}
	if (c->sock >= 0)
		close(c->sock);
	free(c);
}

/* TCP connection within the timeout; -1 with the error recorded. */
static int
tcp_connect(const struct sftp_store *s)
{
	struct addrinfo hints, *res = NULL, *ai;
	char portstr[16];
	int fd = -1, e, saved = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(portstr, sizeof(portstr), "%d", s->port);
	e = getaddrinfo(s->host, portstr, &hints, &res);
	if (e) {
		err_set("%s: cannot resolve '%s': %s", s->display, s->host,
		    gai_strerror(e));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		struct pollfd pfd;
		socklen_t sl = sizeof(e);
		int one = 1, flags;

		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		    ai->ai_protocol);
		if (fd < 0) {
			saved = errno;
			continue;
		}
		/* Non-blocking connect, so the timeout bounds it too. */
		flags = fcntl(fd, F_GETFL);
		fcntl(fd, F_SETFL, flags | O_NONBLOCK);
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			e = 0;
		else if (errno != EINPROGRESS)
			e = errno;
		else {
			pfd.fd = fd;
			pfd.events = POLLOUT;
			e = poll(&pfd, 1, (int)s->timeout_ms);
			if (e == 0)
				e = ETIMEDOUT;
			else if (e < 0)
				e = errno;
			else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &sl))
				e = errno;
		}
		if (e == 0) {
			fcntl(fd, F_SETFL, flags);
			/* Small requests go out at once: SFTP is chatty. */
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
			    sizeof(one));
			break;
		}
		saved = e;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		errno = saved ? saved : ECONNREFUSED;
		err_setp("%s: cannot connect", s->display);
	}
	return fd;
}

static int
knownhost_type(int hostkey_type, const char **methods)
{
	switch (hostkey_type) {
	case LIBSSH2_HOSTKEY_TYPE_RSA:
		*methods = "rsa-sha2-512,rsa-sha2-256,ssh-rsa";
		return LIBSSH2_KNOWNHOST_KEY_SSHRSA;
	case LIBSSH2_HOSTKEY_TYPE_DSS:
		*methods = "ssh-dss";
		return LIBSSH2_KNOWNHOST_KEY_SSHDSS;
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_256:
		*methods = "ecdsa-sha2-nistp256";
		return LIBSSH2_KNOWNHOST_KEY_ECDSA_256;
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_384:
		*methods = "ecdsa-sha2-nistp384";
		return LIBSSH2_KNOWNHOST_KEY_ECDSA_384;
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_521:
		*methods = "ecdsa-sha2-nistp521";
		return LIBSSH2_KNOWNHOST_KEY_ECDSA_521;
	case LIBSSH2_HOSTKEY_TYPE_ED25519:
		*methods = "ssh-ed25519";
		return LIBSSH2_KNOWNHOST_KEY_ED25519;
	default:
		*methods = NULL;
		return LIBSSH2_KNOWNHOST_KEY_UNKNOWN;
	}
}

/*
 * Load the known_hosts file into ${kh}, line by line: a line libssh2
 * cannot parse (markers, unknown key types) is skipped rather than
 * ending the file.  Sets *path to the file's name.  -1 if it cannot be
 * read (a missing file is an empty one).
 */
static int
load_known_hosts(const struct sftp_store *s, LIBSSH2_SESSION *ss,
    LIBSSH2_KNOWNHOSTS *kh, char **path)
{
	const char *env = getenv("CUMULUS_SSH_KNOWN_HOSTS");
	const char *home = getenv("HOME");
	FILE *f;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	(void)ss;
	if (env && env[0])
		*path = strdup(env);
	else if (asprintf(path, "%s/.ssh/known_hosts",
		     home && home[0] ? home : "/") < 0)
		*path = NULL;
	if (*path == NULL) {
		err_set("out of memory");
		return -1;
	}
	f = fopen(*path, "re");
	if (f == NULL) {
		if (errno == ENOENT)
			return 0;
		err_setp("%s: cannot read %s", s->display, *path);
		return -1;
	}
	while ((n = getline(&line, &cap, f)) > 0)
		if (line[0] != '#' && line[0] != '@' && line[0] != '\n')
			libssh2_knownhost_readline(kh, line, (size_t)n,
			    LIBSSH2_KNOWNHOST_FILE_OPENSSH);
	free(line);
	fclose(f);
	return 0;
}

/*
 * Prefer the host key types known_hosts holds for this host (as OpenSSH
 * does): otherwise the server may present a type we have no entry for.
 * A probe with a dummy key answers MISMATCH exactly when an entry of
 * that type exists (hashed host names included).
 */
static void
prefer_known_types(const struct sftp_store *s, LIBSSH2_SESSION *ss,
    LIBSSH2_KNOWNHOSTS *kh)
{
	static const int order[] = { LIBSSH2_HOSTKEY_TYPE_ED25519,
		LIBSSH2_HOSTKEY_TYPE_ECDSA_256, LIBSSH2_HOSTKEY_TYPE_ECDSA_384,
		LIBSSH2_HOSTKEY_TYPE_ECDSA_521, LIBSSH2_HOSTKEY_TYPE_RSA,
		LIBSSH2_HOSTKEY_TYPE_DSS };
	char pref[512] = "";

	for (size_t i = 0; i < sizeof(order) / sizeof(*order); i++) {
		const char *m;
		int t = knownhost_type(order[i], &m);
		int r = libssh2_knownhost_checkp(kh, s->host, s->port, "\1", 1,
		    LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW |
			t,
		    NULL);

		if (r == LIBSSH2_KNOWNHOST_CHECK_MISMATCH &&
		    strlen(pref) + strlen(m) + 2 < sizeof(pref)) {
			if (pref[0])
				strcat(pref, ",");
			strcat(pref, m);
		}
	}
	/* Unsupported names are dropped by libssh2; failure keeps its
	 * defaults, and the check below still decides. */
	if (pref[0])
		libssh2_session_method_pref(ss, LIBSSH2_METHOD_HOSTKEY, pref);
}

/* "SHA256:base64", as ssh-keygen -l prints it. */
static void
fingerprint(LIBSSH2_SESSION *ss, char out[64])
{
	const unsigned char *h = (const unsigned char *)libssh2_hostkey_hash(ss,
	    LIBSSH2_HOSTKEY_HASH_SHA256);
	int n;

	strcpy(out, "SHA256:");
	if (h == NULL) {
		strcat(out, "?");
		return;
	}
	n = EVP_EncodeBlock((unsigned char *)out + 7, h, 32);
	while (n > 0 && out[7 + n - 1] == '=')
		out[7 + --n] = '\0';
}

/* Check the server's host key against known_hosts; 0 or -1. */
static int
check_host_key(const struct sftp_store *s, LIBSSH2_SESSION *ss,
    LIBSSH2_KNOWNHOSTS *kh, const char *khpath)
{
	const char *key, *m;
	size_t len;
	int type, r;
	char fp[64];

	key = libssh2_session_hostkey(ss, &len, &type);
	if (key == NULL) {
		err_set("%s: the server sent no host key", s->display);
		return -1;
	}
	fingerprint(ss, fp);
	r = libssh2_knownhost_checkp(kh, s->host, s->port, key, len,
	    LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW |
		knownhost_type(type, &m),
	    NULL);
	switch (r) {
	case LIBSSH2_KNOWNHOST_CHECK_MATCH:
		return 0;
	case LIBSSH2_KNOWNHOST_CHECK_MISMATCH:
		err_set("%s: HOST KEY CHANGED: the %s key %s does not match "
			"%s (someone may be intercepting the connection; if "
			"the key really changed, fix that file); refusing to "
			"connect",
		    s->display, m ? m : "host", fp, khpath);
		return -1;
	case LIBSSH2_KNOWNHOST_CHECK_NOTFOUND:
		err_set("%s: unknown host key (%s %s): not in %s; refusing to "
			"connect (verify the fingerprint, then add the key, "
			"e.g. by connecting once with ssh, or set "
			"CUMULUS_SSH_KNOWN_HOSTS)",
		    s->display, m ? m : "unknown type", fp, khpath);
		return -1;
	default:
		err_set("%s: cannot check the host key against %s", s->display,
		    khpath);
		return -1;
	}
}

/* Authenticate with the agent's keys, then key files; 0 or -1. */
static int
authenticate(const struct sftp_store *s, LIBSSH2_SESSION *ss)
{
	const char *ulist, *home = getenv("HOME"), *env;
	const char *defaults[] = { "id_ed25519", "id_ecdsa", "id_rsa" };
	unsigned ulen = (unsigned)strlen(s->user);
	struct buf tried;
	int rc = -1;

	ulist = libssh2_userauth_list(ss, s->user, ulen);
	if (ulist == NULL) {
		if (libssh2_userauth_authenticated(ss))
			return 0; /* "none" was accepted */
		err_set("%s: the server closed the connection during "
			"authentication",
		    s->display);
		return -1;
	}
	if (strstr(ulist, "publickey") == NULL) {
		err_set("%s: the server does not accept public keys for '%s' "
			"(it offers: %.100s)",
		    s->display, s->user, ulist);
		return -1;
	}
	buf_init(&tried, 8192);
	/* The agent first: it also holds keys with passphrases. */
	env = getenv("SSH_AUTH_SOCK");
	if (env && env[0]) {
		LIBSSH2_AGENT *ag = libssh2_agent_init(ss);
		struct libssh2_agent_publickey *id = NULL, *prev = NULL;
		unsigned n = 0;

		if (ag && libssh2_agent_connect(ag) == 0 &&
		    libssh2_agent_list_identities(ag) == 0) {
			while (libssh2_agent_get_identity(ag, &id, prev) == 0) {
				n++;
				if (libssh2_agent_userauth(ag, s->user, id) == 0) {
					rc = 0;
					break;
				}
				prev = id;
			}
			buf_printf(&tried, "ssh-agent (%u key%s)", n,
			    n == 1 ? "" : "s");
		} else {
			buf_puts(&tried, "ssh-agent (unreachable)");
		}
		if (ag) {
			libssh2_agent_disconnect(ag);
			libssh2_agent_free(ag);
		}
	}
	env = getenv("CUMULUS_SSH_KEY");
	for (size_t i = 0; rc != 0 && i < 3; i++) {
		char *key = NULL;

		if (env && env[0]) {
			if (i > 0)
				break;
			key = strdup(env);
		} else if (asprintf(&key, "%s/.ssh/%s",
			       home && home[0] ? home : "/", defaults[i]) < 0) {
			key = NULL;
		}
		if (key == NULL)
			break;
		if (access(key, R_OK) == 0 || (env && env[0])) {
			buf_printf(&tried, "%s%s", tried.len ? ", " : "", key);
			if (libssh2_userauth_publickey_fromfile_ex(ss, s->user,
				ulen, NULL, key, NULL) == 0)
				rc = 0;
			else if (access(key, R_OK) != 0)
				buf_puts(&tried, " (unreadable)");
		}
		free(key);
	}
	if (rc != 0)
		err_set("%s: authentication refused for user '%s' (tried: %s); "
			"load a key into ssh-agent or set CUMULUS_SSH_KEY "
			"(key files must have no passphrase)",
		    s->display, s->user, tried.len ? buf_str(&tried) : "no key");
	buf_release(&tried);
	return rc;
}

/* A new connection, host key checked and authenticated. */
static struct conn *
conn_open(const struct sftp_store *s)
{
	struct conn *c = calloc(1, sizeof(*c));
	LIBSSH2_KNOWNHOSTS *kh = NULL;
	char *khpath = NULL, *msg = NULL;

	if (c == NULL) {
		err_set("out of memory");
		return NULL;
	}
	c->sock = tcp_connect(s);
	if (c->sock < 0)
		goto fail;
	c->ss = libssh2_session_init();
	if (c->ss == NULL) {
		err_set("%s: cannot start an SSH session", s->display);
		goto fail;
	}
	libssh2_session_set_blocking(c->ss, 1);
	libssh2_session_set_timeout(c->ss, s->timeout_ms);
	kh = libssh2_knownhost_init(c->ss);
	if (kh == NULL) {
		err_set("out of memory");
		goto fail;
	}
	if (load_known_hosts(s, c->ss, kh, &khpath))
		goto fail;
	prefer_known_types(s, c->ss, kh);
	if (libssh2_session_handshake(c->ss, c->sock)) {
		libssh2_session_last_error(c->ss, &msg, NULL, 0);
		err_set("%s: SSH handshake failed: %s", s->display,
		    msg && msg[0] ? msg : "unknown error");
		c->dead = true;
		goto fail;
	}
	if (check_host_key(s, c->ss, kh, khpath) || authenticate(s, c->ss))
		goto fail;
	c->sftp = libssh2_sftp_init(c->ss);
	if (c->sftp == NULL) {
		libssh2_session_last_error(c->ss, &msg, NULL, 0);
		err_set("%s: cannot start SFTP (is the sftp subsystem "
			"enabled?): %s",
		    s->display, msg && msg[0] ? msg : "unknown error");
		goto fail;
	}
	libssh2_knownhost_free(kh);
	free(khpath);
	return c;
fail:
	if (kh)
		libssh2_knownhost_free(kh);
	free(khpath);
	conn_close(c);
	return NULL;
}

/* A connection from the pool, or a new one (*reused says which). */
static struct conn *
conn_get(struct sftp_store *s, bool *reused)
{
	struct conn *c;

	pthread_mutex_lock(&s->mu);
	c = s->pool;
	if (c)
		s->pool = c->next;
	pthread_mutex_unlock(&s->mu);
	*reused = c != NULL;
	if (c == NULL)
		c = conn_open(s);
	if (c)
		c->next = NULL;
	return c;
}

static void
conn_put(struct sftp_store *s, struct conn *c)
{
	if (c->dead) {
		conn_close(c);
		return;
	}
	pthread_mutex_lock(&s->mu);
	c->next = s->pool;
	s->pool = c;
	pthread_mutex_unlock(&s->mu);
}

typedef int (*op_fn)(struct sftp_store *s, struct conn *c, void *arg);

/*
 * Run ${fn} on a connection.  A pooled connection may have been closed by
 * the server since its last use: if it fails at the transport level, the
 * operation runs once more on a fresh connection (every operation here
 * can be repeated).
 */
static int
run_op(struct sftp_store *s, op_fn fn, void *arg)
{
	bool reused;
	struct conn *c = conn_get(s, &reused);
	int rc;

	if (c == NULL)
		return -1;
	rc = fn(s, c, arg);
	if (rc < 0 && c->dead && reused) {
		conn_close(c);
		c = conn_get(s, &reused);
		if (c == NULL)
			return -1;
		rc = fn(s, c, arg);
	}
	conn_put(s, c);
	return rc;
}

/* ---- paths ---- */

/* ${prefix}${name} (or "." for the login directory itself). */
static char *
full_path(const struct sftp_store *s, const char *name)
{
	char *p;

	if (name[0] == '\0' && s->prefix[0] == '\0')
		return strdup(".");
	if (asprintf(&p, "%s%s", s->prefix, name) < 0)
		return NULL;
	/* "dir/" -> "dir": servers accept both, messages read better. */
	if (p[0] && p[1] && p[strlen(p) - 1] == '/')
		p[strlen(p) - 1] = '\0';
	return p;
}

/* stat ${path}: 0 with *attrs, 1 if absent, -1 on error. */
static int
stat_path(const struct sftp_store *s, struct conn *c, const char *path,
    LIBSSH2_SFTP_ATTRIBUTES *attrs)
{
	long st;

	if (libssh2_sftp_stat_ex(c->sftp, path, (unsigned)strlen(path),
		LIBSSH2_SFTP_STAT, attrs) == 0)
		return 0;
	st = fx_status(c);
	if (st == (long)LIBSSH2_FX_NO_SUCH_FILE ||
	    st == (long)LIBSSH2_FX_NO_SUCH_PATH ||
	    st == (long)LIBSSH2_FX_NOT_A_DIRECTORY)
		return 1;
	return fail(s, c, "stat", path);
}

static bool
is_dir(const LIBSSH2_SFTP_ATTRIBUTES *a)
{
	return (a->flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) &&
	    LIBSSH2_SFTP_S_ISDIR(a->permissions);
}

/* mkdir -p ${dir} on the server; 0 or -1. */
static int
mkdir_p(const struct sftp_store *s, struct conn *c, const char *dir)
{
	LIBSSH2_SFTP_ATTRIBUTES a;
	char *p = strdup(dir);
	int rc = -1, r;

	if (p == NULL) {
		err_set("out of memory");
		return -1;
	}
	/* Usually there already: one round trip. */
	r = stat_path(s, c, p, &a);
	if (r == 0 && is_dir(&a)) {
		free(p);
		return 0;
	}
	if (r < 0)
		goto out;
	for (char *q = p + 1;; q++) {
		if (*q != '/' && *q != '\0')
			continue;
		char save = *q;

		*q = '\0';
		r = stat_path(s, c, p, &a);
		if (r < 0)
			goto out;
		if (r == 0 && !is_dir(&a)) {
			err_set("%s%s%s: not a directory", s->display,
			    p[0] == '/' ? "" : "/~/", p);
			goto out;
		}
		if (r == 1 && libssh2_sftp_mkdir_ex(c->sftp, p,
				  (unsigned)strlen(p), 0755) != 0) {
			long st = fx_status(c);

			/* Unless a concurrent writer made it meanwhile. */
			if (st < 0 || stat_path(s, c, p, &a) != 0 ||
			    !is_dir(&a)) {
				if (!c->dead)
					err_set("%s%s%s: cannot create the "
						"directory: %s",
					    s->display,
					    p[0] == '/' ? "" : "/~/", p,
					    fx_text((unsigned long)st));
				else if (st < 0)
					fail(s, c, "mkdir", p);
				goto out;
			}
		}
		*q = save;
		if (save == '\0')
			break;
	}
	rc = 0;
out:
	free(p);
	return rc;
}

/* ---- operations ---- */

struct put_arg {
	const char *name;
	int fd;
	uint64_t size;
	bool noreplace;
};

/* Upload the staged file to a temp name; 0, or -1 (${h} closed). */
static int
upload(struct sftp_store *s, struct conn *c, LIBSSH2_SFTP_HANDLE *h,
    const struct put_arg *a, const char *tmp)
{
	LIBSSH2_SFTP_ATTRIBUTES at;
	char *io = malloc(IO_SIZE);
	uint64_t off = 0;
	int rc = -1;

	if (io == NULL) {
		err_set("out of memory");
		goto out;
	}
	while (off < a->size) {
		size_t want = a->size - off < IO_SIZE ? (size_t)(a->size - off)
						     : IO_SIZE;
		ssize_t n = fileio_pread_full(a->fd, io, want, (off_t)off);

		if (n < 0 || (size_t)n != want) {
			if (n >= 0)
				err_set("staged file for '%s' shrank", a->name);
			else
				err_prefix("staged file for '%s'", a->name);
			goto out;
		}
		/* sftp_write may take part of the buffer. */
		for (size_t done = 0; done < want;) {
			ssize_t w = libssh2_sftp_write(h, io + done, want - done);

			if (w <= 0) {
				fail(s, c, "write", tmp);
				goto out;
			}
			done += (size_t)w;
		}
		off += want;
	}
	/* Durable before it gets its name, where the server can say so. */
	if (libssh2_sftp_fsync(h) != 0 &&
	    fx_status(c) != (long)LIBSSH2_FX_OP_UNSUPPORTED) {
		fail(s, c, "fsync", tmp);
		goto out;
	}
	if (libssh2_sftp_fstat(h, &at) != 0) {
		fail(s, c, "stat", tmp);
		goto out;
	}
	if ((at.flags & LIBSSH2_SFTP_ATTR_SIZE) && at.filesize != a->size) {
		err_set("%s%s%s: the server holds %llu bytes, %llu were sent",
		    s->display, tmp[0] == '/' ? "" : "/~/", tmp,
		    (unsigned long long)at.filesize,
		    (unsigned long long)a->size);
		goto out;
	}
	rc = 0;
out:
	free(io);
	if (libssh2_sftp_close_handle(h) != 0 && rc == 0)
		rc = fail(s, c, "close", tmp);
	return rc;
}

static int
op_put(struct sftp_store *s, struct conn *c, void *arg)
{
	const struct put_arg *a = arg;
	LIBSSH2_SFTP_ATTRIBUTES at;
	LIBSSH2_SFTP_HANDLE *h;
	const char *slash = strrchr(a->name, '/');
	const char *base = slash ? slash + 1 : a->name;
	char *final = full_path(s, a->name), *tmp = NULL;
	const long flags = LIBSSH2_SFTP_RENAME_ATOMIC | LIBSSH2_SFTP_RENAME_NATIVE;
	bool made_dir = false;
	int rc = -1, r;

	if (final == NULL ||
	    asprintf(&tmp, "%s%.*s.tmp.%s.%x%x%x", s->prefix,
		slash ? (int)(slash - a->name + 1) : 0, a->name, base,
		(unsigned)getpid(), (unsigned)time(NULL),
		atomic_fetch_add(&tmp_counter, 1)) < 0) {
		tmp = NULL;
		err_set("out of memory");
		goto out;
	}
	if (a->noreplace) {
		r = stat_path(s, c, final, &at);
		if (r < 0)
			goto out;
		if (r == 0) {
			err_set("%s%s%s: already exists", s->display,
			    final[0] == '/' ? "" : "/~/", final);
			goto out;
		}
	}
	for (;;) {
		h = libssh2_sftp_open_ex(c->sftp, tmp, (unsigned)strlen(tmp),
		    LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_EXCL,
		    0644, LIBSSH2_SFTP_OPENFILE);
		if (h != NULL)
			break;
		/* The first file of a new directory ("snapshots/"). */
		if (slash && !made_dir &&
		    fx_status(c) == (long)LIBSSH2_FX_NO_SUCH_FILE) {
			char *sub = NULL;

			made_dir = true;
			if (asprintf(&sub, "%s%.*s", s->prefix,
				(int)(slash - a->name), a->name) < 0) {
				err_set("out of memory");
				goto out;
			}
			r = mkdir_p(s, c, sub);
			free(sub);
			if (r)
				goto out;
			continue;
		}
		fail(s, c, "cannot create", tmp);
		goto out;
	}
	if (upload(s, c, h, a, tmp))
		goto out_unlink;
	if (libssh2_sftp_rename_ex(c->sftp, tmp, (unsigned)strlen(tmp), final,
		(unsigned)strlen(final), flags) != 0) {
		if (fx_status(c) < 0) {
			fail(s, c, "rename", tmp);
			goto out_unlink;
		}
		/* OpenSSH's rename does not replace: the name is taken. */
		r = stat_path(s, c, final, &at);
		if (r != 0 || a->noreplace) {
			if (r == 0)
				err_set("%s%s%s: already exists", s->display,
				    final[0] == '/' ? "" : "/~/", final);
			else if (r == 1)
				fail(s, c, "rename", tmp);
			goto out_unlink;
		}
		if (libssh2_sftp_unlink_ex(c->sftp, final,
			(unsigned)strlen(final)) != 0 &&
		    fx_status(c) != (long)LIBSSH2_FX_NO_SUCH_FILE) {
			fail(s, c, "cannot replace", final);
			goto out_unlink;
		}
		if (libssh2_sftp_rename_ex(c->sftp, tmp, (unsigned)strlen(tmp),
			final, (unsigned)strlen(final), flags) != 0) {
			fail(s, c, "rename", tmp);
			goto out_unlink;
		}
	}
	rc = 0;
	goto out;
out_unlink:
	/* Best effort; garbage collection removes what stays behind. */
	if (!c->dead)
		libssh2_sftp_unlink_ex(c->sftp, tmp, (unsigned)strlen(tmp));
out:
	free(final);
	free(tmp);
	return rc;
}

static int
sf_put(void *impl, const char *name, int fd, const char *path,
    bool noreplace)
{
	struct put_arg a = { name, fd, 0, noreplace };
	struct stat sb;

	(void)path;
	if (fstat(fd, &sb)) {
		err_setp("staged file for '%s'", name);
		return -1;
	}
	a.size = (uint64_t)sb.st_size;
	return run_op(impl, op_put, &a);
}

struct get_arg {
	const char *name;
	int fd;
	uint64_t listed;
};

static int
op_get(struct sftp_store *s, struct conn *c, void *arg)
{
	const struct get_arg *a = arg;
	LIBSSH2_SFTP_ATTRIBUTES at;
	LIBSSH2_SFTP_HANDLE *h;
	char *path = full_path(s, a->name), *io = NULL;
	uint64_t got = 0;
	long st;
	int rc = -1, broke = 0;

	if (path == NULL || (io = malloc(IO_SIZE)) == NULL) {
		err_set("out of memory");
		goto out;
	}
	/* A repeated attempt starts over. */
	if (ftruncate(a->fd, 0) || lseek(a->fd, 0, SEEK_SET)) {
		err_setp("temporary file");
		goto out;
	}
	h = libssh2_sftp_open_ex(c->sftp, path, (unsigned)strlen(path),
	    LIBSSH2_FXF_READ, 0, LIBSSH2_SFTP_OPENFILE);
	if (h == NULL) {
		st = fx_status(c);
		if (st == (long)LIBSSH2_FX_NO_SUCH_FILE ||
		    st == (long)LIBSSH2_FX_NO_SUCH_PATH)
			rc = 1;
		else
			fail(s, c, "cannot open", path);
		goto out;
	}
	if (libssh2_sftp_fstat(h, &at) != 0) {
		fail(s, c, "stat", path);
		libssh2_sftp_close_handle(h);
		goto out;
	}
	if ((at.flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) &&
	    !LIBSSH2_SFTP_S_ISREG(at.permissions)) {
		libssh2_sftp_close_handle(h);
		err_set("%s%s%s: not a regular file", s->display,
		    path[0] == '/' ? "" : "/~/", path);
		goto out;
	}
	for (;;) {
		ssize_t n = libssh2_sftp_read(h, io, IO_SIZE);

		if (n == 0)
			break;
		if (n < 0) {
			broke = fail(s, c, "read", path);
			break;
		}
		if (a->listed != STORE_SIZE_UNKNOWN &&
		    got + (uint64_t)n > a->listed + STORE_GET_SLACK) {
			broke = -1;
			err_set("%s%s%s: larger than the listed size (%llu "
				"bytes)",
			    s->display, path[0] == '/' ? "" : "/~/", path,
			    (unsigned long long)a->listed);
			break;
		}
		if (fileio_write_full(a->fd, io, (size_t)n)) {
			broke = -1;
			err_setp("temporary file for '%s'", a->name);
			break;
		}
		got += (uint64_t)n;
	}
	if (libssh2_sftp_close_handle(h) != 0 && !c->dead)
		c->dead = fx_status(c) < 0;
	if (broke)
		goto out;
	/* Store files are never rewritten: all of it, or an error. */
	if ((at.flags & LIBSSH2_SFTP_ATTR_SIZE) && got != at.filesize) {
		err_set("%s%s%s: read %llu bytes of %llu", s->display,
		    path[0] == '/' ? "" : "/~/", path, (unsigned long long)got,
		    (unsigned long long)at.filesize);
		goto out;
	}
	rc = 0;
out:
	free(io);
	free(path);
	return rc;
}

static int
sf_get(void *impl, const char *name, int fd, uint64_t listed)
{
	struct get_arg a = { name, fd, listed };

	return run_op(impl, op_get, &a);
}

struct stat_arg {
	const char *name;
	uint64_t size;
};

static int
op_stat(struct sftp_store *s, struct conn *c, void *arg)
{
	struct stat_arg *a = arg;
	LIBSSH2_SFTP_ATTRIBUTES at;
	char *path = full_path(s, a->name);
	int r;

	if (path == NULL) {
		err_set("out of memory");
		return -1;
	}
	r = stat_path(s, c, path, &at);
	if (r == 0) {
		if ((at.flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) &&
		    !LIBSSH2_SFTP_S_ISREG(at.permissions))
			r = 1;
		a->size = (at.flags & LIBSSH2_SFTP_ATTR_SIZE) ? at.filesize : 0;
	}
	free(path);
	return r;
}

static int
sf_stat(void *impl, const char *name, uint64_t *size)
{
	struct stat_arg a = { name, 0 };
	int r = run_op(impl, op_stat, &a);

	if (r == 0)
		*size = a.size;
	return r;
}

static int
op_del(struct sftp_store *s, struct conn *c, void *arg)
{
	char *path = full_path(s, arg);
	long st;
	int rc = 0;

	if (path == NULL) {
		err_set("out of memory");
		return -1;
	}
	if (libssh2_sftp_unlink_ex(c->sftp, path, (unsigned)strlen(path))) {
		st = fx_status(c);
		if (st == (long)LIBSSH2_FX_NO_SUCH_FILE ||
		    st == (long)LIBSSH2_FX_NO_SUCH_PATH)
			rc = 1;
		else
			rc = fail(s, c, "cannot delete", path);
	}
	free(path);
	return rc;
}

static int
sf_del(void *impl, const char *name)
{
	return run_op(impl, op_del, (void *)(uintptr_t)name);
}

/* A listing is collected first, so a repeated attempt cannot call the
 * callback twice for one name. */
struct list_arg {
	const char *dir;
	char **names;
	uint64_t *sizes;
	size_t n, cap;
};

static void
list_reset(struct list_arg *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->names[i]);
	l->n = 0;
}

static int
list_add(struct list_arg *l, const char *name, uint64_t size)
{
	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 256;
		char **nn = realloc(l->names, ncap * sizeof(*nn));
		uint64_t *ns;

		if (nn == NULL)
			goto oom;
		l->names = nn;
		ns = realloc(l->sizes, ncap * sizeof(*ns));
		if (ns == NULL)
			goto oom;
		l->sizes = ns;
		l->cap = ncap;
	}
	if ((l->names[l->n] = strdup(name)) == NULL)
		goto oom;
	l->sizes[l->n++] = size;
	return 0;
oom:
	err_set("out of memory");
	return -1;
}

static int
op_list(struct sftp_store *s, struct conn *c, void *arg)
{
	struct list_arg *l = arg;
	LIBSSH2_SFTP_HANDLE *h;
	char *path = full_path(s, l->dir), *name = malloc(NAME_MAX_SFTP + 1);
	long st;
	int rc = -1;

	list_reset(l);
	if (path == NULL || name == NULL) {
		err_set("out of memory");
		goto out;
	}
	h = libssh2_sftp_open_ex(c->sftp, path, (unsigned)strlen(path), 0, 0,
	    LIBSSH2_SFTP_OPENDIR);
	if (h == NULL) {
		st = fx_status(c);
		/* A missing directory lists nothing. */
		if (st == (long)LIBSSH2_FX_NO_SUCH_FILE ||
		    st == (long)LIBSSH2_FX_NO_SUCH_PATH)
			rc = 0;
		else
			fail(s, c, "cannot list", path);
		goto out;
	}
	for (;;) {
		LIBSSH2_SFTP_ATTRIBUTES at;
		int n = libssh2_sftp_readdir_ex(h, name, NAME_MAX_SFTP, NULL, 0,
		    &at);

		if (n == 0) {
			rc = 0;
			break;
		}
		if (n < 0) {
			if (n == LIBSSH2_ERROR_BUFFER_TOO_SMALL)
				err_set("%s%s%s: listing: a name longer than "
					"%d bytes",
				    s->display, path[0] == '/' ? "" : "/~/",
				    path, NAME_MAX_SFTP);
			else
				fail(s, c, "cannot list", path);
			break;
		}
		name[n] = '\0';
		/* Hostile names: the server's NUL or '/' is not a name.  Of
		 * the dot files only temp files, for gc (store.c hides them
		 * from everyone else). */
		if ((name[0] == '.' && strncmp(name, ".tmp.", 5) != 0) ||
		    strlen(name) != (size_t)n || strchr(name, '/'))
			continue;
		if ((at.flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) &&
		    LIBSSH2_SFTP_S_ISLNK(at.permissions)) {
			/* The file backend follows links: so do we. */
			char *sub = NULL;
			int r;

			if (asprintf(&sub, "%s/%s", path, name) < 0) {
				err_set("out of memory");
				break;
			}
			r = stat_path(s, c, sub, &at);
			free(sub);
			if (r < 0)
				break;
			if (r == 1)
				continue;
		}
		if (!(at.flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) ||
		    !LIBSSH2_SFTP_S_ISREG(at.permissions) ||
		    !(at.flags & LIBSSH2_SFTP_ATTR_SIZE))
			continue;
		if (list_add(l, name, at.filesize))
			break;
	}
	if (libssh2_sftp_close_handle(h) != 0 && !c->dead)
		c->dead = fx_status(c) < 0;
out:
	free(name);
	free(path);
	return rc;
}

static int
sf_list(void *impl, const char *dir, store_list_cb cb, void *arg)
{
	struct list_arg l = { dir, NULL, NULL, 0, 0 };
	int rc = run_op(impl, op_list, &l);

	for (size_t i = 0; rc == 0 && i < l.n; i++)
		rc = cb(arg, l.names[i], l.sizes[i]);
	list_reset(&l);
	free(l.names);
	free(l.sizes);
	return rc;
}

/* ---- open and close ---- */

static int
op_root(struct sftp_store *s, struct conn *c, void *arg)
{
	LIBSSH2_SFTP_ATTRIBUTES at;
	bool create = *(bool *)arg;
	char *root = full_path(s, "");
	int r;

	if (root == NULL) {
		err_set("out of memory");
		return -1;
	}
	if (create)
		r = mkdir_p(s, c, root);
	else if ((r = stat_path(s, c, root, &at)) == 1 ||
		 (r == 0 && !is_dir(&at))) {
		err_set("%s%s%s: %s", s->display, root[0] == '/' ? "" : "/~/",
		    root, r == 1 ? "no such directory" : "not a directory");
		r = -1;
	}
	free(root);
	return r;
}

static void
sf_close(void *impl)
{
	struct sftp_store *s = impl;

	while (s->pool) {
		struct conn *c = s->pool;

		s->pool = c->next;
		conn_close(c);
	}
	pthread_mutex_destroy(&s->mu);
	free(s->user);
	free(s->host);
	free(s->prefix);
	free(s->display);
	free(s);
}

static int
sf_open(const char *url, bool create, void **impl)
{
	struct sftp_store *s;
	const char *v;
	int r;

	pthread_once(&ssh_once, ssh_init);
	if (ssh_init_rc != 0) {
		err_set("cannot initialise libssh2");
		return -1;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		err_set("out of memory");
		return -1;
	}
	pthread_mutex_init(&s->mu, NULL);
	if (parse_url(s, url))
		goto fail;
	if (s->user == NULL) {
		const struct passwd *pw = getpwuid(getuid());

		v = getenv("USER");
		if (pw && pw->pw_name)
			v = pw->pw_name;
		if (v == NULL || (s->user = strdup(v)) == NULL) {
			err_set("store URL '%.200s': no user name (use "
				"sftp://USER@HOST/PATH)",
			    url);
			goto fail;
		}
	}
	s->timeout_ms = 60000;
	v = getenv("CUMULUS_SFTP_TIMEOUT");
	if (v && v[0]) {
		char *end;
		long t = strtol(v, &end, 10);

		if (*end == '\0' && t > 0 && t <= 86400)
			s->timeout_ms = t * 1000;
	}
	if (asprintf(&s->display, strchr(s->host, ':') ? "sftp://%s@[%s]:%d"
						       : "sftp://%s@%s:%d",
		s->user, s->host, s->port) < 0) {
		s->display = NULL;
		err_set("out of memory");
		goto fail;
	}
	/* Connect now: a wrong host key or user fails before any work. */
	r = run_op(s, op_root, &create);
	if (r)
		goto fail;
	*impl = s;
	return 0;
fail:
	sf_close(s);
	return -1;
}

const struct store_ops store_sftp_ops = {
	.scheme = "sftp://",
	.open = sf_open,
	.close = sf_close,
	.put = sf_put,
	.default_jobs = 2,
	.max_jobs = 16,
	.cache_listing = true,
	.get = sf_get,
	.stat = sf_stat,
	.del = sf_del,
	.list = sf_list,
};
