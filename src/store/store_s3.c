/*
 * store_s3: S3-compatible object storage through libcurl, signed with
 * curl's SigV4 (CURLOPT_AWS_SIGV4).  The only file that includes curl.
 *
 * URL s3://BUCKET[/PREFIX]; store name N is key PREFIX/N.  Configuration
 * comes from the standard environment: AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION or
 * AWS_DEFAULT_REGION (default us-east-1), AWS_ENDPOINT_URL_S3 or
 * AWS_ENDPOINT_URL (other servers; path-style addressing).  Tuning, mostly
 * for tests: CUMULUS_S3_MULTIPART_THRESHOLD, CUMULUS_S3_PART_SIZE (bytes),
 * CUMULUS_S3_RETRIES, CUMULUS_S3_RETRY_BASE_MS, CUMULUS_S3_STALL_SECONDS;
 * CUMULUS_S3_DEBUG=1 prints the exchanges, credentials redacted.
 *
 * Integrity: every body is sent with its SHA-256 (x-amz-content-sha256,
 * signed) and MD5 (Content-MD5), so the server refuses damaged bytes; an
 * upload counts as stored only when the returned ETag equals our MD5 (for
 * multipart, the MD5 of the part MD5s, checked with a HEAD).  Downloads
 * are checked against Content-Length and a plain ETag.
 *
 * libcurl is loaded (dlopen) when the first S3 store is opened, not
 * linked: with its dependencies (GnuTLS, Kerberos, LDAP, ...) it added
 * 4 MiB to the resident size of every command, S3 or not.
 *
 * Credentials go to curl through CURLOPT_USERNAME/PASSWORD and a header;
 * they never appear in URLs, error messages or CUMULUS_S3_DEBUG output.
 */
#include "store_backend.h"

#include <sys/stat.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The calls go through the table below, not curl's checking macros. */
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>
#include <dlfcn.h>
#include <openssl/evp.h>

#include "buf.h"
#include "err.h"
#include "fileio.h"
#include "s3xml.h"

#define POOL_MAX 64
#define XML_MAX ((size_t)8 << 20)
#define MIB ((uint64_t)1 << 20)
/* A GET of an object the listing did not show: at most S3's limit for
 * a single PUT. */
#define GET_UNLISTED_MAX ((uint64_t)5 << 30)
/* Transfers slower than this for CUMULUS_S3_STALL_SECONDS fail (and are
 * retried): a server trickling a body cannot hold a command for days. */
#define MIN_RATE 1024L

struct s3 {
	char *bucket;
	char *prefix; /* "" or "dir/" */
	char *base;   /* URL of the bucket, no trailing slash */
	char *sigv4;
	char *key_id, *secret, *token;
	unsigned retries;
	long base_ms;
	long stall;
	uint64_t mp_threshold, part_size;
	pthread_mutex_t mu;
	CURL *pool[POOL_MAX];
	size_t npool;
};

/* One HTTP exchange, described by the caller and filled by perform(). */
struct req {
	const char *method;
	const char *key;   /* full object key, or NULL for the bucket */
	const char *query; /* canonical query string, or NULL */
	int in_fd;         /* body from a file range, or -1 */
	uint64_t in_off, in_len;
	const char *in_mem; /* or from memory (POST) */
	size_t in_mem_len;
	char sha256[65];         /* hex SHA-256 of the body */
	char md5_b64[32];        /* "" = no Content-MD5 */
	const char *extra;       /* one more header, or NULL */
	int out_fd;              /* GET: body into this file, or -1 */
	struct buf *out;         /* or into memory (bounded) */
	uint64_t out_max;        /* most body bytes accepted (0: out's max) */
	char out_what[64];       /* what sets out_max, for the message */
	bool expect_body_md5;    /* check a plain ETag against the body */
	/* results */
	long status;
	char etag[80];
	uint64_t length;
	bool have_length;
	unsigned attempts;
	/* transfer state */
	uint64_t pos;
	uint64_t got;
	EVP_MD_CTX *md5;
	struct buf errbody;
	int werr;
	bool overflow; /* the body passed out_max */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;
static char curl_load_error[256];

/* The libcurl functions used, from curl.h's prototypes. */
static struct {
	CURLcode (*global_init)(long);
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
	CURLcode (*easy_perform)(CURL *);
	CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
	void (*easy_cleanup)(CURL *);
	void (*easy_reset)(CURL *);
	const char *(*easy_strerror)(CURLcode);
	struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
	void (*slist_free_all)(struct curl_slist *);
} lc;

static void
curl_init(void)
{
	static const char *const names[] = { "curl_global_init",
		"curl_easy_init", "curl_easy_setopt", "curl_easy_perform",
		"curl_easy_getinfo", "curl_easy_cleanup", "curl_easy_reset",
		"curl_easy_strerror", "curl_slist_append",
		"curl_slist_free_all" };
	void *slots[] = { &lc.global_init, &lc.easy_init, &lc.easy_setopt,
		&lc.easy_perform, &lc.easy_getinfo, &lc.easy_cleanup,
		&lc.easy_reset, &lc.easy_strerror, &lc.slist_append,
		&lc.slist_free_all };
	/* The soname libcurl has kept since 7.16 (2006). */
	void *h = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);

	if (h == NULL) {
		snprintf(curl_load_error, sizeof(curl_load_error), "%s",
		    dlerror());
		return;
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		void *f = dlsym(h, names[i]);

		if (f == NULL) {
			snprintf(curl_load_error, sizeof(curl_load_error),
			    "%s", dlerror());
			return;
		}
		/* POSIX: a function's address survives the void *. */
		memcpy(slots[i], &f, sizeof(f));
	}
	curl_init_rc = lc.global_init(CURL_GLOBAL_DEFAULT);
	if (curl_init_rc != CURLE_OK)
		snprintf(curl_load_error, sizeof(curl_load_error),
		    "curl_global_init failed");
}

/* ---- small helpers ---- */

static void
hexval(char *out, const unsigned char *p, size_t n)
{
	static const char hx[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hx[p[i] >> 4];
		out[2 * i + 1] = hx[p[i] & 15];
	}
	out[2 * n] = '\0';
}

