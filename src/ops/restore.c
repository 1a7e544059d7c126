/*
 * restore: recreate a snapshot under DEST (see restore.h).
 */
#include "restore.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "bulkwrite.h"
#include "err.h"
#include "escape.h"
#include "fileio.h"
#include "hash.h"
#include "meta.h"
#include "ring.h"
#include "snapshot.h"

/* Longest decoded name we accept (deep trees are fine, absurd ones not). */
#define NAME_MAX_BYTES ((size_t)1 << 20)

struct wpool;

/* An open directory, shared by the walker and the writers' jobs: the last
 * to let go closes it. */
struct dirh {
	int fd;
	atomic_int refs;
};

#define RST_STMTS 16
#define WALK_DEPTH 32

struct rst {
	struct snapshot *s;
	const struct restore_opts *o;
	int destfd;
	sqlite3 *db;
	int failed;
	pthread_mutex_t warn_lock; /* writer threads warn too */
	struct wpool *pool;        /* NULL: files are written in line */
	bool root; /* running as root: restore ownership */
	/*
	 * The walker's open directories: dfd[i] is component i + 1 of
	 * cache_path, so the next path re-opens only what differs (files
	 * come in segment order, not directory order).  Deeper than
	 * WALK_DEPTH, the last slot holds the deepest directory (dcut).
	 */
	struct buf cache_path;
	struct dirh *dfd[WALK_DEPTH];
	int ddepth;
	bool dcut;
	struct dirh *cur_dh; /* what walk_parent() returned; NULL: destfd */
	/* The last parent path known to contain no non-directory. */
	struct buf ok_parent;
	/* A filter of the non-directory names claimed: bit (hash of the
	 * name) set.  check_parents() asks the database only about the
	 * ancestors whose bit is set. */
	uint64_t *nondir_bits;
	int64_t ord;
	/* Segments numbered in the order the log first names them. */
	char last_seg[REF_SEGMENT_MAX + 1];
	int64_t last_seg_rank, nsegs;
	/* Statements prepared once (pass 1 runs several per entry; parsing
	 * them each time was ~1.5 % of a restore). */
	struct {
		const char *sql;
		sqlite3_stmt *st;
	} stmts[RST_STMTS];
};

/* ---- messages ---- */

