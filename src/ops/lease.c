/*
 * lease: backup/gc leases in the store (see lease.h for the protocol).
 */
#include "lease.h"

#include <unistd.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uuid/uuid.h>

#include "buf.h"
#include "err.h"
#include "fileio.h"
#include "store.h"

#define LEASE_MAX 4096 /* bytes of a lease file read */

struct lease {
	struct store *st;
	char name[128];       /* "leases/<kind>-<uuid>" */
	char kind[16];
	time_t started;
	time_t refreshed;     /* last successful write */
	time_t tried;         /* last attempt */
};

bool
lease_supported(const struct store *st)
{
	/* The upload-script protocol can only put files. */
	return strncmp(store_url(st), "script:", 7) != 0;
}

/*
 * Where process ids mean something: this boot of this kernel and this pid
 * namespace ("" if unknown).  A lease naming our node and a pid that no
 * longer exists belongs to a process that died without releasing it.
 */
static void
node_id(char *out, size_t size)
{
	char boot[64] = "", ns[64] = "";
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
	ssize_t n;

	out[0] = '\0';
	if (f != NULL) {
		if (fgets(boot, sizeof(boot), f) == NULL)
			boot[0] = '\0';
		fclose(f);
	}
	boot[strcspn(boot, "\n")] = '\0';
	n = readlink("/proc/self/ns/pid", ns, sizeof(ns) - 1);
	if (boot[0] == '\0' || n <= 0)
		return;
	ns[n] = '\0';
	snprintf(out, size, "%s/%s", boot, ns);
}

static int
lease_write(struct lease *l, time_t now)
{
	char text[768], host[256], node[160];
	int n;

	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "unknown");
	host[sizeof(host) - 1] = '\0';
	/* One line per field; "refreshed" is what gc compares. */
	node_id(node, sizeof(node));
	n = snprintf(text, sizeof(text), "cumulus-lease: 1\nkind: %s\n"
	    "host: %.200s\nnode: %s\npid: %ld\nstarted: %lld\n"
	    "refreshed: %lld\n", l->kind, host, node, (long)getpid(),
	    (long long)l->started, (long long)now);
	if (n < 0 || (size_t)n >= sizeof(text)) {
		err_set("lease text too long");
		return -1;
	}
	l->tried = now;
	if (store_put(l->st, l->name, text, (size_t)n, false)) {
		err_prefix("writing lease '%s'", l->name);
		return -1;
	}
	l->refreshed = now;
	return 0;
}

int
lease_take(struct store *st, const char *kind, struct lease **out)
{
	struct lease *l;
	char uuid[37];
	uuid_t u;

	*out = NULL;
	if (!lease_supported(st))
		return 0;
	if ((l = calloc(1, sizeof(*l))) == NULL) {
		err_set("out of memory");
		return -1;
	}
	uuid_generate_random(u);
	uuid_unparse_lower(u, uuid);
	l->st = st;
	snprintf(l->kind, sizeof(l->kind), "%s", kind);
	snprintf(l->name, sizeof(l->name), "%s/%s-%s", LEASE_DIR, kind, uuid);
	l->started = time(NULL);
	/* Once more if another process removed the empty directory just
	 * as we created the file (lease_release()). */
	if (lease_write(l, l->started) && (err_clear(),
	    lease_write(l, l->started))) {
		free(l);
		return -1;
	}
	*out = l;
	return 0;
}

void
lease_refresh(struct lease *l)
{
	time_t now;

	if (l == NULL)
		return;
	now = time(NULL);
	/* After a failure, try again in 30 seconds, not at every file. */
	if (now - l->refreshed < LEASE_REFRESH || now - l->tried < 30)
		return;
	if (lease_write(l, now))
		err_clear();
}

int
lease_check(struct lease *l)
{
	uint64_t size;
	time_t now;
	int r;

	if (l == NULL)
		return 0;
	lease_refresh(l);
	now = time(NULL);
	if (now - l->refreshed >= LEASE_TTL) {
		err_set("lease '%s' was last refreshed %lld s ago (stale after"
		    " %d s): a gc may have deleted segments this backup uses",
		    l->name, (long long)(now - l->refreshed), LEASE_TTL);
		return -1;
	}
	if ((r = store_stat(l->st, l->name, &size)) < 0)
		return -1;
	if (r == 1) {
		err_set("lease '%s' vanished from the store: a gc may have"
		    " deleted segments this backup uses", l->name);
		return -1;
	}
	return 0;
}

void
lease_release(struct lease *l)
{
	if (l == NULL)
		return;
	if (store_delete(l->st, l->name) < 0)
		err_clear();
	/* A local store looks as before when nothing runs: the directory
	 * goes when empty (rmdir fails otherwise, harmlessly). */
	if (store_local_dir(l->st) != NULL) {
		char path[4096];

		if ((size_t)snprintf(path, sizeof(path), "%s/%s",
		    store_local_dir(l->st), LEASE_DIR) < sizeof(path))
			(void)rmdir(path);
	}
	free(l);
}

/* The number after "\n${key}: " in a lease's text, or -1. */
static int64_t
lease_number(const char *text, const char *key)
{
	char pat[32];
	const char *p;
	int64_t v = 0;
	int digits = 0;

	snprintf(pat, sizeof(pat), "\n%s: ", key);
	if ((p = strstr(text, pat)) == NULL)
		return -1;
	for (p += strlen(pat); *p >= '0' && *p <= '9' && digits < 18;
	    p++, digits++)
		v = v * 10 + (*p - '0');
	if (digits == 0 || (*p != '\n' && *p != '\0'))
		return -1;
	return v;
}