/* RFC 3986 encoding; '/' kept when ${keep_slash}. */
static int
uri_encode(struct buf *out, const char *s, bool keep_slash)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		    c == '_' || c == '~' || (keep_slash && c == '/')) {
			if (buf_putc(out, c))
				return -1;
		} else if (buf_printf(out, "%%%02X", c)) {
			return -1;
		}
	}
	return 0;
}

static uint64_t
env_u64(const char *name, uint64_t def, uint64_t min, uint64_t max)
{
	const char *v = getenv(name);
	char *end;
	unsigned long long x;

	if (v == NULL || *v == '\0')
		return def;
	errno = 0;
	x = strtoull(v, &end, 10);
	if (errno || *end || x < min || x > max)
		return def;
	return x;
}

static const char *
env_first(const char *a, const char *b)
{
	const char *v = getenv(a);

	if ((v == NULL || *v == '\0') && b)
		v = getenv(b);
	return v && *v ? v : NULL;
}

/* A random delay in [d/2, d): jitter spreads the retries of threads. */
static void
backoff(const struct s3 *s, unsigned attempt)
{
	static __thread unsigned seed;
	long ms = s->base_ms;
	struct timespec ts;

	if (seed == 0)
		seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)&ms;
	for (unsigned i = 1; i < attempt && ms < 20000; i++)
		ms *= 2;
	if (ms > 20000)
		ms = 20000;
	ms = ms / 2 + (long)(rand_r(&seed) % (unsigned)(ms / 2 + 1));
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* SHA-256 (hex) and MD5 (raw) of a file range, read with pread. */
static int
digest_range(int fd, uint64_t off, uint64_t len, char sha_hex[65],
    unsigned char md5[16])
{
	EVP_MD_CTX *a = EVP_MD_CTX_new(), *b = EVP_MD_CTX_new();
	unsigned char *tmp = malloc(1 << 17), sha[32];
	unsigned int l;
	int rc = -1;

	if (a == NULL || b == NULL || tmp == NULL ||
	    !EVP_DigestInit_ex(a, EVP_sha256(), NULL) ||
	    !EVP_DigestInit_ex(b, EVP_md5(), NULL)) {
		err_set("cannot start a digest");
		goto out;
	}
	while (len > 0) {
		size_t want = len < (1 << 17) ? (size_t)len : (1 << 17);
		ssize_t r = fileio_pread_full(fd, tmp, want, (off_t)off);

		if (r < 0)
			goto out;
		if ((size_t)r != want) {
			err_set("staged file shrank");
			goto out;
		}
		EVP_DigestUpdate(a, tmp, want);
		EVP_DigestUpdate(b, tmp, want);
		off += want;
		len -= want;
	}
	if (!EVP_DigestFinal_ex(a, sha, &l) || !EVP_DigestFinal_ex(b, md5, &l)) {
		err_set("digest failed");
		goto out;
	}
	hexval(sha_hex, sha, 32);
	rc = 0;
out:
	EVP_MD_CTX_free(a);
	EVP_MD_CTX_free(b);
	free(tmp);
	return rc;
}

static void
set_md5(struct req *r, const unsigned char md5[16])
{
	EVP_EncodeBlock((unsigned char *)r->md5_b64, md5, 16);
}

static void
sha256_mem(const void *p, size_t n, char hex[65])
{
	unsigned char sha[32];
	unsigned int l;

	EVP_Digest(p, n, sha, &l, EVP_sha256(), NULL);
	hexval(hex, sha, 32);
}

/* ---- curl callbacks ---- */

static size_t
read_cb(char *p, size_t size, size_t nmemb, void *arg)
{
	struct req *r = arg;
	size_t want = size * nmemb;
	uint64_t left = r->in_len - r->pos;
	ssize_t n;

	if (want > left)
		want = (size_t)left;
	if (want == 0)
		return 0;
	n = fileio_pread_full(r->in_fd, p, want, (off_t)(r->in_off + r->pos));
	if (n < 0 || (size_t)n != want)
		return CURL_READFUNC_ABORT;
	r->pos += want;
	return want;
}

static int
seek_cb(void *arg, curl_off_t off, int origin)
{
	struct req *r = arg;

	/* curl rewinds the body to resend it (redirects, auth). */
	if (origin != SEEK_SET || off < 0 || (uint64_t)off > r->in_len)
		return CURL_SEEKFUNC_CANTSEEK;
	r->pos = (uint64_t)off;
	return CURL_SEEKFUNC_OK;
}

static size_t
header_cb(char *p, size_t size, size_t nitems, void *arg)
{
	struct req *r = arg;
	size_t n = size * nitems, l;

	if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) {
		r->etag[0] = '\0';
		r->have_length = false;
		return n;
	}
	if (n > 5 && strncasecmp(p, "ETag:", 5) == 0) {
		const char *s = p + 5, *e = p + n;

		while (s < e && (*s == ' ' || *s == '"'))
			s++;
		while (e > s && (e[-1] == '\r' || e[-1] == '\n' ||
				    e[-1] == '"' || e[-1] == ' '))
			e--;
		l = (size_t)(e - s);
		if (l >= sizeof(r->etag))
			l = sizeof(r->etag) - 1;
		memcpy(r->etag, s, l);
		r->etag[l] = '\0';
	} else if (n > 15 && strncasecmp(p, "Content-Length:", 15) == 0) {
		char tmp[32];
		size_t m = n - 15 < sizeof(tmp) - 1 ? n - 15 : sizeof(tmp) - 1;
		char *end;

		memcpy(tmp, p + 15, m);
		tmp[m] = '\0';
		r->length = strtoull(tmp, &end, 10);
		r->have_length = end != tmp;
	}
	return n;
}