static void
warnf(struct rst *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
warnf(struct rst *r, const char *fmt, ...)
{
	char msg[4096];
	va_list ap;

	va_start(ap, fmt);
	/* Names in warnings come from stores and file systems. */
	err_vformat(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&r->warn_lock);
	r->failed++;
	if (r->o->warn)
		r->o->warn(r->o->arg, msg);
	pthread_mutex_unlock(&r->warn_lock);
}

/* A printable form of a name: the metadata %-encoding, shortened. */
static const char *
shown(const char *p, size_t n, struct buf *tmp)
{
	buf_init(tmp, 2048);
	if (p == NULL) /* its buffer could not be filled (out of memory) */
		return "(name unavailable)";
	if (escape_encode(tmp, p, n > 600 ? 600 : n) ||
	    (n > 600 && buf_puts(tmp, "...")))
		return "(unprintable)";
	return buf_str(tmp);
}

/* ---- SQLite helpers ---- */

static int
db_exec(struct rst *r, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(r->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		err_set("temporary database: %s", msg ? msg : "error");
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

/* The statement for ${sql} (a string constant: its address is the key),
 * prepared on first use; give it back with db_release(). */
static sqlite3_stmt *
db_prep(struct rst *r, const char *sql)
{
	sqlite3_stmt *st = NULL;
	size_t i;

	for (i = 0; i < RST_STMTS && r->stmts[i].sql != NULL; i++)
		if (r->stmts[i].sql == sql)
			return r->stmts[i].st;
	if (sqlite3_prepare_v3(r->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st,
		NULL) != SQLITE_OK) {
		err_set("temporary database: %s", sqlite3_errmsg(r->db));
		sqlite3_finalize(st);
		return NULL;
	}
	if (i < RST_STMTS) {
		r->stmts[i].sql = sql;
		r->stmts[i].st = st;
	}
	return st;
}

/* Reset a statement from db_prep() for its next use (or finalize one
 * the cache had no room for). */
static void
db_release(struct rst *r, sqlite3_stmt *st)
{
	for (size_t i = 0; i < RST_STMTS && r->stmts[i].sql != NULL; i++)
		if (r->stmts[i].st == st) {
			sqlite3_reset(st);
			sqlite3_clear_bindings(st);
			return;
		}
	sqlite3_finalize(st);
}

static void
db_close(struct rst *r)
{
	for (size_t i = 0; i < RST_STMTS && r->stmts[i].sql != NULL; i++)
		sqlite3_finalize(r->stmts[i].st);
	sqlite3_close(r->db);
}

static int
db_err(struct rst *r)
{
	err_set("temporary database: %s", sqlite3_errmsg(r->db));
	return -1;
}

/* ---- walking under DEST ---- */

static void
dirh_put(struct dirh *h)
{
	if (h != NULL &&
	    atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel) == 1) {
		close(h->fd);
		free(h);
	}
}

/* Close the walker's directories below the first ${keep}. */
static void
walk_pop(struct rst *r, int keep)
{
	while (r->ddepth > keep)
		dirh_put(r->dfd[--r->ddepth]);
	r->dcut = false;
}

/*
 * Open the directory holding ${path} (${n} bytes, validated components),
 * creating missing directories (mode 0700) when ${create}.  Returns a
 * descriptor owned by the walker (valid until the next walk; r->cur_dh is
 * its handle, NULL for the destination, for a caller that keeps it
 * longer) and the base name in *base (NUL-terminated copy in ${scratch}),
 * or -1.
 */
static int
walk_parent(struct rst *r, const char *path, size_t n, bool create,
    struct buf *scratch, const char **base)
{
	size_t plen = 0, common = 0, i;
	struct dirh *h;
	int m = 0;
	char *p;
	int cur;

	buf_reset(scratch);
	if (buf_append(scratch, path, n))
		return -1;
	p = scratch->data;
	for (i = 0; i < n; i++)
		if (p[i] == '/')
			plen = i;
	r->cur_dh = NULL;
	if (plen == 0 && p[0] != '/') {
		*base = p;
		if (memchr(p, '/', n) == NULL)
			return r->destfd;
	}
	*base = p + plen + 1;
	if (r->ddepth > 0 && r->cache_path.len == plen &&
	    memcmp(r->cache_path.data, p, plen) == 0) {
		r->cur_dh = r->dfd[r->ddepth - 1];
		return r->cur_dh->fd;
	}
	/* The components this path shares with the open ones. */
	for (i = 0; i <= plen && i <= r->cache_path.len; i++) {
		bool end_p = i == plen || p[i] == '/';
		bool end_c = i == r->cache_path.len ||
		    r->cache_path.data[i] == '/';

		if (end_p && end_c)
			m++;
		if (end_p != end_c || i == plen || i == r->cache_path.len ||
		    p[i] != r->cache_path.data[i])
			break;
	}
	if (m > r->ddepth)
		m = r->ddepth;
	if (r->dcut && m > WALK_DEPTH - 1)
		m = WALK_DEPTH - 1;
	walk_pop(r, m);
	/* Where component m ends. */
	for (int k = 0; k < m; k++) {
		const char *slash = memchr(p + common + (k > 0), '/',
		    plen - common - (k > 0));

		common = slash ? (size_t)(slash - p) : plen;
	}
	r->cache_path.len = common;
	cur = m > 0 ? r->dfd[m - 1]->fd : r->destfd;
	if (m > 0 && common == plen) {
		r->cur_dh = r->dfd[m - 1];
		return cur; /* a parent of the last path */
	}
	p[plen] = '\0';
	for (char *comp = p + common + (m > 0); comp;) {
		char *slash = strchr(comp, '/');
		int fd;

		if (slash)
			*slash = '\0';
		fd = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
			O_CLOEXEC);
		if (fd < 0 && errno == ENOENT && create) {
			if (mkdirat(cur, comp, 0700) && errno != EEXIST)
				goto fail;
			fd = openat(cur, comp, O_RDONLY | O_DIRECTORY |
				O_NOFOLLOW | O_CLOEXEC);
		}
		if (fd < 0) {
			if (errno == ELOOP || errno == ENOTDIR)
				err_set("a parent is not a directory (a symlink "
					"or a file)");
			else
				err_setp("cannot enter a parent directory");
			goto fail;
		}
		if ((h = malloc(sizeof(*h))) == NULL) {
			close(fd);
			err_set("out of memory");
			goto fail;
		}
		h->fd = fd;
		atomic_init(&h->refs, 1);
		if (r->ddepth < WALK_DEPTH) {
			r->dfd[r->ddepth++] = h;
		} else {
			dirh_put(r->dfd[WALK_DEPTH - 1]);
			r->dfd[WALK_DEPTH - 1] = h;
			r->dcut = true;
		}
		cur = fd;
		if ((r->cache_path.len > 0 && buf_append(&r->cache_path, "/", 1)) ||
		    buf_append(&r->cache_path, comp, strlen(comp))) {
			walk_pop(r, 0);
			r->cache_path.len = 0;
			goto fail;
		}
		if (slash)
			*slash = '/';
		comp = slash ? slash + 1 : NULL;
	}
	p[plen] = '/';
	r->cur_dh = r->dfd[r->ddepth - 1];
	return cur;
fail:
	p[plen] = '/';
	return -1;
}

/* ---- names ---- */

/*
 * Decode and check a stored name: no leading '/', no empty, "." or ".."
 * component, no NUL byte.  "." alone is the root.  0 or -1.
 */
static int
decode_name(const char *enc, size_t n, struct buf *out)
{
	const char *p, *end;

	buf_reset(out);
	if (escape_decode(out, enc, n))
		return -1;
	if (out->len == 0 || memchr(out->data, '\0', out->len)) {
		err_set("empty name or name with a NUL byte");
		return -1;
	}
	if (out->len == 1 && out->data[0] == '.')
		return 0;
	if (out->data[0] == '/') {
		err_set("absolute name");
		return -1;
	}
	p = out->data;
	end = p + out->len;
	while (p <= end) {
		const char *slash = memchr(p, '/', (size_t)(end - p));
		size_t len = slash ? (size_t)(slash - p) : (size_t)(end - p);

		if (len == 0 || (len == 1 && p[0] == '.') ||
		    (len == 2 && p[0] == '.' && p[1] == '.')) {
			err_set("name with an empty, '.' or '..' component");
			return -1;
		}
		if (slash == NULL)
			break;
		p = slash + 1;
	}
	return 0;
}

/* Whether ${name} is selected by the PATH arguments (or needed above one). */
static bool
selected(const struct rst *r, const char *name, size_t n, bool *ancestor)
{
	*ancestor = false;
	if (r->o->npaths == 0)
		return true;
	for (size_t i = 0; i < r->o->npaths; i++) {
		const char *p = r->o->paths[i];
		size_t pl;

		while (*p == '/')
			p++;
		pl = strlen(p);
		while (pl > 0 && p[pl - 1] == '/')
			pl--;
		if (pl == 0 || (pl == 1 && p[0] == '.'))
			return true;
		if (n >= pl && memcmp(name, p, pl) == 0 &&
		    (n == pl || name[pl] == '/'))
			return true;
		if (pl > n && memcmp(name, p, n) == 0 && p[n] == '/' &&
		    !(n == 1 && name[0] == '.'))
			*ancestor = true;
	}
	return *ancestor;
}

static int64_t
num(const struct stanza *st, const char *key, bool *present)
{
	const char *v = stanza_get(st, key, NULL);
	char *end;
	long long x;

	*present = false;
	if (v == NULL)
		return 0;
	errno = 0;
	x = strtoll(v, &end, 0);
	/* user/group: "<id> (<name>)"; only the number is used. */
	if (errno || end == v || (*end != '\0' && *end != ' '))
		return 0;
	*present = true;
	return (int64_t)x;
}

struct attrs {
	mode_t mode;
	bool has_mode, has_uid, has_gid, has_mtime;
	int64_t uid, gid, mtime;
};

/* Whether ${key} is in ${st} although ${present} says it did not parse. */
static bool
malformed(const struct stanza *st, const char *key, bool *present)
{
	return !*present && stanza_get(st, key, NULL) != NULL;
}

/*
 * Fill ${a} from ${st}.  A field that does not parse or is out of range
 * (a mode outside 07777, an id that is negative or -1 as 32 bits) is left
 * out, and its name returned so that the caller can say so; else NULL.
 */
static const char *
get_attrs(const struct stanza *st, struct attrs *a)
{
	int64_t mode = num(st, "mode", &a->has_mode);
	const char *bad = NULL;

	a->uid = num(st, "user", &a->has_uid);
	a->gid = num(st, "group", &a->has_gid);
	a->mtime = num(st, "mtime", &a->has_mtime);
	if (a->has_mode && (mode < 0 || mode > 07777))
		a->has_mode = false;
	a->mode = a->has_mode ? (mode_t)mode : 0;
	if (a->uid < 0 || a->uid > UINT32_MAX - 1)
		a->has_uid = false;
	if (a->gid < 0 || a->gid > UINT32_MAX - 1)
		a->has_gid = false;
	if (malformed(st, "mtime", &a->has_mtime))
		bad = "mtime";
	if (malformed(st, "group", &a->has_gid))
		bad = "group";
	if (malformed(st, "user", &a->has_uid))
		bad = "user";
	if (malformed(st, "mode", &a->has_mode))
		bad = "mode";
	return bad;
}

/* Apply ownership, mode and mtime through an open descriptor. */
static int
apply_fd(struct rst *r, int fd, const struct attrs *a)
{
	struct timespec ts[2] = { { 0, UTIME_NOW }, { 0, UTIME_OMIT } };

	if (r->root && (a->has_uid || a->has_gid) &&
	    fchown(fd, a->has_uid ? (uid_t)a->uid : (uid_t)-1,
		a->has_gid ? (gid_t)a->gid : (gid_t)-1)) {
		err_setp("chown");
		return -1;
	}
	/* After chown, which clears setuid/setgid. */
	if (a->has_mode && fchmod(fd, a->mode)) {
		err_setp("chmod");
		return -1;
	}
	if (a->has_mtime) {
		ts[1].tv_sec = (time_t)a->mtime;
		ts[1].tv_nsec = 0;
		if (futimens(fd, ts)) {
			err_setp("setting the mtime");
			return -1;
		}
	}
	return 0;
}

/* The same for an entry we cannot open (symlink, fifo, device). */
static int
apply_at(struct rst *r, int dirfd, const char *base, const struct attrs *a,
    bool symlink)
{
	struct timespec ts[2] = { { 0, UTIME_NOW }, { 0, UTIME_OMIT } };

	if (r->root && (a->has_uid || a->has_gid) &&
	    fchownat(dirfd, base, a->has_uid ? (uid_t)a->uid : (uid_t)-1,
		a->has_gid ? (gid_t)a->gid : (gid_t)-1, AT_SYMLINK_NOFOLLOW)) {
		err_setp("chown");
		return -1;
	}
	/* Just created by us and not a symlink: chmod cannot be redirected. */
	if (!symlink && a->has_mode && fchmodat(dirfd, base, a->mode, 0)) {
		err_setp("chmod");
		return -1;
	}
	if (a->has_mtime) {
		ts[1].tv_sec = (time_t)a->mtime;
		ts[1].tv_nsec = 0;
		if (utimensat(dirfd, base, ts, AT_SYMLINK_NOFOLLOW)) {
			err_setp("setting the mtime");
			return -1;
		}
	}
	return 0;
}

/* With --force, clear a non-directory in the way of a new entry. */
static int
clear_way(struct rst *r, int dirfd, const char *base)
{
	struct stat sb;

	if (!r->o->force || fstatat(dirfd, base, &sb, AT_SYMLINK_NOFOLLOW))
		return 0;
	if (S_ISDIR(sb.st_mode))
		return 0;
	if (unlinkat(dirfd, base, 0) && errno != ENOENT) {
		err_setp("cannot replace the existing entry");
		return -1;
	}
	return 0;
}

/* ---- pass 1: the metadata log ---- */

/*
 * The filter of non-directory names (struct rst): 2^21 bits, 256 KiB.
 * With the 80,000 files of the kernel tree 4 % of the bits are set, so
 * one ancestor in 25 costs a query; far more names only fill it up, and
 * every ancestor costs a query, as without it.
 */
#define NONDIR_BITS_LOG 21

static size_t
nondir_bit(uint64_t h)
{
	return (size_t)((h ^ (h >> 29)) & ((1u << NONDIR_BITS_LOG) - 1));
}

static bool
nondir_maybe(const struct rst *r, uint64_t h)
{
	size_t b = nondir_bit(h);

	return (r->nondir_bits[b / 64] >> (b % 64)) & 1;
}

/*
 * Refuse an entry below something the snapshot made a non-directory.
 * One pass hashes every ancestor (FNV-1a of a prefix is a step of the
 * whole name's), and only those the filter may hold are looked up: a
 * lookup per ancestor, each comparing the whole prefix, cost a hostile
 * name of 1 MiB with many components seconds per entry.
 */
static int
check_parents(struct rst *r, const char *name, size_t n)
{
	sqlite3_stmt *q = NULL;
	size_t plen = 0;
	uint64_t h = FNV1A_INIT;
	int rc = 0;

	for (size_t i = 0; i < n; i++)
		if (name[i] == '/')
			plen = i;
	if (plen == 0)
		return 0;
	if (r->ok_parent.len == plen &&
	    memcmp(r->ok_parent.data, name, plen) == 0)
		return 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		uint64_t prefix = h;

		h = fnv1a_step(h, (unsigned char)name[i]);
		if (name[i] != '/' || !nondir_maybe(r, prefix))
			continue;
		if (q == NULL &&
		    (q = db_prep(r, "SELECT type FROM names WHERE path = ?")) ==
			NULL)
			return -1;
		sqlite3_reset(q);
		sqlite3_bind_blob(q, 1, name, (int)i, SQLITE_STATIC);
		if (sqlite3_step(q) == SQLITE_ROW &&
		    sqlite3_column_int(q, 0) != 'd') {
			err_set("an entry under a non-directory (%c) of the "
				"snapshot",
			    sqlite3_column_int(q, 0));
			rc = -1;
		}
	}
	if (q)
		db_release(r, q);
	if (rc == 0) {
		buf_reset(&r->ok_parent);
		if (buf_append(&r->ok_parent, name, plen))
			return -1;
	}
	return rc;
}