/* Whether the lease's process ran on our node and is gone. */
static bool
lease_dead(const char *text)
{
	char node[160], pat[200];
	int64_t pid = lease_number(text, "pid");

	node_id(node, sizeof(node));
	if (node[0] == '\0' || pid <= 0 || pid > INT32_MAX)
		return false;
	snprintf(pat, sizeof(pat), "\nnode: %s\n", node);
	if (strstr(text, pat) == NULL)
		return false;
	return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

struct names {
	const char *prefix;
	char **v;
	size_t n;
};

static int
collect(void *arg, const char *name)
{
	struct names *ns = arg;
	char **nv;

	if (strncmp(name, ns->prefix, strlen(ns->prefix)) != 0)
		return 0;
	if ((nv = realloc(ns->v, (ns->n + 1) * sizeof(*nv))) == NULL ||
	    (nv[ns->n] = strdup(name)) == NULL) {
		if (nv)
			ns->v = nv;
		err_set("out of memory");
		return -1;
	}
	ns->v = nv;
	ns->n++;
	return 0;
}

int
lease_scan(struct store *st, const char *kind, const struct lease *self,
    bool delete_stale, struct lease_scan *out)
{
	char prefix[32];
	struct names ns = { prefix, NULL, 0 };
	time_t now = time(NULL);
	int rc = -1;

	memset(out, 0, sizeof(*out));
	snprintf(prefix, sizeof(prefix), "%s-", kind);
	if (!lease_supported(st))
		return 0;
	if (store_list(st, LEASE_DIR, collect, &ns))
		goto out;
	for (size_t i = 0; i < ns.n; i++) {
		char path[256];
		struct buf text;
		int64_t t = -1, age;
		bool dead = false;
		int fd, r;

		snprintf(path, sizeof(path), "%s/%s", LEASE_DIR, ns.v[i]);
		if (self && strcmp(self->name, path) == 0)
			continue;
		if ((r = store_open_read(st, path, &fd)) < 0)
			goto out;
		if (r == 1)
			continue; /* released meanwhile */
		buf_init(&text, LEASE_MAX);
		/* Unreadable or odd: counted fresh, never taken as dead. */
		if (fileio_read_fd(fd, &text) == 0) {
			t = lease_number(buf_str(&text), "refreshed");
			dead = t >= 0 && lease_dead(buf_str(&text));
		}
		err_clear();
		close(fd);
		buf_release(&text);
		age = t < 0 ? 0 : (int64_t)now - t;
		if (t >= 0 && (age >= LEASE_TTL || dead)) {
			out->stale++;
			if (delete_stale && store_delete(st, path) < 0)
				goto out;
			continue;
		}
		if (out->fresh++ == 0) {
			snprintf(out->first, sizeof(out->first), "%s", path);
			out->first_age = age < 0 ? 0 : age;
		}
	}
	rc = 0;
out:
	for (size_t i = 0; i < ns.n; i++)
		free(ns.v[i]);
	free(ns.v);
	return rc;
}

int
lease_wait(struct store *st, const char *kind, int64_t max_wait,
    bool *waited)
{
	time_t start = time(NULL);
	struct lease_scan sc;

	*waited = false;
	for (;;) {
		if (lease_scan(st, kind, NULL, false, &sc))
			return -1;
		if (sc.fresh == 0)
			return 0;
		*waited = true;
		if ((int64_t)(time(NULL) - start) >= max_wait) {
			err_set("a %s is running on this store (lease '%s',"
			    " refreshed %lld s ago); gave up after %lld s (if"
			    " no %s runs, delete that file)", kind, sc.first,
			    (long long)sc.first_age, (long long)max_wait,
			    kind);
			return -1;
		}
		sleep(1);
	}
}

int
lease_mark_gc(struct store *st)
{
	char text[128], uuid[37];
	uuid_t u;
	int n;

	if (!lease_supported(st))
		return 0;
	/* Unique, so a backup notices every new run. */
	uuid_generate_random(u);
	uuid_unparse_lower(u, uuid);
	n = snprintf(text, sizeof(text), "cumulus-gc: 1\nrun: %s\ntime: %lld\n",
	    uuid, (long long)time(NULL));
	if (store_put(st, LEASE_DIR "/" LEASE_LAST_GC, text, (size_t)n,
	    false)) {
		err_prefix("writing '%s'", LEASE_DIR "/" LEASE_LAST_GC);
		return -1;
	}
	return 0;
}

int
lease_last_gc(struct store *st, char *out, size_t size)
{
	struct buf text;
	int fd, r;

	out[0] = '\0';
	if (!lease_supported(st))
		return 0;
	if ((r = store_open_read(st, LEASE_DIR "/" LEASE_LAST_GC, &fd)) != 0)
		return r < 0 ? -1 : 0;
	buf_init(&text, LEASE_MAX);
	/* Too long or unreadable: still a record, that a backup must
	 * notice at least once. */
	if (fileio_read_fd(fd, &text) == 0)
		snprintf(out, size, "%s", buf_str(&text));
	else
		snprintf(out, size, "(unreadable)");
	err_clear();
	close(fd);
	buf_release(&text);
	return 0;
}
