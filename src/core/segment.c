/*
 * segment: the segment writer (see segment.h).
 *
 * Durability: a segment's bytes go to a temp file in the store; at close
 * the tar trailer is written, the compressor or filter finishes, the file
 * is hashed, and store_writer_commit() publishes it (fsync, link without
 * replacing, directory fsync).  Only then does the close callback run, so
 * the caller never records a segment the store does not hold.  A crash
 * before that leaves a ".tmp.*" file and nothing else.
 */
#include "segment.h"

#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uuid/uuid.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_getFrameProgression */
#include <zstd.h>

#include "err.h"
#include "fileio.h"
#include "run.h"
#include "store.h"
#include "tar.h"
#include "threadprio.h"

#define MAX_GROUPS 64
#define OUTBUF_SIZE ((size_t)1 << 17)
/* Start the writeback of a segment every this many bytes written. */
#define WRITE_BEHIND ((uint64_t)1 << 20)
/* A segment holds at most this many times the target, uncompressed. */
#define SEGMENT_RAW_FACTOR 8

struct open_segment {
	char uuid[SEGMENT_UUID_LEN + 1];
	char *name;
	struct store_writer *sw;
	int fd;
	uint64_t next_seq;
	uint64_t data_size;
	uint64_t raw_bytes; /* tar bytes produced */
	uint64_t stored;    /* bytes written to the file (zstd mode) */
	uint64_t written_back; /* of which writeback was started */
	struct hash sha1;
	int pipe_fd; /* filter mode: the filter's stdin */
	pid_t pid;
};

struct group {
	char *name;
	struct open_segment *seg;
	ZSTD_CCtx *cctx;
	bool pool_started; /* zstd's workers run (see start_pool) */
	uint64_t raw_total;
	uint64_t stored_total;
};

struct segment_writer {
	struct store *store;
	char *filter;
	char *ext;
	uint64_t target;
	int level;
	int threads;
	segment_closed_fn *cb;
	void *cb_arg;
	struct group groups[MAX_GROUPS];
	size_t ngroups;
	unsigned char *outbuf;
};

int
segment_writer_open(struct store *st, const struct segment_config *cfg,
    segment_closed_fn *cb, void *arg, struct segment_writer **out)
{
	struct segment_writer *w = calloc(1, sizeof(*w));

	*out = NULL;
	if (w == NULL)
		goto oom;
	w->store = st;
	w->cb = cb;
	w->cb_arg = arg;
	w->target = cfg->target_size ? cfg->target_size : SEGMENT_DEFAULT_TARGET;
	w->level = cfg->zstd_level ? cfg->zstd_level : 3;
	w->threads = cfg->threads > 0 ? cfg->threads : 1;
	if (cfg->filter && cfg->filter[0]) {
		w->filter = strdup(cfg->filter);
		if (w->filter == NULL)
			goto oom;
	}
	w->ext = strdup(cfg->extension ? cfg->extension
					: (w->filter ? "" : ".zst"));
	w->outbuf = malloc(OUTBUF_SIZE);
	if (w->ext == NULL || w->outbuf == NULL)
		goto oom;
	*out = w;
	return 0;
oom:
	segment_writer_free(w);
	err_set("out of memory");
	return -1;
}

static struct group *
find_group(struct segment_writer *w, const char *name)
{
	for (size_t i = 0; i < w->ngroups; i++)
		if (strcmp(w->groups[i].name, name) == 0)
			return &w->groups[i];
	if (w->ngroups == MAX_GROUPS) {
		err_set("too many segment groups");
		return NULL;
	}
	w->groups[w->ngroups].name = strdup(name);
	if (w->groups[w->ngroups].name == NULL) {
		err_set("out of memory");
		return NULL;
	}
	return &w->groups[w->ngroups++];
}

static int
zstd_check(size_t r)
{
	if (ZSTD_isError(r)) {
		err_set("zstd: %s", ZSTD_getErrorName(r));
		return -1;
	}
	return 0;
}

static int
emit(struct open_segment *s, const void *p, size_t n)
{
	if (fileio_write_full(s->fd, p, n)) {
		err_prefix("writing segment %s", s->uuid);
		return -1;
	}
	hash_update(&s->sha1, p, n);
	s->stored += n;
	/* Start writing back what is written, so the fsync that publishes
	 * the segment waits for its tail only; advisory, errors ignored. */
	fileio_write_behind(s->fd, &s->written_back, s->stored, WRITE_BEHIND);
	return 0;
}