/* Record the name; 1 if it was already seen (refused), 0, or -1. */
static int
claim_name(struct rst *r, const char *name, size_t n, int type)
{
	sqlite3_stmt *q = db_prep(r,
	    "INSERT OR IGNORE INTO names(path, type) VALUES (?, ?)");
	int rc;

	if (q == NULL)
		return -1;
	sqlite3_bind_blob(q, 1, name, (int)n, SQLITE_STATIC);
	sqlite3_bind_int(q, 2, type);
	rc = sqlite3_step(q);
	db_release(r, q);
	if (rc != SQLITE_DONE)
		return db_err(r);
	if (type != 'd') {
		size_t b = nondir_bit(fnv1a(name, n));
		r->nondir_bits[b / 64] |= (uint64_t)1 << (b % 64);
	}
	return sqlite3_changes(r->db) == 0 ? 1 : 0;
}

/*
 * The key of ${st}'s inode for hard links into ${key}: its number and, as
 * the original's restore.pl keys them, what it holds (size, checksum,
 * target, device), so that a damaged or hostile snapshot cannot make one
 * name restore another's data by giving both the same inode number.
 * Each field is length-prefixed, so no two stanzas share a key.
 */
static int
link_key(const struct stanza *st, const char *inode, struct buf *key)
{
	static const char *const fields[] = { "size", "checksum", "target",
		"device" };

	buf_reset(key);
	if (buf_printf(key, "%zu:%s", strlen(inode), inode))
		return -1;
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		const char *v = stanza_get(st, fields[i], NULL);

		if (v == NULL)
			v = "";
		if (buf_printf(key, ";%zu:%s", strlen(v), v))
			return -1;
	}
	return 0;
}

/* Hard links: 1 with *target set when an inode of key ${key} (link_key())
 * was seen already. */
static int
link_target(struct rst *r, const struct buf *key, int type, const char *name,
    size_t n, struct buf *target)
{
	sqlite3_stmt *q = db_prep(r,
	    "SELECT path, type FROM inodes WHERE inode = ?");
	int rc;

	if (q == NULL)
		return -1;
	sqlite3_bind_blob(q, 1, key->data, (int)key->len, SQLITE_STATIC);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		int ok = sqlite3_column_int(q, 1) == type;

		buf_reset(target);
		if (ok && buf_append(target, sqlite3_column_blob(q, 0),
			      (size_t)sqlite3_column_bytes(q, 0))) {
			db_release(r, q);
			return -1;
		}
		db_release(r, q);
		return ok ? 1 : 0;
	}
	db_release(r, q);
	q = db_prep(r, "INSERT INTO inodes(inode, path, type) VALUES (?, ?, ?)");
	if (q == NULL)
		return -1;
	sqlite3_bind_blob(q, 1, key->data, (int)key->len, SQLITE_STATIC);
	sqlite3_bind_blob(q, 2, name, (int)n, SQLITE_STATIC);
	sqlite3_bind_int(q, 3, type);
	rc = sqlite3_step(q);
	db_release(r, q);
	return rc == SQLITE_DONE ? 0 : db_err(r);
}

