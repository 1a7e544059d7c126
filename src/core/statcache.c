/*
 * statcache: reading and writing the stat cache.  See statcache.h; the
 * parsing rules copy the original's MetadataWriter::read_statcache().
 */
#include "statcache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "escape.h"
#include "fileio.h"

#define IO_SIZE 65536

/*
 * The fields of one stanza as a small map.  The buffers are kept between
 * entries so that reading a long file does not allocate per entry.
 */
struct fields {
	struct buf *key;
	struct buf *val;
	size_t n;   /* fields in use */
	size_t cap; /* initialised buffers */
	long last;  /* field continuation lines extend; -1 none */
};

struct statcache_entry {
	struct buf ref;
	struct fields f;
};

struct statcache {
	int fd;             /* -1: no file */
	bool done;          /* end of file or error: nothing more to find */
	bool have;          /* ${entry} holds the next unconsumed entry */
	char *rbuf;
	size_t rpos, rlen;
	bool eof;
	struct buf line;    /* a line spanning reads */
	struct buf name;    /* unescaped name of ${entry} */
	struct statcache_entry entry;
};

struct statcache_writer {
	struct fileio_tmp t;
	char *buf;
	size_t len;
	uint64_t written, written_back; /* for fileio_write_behind() */
};

/* isspace() of the C locale, whatever the process locale is. */
static bool
is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' ||
	    c == '\r';
}

static void
fields_reset(struct fields *f)
{
	f->n = 0;
	f->last = -1;
}

static void
fields_free(struct fields *f)
{
	for (size_t i = 0; i < f->cap; i++) {
		buf_release(&f->key[i]);
		buf_release(&f->val[i]);
	}
	free(f->key);
	free(f->val);
	memset(f, 0, sizeof(*f));
	f->last = -1;
}

static long
fields_find(const struct fields *f, const char *key, size_t klen)
{
	for (size_t i = 0; i < f->n; i++)
		if (f->key[i].len == klen &&
		    memcmp(buf_str(&f->key[i]), key, klen) == 0)
			return (long)i;
	return -1;
}

/* Set ${key} to ${val}, replacing an earlier value as the original's map. */
static int
fields_set(struct fields *f, const char *key, size_t klen, const char *val,
    size_t vlen)
{
	long i = fields_find(f, key, klen);

	if (i < 0) {
		if (f->n == f->cap) {
			size_t ncap = f->cap ? f->cap * 2 : 16;
			struct buf *nk, *nv;

			nk = realloc(f->key, ncap * sizeof(*nk));
			if (nk == NULL)
				goto oom;
			f->key = nk;
			nv = realloc(f->val, ncap * sizeof(*nv));
			if (nv == NULL)
				goto oom;
			f->val = nv;
			for (size_t j = f->cap; j < ncap; j++) {
				buf_init(&f->key[j], STATCACHE_LINE_MAX);
				buf_init(&f->val[j], STATCACHE_LINE_MAX);
			}
			f->cap = ncap;
		}
		i = (long)f->n++;
		buf_reset(&f->key[i]);
		if (buf_append(&f->key[i], key, klen))
			return -1;
	}
	buf_reset(&f->val[i]);
	if (buf_append(&f->val[i], val, vlen))
		return -1;
	/* The original's empty key also stops continuation lines. */
	f->last = klen > 0 ? i : -1;
	return 0;
oom:
	err_set("out of memory");
	return -1;
}

/* Take one non-blank stanza line (without its newline). */
static int
fields_line(struct fields *f, const char *line, size_t len)
{
	const char *colon, *v, *end = line + len;

	if (is_space((unsigned char)line[0]) && f->last >= 0) {
		struct buf *b = &f->val[f->last];

		if (buf_putc(b, '\n') || buf_append(b, line, len))
			return -1;
		return 0;
	}
	if ((colon = memchr(line, ':', len)) == NULL)
		return 0;
	for (v = colon + 1; v < end && is_space((unsigned char)*v); v++)
		;
	return fields_set(f, line, (size_t)(colon - line), v,
	    (size_t)(end - v));
}

/* The original works on C strings: a NUL byte ends the line. */
static size_t
c_len(const char *p, size_t n)
{
	const char *z = memchr(p, '\0', n);

	return z ? (size_t)(z - p) : n;
}