/* Feed ${n} tar bytes to the compressor or the filter. */
static int
seg_write(struct segment_writer *w, struct group *g, const void *p, size_t n,
    ZSTD_EndDirective mode)
{
	struct open_segment *s = g->seg;
	ZSTD_inBuffer in = { p, n, 0 };

	s->raw_bytes += n;
	g->raw_total += n;
	if (w->filter) {
		if (fileio_write_full(s->pipe_fd, p, n)) {
			err_prefix("writing to filter '%s'", w->filter);
			return -1;
		}
		return 0;
	}
	for (;;) {
		ZSTD_outBuffer out = { w->outbuf, OUTBUF_SIZE, 0 };
		size_t left = ZSTD_compressStream2(g->cctx, &out, &in, mode);

		if (zstd_check(left) || emit(s, w->outbuf, out.pos))
			return -1;
		if (mode == ZSTD_e_end ? left == 0 : in.pos == in.size)
			return 0;
	}
}

/*
 * zstd's worker threads, started at a lower priority (nice + 5) than ours,
 * as batch threads (threadprio_batch(): woken, they do not preempt ours).
 * The main thread is the backup's critical path and the read-ahead
 * workers feed it; compression has a queue of jobs and can wait.  With
 * equal priorities the scheduler made the main thread queue behind the
 * compression workers for a time slice at a time.  zstd starts its pool
 * on the first call of a context, and threads inherit the nice value and
 * policy of the thread that creates them: so that call is made from a
 * short-lived thread that lowered its own priority.  It has no input;
 * whatever it writes (nothing, in practice) is the start of the segment.
 */
struct pool_start {
	ZSTD_CCtx *cctx;
	ZSTD_outBuffer out;
	size_t rc;
};

#define WORKER_NICE 5

static void *
pool_start_main(void *arg)
{
	struct pool_start *ps = arg;
	ZSTD_inBuffer in = { NULL, 0, 0 };

	/* Linux: the name is per thread (top -H, perf).  Failing is
	 * harmless. */
	(void)threadprio_lower(WORKER_NICE);
	(void)threadprio_batch();
	(void)pthread_setname_np(pthread_self(), "cumulus-zstd");
	ps->rc = ZSTD_compressStream2(ps->cctx, &ps->out, &in,
	    ZSTD_e_continue);
	return NULL;
}

static int
start_pool(struct segment_writer *w, struct group *g, struct open_segment *s)
{
	struct pool_start ps = { g->cctx, { w->outbuf, OUTBUF_SIZE, 0 }, 0 };
	pthread_t t;

	if (pthread_create(&t, NULL, pool_start_main, &ps) != 0) {
		/* The pool then starts on the first write, at our priority. */
		return 0;
	}
	pthread_join(t, NULL);
	g->pool_started = true;
	if (zstd_check(ps.rc) || emit(s, w->outbuf, ps.out.pos))
		return -1;
	return 0;
}

/*
 * The metadata log is compressed on the main thread, at level 1 when the
 * data is at 3: the linux tree's 24 MB log took 3.90 MB in 34 ms at
 * level 1, 4.20 MB in 83-93 ms at level 3.  The log of 100,000 empty
 * files, all alike, is the exception: 528 KB against 499 KB, in the same
 * time.  Level 1's tables are smaller too.
 */
static int
level_of(const struct segment_writer *w, const struct group *g)
{
	if (w->level == 3 && strcmp(g->name, "metadata") == 0)
		return 1;
	return w->level;
}