static size_t
write_cb(char *p, size_t size, size_t nmemb, void *arg)
{
	struct req *r = arg;
	size_t n = size * nmemb;

	/* Error bodies (XML) go to errbody; data only on 2xx. */
	if (r->status < 200 || r->status >= 300) {
		if (buf_append(&r->errbody, p, n))
			buf_reset(&r->errbody);
		return n;
	}
	/* Bounded whatever the server says: an endless body or a huge
	 * Content-Length fails at once instead of filling $TMPDIR. */
	if (n > r->out_max - r->got ||
	    (r->have_length && r->length > r->out_max)) {
		r->overflow = true;
		return 0;
	}
	r->got += n;
	if (r->md5)
		EVP_DigestUpdate(r->md5, p, n);
	if (r->out_fd >= 0) {
		if (fileio_write_full(r->out_fd, p, n)) {
			r->werr = errno ? errno : EIO;
			return 0;
		}
	} else if (r->out) {
		if (buf_append(r->out, p, n))
			return 0;
	}
	return n;
}

/* The status is needed inside write_cb; curl gives it per handle. */
struct wctx {
	struct req *r;
	CURL *h;
};

static size_t
write_cb2(char *p, size_t size, size_t nmemb, void *arg)
{
	struct wctx *w = arg;

	if (w->r->status == 0)
		lc.easy_getinfo(w->h, CURLINFO_RESPONSE_CODE, &w->r->status);
	return write_cb(p, size, nmemb, w->r);
}

/*
 * CUMULUS_S3_DEBUG: what curl's verbose mode prints (its messages and the
 * headers both ways, not the bodies), but with the values of the headers
 * that carry credentials replaced: Authorization holds the signature and
 * the access key id, x-amz-security-token the session token.  Control
 * characters from the server are shown as \xNN.
 */
static bool
secret_header(const char *p, size_t n)
{
	static const char *const names[] = { "authorization:",
		"proxy-authorization:", "x-amz-security-token:", "cookie:",
		"set-cookie:", "x-amz-server-side-encryption-customer-key:",
		"x-amz-copy-source-server-side-encryption-customer-key:" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		size_t l = strlen(names[i]);

		if (n >= l && strncasecmp(p, names[i], l) == 0)
			return true;
	}
	return false;
}

static void
debug_line(const char *mark, const char *p, size_t n)
{
	const char *colon = memchr(p, ':', n);

	fputs(mark, stderr);
	if (strcmp(mark, "* ") != 0 && colon && secret_header(p, n)) {
		fprintf(stderr, "%.*s: [redacted]\n", (int)(colon - p), p);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '\r' && i + 1 == n)
			continue;
		if (c < 0x20 || c == 0x7f)
			fprintf(stderr, "\\x%02x", c);
		else
			fputc(c, stderr);
	}
	fputc('\n', stderr);
}

static int
debug_cb(CURL *h, curl_infotype type, char *data, size_t size, void *arg)
{
	const char *mark;

	(void)h;
	(void)arg;
	if (type == CURLINFO_TEXT)
		mark = "* ";
	else if (type == CURLINFO_HEADER_IN)
		mark = "< ";
	else if (type == CURLINFO_HEADER_OUT)
		mark = "> ";
	else
		return 0; /* bodies and TLS records */
	/* One call may hold several lines (a request's headers). */
	while (size > 0) {
		const char *nl = memchr(data, '\n', size);
		size_t n = nl ? (size_t)(nl - data) : size;

		if (n > 0 && !(n == 1 && data[0] == '\r'))
			debug_line(mark, data, n);
		n += nl ? 1 : 0;
		data += n;
		size -= n;
	}
	return 0;
}

/* ---- requests ---- */

static CURL *
get_handle(struct s3 *s)
{
	CURL *h = NULL;

	pthread_mutex_lock(&s->mu);
	if (s->npool > 0)
		h = s->pool[--s->npool];
	pthread_mutex_unlock(&s->mu);
	if (h == NULL)
		h = lc.easy_init();
	else
		lc.easy_reset(h);
	return h;
}

static void
put_handle(struct s3 *s, CURL *h)
{
	/* Handles keep their connections: the next request reuses one. */
	pthread_mutex_lock(&s->mu);
	if (s->npool < POOL_MAX) {
		s->pool[s->npool++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&s->mu);
	if (h)
		lc.easy_cleanup(h);
}

static bool
retryable_curl(CURLcode c)
{
	switch (c) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_COULDNT_RESOLVE_HOST:
		return true;
	default:
		return false;
	}
}

static bool
retryable_status(long st)
{
	return st == 500 || st == 502 || st == 503 || st == 504 ||
	    st == 429 || st == 408;
}

static void
describe(const struct s3 *s, const struct req *r, struct buf *what)
{
	buf_init(what, 4096);
	buf_printf(what, "S3 %s s3://%s/%s", r->method, s->bucket,
	    r->key ? r->key : "");
}

/* Record an error for a final HTTP status, with S3's error code. */
static void
http_error(const struct s3 *s, const struct req *r)
{
	struct buf what, code;
	const char *hint = "";

	describe(s, r, &what);
	buf_init(&code, 256);
	if (r->errbody.len)
		s3xml_find(r->errbody.data, r->errbody.len, "Code", &code);
	if (strcmp(buf_str(&code), "SignatureDoesNotMatch") == 0)
		hint = " (authentication failed: check AWS_SECRET_ACCESS_KEY)";
	else if (strcmp(buf_str(&code), "InvalidAccessKeyId") == 0)
		hint = " (authentication failed: unknown AWS_ACCESS_KEY_ID)";
	else if (r->status == 403)
		hint = " (access denied: check the credentials and the "
		       "bucket's permissions)";
	else if (strcmp(buf_str(&code), "NoSuchBucket") == 0)
		hint = " (the bucket does not exist)";
	err_set("%s: HTTP %ld%s%s%s", buf_str(&what), r->status,
	    code.len ? " " : "", buf_str(&code), hint);
	buf_release(&what);
	buf_release(&code);
}

/*
 * Perform ${r}, retrying transport errors, 5xx/429 answers and truncated
 * downloads with exponential backoff and jitter.  0 with r->status set
 * to the final HTTP status (any), or -1 (error recorded) when no answer
 * came after every retry.
 */