int
statcache_path_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t i = 0, j = 0;

	for (;;) {
		const char *sa = memchr(a + i, '/', alen - i);
		const char *sb = memchr(b + j, '/', blen - j);
		size_t ea = sa ? (size_t)(sa - a) : alen;
		size_t eb = sb ? (size_t)(sb - b) : blen;
		size_t la = ea - i, lb = eb - j;
		int c = memcmp(a + i, b + j, la < lb ? la : lb);

		if (c != 0)
			return c < 0 ? -1 : 1;
		if (la != lb)
			return la < lb ? -1 : 1;
		if (sa == NULL || sb == NULL)
			return (sa != NULL) - (sb != NULL);
		i = ea + 1;
		j = eb + 1;
	}
}

int
statcache_file_name(const char *scheme, char *out, size_t size)
{
	int n;

	if (scheme != NULL && strchr(scheme, '/') != NULL) {
		err_set("backup scheme '%s' contains '/'", scheme);
		return -1;
	}
	if (scheme == NULL || *scheme == '\0')
		n = snprintf(out, size, "statcache2");
	else
		n = snprintf(out, size, "statcache2-%s", scheme);
	if (n < 0 || (size_t)n >= size) {
		err_set("backup scheme name too long");
		return -1;
	}
	return 0;
}

int
statcache_open(const char *localdb_dir, const char *scheme,
    struct statcache **out)
{
	struct statcache *sc;
	struct buf path;
	char name[256];

	*out = NULL;
	if (statcache_file_name(scheme, name, sizeof(name)))
		return -1;
	if ((sc = calloc(1, sizeof(*sc))) == NULL) {
		err_set("out of memory");
		return -1;
	}
	sc->fd = -1;
	buf_init(&sc->line, STATCACHE_LINE_MAX);
	buf_init(&sc->name, STATCACHE_LINE_MAX);
	buf_init(&sc->entry.ref, STATCACHE_LINE_MAX);
	fields_reset(&sc->entry.f);
	buf_init(&path, BUF_UNLIMITED);
	if (buf_printf(&path, "%s/%s", localdb_dir, name))
		goto fail;
	sc->fd = open(buf_str(&path), O_RDONLY | O_CLOEXEC);
	if (sc->fd < 0 && errno != ENOENT) {
		err_setp("cannot open '%s'", buf_str(&path));
		goto fail;
	}
	if (sc->fd < 0) {
		sc->done = true;
	} else if ((sc->rbuf = malloc(IO_SIZE)) == NULL) {
		err_set("out of memory");
		goto fail;
	}
	buf_release(&path);
	*out = sc;
	return 0;
fail:
	buf_release(&path);
	statcache_close(sc);
	return -1;
}

void
statcache_close(struct statcache *sc)
{
	if (sc == NULL)
		return;
	if (sc->fd >= 0)
		close(sc->fd);
	free(sc->rbuf);
	buf_release(&sc->line);
	buf_release(&sc->name);
	buf_release(&sc->entry.ref);
	fields_free(&sc->entry.f);
	free(sc);
}

/*
 * The next line, without its newline, in *${p} and *${n} (valid until the
 * next call).  1, 0 at end of file, -1 on error.  A last line without a
 * newline still counts.
 */
static int
read_line(struct statcache *sc, const char **p, size_t *n)
{
	buf_reset(&sc->line);
	for (;;) {
		char *start = sc->rbuf + sc->rpos;
		size_t avail = sc->rlen - sc->rpos;
		char *nl = memchr(start, '\n', avail);
		ssize_t r;

		if (nl != NULL) {
			size_t len = (size_t)(nl - start);

			sc->rpos += len + 1;
			if (sc->line.len == 0) {
				/* The common case: no copy. */
				*p = start;
				*n = c_len(start, len);
				return 1;
			}
			if (buf_append(&sc->line, start, len))
				return -1;
			break;
		}
		if (buf_append(&sc->line, start, avail))
			return -1;
		sc->rpos = sc->rlen = 0;
		if (sc->eof)
			break;
		if ((r = fileio_read_full(sc->fd, sc->rbuf, IO_SIZE)) < 0)
			return -1;
		if (r == 0) {
			sc->eof = true;
			if (sc->line.len == 0)
				return 0;
			break;
		}
		sc->rlen = (size_t)r;
	}
	if (sc->eof && sc->line.len == 0)
		return 0;
	*p = buf_str(&sc->line);
	*n = c_len(*p, sc->line.len);
	return 1;
}