static int
make_special(struct rst *r, int dirfd, const char *base,
    const struct stanza *st, int type, const struct attrs *a)
{
	int rc;

	if (clear_way(r, dirfd, base))
		return -1;
	if (type == 'l') {
		const char *t = stanza_get(st, "target", NULL);
		struct buf target;

		if (t == NULL)
			t = stanza_get(st, "contents", NULL);
		if (t == NULL) {
			err_set("symlink without a target");
			return -1;
		}
		buf_init(&target, NAME_MAX_BYTES);
		rc = escape_decode(&target, t, strlen(t));
		if (rc == 0 && memchr(target.data ? target.data : "", '\0',
				   target.len)) {
			err_set("symlink target with a NUL byte");
			rc = -1;
		}
		if (rc == 0 && symlinkat(buf_str(&target), dirfd, base)) {
			err_setp("symlink");
			rc = -1;
		}
		buf_release(&target);
		return rc ? -1 : apply_at(r, dirfd, base, a, true);
	}
	if (type == 'p')
		rc = mkfifoat(dirfd, base, 0600);
	else if (type == 's')
		rc = mknodat(dirfd, base, S_IFSOCK | 0600, 0);
	else {
		const char *dev = stanza_get(st, "device", NULL);
		unsigned long long maj = 0, min = 0;
		char *end = NULL;

		/* "major/minor", each at most 32 bits, as mknod takes them. */
		errno = 0;
		if (dev && dev[0] >= '0' && dev[0] <= '9')
			maj = strtoull(dev, &end, 10);
		if (end && *end == '/' && end[1] >= '0' && end[1] <= '9')
			min = strtoull(end + 1, &end, 10);
		else
			end = NULL;
		if (end == NULL || *end != '\0' || errno ||
		    maj > UINT32_MAX || min > UINT32_MAX) {
			err_set("device without a valid 'device' field");
			return -1;
		}
		rc = mknodat(dirfd, base,
		    (type == 'c' ? S_IFCHR : S_IFBLK) | 0600,
		    makedev((unsigned)maj, (unsigned)min));
	}
	if (rc) {
		err_setp("cannot create the %s",
		    type == 'p' ? "fifo" : type == 's' ? "socket" : "device");
		return -1;
	}
	return apply_at(r, dirfd, base, a, false);
}

static int
make_dir(struct rst *r, const char *name, size_t n, struct buf *scratch,
    const struct attrs *a)
{
	const char *base;
	int dirfd;
	sqlite3_stmt *q;
	int rc;

	if (!(n == 1 && name[0] == '.')) {
		dirfd = walk_parent(r, name, n, true, scratch, &base);
		if (dirfd < 0 || clear_way(r, dirfd, base))
			return -1;
		if (mkdirat(dirfd, base, 0700) && errno != EEXIST) {
			err_setp("mkdir");
			return -1;
		}
		if (errno == EEXIST) {
			struct stat sb;

			if (fstatat(dirfd, base, &sb, AT_SYMLINK_NOFOLLOW) ||
			    !S_ISDIR(sb.st_mode)) {
				err_set("exists and is not a directory");
				return -1;
			}
		}
	}
	/* Modes and times later, deepest first, so read-only dirs work. */
	q = db_prep(r, "INSERT INTO dirs(ord, path, mode, uid, gid, mtime, "
		       "flags) VALUES (?, ?, ?, ?, ?, ?, ?)");
	if (q == NULL)
		return -1;
	sqlite3_bind_int64(q, 1, r->ord);
	sqlite3_bind_blob(q, 2, name, (int)n, SQLITE_STATIC);
	sqlite3_bind_int(q, 3, (int)a->mode);
	sqlite3_bind_int64(q, 4, a->uid);
	sqlite3_bind_int64(q, 5, a->gid);
	sqlite3_bind_int64(q, 6, a->mtime);
	sqlite3_bind_int(q, 7, a->has_mode | a->has_uid << 1 | a->has_gid << 2 |
		a->has_mtime << 3);
	rc = sqlite3_step(q);
	db_release(r, q);
	return rc == SQLITE_DONE ? 0 : db_err(r);
}

/*
 * The rank of segment ${seg}: segments are numbered in the order the log
 * first names them, which is the order a backup wrote them, so a file
 * whose data runs on into the next segment is read before that segment's
 * own files and every segment is read forwards, once.  -1 on error.
 */
static int64_t
segment_rank(struct rst *r, const char *seg)
{
	sqlite3_stmt *q;
	int64_t rank = -1;
	int rc;

	if (r->nsegs > 0 && strcmp(seg, r->last_seg) == 0)
		return r->last_seg_rank;
	q = db_prep(r, "SELECT rank FROM segs WHERE uuid = ?");
	if (q == NULL)
		return -1;
	sqlite3_bind_text(q, 1, seg, -1, SQLITE_STATIC);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		rank = sqlite3_column_int64(q, 0);
	db_release(r, q);
	if (rc == SQLITE_DONE) {
		q = db_prep(r, "INSERT INTO segs(uuid, rank) VALUES (?, ?)");
		if (q == NULL)
			return -1;
		sqlite3_bind_text(q, 1, seg, -1, SQLITE_STATIC);
		sqlite3_bind_int64(q, 2, r->nsegs);
		rc = sqlite3_step(q);
		db_release(r, q);
		if (rc != SQLITE_DONE)
			return db_err(r);
		rank = r->nsegs++;
	} else if (rc != SQLITE_ROW) {
		return db_err(r);
	}
	snprintf(r->last_seg, sizeof(r->last_seg), "%s", seg);
	r->last_seg_rank = rank;
	return rank;
}

static int
queue_file(struct rst *r, const char *name, size_t n, const struct stanza *st,
    struct buf *scratch)
{
	static const char *const keys[] = { "data", "size", "checksum",
		"mode", "user", "group", "mtime" };
	char seg[REF_SEGMENT_MAX + 1];
	sqlite3_stmt *q;
	const char *base;
	int64_t rank;
	int rc;