static int
perform(struct s3 *s, struct req *r)
{
	struct buf url, what;
	char hdr[256], errbuf[CURL_ERROR_SIZE];
	int rc = -1;

	buf_init(&url, 1 << 16);
	buf_init(&r->errbody, 1 << 16);
	if (buf_puts(&url, s->base))
		goto out;
	if (r->key && (buf_putc(&url, '/') || uri_encode(&url, r->key, true)))
		goto out;
	if (r->query && buf_printf(&url, "%s?%s", r->key ? "" : "/", r->query))
		goto out;
	for (r->attempts = 1;; r->attempts++) {
		struct curl_slist *h = NULL;
		struct wctx wc = { r, NULL };
		CURL *c = get_handle(s);
		CURLcode cc;
		bool retry = false;

		if (c == NULL) {
			err_set("cannot start an HTTP request");
			goto out;
		}
		wc.h = c;
		r->status = 0;
		r->pos = 0;
		r->got = 0;
		r->werr = 0;
		r->overflow = false;
		r->etag[0] = '\0';
		r->have_length = false;
		buf_reset(&r->errbody);
		if (r->out)
			buf_reset(r->out);
		if (r->out && (r->out_max == 0 || r->out_max > r->out->max))
			r->out_max = r->out->max;
		if (r->out_max == 0)
			r->out_max = UINT64_MAX;
		if (r->out_what[0] == '\0')
			snprintf(r->out_what, sizeof(r->out_what),
			    "the limit for an answer, %llu bytes",
			    (unsigned long long)r->out_max);
		if (r->out_fd >= 0 &&
		    (ftruncate(r->out_fd, 0) || lseek(r->out_fd, 0, SEEK_SET))) {
			err_setp("temporary file");
			put_handle(s, c);
			goto out;
		}
		if (r->md5) {
			EVP_MD_CTX_free(r->md5);
			r->md5 = NULL;
		}
		if (r->expect_body_md5) {
			r->md5 = EVP_MD_CTX_new();
			if (r->md5 == NULL ||
			    !EVP_DigestInit_ex(r->md5, EVP_md5(), NULL)) {
				err_set("cannot start a digest");
				put_handle(s, c);
				goto out;
			}
		}
		snprintf(hdr, sizeof(hdr), "x-amz-content-sha256: %s", r->sha256);
		h = lc.slist_append(h, hdr);
		if (r->md5_b64[0]) {
			snprintf(hdr, sizeof(hdr), "Content-MD5: %s", r->md5_b64);
			h = lc.slist_append(h, hdr);
		}
		if (s->token) {
			char *t;

			if (asprintf(&t, "x-amz-security-token: %s", s->token) >= 0) {
				h = lc.slist_append(h, t);
				free(t);
			}
		}
		if (r->extra)
			h = lc.slist_append(h, r->extra);
		/* No "Expect:" override here: curl 7.88 would sign the empty
		 * header it then leaves out, and the signature fails. */
		errbuf[0] = '\0';
		lc.easy_setopt(c, CURLOPT_URL, url.data);
		lc.easy_setopt(c, CURLOPT_HTTPHEADER, h);
		lc.easy_setopt(c, CURLOPT_AWS_SIGV4, s->sigv4);
		lc.easy_setopt(c, CURLOPT_USERNAME, s->key_id);
		lc.easy_setopt(c, CURLOPT_PASSWORD, s->secret);
		lc.easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
		lc.easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
		lc.easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
		/* Except CompleteMultipartUpload, which S3 may answer with
		 * a trickle of whitespace while it assembles the parts. */
		lc.easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT,
		    strcmp(r->method, "POST") == 0 ? 1L : MIN_RATE);
		lc.easy_setopt(c, CURLOPT_LOW_SPEED_TIME, s->stall);
		lc.easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
		lc.easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
		lc.easy_setopt(c, CURLOPT_HEADERDATA, r);
		lc.easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb2);
		lc.easy_setopt(c, CURLOPT_WRITEDATA, &wc);
		lc.easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
		if (getenv("CUMULUS_S3_DEBUG")) {
			lc.easy_setopt(c, CURLOPT_DEBUGFUNCTION, debug_cb);
			lc.easy_setopt(c, CURLOPT_VERBOSE, 1L);
		}
		if (strcmp(r->method, "HEAD") == 0) {
			lc.easy_setopt(c, CURLOPT_NOBODY, 1L);
		} else if (strcmp(r->method, "PUT") == 0) {
			lc.easy_setopt(c, CURLOPT_UPLOAD, 1L);
			lc.easy_setopt(c, CURLOPT_INFILESIZE_LARGE,
			    (curl_off_t)(r->in_fd >= 0 ? r->in_len : 0));
			lc.easy_setopt(c, CURLOPT_READFUNCTION, read_cb);
			lc.easy_setopt(c, CURLOPT_READDATA, r);
			lc.easy_setopt(c, CURLOPT_SEEKFUNCTION, seek_cb);
			lc.easy_setopt(c, CURLOPT_SEEKDATA, r);
		} else if (strcmp(r->method, "POST") == 0) {
			lc.easy_setopt(c, CURLOPT_POST, 1L);
			lc.easy_setopt(c, CURLOPT_POSTFIELDS,
			    r->in_mem ? r->in_mem : "");
			lc.easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
			    (curl_off_t)r->in_mem_len);
		} else if (strcmp(r->method, "GET") != 0) {
			lc.easy_setopt(c, CURLOPT_CUSTOMREQUEST, r->method);
		}
		cc = lc.easy_perform(c);
		lc.easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
		lc.slist_free_all(h);
		describe(s, r, &what);
		if (cc != CURLE_OK) {
			retry = retryable_curl(cc);
			if (r->overflow) {
				err_set("%s: the answer is larger than %s",
				    buf_str(&what), r->out_what);
				retry = false;
			} else if (r->werr) {
				errno = r->werr;
				err_setp("%s: cannot write the download",
				    buf_str(&what));
				retry = false;
			} else {
				err_set("%s: %s", buf_str(&what),
				    errbuf[0] ? errbuf : lc.easy_strerror(cc));
			}
			/* A dead connection must not be reused. */
			lc.easy_cleanup(c);
		} else {
			put_handle(s, c);
			if (retryable_status(r->status)) {
				retry = true;
				http_error(s, r);
			} else if (r->status >= 200 && r->status < 300 &&
			    strcmp(r->method, "HEAD") != 0 &&
			    (r->out_fd >= 0 || r->out) && r->have_length &&
			    r->got != r->length) {
				retry = true;
				err_set("%s: truncated answer (%llu of %llu "
					"bytes)",
				    buf_str(&what), (unsigned long long)r->got,
				    (unsigned long long)r->length);
			} else if (r->status >= 200 && r->status < 300 &&
			    r->md5 && strlen(r->etag) == 32) {
				unsigned char m[16];
				unsigned int l;
				char hex[33];

				EVP_DigestFinal_ex(r->md5, m, &l);
				hexval(hex, m, 16);
				if (strcasecmp(hex, r->etag) != 0) {
					retry = true;
					err_set("%s: the data does not match "
						"its ETag",
					    buf_str(&what));
				} else {
					rc = 0;
				}
			} else {
				rc = 0;
			}
		}
		buf_release(&what);
		if (rc == 0 || !retry)
			break;
		if (r->attempts > s->retries) {
			err_prefix("gave up after %u attempts", r->attempts);
			break;
		}
		backoff(s, r->attempts);
	}