/*
 * Read the next entry into sc->entry and sc->name.  1, 0 at end of file,
 * -1 on error.  Lines before an "@@" line are skipped (the original gives
 * up there; skipping only makes more of a damaged file usable).
 */
static int
read_entry(struct statcache *sc)
{
	struct statcache_entry *e = &sc->entry;
	const char *line;
	size_t len;
	int r;

	do {
		if ((r = read_line(sc, &line, &len)) <= 0)
			return r;
	} while (len < 2 || line[0] != '@' || line[1] != '@');
	buf_reset(&e->ref);
	if (buf_append(&e->ref, line + 2, len - 2))
		return -1;
	fields_reset(&e->f);
	while ((r = read_line(sc, &line, &len)) == 1 && len > 0)
		if (fields_line(&e->f, line, len))
			return -1;
	if (r < 0)
		return -1;
	buf_reset(&sc->name);
	{
		long i = fields_find(&e->f, "name", 4);

		if (i >= 0 && escape_decode(&sc->name, buf_str(&e->f.val[i]),
		    e->f.val[i].len))
			return -1;
	}
	return 1;
}

int
statcache_lookup(struct statcache *sc, const char *path, size_t pathlen,
    struct statcache_entry **entry)
{
	*entry = NULL;
	while (!sc->done) {
		int c;

		if (!sc->have) {
			int r = read_entry(sc);

			if (r <= 0) {
				sc->done = true;
				if (r < 0)
					err_prefix("reading the statcache");
				return r;
			}
			/* A nameless entry cannot match: skip it. */
			if (fields_find(&sc->entry.f, "name", 4) < 0)
				continue;
			sc->have = true;
		}
		c = statcache_path_cmp(buf_str(&sc->name), sc->name.len, path,
		    pathlen);
		if (c > 0)
			return 0;
		if (c == 0) {
			*entry = &sc->entry;
			return 1;
		}
		sc->have = false;
	}
	return 0;
}

const char *
statcache_entry_ref(const struct statcache_entry *e)
{
	return buf_str(&e->ref);
}

const char *
statcache_entry_get(const struct statcache_entry *e, const char *key)
{
	long i = fields_find(&e->f, key, strlen(key));

	return i < 0 ? NULL : buf_str(&e->f.val[i]);
}

size_t
statcache_entry_count(const struct statcache_entry *e)
{
	return e->f.n;
}

void
statcache_entry_field(const struct statcache_entry *e, size_t i,
    const char **key, const char **value)
{
	*key = buf_str(&e->f.key[i]);
	*value = buf_str(&e->f.val[i]);
}

/*
 * The common case without parsing or allocating: the stanza's lines are
 * the entry's fields in the same order (both come from the same writer).
 * 1 when so; -1 when undecided (continuation lines, NUL bytes, another
 * order or any difference), which the full comparison then settles.
 */
static int
equal_in_order(const struct statcache_entry *e, const char *p,
    const char *end)
{
	size_t i = 0;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end, *colon, *v;
		size_t n = (size_t)(eol - p), klen, vlen;

		if (n == 0)
			break;
		if (memchr(p, '\0', n) != NULL || is_space((unsigned char)p[0]) ||
		    (colon = memchr(p, ':', n)) == NULL || i >= e->f.n)
			return -1;
		for (v = colon + 1; v < eol && is_space((unsigned char)*v); v++)
			;
		klen = (size_t)(colon - p);
		vlen = (size_t)(eol - v);
		if (e->f.key[i].len != klen || e->f.val[i].len != vlen ||
		    memcmp(buf_str(&e->f.key[i]), p, klen) != 0 ||
		    memcmp(buf_str(&e->f.val[i]), v, vlen) != 0)
			return -1;
		i++;
		p = nl ? nl + 1 : end;
	}
	return i == e->f.n ? 1 : -1;
}