	/* Parents now, so an entry under a symlink fails in log order. */
	if (walk_parent(r, name, n, true, scratch, &base) < 0)
		return -1;
	snapshot_first_segment(st, seg);
	if (snapshot_plan_file(r->s, st))
		return -1;
	rank = segment_rank(r, seg);
	if (rank < 0)
		return -1;
	q = db_prep(r, "INSERT INTO files(seg, ord, path, data, size, "
		       "checksum, mode, user, grp, mtime, rank) "
		       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
	if (q == NULL)
		return -1;
	sqlite3_bind_int64(q, 11, rank);
	sqlite3_bind_text(q, 1, seg, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(q, 2, r->ord);
	sqlite3_bind_blob(q, 3, name, (int)n, SQLITE_STATIC);
	for (int i = 0; i < 7; i++) {
		size_t len;
		const char *v = stanza_get(st, keys[i], &len);

		if (v)
			sqlite3_bind_text(q, 4 + i, v, (int)len, SQLITE_STATIC);
		else
			sqlite3_bind_null(q, 4 + i);
	}
	rc = sqlite3_step(q);
	db_release(r, q);
	return rc == SQLITE_DONE ? 0 : db_err(r);
}

static int
queue_link(struct rst *r, const char *name, size_t n, const struct buf *t)
{
	sqlite3_stmt *q = db_prep(r,
	    "INSERT INTO links(ord, path, target) VALUES (?, ?, ?)");
	int rc;

	if (q == NULL)
		return -1;
	sqlite3_bind_int64(q, 1, r->ord);
	sqlite3_bind_blob(q, 2, name, (int)n, SQLITE_STATIC);
	sqlite3_bind_blob(q, 3, t->data, (int)t->len, SQLITE_STATIC);
	rc = sqlite3_step(q);
	db_release(r, q);
	return rc == SQLITE_DONE ? 0 : db_err(r);
}

/* One stanza of the log.  0 (done or failure counted) or -1 (fatal). */
static int
pass1_entry(struct rst *r, const struct stanza *st, struct buf *name,
    struct buf *scratch, struct buf *tmp)
{
	const char *enc = stanza_get(st, "name", NULL);
	const char *type_s = stanza_get(st, "type", NULL);
	const char *inode = stanza_get(st, "inode", NULL);
	const char *bad;
	struct attrs a;
	bool ancestor, has_links;
	int type, rc;
	struct buf show;

	if (enc == NULL)
		enc = stanza_get(st, "path", NULL);
	if (enc == NULL || type_s == NULL || strlen(type_s) != 1) {
		warnf(r, "skipping a metadata entry without a name or type");
		return 0;
	}
	r->ord++;
	if (decode_name(enc, strlen(enc), name)) {
		warnf(r, "refusing entry '%.300s': %s", enc, err_msg());
		return 0;
	}
	type = type_s[0] == '-' ? 'f' : type_s[0];
	if (!strchr("fdlpscb", type)) {
		warnf(r, "%s: unknown type '%c'",
		    shown(name->data, name->len, &show), type);
		buf_release(&show);
		return 0;
	}
	if (!selected(r, name->data, name->len, &ancestor))
		return 0;
	if (ancestor && type != 'd')
		return 0;
	if ((bad = get_attrs(st, &a)) != NULL) {
		/* Restored all the same, without it: the data is sound. */
		warnf(r, "'%s': ignoring its malformed %s '%.40s'",
		    shown(name->data, name->len, &show), bad,
		    stanza_get(st, bad, NULL));
		buf_release(&show);
	}
	rc = check_parents(r, name->data, name->len);
	if (rc == 0) {
		rc = claim_name(r, name->data, name->len, type);
		if (rc > 0) {
			err_set("the name occurs twice in the snapshot");
			rc = -2;
		} else if (rc < 0)
			return -1;
	}
	if (rc == 0 && type == 'd')
		rc = make_dir(r, name->data, name->len, scratch, &a);
	else if (rc == 0 && name->len == 1 && name->data[0] == '.') {
		err_set("the root is not a directory");
		rc = -1;
	} else if (rc == 0) {
		has_links = inode && num(st, "links", &ancestor) > 1;
		if (has_links) {
			struct buf key;

			buf_init(&key, BUF_UNLIMITED);
			rc = link_key(st, inode, &key) ? -1 :
			    link_target(r, &key, type, name->data, name->len,
				tmp);
			buf_release(&key);
			if (rc > 0) {
				/* A later name of an inode: link at the end. */
				if (walk_parent(r, name->data, name->len, true,
					scratch, &enc) < 0)
					rc = -1;
				else
					return queue_link(r, name->data,
					    name->len, tmp);
			}
		}
		if (rc == 0 && type == 'f')
			rc = queue_file(r, name->data, name->len, st, scratch);
		else if (rc == 0) {
			const char *base;
			int dirfd = walk_parent(r, name->data, name->len, true,
			    scratch, &base);

			rc = dirfd < 0 ? -1 :
					 make_special(r, dirfd, base, st, type, &a);
			if (rc == 0 && r->o->progress)
				r->o->progress(r->o->arg, name->data);
		}
	}
	if (rc) {
		warnf(r, "cannot restore '%s': %s",
		    shown(name->data, name->len, &show), err_msg());
		buf_release(&show);
	}
	return 0;
}

/* ---- pass 2: regular files by segment ---- */

struct writer {
	int fd;
	struct bulkwrite *bulk; /* a large file's writer, or NULL */
	uint64_t off;
	bool hole_at_end;
	bool failed; /* a write failed: the error is ours, not the store's */
};

/* Whether the 4 KiB block at ${at} of ${n} bytes is all zero (a shorter
 * tail never is: it is written). */
static bool
zero_block(const unsigned char *c, size_t at, size_t n)
{
	return n - at >= 4096 && c[at] == 0 &&
	    memcmp(c + at, c + at + 1, 4095) == 0;
}

static int
write_data(struct writer *w, const void *p, size_t n)
{
	const unsigned char *c = p;
	size_t done = 0;

	if (w->bulk)
		return bulkwrite_add(w->bulk, p, n);
	if (p == NULL) {
		/* All-zero data: leave a hole. */
		if (lseek(w->fd, (off_t)n, SEEK_CUR) < 0) {
			err_setp("seek");
			return -1;
		}
		w->off += n;
		w->hole_at_end = w->hole_at_end || n > 0;
		return 0;
	}
	/* Zero blocks inside data become holes too (4 KiB granularity); the
	 * data between them goes in one write. */
	while (done < n) {
		size_t run = done, z;

		while (run < n && !zero_block(c, run, n))
			run += n - run < 4096 ? n - run : 4096;
		if (run > done) {
			if (fileio_write_full(w->fd, c + done, run - done))
				return -1;
			w->hole_at_end = false;
		}
		for (z = run; z < n && zero_block(c, z, n);)
			z += 4096;
		if (z > run) {
			if (lseek(w->fd, (off_t)(z - run), SEEK_CUR) < 0) {
				err_setp("seek");
				return -1;
			}
			w->hole_at_end = true;
		}
		done = z;
	}
	w->off += n;
	return 0;
}

static int
write_sink(void *arg, const void *p, size_t n)
{
	struct writer *w = arg;

	if (write_data(w, p, n)) {
		w->failed = true;
		return -1;
	}
	return 0;
}

/* Create the file ${base} in ${dirfd} for w (0, or -1 with error set). */
static int
writer_open(struct writer *w, int dirfd, const char *base)
{
	w->fd = openat(dirfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		O_CLOEXEC, 0600);
	if (w->fd < 0) {
		err_setp("cannot create the file");
		return -1;
	}
	return 0;
}

/* Set the size (a trailing hole needs it: the file is new, so otherwise
 * its size is where the last write ended), attributes, and close.  0, or
 * -1 with error set (w->fd then still open unless close itself failed). */
static int
writer_finish(struct rst *r, struct writer *w, const struct attrs *a)
{
	int fd = w->fd;

	if (w->bulk) {
		int rc = bulkwrite_finish(w->bulk);

		bulkwrite_free(w->bulk);
		w->bulk = NULL;
		if (rc)
			return -1;
	} else if (w->hole_at_end && ftruncate(fd, (off_t)w->off)) {
		err_setp("truncate");
		return -1;
	}
	if (apply_fd(r, fd, a))
		return -1;
	w->fd = -1;
	if (close(fd)) {
		err_setp("close");
		return -1;
	}
	return 0;
}

/* ---- pass 2 writer threads ---- */

/*
 * Creating and writing files is most of a restore's time, all of it in
 * the kernel.  With writer threads, this thread decodes a file of up to
 * WQ_FILE_MAX bytes into memory (verifying it, as in line), makes its way
 * (parents, --force) and hands the writers a descriptor of its validated
 * parent directory, its name, its data and attributes; they create it
 * exactly as restore_one() would.  Links and directory attributes come
 * after every writer has finished.
 *
 * The jobs live in one ring of WQ_RING bytes (ring.h), in the order made;
 * a job's space is reused once it and every older job are written.  The
 * ring bounds the data waiting, and its memory is allocated once: jobs
 * malloc'd one by one, by this thread and freed by the writers, left the
 * heap with holes, and the peak memory of a restore of the linux tree
 * varied from 25 to 52 MiB.  A file whose job would take over half the
 * ring (a path of over half a MiB) is written in line.
 */
#define WQ_FILE_MAX ((uint64_t)1 << 20)
#define WQ_RING ((size_t)4 << 20)
#define WQ_BATCH 16
#define WQ_BATCH_BYTES ((size_t)512 << 10)
#define WQ_MAX_THREADS 8
/*
 * Files of BULK_MIN bytes or more are written by bulkwrite: direct I/O,
 * in BULK_BUF buffers, one written while the next is filled.  Buffered,
 * a 1 GiB file cost 3.1-3.5 s of kernel time here on pages touched for
 * the first time, against 0.2 s direct (bulkwrite.h).
 */
#define BULK_MIN ((int64_t)4 << 20)
#define BULK_BUF ((size_t)1 << 20)

struct wjob {
	struct wjob *next; /* in the queue, or in a batch taken */
	struct dirh *dir; /* the parent directory (a reference), or NULL */
	int dirfd;        /* its descriptor, or the destination's */
	char *base;
	char *path; /* for messages */
	size_t pathlen;
	unsigned char *data;
	size_t len;
	struct attrs a;
};

struct wpool {
	struct rst *r;
	pthread_mutex_t lock;
	pthread_cond_t work; /* a job was queued, or stop */
	pthread_cond_t room; /* a job finished */
	struct wjob *head, *tail;
	size_t queued; /* jobs in the queue */
	size_t bytes;  /* data queued or being written */
	int busy;      /* jobs taken, not finished */
	int idle;      /* writers waiting for work */
	int waiting;   /* the main thread waits for room, or for the end */
	bool stop;
	int n;
	pthread_t th[WQ_MAX_THREADS];
	struct ring *ring; /* WQ_RING bytes, where the jobs live */
};

/* Wake the idle writers if jobs wait (the lock held). */
static void
pool_wake(struct wpool *p)
{
	if (p->head != NULL && p->idle > 0)
		pthread_cond_broadcast(&p->work);
}

/* The ring space of a job of ${size} bytes of data and ${extra} more. */
static size_t
job_size(size_t size, size_t extra)
{
	return sizeof(struct wjob) + size + extra;
}

/* A zeroed job of ${need} bytes (job_size(), at most WQ_RING / 2),
 * waiting for room in the ring. */
static struct wjob *
job_alloc(struct wpool *p, size_t need)
{
	struct wjob *j;

	pthread_mutex_lock(&p->lock);
	while ((j = ring_take(p->ring, need)) == NULL) {
		pool_wake(p);
		p->waiting++;
		pthread_cond_wait(&p->room, &p->lock);
		p->waiting--;
	}
	pthread_mutex_unlock(&p->lock);
	memset(j, 0, sizeof(*j));
	return j;
}

/* What restore_one() does with a file, from memory. */
static void
write_job(struct rst *r, struct wjob *j)
{
	struct writer w = { -1, NULL, 0, false, false };
	struct buf show;

	if (writer_open(&w, j->dirfd, j->base))
		goto fail;
	if (write_sink(&w, j->data, j->len) || writer_finish(r, &w, &j->a))
		goto bad;
	return;
bad:
	if (w.fd >= 0)
		close(w.fd);
	unlinkat(j->dirfd, j->base, 0);
fail:
	warnf(r, "cannot restore '%s': %s", shown(j->path, j->pathlen, &show),
	    err_msg());
	buf_release(&show);
}

static void *
writer_main(void *arg)
{
	struct wpool *p = arg;

	(void)pthread_setname_np(pthread_self(), "cumulus-write");
	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct wjob *batch, *j, *last;
		size_t bytes = 0;
		int n = 1;

		while (p->head == NULL && !p->stop) {
			p->idle++;
			pthread_cond_wait(&p->work, &p->lock);
			p->idle--;
		}
		if (p->head == NULL)
			break;
		/* Up to WQ_BATCH jobs per turn of the lock. */
		batch = last = p->head;
		while (n < WQ_BATCH && last->next != NULL) {
			last = last->next;
			n++;
		}
		p->head = last->next;
		if (p->head == NULL)
			p->tail = NULL;
		last->next = NULL;
		p->queued -= (size_t)n;
		p->busy += n;
		pthread_mutex_unlock(&p->lock);
		for (j = batch; j; j = j->next) {
			write_job(p->r, j);
			bytes += j->len;
		}
		for (j = batch; j; j = j->next)
			dirh_put(j->dir);
		pthread_mutex_lock(&p->lock);
		p->bytes -= bytes;
		p->busy -= n;
		while ((j = batch) != NULL) {
			batch = j->next;
			ring_give(p->ring, j);
		}
		/* Wake the main thread when the data queued or being written
		 * is down to half the ring, or at the end: not after every
		 * file. */
		if (p->waiting && (p->bytes <= WQ_RING / 2 ||
				      (p->head == NULL && p->busy == 0)))
			pthread_cond_broadcast(&p->room);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* Start threads - 1 writers; none (write in line) for one thread. */
static int
pool_start(struct rst *r, int threads)
{
	struct wpool *p;
	long n = threads > 0 ? threads : sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 2)
		return 0;
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		err_set("out of memory");
		return -1;
	}
	if ((p->ring = ring_new(WQ_RING)) == NULL) {
		free(p);
		return -1;
	}
	p->r = r;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->room, NULL);
	r->pool = p;
	for (; p->n < n - 1 && p->n < WQ_MAX_THREADS; p->n++) {
		int e = pthread_create(&p->th[p->n], NULL, writer_main, p);

		if (e) {
			err_set("cannot start a writer thread: %s", strerror(e));
			return -1;
		}
	}
	return 0;
}