out:
	if (r->md5) {
		EVP_MD_CTX_free(r->md5);
		r->md5 = NULL;
	}
	buf_release(&url);
	return rc;
}

static void
req_init(struct req *r, const char *method, const char *key)
{
	memset(r, 0, sizeof(*r));
	r->method = method;
	r->key = key;
	r->in_fd = -1;
	r->out_fd = -1;
	/* SHA-256 of the empty body. */
	strcpy(r->sha256, "e3b0c44298fc1c149afbf4c8996fb924"
			  "27ae41e4649b934ca495991b7852b855");
}

static void
req_done(struct req *r)
{
	buf_release(&r->errbody);
}

static int
full_key(const struct s3 *s, const char *name, struct buf *k)
{
	buf_init(k, 4096);
	return buf_printf(k, "%s%s", s->prefix, name);
}

/* ---- open/close ---- */

static void
s3_close(void *impl)
{
	struct s3 *s = impl;

	if (s == NULL)
		return;
	for (size_t i = 0; i < s->npool; i++)
		lc.easy_cleanup(s->pool[i]);
	pthread_mutex_destroy(&s->mu);
	free(s->bucket);
	free(s->prefix);
	free(s->base);
	free(s->sigv4);
	free(s->key_id);
	if (s->secret) {
		explicit_bzero(s->secret, strlen(s->secret));
		free(s->secret);
	}
	if (s->token) {
		explicit_bzero(s->token, strlen(s->token));
		free(s->token);
	}
	free(s);
}

static int
check_bucket(struct s3 *s, bool create, const char *region)
{
	struct req r;
	struct buf body;
	int rc = -1;

	/* A one-key listing rather than HEAD: errors come with a body
	 * that names the cause (SignatureDoesNotMatch, ...). */
	buf_init(&body, XML_MAX);
	req_init(&r, "GET", NULL);
	r.query = "list-type=2&max-keys=1";
	r.out = &body;
	rc = perform(s, &r);
	buf_release(&body);
	rc = -1;
	if (r.status == 0)
		goto out;
	if (r.status == 200) {
		rc = 0;
		goto out;
	}
	if (r.status != 404 || !create) {
		if (r.status == 404)
			err_set("S3 bucket '%s' does not exist", s->bucket);
		else
			http_error(s, &r);
		goto out;
	}
	/* As the original did: create a missing bucket on first backup. */
	req_done(&r);
	req_init(&r, "PUT", NULL);
	buf_init(&body, 4096);
	if (strcmp(region, "us-east-1") != 0) {
		buf_printf(&body,
		    "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws."
		    "com/doc/2006-03-01/\"><LocationConstraint>%s"
		    "</LocationConstraint></CreateBucketConfiguration>",
		    region);
	}
	if (body.len) {
		/* A PUT body must come from a file: use a temp file. */
		FILE *f = tmpfile();

		if (f == NULL || fwrite(body.data, 1, body.len, f) != body.len ||
		    fflush(f)) {
			if (f)
				fclose(f);
			buf_release(&body);
			err_setp("temporary file");
			goto out;
		}
		r.in_fd = fileno(f);
		r.in_len = body.len;
		sha256_mem(body.data, body.len, r.sha256);
		rc = perform(s, &r);
		fclose(f);
	} else {
		r.in_fd = -1;
		rc = perform(s, &r);
	}
	buf_release(&body);
	if (rc == 0 && r.status != 200) {
		http_error(s, &r);
		rc = -1;
	}
out:
	req_done(&r);
	return rc;
}