int
statcache_entry_equal_text(const struct statcache_entry *e,
    const char *stanza, size_t len)
{
	struct fields f;
	const char *p = stanza, *end = stanza + len;
	int eq = 1;

	if (equal_in_order(e, stanza, end) == 1)
		return 1;
	memset(&f, 0, sizeof(f));
	fields_reset(&f);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);

		n = c_len(p, n);
		if (n == 0)
			break;
		if (fields_line(&f, p, n)) {
			fields_free(&f);
			return -1;
		}
		p = nl ? nl + 1 : end;
	}
	if (f.n != e->f.n)
		eq = 0;
	for (size_t i = 0; eq && i < f.n; i++) {
		long j = fields_find(&e->f, buf_str(&f.key[i]), f.key[i].len);

		if (j < 0 || f.val[i].len != e->f.val[j].len ||
		    memcmp(buf_str(&f.val[i]), buf_str(&e->f.val[j]),
		    f.val[i].len) != 0)
			eq = 0;
	}
	fields_free(&f);
	return eq;
}

int
statcache_writer_open(const char *localdb_dir, const char *scheme,
    struct statcache_writer **out)
{
	struct statcache_writer *w;
	char name[256];

	*out = NULL;
	if (statcache_file_name(scheme, name, sizeof(name)))
		return -1;
	if ((w = calloc(1, sizeof(*w))) == NULL ||
	    (w->buf = malloc(IO_SIZE)) == NULL) {
		free(w);
		err_set("out of memory");
		return -1;
	}
	if (fileio_tmp_open(&w->t, localdb_dir, name)) {
		err_prefix("statcache");
		free(w->buf);
		free(w);
		return -1;
	}
	/* Held until the file is renamed or removed and closed: it tells
	 * statcache_clean_temps() that this writer is alive. */
	if (flock(w->t.fd, LOCK_EX | LOCK_NB)) {
		err_setp("statcache: cannot lock its temp file");
		fileio_tmp_abort(&w->t);
		free(w->buf);
		free(w);
		return -1;
	}
	*out = w;
	return 0;
}

int
statcache_clean_temps(const char *localdb_dir)
{
	return fileio_clean_temps(localdb_dir, "statcache2");
}

static int
writer_put(struct statcache_writer *w, const void *p, size_t n)
{
	if (w->len + n > IO_SIZE) {
		if (fileio_write_full(w->t.fd, w->buf, w->len))
			return -1;
		w->written += w->len;
		w->len = 0;
		/* The file is fsynced at commit: let the disk start early. */
		fileio_write_behind(w->t.fd, &w->written_back, w->written,
		    (uint64_t)4 << 20);
	}
	if (n >= IO_SIZE) {
		w->written += n;
		return fileio_write_full(w->t.fd, p, n);
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
	return 0;
}

/* Does ${p} hold an empty line ("\n\n")?  (glibc's memmem is slow for
 * this two-byte needle, and this runs once per file.) */
static bool
has_empty_line(const char *p, size_t len)
{
	const char *end = p + len, *nl;

	while ((nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		if (nl + 1 < end && nl[1] == '\n')
			return true;
		p = nl + 1;
	}
	return false;
}

int
statcache_writer_add(struct statcache_writer *w, const char *ref,
    const char *stanza, size_t len)
{
	if (strchr(ref, '\n') != NULL ||
	    (len > 0 && stanza[0] == '\n') || has_empty_line(stanza, len)) {
		err_set("statcache: malformed entry");
		return -1;
	}
	if (writer_put(w, "@@", 2) || writer_put(w, ref, strlen(ref)) ||
	    writer_put(w, "\n", 1) || writer_put(w, stanza, len) ||
	    (len > 0 && stanza[len - 1] != '\n' && writer_put(w, "\n", 1)) ||
	    writer_put(w, "\n", 1)) {
		err_prefix("statcache");
		return -1;
	}
	return 0;
}

int
statcache_writer_commit(struct statcache_writer *w)
{
	int rc = 0;

	if (w->len > 0 && fileio_write_full(w->t.fd, w->buf, w->len))
		rc = -1;
	if (rc == 0 && fileio_tmp_commit(&w->t, false))
		rc = -1;
	if (rc) {
		err_prefix("statcache");
		fileio_tmp_abort(&w->t);
	}
	free(w->buf);
	free(w);
	return rc;
}

void
statcache_writer_abort(struct statcache_writer *w)
{
	if (w == NULL)
		return;
	fileio_tmp_abort(&w->t);
	free(w->buf);
	free(w);
}