/*
 * Queue ${j} (made by job_alloc(), which waited for its room).  Idle
 * writers are woken for a batch (WQ_BATCH jobs or WQ_BATCH_BYTES), not
 * for every file: a wake-up per file was 4 futex calls and two context
 * switches per file.
 */
static void
pool_submit(struct wpool *p, struct wjob *j)
{
	pthread_mutex_lock(&p->lock);
	p->bytes += j->len;
	j->next = NULL;
	if (p->tail)
		p->tail->next = j;
	else
		p->head = j;
	p->tail = j;
	if (++p->queued >= WQ_BATCH || p->bytes >= WQ_BATCH_BYTES)
		pool_wake(p);
	pthread_mutex_unlock(&p->lock);
}

/* Let the writers start on what is queued (before work in line). */
static void
pool_kick(struct wpool *p)
{
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	pool_wake(p);
	pthread_mutex_unlock(&p->lock);
}

/* Wait until every queued file is written. */
static void
pool_drain(struct wpool *p)
{
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	pool_wake(p);
	p->waiting++;
	while (p->head || p->busy)
		pthread_cond_wait(&p->room, &p->lock);
	p->waiting--;
	pthread_mutex_unlock(&p->lock);
}

/* Write what waits, stop the writers. */
static void
pool_stop(struct rst *r)
{
	struct wpool *p = r->pool;

	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	for (int i = 0; i < p->n; i++)
		pthread_join(p->th[i], NULL);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->room);
	pthread_mutex_destroy(&p->lock);
	ring_free(p->ring);
	free(p);
	r->pool = NULL;
}

struct membuf {
	unsigned char *p;
	size_t len, cap;
};

static int
mem_sink(void *arg, const void *p, size_t n)
{
	struct membuf *m = arg;

	if (n > m->cap - m->len) {
		err_set("data is longer than the recorded size");
		return -1;
	}
	if (p)
		memcpy(m->p + m->len, p, n);
	else
		memset(m->p + m->len, 0, n);
	m->len += n;
	return 0;
}