static int
s3_open(const char *url, bool create, void **impl)
{
	const char *p = url + 5, *slash, *region, *endpoint, *v;
	struct s3 *s;
	struct buf b;

	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK) {
		err_set("S3 stores need libcurl (libcurl.so.4): %s",
		    curl_load_error);
		return -1;
	}
	slash = strchr(p, '/');
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		err_set("out of memory");
		return -1;
	}
	pthread_mutex_init(&s->mu, NULL);
	s->bucket = slash ? strndup(p, (size_t)(slash - p)) : strdup(p);
	if (s->bucket == NULL)
		goto oom;
	if (s->bucket[0] == '\0' ||
	    strspn(s->bucket, "abcdefghijklmnopqrstuvwxyz0123456789.-_") !=
		strlen(s->bucket) ||
	    strlen(s->bucket) > 63) {
		err_set("store URL '%.200s': bad bucket name", url);
		goto fail;
	}
	/* The prefix, without leading or doubled slashes, ends in '/'. */
	buf_init(&b, 2048);
	for (const char *q = slash ? slash : ""; *q; q++) {
		if (*q == '/' && (b.len == 0 || b.data[b.len - 1] == '/'))
			continue;
		if (buf_putc(&b, *q)) {
			buf_release(&b);
			goto fail;
		}
	}
	if (b.len && b.data[b.len - 1] != '/' && buf_putc(&b, '/')) {
		buf_release(&b);
		goto fail;
	}
	s->prefix = b.len ? buf_detach(&b, NULL) : strdup("");
	buf_release(&b);
	if (s->prefix == NULL)
		goto oom;
	v = env_first("AWS_ACCESS_KEY_ID", NULL);
	if (v == NULL || env_first("AWS_SECRET_ACCESS_KEY", NULL) == NULL) {
		err_set("S3 store: set AWS_ACCESS_KEY_ID and "
			"AWS_SECRET_ACCESS_KEY");
		goto fail;
	}
	s->key_id = strdup(v);
	s->secret = strdup(getenv("AWS_SECRET_ACCESS_KEY"));
	v = env_first("AWS_SESSION_TOKEN", NULL);
	if (v && (s->token = strdup(v)) == NULL)
		goto oom;
	region = env_first("AWS_REGION", "AWS_DEFAULT_REGION");
	if (region == NULL)
		region = "us-east-1";
	if (strspn(region, "abcdefghijklmnopqrstuvwxyz0123456789-") !=
	    strlen(region)) {
		err_set("bad AWS region '%.100s'", region);
		goto fail;
	}
	endpoint = env_first("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL");
	if (endpoint) {
		size_t l = strlen(endpoint);

		while (l > 0 && endpoint[l - 1] == '/')
			l--;
		if (strncmp(endpoint, "http://", 7) &&
		    strncmp(endpoint, "https://", 8)) {
			err_set("AWS_ENDPOINT_URL must start with http:// or "
				"https://");
			goto fail;
		}
		/* Other servers: path-style, which needs no DNS names. */
		if (asprintf(&s->base, "%.*s/%s", (int)l, endpoint,
			s->bucket) < 0)
			s->base = NULL;
	} else if (strchr(s->bucket, '.')) {
		if (asprintf(&s->base, "https://s3.%s.amazonaws.com/%s", region,
			s->bucket) < 0)
			s->base = NULL;
	} else if (asprintf(&s->base, "https://%s.s3.%s.amazonaws.com",
		       s->bucket, region) < 0) {
		s->base = NULL;
	}
	if (asprintf(&s->sigv4, "aws:amz:%s:s3", region) < 0)
		s->sigv4 = NULL;
	if (s->key_id == NULL || s->secret == NULL || s->base == NULL ||
	    s->sigv4 == NULL)
		goto oom;
	s->retries = (unsigned)env_u64("CUMULUS_S3_RETRIES", 6, 0, 100);
	s->base_ms = (long)env_u64("CUMULUS_S3_RETRY_BASE_MS", 250, 1, 60000);
	s->stall = (long)env_u64("CUMULUS_S3_STALL_SECONDS", 60, 1, 3600);
	s->part_size = env_u64("CUMULUS_S3_PART_SIZE", 16 * MIB, 5 * MIB,
	    (uint64_t)5 << 30);
	s->mp_threshold = env_u64("CUMULUS_S3_MULTIPART_THRESHOLD", 64 * MIB,
	    5 * MIB, (uint64_t)5 << 30);
	if (check_bucket(s, create, region))
		goto fail;
	*impl = s;
	return 0;
oom:
	err_set("out of memory");
fail:
	s3_close(s);
	return -1;
}

/* ---- objects ---- */

static int
head_object(struct s3 *s, const char *key, struct req *r)
{
	req_init(r, "HEAD", key);
	if (perform(s, r))
		return -1;
	if (r->status == 404)
		return 1;
	if (r->status != 200) {
		http_error(s, r);
		return -1;
	}
	return 0;
}

static int
s3_stat(void *impl, const char *name, uint64_t *size)
{
	struct s3 *s = impl;
	struct buf k;
	struct req r;
	int rc = -1;

	if (full_key(s, name, &k) == 0) {
		rc = head_object(s, k.data, &r);
		if (rc == 0)
			*size = r.have_length ? r.length : 0;
		req_done(&r);
	}
	buf_release(&k);
	return rc;
}

/* A PUT refused by If-None-Match after a retry may be our own earlier
 * attempt that succeeded without us hearing of it. */
static int
already_ours(struct s3 *s, const char *key, const char *md5hex)
{
	struct req h;
	int r = head_object(s, key, &h);

	r = (r == 0 && strcasecmp(h.etag, md5hex) == 0);
	req_done(&h);
	return r;
}

static int
put_single(struct s3 *s, const char *key, int fd, uint64_t size,
    bool noreplace)
{
	unsigned char md5[16];
	char md5hex[33];
	struct req r;
	int rc = -1;

	req_init(&r, "PUT", key);
	if (digest_range(fd, 0, size, r.sha256, md5))
		return -1;
	hexval(md5hex, md5, 16);
	set_md5(&r, md5);
	r.in_fd = fd;
	r.in_len = size;
	r.extra = noreplace ? "If-None-Match: *" : NULL;
	if (perform(s, &r))
		goto out;
	if (r.status == 412 && r.attempts > 1 && already_ours(s, key, md5hex)) {
		rc = 0;
		goto out;
	}
	if (r.status == 412) {
		err_set("S3 PUT s3://%s/%s: the object already exists",
		    s->bucket, key);
		goto out;
	}
	if (r.status != 200) {
		http_error(s, &r);
		goto out;
	}
	/* Confirmation: the server computed the same MD5 as we did. */
	if (strcasecmp(r.etag, md5hex) != 0) {
		err_set("S3 PUT s3://%s/%s: the server's ETag '%.40s' does not "
			"match the data",
		    s->bucket, key, r.etag);
		goto out;
	}
	rc = 0;
out:
	req_done(&r);
	return rc;
}

static void
abort_multipart(struct s3 *s, const char *key, const char *qid)
{
	struct req r;
	char *q;

	if (asprintf(&q, "uploadId=%s", qid) < 0)
		return;
	req_init(&r, "DELETE", key);
	r.query = q;
	perform(s, &r); /* best effort: the error is the earlier one */
	req_done(&r);
	free(q);
}

