/*
 * test_segment: the segment writer's compression workers.  zstd's pool is
 * started from a thread of lower priority (segment.c, start_pool), so its
 * workers run at nice + 5 while the caller keeps its own; the segments
 * written that way decompress to exactly the objects given.
 */
#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <zstd.h>

#include "err.h"
#include "segment.h"
#include "store.h"
#include "tap.h"
#include "task_stat.h"

struct seen {
	int n;
	char names[4][128];
};

static int
closed(void *arg, const struct segment_info *info)
{
	struct seen *s = arg;

	if (s->n < 4)
		snprintf(s->names[s->n], sizeof(s->names[0]), "%s", info->name);
	s->n++;
	return 0;
}

/* The nice value of thread ${tid} of this process, or -100. */
static int
nice_of(const char *tid)
{
	return stat_field(tid, 19);
}

/* Other threads of this process at nice ${base} + 5 (field 19), once
 * there are ${want} or after a second; whether this thread kept ${base}. */
static int
count_lowered(int base, bool *self_kept, int want)
{
	int self_nice;
	int n = count_threads(19, base + 5, &self_nice, want);

	*self_kept = self_nice == base;
	return n;
}

/* Whether the zstd file ${path} decompresses to data containing ${want}. */
static bool
holds(const char *path, const unsigned char *want, size_t n)
{
	FILE *f = fopen(path, "rb");
	ZSTD_DCtx *dc = ZSTD_createDCtx();
	unsigned char in[65536], *all = NULL;
	size_t len = 0, cap = 0, r;
	bool ok = false;

	if (f == NULL || dc == NULL)
		goto out;
	while ((r = fread(in, 1, sizeof(in), f)) > 0) {
		ZSTD_inBuffer ib = { in, r, 0 };

		while (ib.pos < ib.size) {
			if (cap - len < 65536) {
				unsigned char *na
				    = realloc(all, cap + (1 << 20));

				if (na == NULL)
					goto out;
				all = na;
				cap += 1 << 20;
			}
			ZSTD_outBuffer ob = { all + len, cap - len, 0 };

			if (ZSTD_isError(ZSTD_decompressStream(dc, &ob, &ib)))
				goto out;
			len += ob.pos;
		}
	}
	ok = memmem(all, len, want, n) != NULL;
out:
	if (f)
		fclose(f);
	ZSTD_freeDCtx(dc);
	free(all);
	return ok;
}

int
main(void)
{
	char dir[] = "/tmp/test_segment.XXXXXX", uuid[SEGMENT_UUID_LEN + 1];
	char path[512], cmd[600];
	struct segment_config cfg = { 0 };
	struct segment_writer *w = NULL;
	struct store *st = NULL;
	struct seen seen = { 0 };
	unsigned char *data = malloc(3 << 20);
	uint64_t seq;
	char self[32];
	bool kept;
	int base, n;

	if (data == NULL || mkdtemp(dir) == NULL)
		return 1;
	/* Compressible but not trivial: a repeated random-ish pattern. */
	for (size_t i = 0; i < (3u << 20); i++)
		data[i] = (unsigned char)((i * 2654435761u) >> (i % 13));
	snprintf(self, sizeof(self), "%ld", (long)gettid());
	base = nice_of(self);
	ok(base > -100, "this thread's nice value: %d", base);
	ok(store_open(dir, true, &st) == 0, "store: %s", err_msg());
	cfg.threads = 2;
	ok(segment_writer_open(st, &cfg, closed, &seen, &w) == 0,
	    "writer with two workers");
	if (w == NULL)
		return tap_done();
	ok(count_lowered(base, &kept, 0) == 0, "no worker before any data");
	ok(segment_add(w, "data", data, 3u << 20, uuid, &seq) == 0 && seq == 0,
	    "3 MiB object added: %s", err_msg());
	n = count_lowered(base, &kept, 2);
	if (base + 5 > 19)
		ok(1, "workers at nice + 5 # SKIP this test runs at nice %d",
		    base);
	else
		ok(n == 2 && kept,
		    "two workers at nice %d, this thread at %d (%d)", base + 5,
		    base, n);
	{
		int self_policy, nbatch = count_batch_wait(&self_policy, 2);

		ok(nbatch == 2 && self_policy == SCHED_OTHER,
		    "the two workers are batch threads (%d), this thread is "
		    "not (policy %d)",
		    nbatch, self_policy);
	}
	ok(segment_add(w, "metadata", "meta", 4, uuid, &seq) == 0,
	    "metadata object added");
	if (base + 5 > 19)
		ok(1, "no more workers # SKIP this test runs at nice %d", base);
	else
		ok(count_lowered(base, &kept, 2) == 2,
		    "the metadata log compresses in line: no more workers");
	ok(segment_writer_finish(w) == 0 && seen.n == 2,
	    "two segments written (%d)", seen.n);
	snprintf(path, sizeof(path), "%s/%s", dir, seen.names[0]);
	ok(holds(path, data, 3u << 20)
	        || (snprintf(path, sizeof(path), "%s/%s", dir, seen.names[1]),
	            holds(path, data, 3u << 20)),
	    "the data segment decompresses to the object");
	segment_writer_free(w);

	/* One thread: no pool, nothing lowered. */
	cfg.threads = 1;
	seen.n = 0;
	w = NULL;
	ok(segment_writer_open(st, &cfg, closed, &seen, &w) == 0
	        && segment_add(w, "data", data, 1u << 20, uuid, &seq) == 0
	        && count_lowered(base, &kept, 0) == 0 && kept,
	    "one thread: compression in line");
	ok(segment_writer_finish(w) == 0 && seen.n == 1, "its segment written");
	segment_writer_free(w);
	store_close(st);
	free(data);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return tap_done();
}