/* The recorded size of a file, or -1 if there is none (or it is not a
 * plain number: snapshot_read_file() will say so). */
static int64_t
recorded_size(const struct stanza *st)
{
	const char *v = stanza_get(st, "size", NULL);
	char *end;
	unsigned long long x;

	if (v == NULL || v[0] < '0' || v[0] > '9')
		return -1;
	errno = 0;
	x = strtoull(v, &end, 10);
	if (errno || *end != '\0' || x > INT64_MAX)
		return -1;
	return (int64_t)x;
}

/* Decode the file into memory and queue it, in a job of ${need} bytes
 * (job_size()).  0 or -1 (error set; nothing was created). */
static int
hand_off(struct rst *r, const struct stanza *st, int dirfd, const char *base,
    const struct buf *path, const struct attrs *a, size_t size, size_t need,
    char failseg[REF_SEGMENT_MAX + 1])
{
	size_t blen = strlen(base);
	/* One piece of the ring: the job, its data, name and path. */
	struct wjob *j = job_alloc(r->pool, need);
	struct membuf m;

	j->data = (unsigned char *)(j + 1);
	j->base = (char *)j->data + size;
	j->path = j->base + blen + 1;
	m = (struct membuf){ j->data, 0, size };
	if (snapshot_read_file(r->s, st, mem_sink, &m, failseg)) {
		pthread_mutex_lock(&r->pool->lock);
		ring_give(r->pool->ring, j);
		pthread_mutex_unlock(&r->pool->lock);
		return -1;
	}
	j->len = m.len;
	j->a = *a;
	j->dirfd = dirfd;
	if ((j->dir = r->cur_dh) != NULL)
		atomic_fetch_add_explicit(&j->dir->refs, 1,
		    memory_order_relaxed);
	memcpy(j->base, base, blen + 1);
	memcpy(j->path, path->data, path->len);
	j->path[path->len] = '\0';
	j->pathlen = path->len;
	pool_submit(r->pool, j);
	return 0;
}

static void
restore_one(struct rst *r, sqlite3_stmt *q, struct buf *scratch)
{
	static const char *const keys[] = { "data", "size", "checksum",
		"mode", "user", "group", "mtime" };
	const char *path = sqlite3_column_blob(q, 1);
	size_t n = (size_t)sqlite3_column_bytes(q, 1);
	struct stanza st;
	struct attrs a;
	struct writer w = { -1, NULL, 0, false, false };
	char failseg[REF_SEGMENT_MAX + 1] = "";
	const char *base = "";
	int dirfd = -1, rc = -1;
	int64_t size;
	size_t need;
	struct buf show, pathbuf;

	buf_init(&pathbuf, NAME_MAX_BYTES);
	stanza_init(&st);
	if (buf_append(&pathbuf, path, n))
		goto out;
	for (int i = 0; i < 7; i++)
		if (sqlite3_column_type(q, 2 + i) != SQLITE_NULL &&
		    stanza_set(&st, keys[i],
			(const char *)sqlite3_column_text(q, 2 + i),
			(size_t)sqlite3_column_bytes(q, 2 + i)))
			goto out;
	(void)get_attrs(&st, &a); /* pass 1 warned */
	dirfd = walk_parent(r, pathbuf.data, n, true, scratch, &base);
	if (dirfd < 0 || clear_way(r, dirfd, base))
		goto out;
	size = recorded_size(&st);
	if (r->pool && size >= 0 && (uint64_t)size <= WQ_FILE_MAX &&
	    (need = job_size((size_t)size, strlen(base) + n + 2)) <=
		WQ_RING / 2) {
		if (hand_off(r, &st, dirfd, base, &pathbuf, &a, (size_t)size,
			need, failseg))
			goto out;
		rc = 0;
		if (r->o->progress)
			r->o->progress(r->o->arg, pathbuf.data);
		goto out;
	}
	pool_kick(r->pool);
	/* Failures of the target (cannot create, disk full) name no
	 * segment: the store is not at fault. */
	if (writer_open(&w, dirfd, base)) {
		w.failed = true;
		goto out;
	}
	if (size >= BULK_MIN &&
	    (w.bulk = bulkwrite_start(w.fd, BULK_BUF, r->pool != NULL)) ==
		NULL) {
		w.failed = true;
		goto bad;
	}
	if (snapshot_read_file(r->s, &st, write_sink, &w, failseg))
		goto bad;
	if (writer_finish(r, &w, &a)) {
		w.failed = true;
		goto bad;
	}
	rc = 0;
	if (r->o->progress)
		r->o->progress(r->o->arg, pathbuf.data);
	goto out;
bad:
	/* A damaged file is removed rather than left looking restored. */
	bulkwrite_free(w.bulk);
	w.bulk = NULL;
	if (w.fd >= 0)
		close(w.fd);
	w.fd = -1;
	if (dirfd >= 0)
		unlinkat(dirfd, base, 0);
out:
	if (rc) {
		const char *seg = sqlite3_column_text(q, 0) ?
			(const char *)sqlite3_column_text(q, 0) :
			"";

		if (failseg[0] == '\0' && seg[0] && !w.failed &&
		    strstr(err_msg(), "segment ") == NULL)
			snprintf(failseg, sizeof(failseg), "%s", seg);
		if (failseg[0] && strstr(err_msg(), failseg) == NULL)
			warnf(r, "cannot restore '%s' (segment %s): %s",
			    shown(pathbuf.data, n, &show), failseg, err_msg());
		else
			warnf(r, "cannot restore '%s': %s",
			    shown(pathbuf.data, n, &show), err_msg());
		buf_release(&show);
	}
	if (w.fd >= 0)
		close(w.fd);
	stanza_release(&st);
	buf_release(&pathbuf);
}

/* ---- passes 3 and 4: links, then directories ---- */

static int
pass_links(struct rst *r, struct buf *scratch)
{
	sqlite3_stmt *q = db_prep(r, "SELECT path, target FROM links ORDER BY ord");
	struct buf t, show;

	if (q == NULL)
		return -1;
	buf_init(&t, NAME_MAX_BYTES);
	while (sqlite3_step(q) == SQLITE_ROW) {
		const char *p = sqlite3_column_blob(q, 0);
		size_t n = (size_t)sqlite3_column_bytes(q, 0);
		const char *tbase, *base;
		int tfd, dfd = -1, rc = -1;

		buf_reset(&t);
		if (buf_append(&t, sqlite3_column_blob(q, 1),
			(size_t)sqlite3_column_bytes(q, 1)))
			goto next;
		/* The walker caches one directory: hold the target's. */
		tfd = walk_parent(r, t.data, t.len, false, scratch, &tbase);
		if (tfd < 0)
			goto next;
		tfd = dup(tfd);
		{
			char *tb = strdup(tbase);

			if (tfd >= 0 && tb) {
				dfd = walk_parent(r, p, n, true, scratch, &base);
				if (dfd >= 0 && clear_way(r, dfd, base) == 0) {
					/* flags 0: never follows a symlink. */
					if (linkat(tfd, tb, dfd, base, 0) == 0)
						rc = 0;
					else
						err_setp("cannot make the hard link");
				}
			} else {
				err_set("out of memory");
			}
			free(tb);
		}
		if (tfd >= 0)
			close(tfd);
next:
		if (rc) {
			warnf(r, "cannot restore '%s': %s", shown(p, n, &show),
			    err_msg());
			buf_release(&show);
		} else if (r->o->progress) {
			buf_reset(&t);
			if (buf_append(&t, p, n) == 0)
				r->o->progress(r->o->arg, t.data);
		}
	}
	db_release(r, q);
	buf_release(&t);
	return 0;
}