static int
put_multipart(struct s3 *s, const char *key, int fd, uint64_t size,
    bool noreplace)
{
	uint64_t nparts = (size + s->part_size - 1) / s->part_size;
	struct buf id, qid, body, q;
	EVP_MD_CTX *all = NULL;
	struct req r;
	unsigned char md5[16];
	char md5hex[33], want[48];
	unsigned int l;
	int rc = -1, started = 0;

	buf_init(&id, 4096);
	buf_init(&qid, 8192);
	buf_init(&body, BUF_UNLIMITED);
	buf_init(&q, 16384);
	if (nparts > 10000) {
		err_set("S3 PUT s3://%s/%s: too large for %llu-byte parts",
		    s->bucket, key, (unsigned long long)s->part_size);
		goto out;
	}
	if (noreplace) {
		int e = head_object(s, key, &r);

		req_done(&r);
		if (e < 0)
			goto out;
		if (e == 0) {
			err_set("S3 PUT s3://%s/%s: the object already exists",
			    s->bucket, key);
			goto out;
		}
	}
	req_init(&r, "POST", key);
	r.query = "uploads=";
	r.out = &body;
	if (perform(s, &r) == 0 && r.status != 200)
		http_error(s, &r);
	if (r.status != 200 ||
	    s3xml_find(body.data ? body.data : "", body.len, "UploadId",
		&id) != 1 ||
	    id.len == 0) {
		if (r.status == 200)
			err_set("S3 POST s3://%s/%s?uploads: no UploadId",
			    s->bucket, key);
		req_done(&r);
		goto out;
	}
	req_done(&r);
	buf_reset(&body);
	started = 1;
	if (uri_encode(&qid, id.data, false) ||
	    buf_puts(&body, "<CompleteMultipartUpload>"))
		goto out;
	all = EVP_MD_CTX_new();
	if (all == NULL || !EVP_DigestInit_ex(all, EVP_md5(), NULL)) {
		err_set("cannot start a digest");
		goto out;
	}
	for (uint64_t i = 0; i < nparts; i++) {
		uint64_t off = i * s->part_size;
		uint64_t len = size - off < s->part_size ? size - off
							 : s->part_size;

		buf_reset(&q);
		if (buf_printf(&q, "partNumber=%llu&uploadId=%s",
			(unsigned long long)(i + 1), qid.data))
			goto out;
		req_init(&r, "PUT", key);
		r.query = q.data;
		if (digest_range(fd, off, len, r.sha256, md5)) {
			req_done(&r);
			goto out;
		}
		hexval(md5hex, md5, 16);
		set_md5(&r, md5);
		r.in_fd = fd;
		r.in_off = off;
		r.in_len = len;
		if (perform(s, &r) == 0 && r.status != 200)
			http_error(s, &r);
		if (r.status != 200 || strcasecmp(r.etag, md5hex) != 0) {
			if (r.status == 200)
				err_set("S3 PUT s3://%s/%s part %llu: ETag "
					"mismatch",
				    s->bucket, key, (unsigned long long)(i + 1));
			req_done(&r);
			goto out;
		}
		req_done(&r);
		EVP_DigestUpdate(all, md5, 16);
		if (buf_printf(&body,
			"<Part><PartNumber>%llu</PartNumber>"
			"<ETag>\"%s\"</ETag></Part>",
			(unsigned long long)(i + 1), md5hex))
			goto out;
	}
	if (buf_puts(&body, "</CompleteMultipartUpload>"))
		goto out;
	buf_reset(&q);
	if (buf_printf(&q, "uploadId=%s", qid.data))
		goto out;
	req_init(&r, "POST", key);
	r.query = q.data;
	r.in_mem = body.data;
	r.in_mem_len = body.len;
	sha256_mem(body.data, body.len, r.sha256);
	{
		struct buf resp;

		buf_init(&resp, XML_MAX);
		r.out = &resp;
		if (perform(s, &r) == 0 && r.status != 200)
			http_error(s, &r);
		/* S3 may answer 200 and put the error in the body. */
		if (r.status == 200 && resp.len &&
		    memmem(resp.data, resp.len, "<Error>", 7)) {
			buf_reset(&r.errbody);
			buf_append(&r.errbody, resp.data, resp.len);
			r.status = 500;
			http_error(s, &r);
		}
		buf_release(&resp);
	}
	if (r.status != 200) {
		req_done(&r);
		goto out;
	}
	req_done(&r);
	started = 0; /* complete: nothing to abort any more */
	/* Confirmation: the stored object's ETag is the MD5 of the part
	 * MD5s and the part count, and its size is ours. */
	EVP_DigestFinal_ex(all, md5, &l);
	hexval(md5hex, md5, 16);
	snprintf(want, sizeof(want), "%s-%llu", md5hex,
	    (unsigned long long)nparts);
	if (head_object(s, key, &r) != 0 || strcasecmp(r.etag, want) != 0 ||
	    !r.have_length || r.length != size) {
		if (r.status == 200 || r.status == 404)
			err_set("S3 PUT s3://%s/%s: the stored object does not "
				"match the upload",
			    s->bucket, key);
		req_done(&r);
		goto out;
	}
	req_done(&r);
	rc = 0;
out:
	if (started)
		abort_multipart(s, key, qid.data ? qid.data : "");
	EVP_MD_CTX_free(all);
	buf_release(&id);
	buf_release(&qid);
	buf_release(&body);
	buf_release(&q);
	return rc;
}

static int
s3_put(void *impl, const char *name, int fd, const char *path,
    bool noreplace)
{
	struct s3 *s = impl;
	struct stat sb;
	struct buf k;
	int rc = -1;

	(void)path;
	if (fstat(fd, &sb)) {
		err_setp("staged file");
		return -1;
	}
	if (full_key(s, name, &k) == 0)
		rc = (uint64_t)sb.st_size > s->mp_threshold
		    ? put_multipart(s, k.data, fd, (uint64_t)sb.st_size,
			  noreplace)
		    : put_single(s, k.data, fd, (uint64_t)sb.st_size, noreplace);
	buf_release(&k);
	return rc;
}