static int
seg_open(struct segment_writer *w, struct group *g)
{
	struct open_segment *s = calloc(1, sizeof(*s));
	uuid_t u;
	int pfd[2] = { -1, -1 };

	if (s == NULL) {
		err_set("out of memory");
		return -1;
	}
	s->fd = s->pipe_fd = -1;
	uuid_generate_random(u);
	uuid_unparse_lower(u, s->uuid);
	if (asprintf(&s->name, "%s.tar%s", s->uuid, w->ext) < 0) {
		s->name = NULL;
		err_set("out of memory");
		goto fail;
	}
	if (hash_init(&s->sha1, HASH_SHA1))
		goto fail;
	if (store_create(w->store, s->name, &s->sw))
		goto fail;
	s->fd = store_writer_fd(s->sw);
	if (w->filter) {
		if (pipe2(pfd, O_CLOEXEC)) {
			err_setp("pipe");
			goto fail;
		}
		if (run_spawn_sh(w->filter, pfd[0], s->fd, &s->pid))
			goto fail;
		close(pfd[0]);
		s->pipe_fd = pfd[1];
	} else {
		if (g->cctx == NULL) {
			g->cctx = ZSTD_createCCtx();
			if (g->cctx == NULL) {
				err_set("out of memory");
				goto fail;
			}
		}
		ZSTD_CCtx_reset(g->cctx, ZSTD_reset_session_only);
		if (zstd_check(ZSTD_CCtx_setParameter(g->cctx,
			ZSTD_c_compressionLevel, level_of(w, g))) ||
		    zstd_check(ZSTD_CCtx_setParameter(g->cctx,
			ZSTD_c_checksumFlag, 1)))
			goto fail;
		/* Worker threads make compression overlap our reading; a
		 * libzstd built without them just compresses inline.  Their
		 * buffers are a few jobs each (five in the input ring, one
		 * output per job in flight), so the job size sets the memory.
		 * A job starts with empty match tables, cleared in full, and
		 * first re-reads the end of the previous job.  Level 3 sizes
		 * both for a stream (hash log 17, chain log 16: 768 KiB of
		 * tables; a 256 KiB overlap).  Measured on the initial backup
		 * of the linux tree, interleaved runs:
		 *  - tables halved and a 64 KiB overlap (log 4): 0.5 s less
		 *    CPU for a store 1.1 % larger (a quarter of the tables:
		 *    0.4 s more for 2.1 %);
		 *  - 1 MiB jobs: 2 % less wall time than 640 KiB ones (median
		 *    of 6 and of 8 runs) for 2.3 MiB more peak memory; fewer
		 *    jobs mean fewer wake-ups of the workers and of the caller
		 *    waiting for them.  1.5 MiB jobs saved 4 % but took 5.7 MiB
		 *    more, near the memory target; 512 KiB jobs took 8 %
		 *    longer than 768 KiB ones.
		 * The metadata log is a tenth of the data and compresses fast:
		 * its own workers and job buffers would cost 3 MiB for
		 * ~35 ms.  Its window is zstd's input buffer: 512 KiB saves
		 * 1.5 MiB. */
		if (w->threads > 1 && strcmp(g->name, "metadata") != 0 &&
		    !ZSTD_isError(ZSTD_CCtx_setParameter(g->cctx,
			ZSTD_c_nbWorkers, w->threads))) {
			ZSTD_CCtx_setParameter(g->cctx, ZSTD_c_jobSize,
			    1 << 20);
			ZSTD_CCtx_setParameter(g->cctx, ZSTD_c_overlapLog, 4);
			if (w->level == 3) {
				ZSTD_CCtx_setParameter(g->cctx,
				    ZSTD_c_hashLog, 16);
				ZSTD_CCtx_setParameter(g->cctx,
				    ZSTD_c_chainLog, 15);
			}
			if (!g->pool_started && start_pool(w, g, s))
				goto fail;
		}
		if (strcmp(g->name, "metadata") == 0)
			ZSTD_CCtx_setParameter(g->cctx, ZSTD_c_windowLog, 19);
	}
	g->seg = s;
	return 0;
fail:
	if (pfd[0] >= 0)
		close(pfd[0]);
	if (pfd[1] >= 0)
		close(pfd[1]);
	store_writer_abort(s->sw);
	hash_abort(&s->sha1);
	free(s->name);
	free(s);
	return -1;
}

static void
seg_free(struct open_segment *s)
{
	if (s == NULL)
		return;
	if (s->pipe_fd >= 0)
		close(s->pipe_fd);
	if (s->pid > 0)
		run_wait(s->pid, "filter");
	store_writer_abort(s->sw);
	hash_abort(&s->sha1);
	free(s->name);
	free(s);
}

/* Hash what a filter wrote: we did not see those bytes go by. */
static int
hash_file(struct open_segment *s)
{
	unsigned char *b = malloc(OUTBUF_SIZE);
	off_t off = 0;

	if (b == NULL) {
		err_set("out of memory");
		return -1;
	}
	for (;;) {
		ssize_t r = fileio_pread_full(s->fd, b, OUTBUF_SIZE, off);

		if (r < 0) {
			free(b);
			return -1;
		}
		if (r == 0)
			break;
		hash_update(&s->sha1, b, (size_t)r);
		off += r;
	}
	free(b);
	s->stored = (uint64_t)off;
	return 0;
}