static int
pass_dirs(struct rst *r, struct buf *scratch)
{
	sqlite3_stmt *q = db_prep(r, "SELECT path, mode, uid, gid, mtime, "
				     "flags FROM dirs ORDER BY ord DESC");
	struct buf show;

	if (q == NULL)
		return -1;
	while (sqlite3_step(q) == SQLITE_ROW) {
		const char *p = sqlite3_column_blob(q, 0);
		size_t n = (size_t)sqlite3_column_bytes(q, 0);
		int flags = sqlite3_column_int(q, 5);
		struct attrs a = { (mode_t)sqlite3_column_int(q, 1), flags & 1,
			(flags & 2) != 0, (flags & 4) != 0, (flags & 8) != 0,
			sqlite3_column_int64(q, 2), sqlite3_column_int64(q, 3),
			sqlite3_column_int64(q, 4) };
		const char *base;
		int fd = -1, dirfd = -1, rc = -1;

		if (n == 1 && p[0] == '.')
			fd = dup(r->destfd);
		else {
			dirfd = walk_parent(r, p, n, false, scratch, &base);
			if (dirfd >= 0)
				fd = openat(dirfd, base, O_RDONLY | O_DIRECTORY |
					O_NOFOLLOW | O_CLOEXEC);
		}
		if (fd < 0 && ((n == 1 && p[0] == '.') || dirfd >= 0))
			err_setp("cannot open the directory");
		if (fd >= 0) {
			rc = apply_fd(r, fd, &a);
			close(fd);
		}
		if (rc) {
			warnf(r, "cannot restore '%s': %s", shown(p, n, &show),
			    err_msg());
			buf_release(&show);
		}
	}
	db_release(r, q);
	return 0;
}

/* ---- driver ---- */

static int
open_dest(const struct restore_opts *o)
{
	struct buf p;
	int fd;
	DIR *d;
	struct dirent *de;
	bool empty = true;

	buf_init(&p, 65536);
	if (buf_puts(&p, o->dest)) {
		buf_release(&p);
		return -1;
	}
	/* mkdir -p: each prefix ending before a '/'. */
	for (size_t i = 1; i <= p.len; i++) {
		if (i < p.len && p.data[i] != '/')
			continue;
		p.data[i] = '\0';
		if (mkdir(p.data, 0777) && errno != EEXIST) {
			err_setp("cannot create '%s'", p.data);
			buf_release(&p);
			return -1;
		}
		if (i < p.len)
			p.data[i] = '/';
	}
	buf_release(&p);
	fd = open(o->dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		err_setp("cannot open '%s'", o->dest);
		return -1;
	}
	d = fdopendir(dup(fd));
	if (d == NULL) {
		err_setp("cannot list '%s'", o->dest);
		close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			empty = false;
			break;
		}
	closedir(d);
	if (!empty && !o->force) {
		err_set("destination '%s' is not empty (use --force to restore "
			"into it anyway)",
		    o->dest);
		close(fd);
		return -1;
	}
	return fd;
}

static const char SCHEMA[] =
    "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;"
    "PRAGMA temp_store = FILE; PRAGMA cache_size = -2048;"
    "CREATE TABLE names(path BLOB PRIMARY KEY, type INTEGER);"
    "CREATE TABLE inodes(inode BLOB PRIMARY KEY, path BLOB, type INTEGER);"
    "CREATE TABLE files(seg TEXT, ord INTEGER, path BLOB, data TEXT,"
    " size TEXT, checksum TEXT, mode TEXT, user TEXT, grp TEXT, mtime TEXT,"
    " rank INTEGER);"
    "CREATE TABLE segs(uuid TEXT PRIMARY KEY, rank INTEGER);"
    "CREATE TABLE links(ord INTEGER, path BLOB, target BLOB);"
    "CREATE TABLE dirs(ord INTEGER, path BLOB, mode INTEGER, uid INTEGER,"
    " gid INTEGER, mtime INTEGER, flags INTEGER);"
    "BEGIN;";

int
restore_snapshot(struct snapshot *s, const struct restore_opts *o)
{
	struct rst r;
	struct meta_iter *it = NULL;
	struct stanza st;
	struct buf name, scratch, tmp;
	sqlite3_stmt *q;
	int rc = -1, more;

	memset(&r, 0, sizeof(r));
	r.s = s;
	r.o = o;
	r.ddepth = 0;
	r.root = geteuid() == 0;
	pthread_mutex_init(&r.warn_lock, NULL);
	buf_init(&r.cache_path, NAME_MAX_BYTES);
	buf_init(&r.ok_parent, NAME_MAX_BYTES);
	buf_init(&name, NAME_MAX_BYTES);
	buf_init(&scratch, NAME_MAX_BYTES);
	buf_init(&tmp, NAME_MAX_BYTES);
	stanza_init(&st);
	r.destfd = open_dest(o);
	if (r.destfd < 0)
		goto out;
	/* "": a private temporary database on disk, removed on close. */
	if (sqlite3_open("", &r.db) != SQLITE_OK) {
		err_set("cannot open a temporary database");
		goto out;
	}
	if (db_exec(&r, SCHEMA))
		goto out;
	if (snapshot_meta_open(s, &it))
		goto out;
	/* Pass 1 only: freed before the writers' ring is allocated. */
	r.nondir_bits = calloc(((size_t)1 << NONDIR_BITS_LOG) / 64,
	    sizeof(*r.nondir_bits));
	if (r.nondir_bits == NULL) {
		err_set("out of memory");
		goto out;
	}
	while ((more = meta_iter_next(it, &st)) == 1)
		if (pass1_entry(&r, &st, &name, &scratch, &tmp))
			goto out;
	if (more < 0)
		goto out;
	meta_iter_close(it);
	it = NULL;
	free(r.nondir_bits);
	r.nondir_bits = NULL;
	if (snapshot_plan_end(s))
		goto out;
	if (db_exec(&r, "COMMIT; CREATE INDEX files_rank ON files(rank, ord);"))
		goto out;
	q = db_prep(&r, "SELECT seg, path, data, size, checksum, mode, user, "
			"grp, mtime FROM files ORDER BY rank, ord");
	if (q == NULL)
		goto out;
	if (pool_start(&r, o->threads)) {
		db_release(&r, q);
		goto out;
	}
	while ((more = sqlite3_step(q)) == SQLITE_ROW)
		restore_one(&r, q, &scratch);
	db_release(&r, q);
	if (more != SQLITE_DONE) {
		db_err(&r);
		goto out;
	}
	/* Links need their targets, directories their last mtime change. */
	pool_drain(r.pool);
	if (pass_links(&r, &scratch) || pass_dirs(&r, &scratch))
		goto out;
	pool_stop(&r);
	rc = r.failed;
out:
	pool_stop(&r);
	meta_iter_close(it);
	if (r.db)
		db_close(&r);
	walk_pop(&r, 0);
	if (r.destfd >= 0)
		close(r.destfd);
	stanza_release(&st);
	buf_release(&r.cache_path);
	buf_release(&r.ok_parent);
	free(r.nondir_bits);
	buf_release(&name);
	buf_release(&scratch);
	buf_release(&tmp);
	pthread_mutex_destroy(&r.warn_lock);
	return rc;
}