static int
s3_get(void *impl, const char *name, int fd, uint64_t listed)
{
	struct s3 *s = impl;
	struct buf k;
	struct req r;
	int rc = -1;

	if (full_key(s, name, &k))
		goto out0;
	req_init(&r, "GET", k.data);
	r.out_fd = fd;
	r.expect_body_md5 = true;
	/* No more than the listing said (curl itself stops at the
	 * Content-Length, but a chunked answer has none). */
	if (listed != STORE_SIZE_UNKNOWN) {
		r.out_max = listed + STORE_GET_SLACK;
		snprintf(r.out_what, sizeof(r.out_what),
		    "its listed size (%llu bytes)", (unsigned long long)listed);
	} else {
		r.out_max = GET_UNLISTED_MAX;
		snprintf(r.out_what, sizeof(r.out_what),
		    "the limit for an unlisted object, %llu bytes",
		    (unsigned long long)GET_UNLISTED_MAX);
	}
	if (perform(s, &r) == 0) {
		if (r.status == 200)
			rc = 0;
		else if (r.status == 404)
			rc = 1;
		else
			http_error(s, &r);
	}
	req_done(&r);
out0:
	buf_release(&k);
	return rc;
}

static int
s3_del(void *impl, const char *name)
{
	struct s3 *s = impl;
	struct buf k;
	struct req r;
	int rc = -1;

	if (full_key(s, name, &k))
		goto out0;
	req_init(&r, "DELETE", k.data);
	if (perform(s, &r) == 0) {
		/* S3 answers 204 for missing keys too. */
		if (r.status == 204 || r.status == 200)
			rc = 0;
		else if (r.status == 404)
			rc = 1;
		else
			http_error(s, &r);
	}
	req_done(&r);
out0:
	buf_release(&k);
	return rc;
}

/*
 * A listing is bounded whatever the server says: at most LIST_KEYS_MAX
 * keys and LIST_PAGES_MAX pages (8 million segments of 4 MiB are 32 TiB
 * in one directory), and each page must start after the last key of
 * the page before, as S3 lists keys in order: a server that cycles
 * through continuation tokens fails at once instead of looping.
 */
#define LIST_KEYS_MAX (1u << 23)
#define LIST_PAGES_MAX 100000u

struct list_ctx {
	const char *prefix;
	size_t plen;
	store_list_cb cb;
	void *arg;
	struct buf last;   /* the last key of the listing so far */
	bool page_start;   /* the next key is its page's first */
	uint32_t keys;
};

static int
list_one(void *arg, const char *key, uint64_t size)
{
	struct list_ctx *l = arg;

	if (++l->keys > LIST_KEYS_MAX) {
		err_set("more than %u keys", LIST_KEYS_MAX);
		return -1;
	}
	if (l->page_start && l->last.len &&
	    strcmp(key, buf_str(&l->last)) <= 0) {
		err_set("the server's listing does not advance (a page starts "
			"at '%.200s', after '%.200s')",
		    key, buf_str(&l->last));
		return -1;
	}
	l->page_start = false;
	buf_reset(&l->last);
	if (buf_puts(&l->last, key))
		return -1;
	/* Keys outside the asked prefix or below it are not ours. */
	if (strncmp(key, l->prefix, l->plen) != 0 || key[l->plen] == '\0' ||
	    strchr(key + l->plen, '/') != NULL)
		return 0;
	return l->cb(l->arg, key + l->plen, size);
}

static int
s3_list(void *impl, const char *dir, store_list_cb cb, void *arg)
{
	struct s3 *s = impl;
	struct buf prefix, q, token, prev, page;
	struct list_ctx l;
	bool truncated = true;
	int rc = -1;

	buf_init(&prefix, 4096);
	buf_init(&q, 16384);
	buf_init(&token, 4096);
	buf_init(&prev, 4096);
	buf_init(&page, XML_MAX);
	if (buf_printf(&prefix, "%s%s%s", s->prefix, dir, dir[0] ? "/" : ""))
		goto out;
	l.prefix = prefix.data;
	l.plen = prefix.len;
	l.cb = cb;
	l.arg = arg;
	buf_init(&l.last, 4096);
	l.keys = 0;
	for (uint32_t pages = 0; truncated; pages++) {
		struct req r;

		if (pages == LIST_PAGES_MAX) {
			err_set("listing s3://%s/%s: more than %u pages",
			    s->bucket, prefix.data, LIST_PAGES_MAX);
			goto out;
		}
		l.page_start = true;

		/* Parameters sorted by name, values RFC 3986 encoded: curl
		 * signs the query string as it is. */
		buf_reset(&q);
		if (token.len && (buf_puts(&q, "continuation-token=") ||
				     uri_encode(&q, token.data, false) ||
				     buf_putc(&q, '&')))
			goto out;
		if (buf_puts(&q, "delimiter=%2F&list-type=2&prefix=") ||
		    uri_encode(&q, prefix.data, false))
			goto out;
		req_init(&r, "GET", NULL);
		r.query = q.data;
		r.out = &page;
		snprintf(r.out_what, sizeof(r.out_what),
		    "the limit for a listing page, %zu bytes", XML_MAX);
		if (perform(s, &r)) {
			err_prefix("listing s3://%s/%s", s->bucket,
			    prefix.data);
			req_done(&r);
			goto out;
		}
		if (r.status != 200) {
			http_error(s, &r);
			req_done(&r);
			goto out;
		}
		req_done(&r);
		buf_reset(&prev);
		if (token.len && buf_append(&prev, token.data, token.len))
			goto out;
		rc = s3xml_parse_list(page.data ? page.data : "", page.len,
		    list_one, &l, &truncated, &token);
		if (rc) {
			if (rc < 0)
				err_prefix("listing s3://%s/%s", s->bucket,
				    prefix.data);
			goto out;
		}
		rc = -1;
		/* A server that hands back the same token would loop. */
		if (truncated && prev.len == token.len &&
		    memcmp(prev.data, token.data, token.len) == 0) {
			err_set("listing s3://%s/%s: the server repeats its "
				"continuation token",
			    s->bucket, prefix.data);
			goto out;
		}
	}
	rc = 0;
out:
	buf_release(&prefix);
	buf_release(&q);
	buf_release(&token);
	buf_release(&prev);
	buf_release(&page);
	buf_release(&l.last);
	return rc;
}

const struct store_ops store_s3_ops = {
	.scheme = "s3://",
	.open = s3_open,
	.close = s3_close,
	.put = s3_put,
	.default_jobs = 4,
	.max_jobs = 32,
	.cache_listing = true,
	.get = s3_get,
	.stat = s3_stat,
	.del = s3_del,
	.list = s3_list,
};