static int
seg_close(struct segment_writer *w, struct group *g)
{
	static const unsigned char trailer[2 * TAR_BLOCK];
	struct open_segment *s = g->seg;
	struct segment_info info;
	struct store_writer *sw;
	int rc;

	if (seg_write(w, g, trailer, sizeof(trailer),
		w->filter ? ZSTD_e_continue : ZSTD_e_end))
		return -1;
	if (w->filter) {
		close(s->pipe_fd);
		s->pipe_fd = -1;
		rc = run_wait(s->pid, w->filter);
		s->pid = 0;
		if (rc) {
			err_prefix("segment filter");
			return -1;
		}
		if (hash_file(s))
			return -1;
	}
	memset(&info, 0, sizeof(info));
	memcpy(info.uuid, s->uuid, sizeof(info.uuid));
	info.name = s->name;
	info.group = g->name;
	info.objects = s->next_seq;
	info.data_size = s->data_size;
	info.disk_size = s->stored;
	if (hash_final(&s->sha1, info.sha1))
		return -1;
	/* Publish: after this the segment is durable under its name.  A
	 * remote store may still be uploading it; its next synchronous
	 * write (the .sha1sums file, then the descriptor) waits for that
	 * and fails if the upload failed (store.h, "Ordering"). */
	sw = s->sw;
	s->sw = NULL;
	if (store_writer_commit_async(sw, true))
		return -1;
	g->stored_total += s->stored;
	rc = w->cb ? w->cb(w->cb_arg, &info) : 0;
	free(s->name);
	free(s);
	g->seg = NULL;
	return rc;
}

static uint64_t
estimate_stored(struct segment_writer *w, struct group *g)
{
	struct open_segment *s = g->seg;
	uint64_t est;

	if (w->filter) {
		struct stat sb;

		est = fstat(s->fd, &sb) == 0 ? (uint64_t)sb.st_size : 0;
	} else {
		/* Worker threads hold data not yet compressed: count it at the
		 * ratio seen so far. */
		ZSTD_frameProgression p = ZSTD_getFrameProgression(g->cctx);
		uint64_t pending = p.ingested - p.consumed;

		est = s->stored + (p.produced - p.flushed);
		if (p.consumed > 0)
			est += (uint64_t)((double)pending * (double)p.produced /
			    (double)p.consumed);
		else
			est += pending;
	}
	if (s->raw_bytes / 128 > est)
		est = s->raw_bytes / 128;
	return est;
}

int
segment_add(struct segment_writer *w, const char *group, const void *data,
    size_t len, char uuid[SEGMENT_UUID_LEN + 1], uint64_t *seq)
{
	static const unsigned char zeros[TAR_BLOCK];
	struct group *g = find_group(w, group);
	unsigned char hdr[TAR_BLOCK];
	char name[64];
	struct open_segment *s;

	if (g == NULL)
		return -1;
	if (g->seg == NULL && seg_open(w, g))
		return -1;
	s = g->seg;
	snprintf(name, sizeof(name), "%s/%08llx", s->uuid,
	    (unsigned long long)s->next_seq);
	if (tar_header(hdr, name, len, (int64_t)time(NULL)) ||
	    seg_write(w, g, hdr, sizeof(hdr), ZSTD_e_continue) ||
	    seg_write(w, g, data, len, ZSTD_e_continue) ||
	    seg_write(w, g, zeros, tar_padding(len), ZSTD_e_continue))
		return -1;
	memcpy(uuid, s->uuid, SEGMENT_UUID_LEN + 1);
	*seq = s->next_seq++;
	s->data_size += len;
	/* Very compressible data would make huge segments that readers can
	 * not cache: bound the uncompressed size too. */
	if (estimate_stored(w, g) >= w->target ||
	    s->raw_bytes >= SEGMENT_RAW_FACTOR * w->target)
		return seg_close(w, g);
	return 0;
}

int
segment_writer_finish(struct segment_writer *w)
{
	for (size_t i = 0; i < w->ngroups; i++)
		if (w->groups[i].seg && seg_close(w, &w->groups[i]))
			return -1;
	return 0;
}

void
segment_writer_free(struct segment_writer *w)
{
	if (w == NULL)
		return;
	for (size_t i = 0; i < w->ngroups; i++) {
		seg_free(w->groups[i].seg);
		ZSTD_freeCCtx(w->groups[i].cctx);
		free(w->groups[i].name);
	}
	free(w->filter);
	free(w->ext);
	free(w->outbuf);
	free(w);
}

void
segment_writer_stats(const struct segment_writer *w,
    void (*fn)(void *arg, const char *group, uint64_t raw, uint64_t stored),
    void *arg)
{
	for (size_t i = 0; i < w->ngroups; i++)
		fn(arg, w->groups[i].name, w->groups[i].raw_total,
		    w->groups[i].stored_total);
}
