/*
 * test_hasher: the helper that hashes a file's blocks (hasher.h), fed
 * HASHER_DEPTH jobs ahead, gives the same block checksums and the same
 * running file checksum as hashing in line, in order, block after block;
 * it cuts the blocks into the Gear chunks, with their digests, that one
 * chunker over the whole stream makes, and refuses to cut once its chain
 * is broken; a job beyond HASHER_DEPTH is refused; draining, and
 * destroying with jobs queued, wait for them.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chunker.h"
#include "err.h"
#include "hash.h"
#include "hasher.h"
#include "tap.h"

#define NBLOCKS 5
#define BLOCK (1u << 20)
#define MAXCH 2048

/* A chunk of the whole stream, as one chunker in line cuts it. */
struct ref_chunk {
	size_t end; /* offset in the stream just after it */
	unsigned char digest[32];
};

static struct hasher_job
job_of(const unsigned char *p, size_t n, struct hash *running, char *sum)
{
	struct hasher_job j;

	memset(&j, 0, sizeof(j));
	j.p = p;
	j.n = n;
	j.running = running;
	j.sum = sum;
	return j;
}

/* Cut data[0, len) in line; the chunker's state at each block start. */
static size_t
cut_in_line(const unsigned char *data, size_t len, struct ref_chunk *out,
    struct chunker *at_block)
{
	struct chunker ck;
	size_t pos = 0, start = 0, n = 0;

	chunker_init(&ck, CHUNKER_GEAR);
	while (pos < len) {
		size_t lim = (pos / BLOCK + 1) * BLOCK;
		size_t k;
		bool cut;

		if (pos % BLOCK == 0)
			at_block[pos / BLOCK] = ck;
		if (lim > len)
			lim = len;
		k = chunker_scan(&ck, data + pos, lim - pos, &cut);
		pos += k;
		if (cut || pos == len) {
			struct hash h;

			hash_init(&h, HASH_SHA256);
			hash_update(&h, data + start, pos - start);
			hash_final_raw(&h, out[n].digest);
			out[n++].end = pos;
			start = pos;
		}
	}
	return n;
}
int
main(void)
{
	unsigned char *data = malloc((size_t)NBLOCKS * BLOCK);
	char want[NBLOCKS][HASH_STR_MAX], got[NBLOCKS][HASH_STR_MAX];
	char want_file[HASH_STR_MAX], got_file[HASH_STR_MAX];
	struct hasher *hs = NULL;
	struct hash inline_h, helper_h;
	int bad = 0;

	/* A lost wake-up fails the test instead of hanging it. */
	alarm(120);
	if (data == NULL || hash_library_init())
		return 1;
	uint64_t x = 0x9e3779b97f4a7c15u;

	for (size_t i = 0; i < (size_t)NBLOCKS * BLOCK; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		data[i] = (unsigned char)x;
	}
	/* Zeros across the end of block 2: chunks cut at the maximum length,
	 * one of them spanning two blocks. */
	memset(data + 3 * (size_t)BLOCK - 200000, 0, 300000);
	ok(hasher_create(&hs) == 0, "helper started: %s", err_msg());
	if (hs == NULL)
		return tap_done();

	/* In line: the reference. */
	hash_init(&inline_h, HASH_SHA256);
	for (int k = 0; k < NBLOCKS; k++) {
		size_t n = k == NBLOCKS - 1 ? BLOCK / 3 : BLOCK;

		hash_update(&inline_h, data + (size_t)k * BLOCK, n);
		hash_buffer(HASH_SHA256, data + (size_t)k * BLOCK, n, want[k]);
	}
	hash_final(&inline_h, want_file);

	/* Helper: every block handed over, the next before the last is
	 * waited for. */
	hash_init(&helper_h, HASH_SHA256);
	for (int k = 0; k <= NBLOCKS; k++) {
		if (k < NBLOCKS) {
			size_t n = k == NBLOCKS - 1 ? BLOCK / 3 : BLOCK;
			struct hasher_job j = job_of(
			    data + (size_t)k * BLOCK, n, &helper_h, got[k]);

			if (hasher_start(hs, &j) != 0)
				bad++;
		}
		if (k > 0 && hasher_wait(hs) != 0)
			bad++;
	}
	hash_final(&helper_h, got_file);
	ok(bad == 0, "%d jobs done, two at a time", NBLOCKS);
	bad = 0;
	for (int k = 0; k < NBLOCKS; k++)
		if (strcmp(want[k], got[k]) != 0)
			bad++;
	ok(bad == 0, "every block's checksum as in line");
	is_str(got_file, want_file, "the file's checksum as in line");

	/* Cutting: every block handed over, each continuing from the one
	 * before, two at a time. */
	{
		static struct ref_chunk want_ch[NBLOCKS * BLOCK / 2048 + 2];
		static struct hasher_chunk room[2][MAXCH];
		struct hasher_cuts cuts[2];
		struct chunker at_block[NBLOCKS];
		size_t len = (size_t)(NBLOCKS - 1) * BLOCK + BLOCK / 3;
		size_t nwant = cut_in_line(data, len, want_ch, at_block);
		size_t next = 0; /* want_ch[next]: the next chunk to match */
		int jobs_bad = 0, state_bad = 0, chunks_bad = 0, tail_ok = 0;
		size_t maxlen = 0;

		for (int k = 0; k <= NBLOCKS; k++) {
			struct hasher_cuts *c = &cuts[(k - 1) & 1];

			if (k < NBLOCKS) {
				size_t n = k == NBLOCKS - 1 ? BLOCK / 3 : BLOCK;
				struct hasher_job j = job_of(
				    data + (size_t)k * BLOCK, n, NULL, got[k]);
				struct hasher_cuts *ck = &cuts[k & 1];

				memset(ck, 0, sizeof(*ck));
				ck->chunk = room[k & 1];
				ck->cap = MAXCH;
				j.cuts = ck;
				j.first = k == 0;
				j.last = k == NBLOCKS - 1;
				if (hasher_start(hs, &j))
					jobs_bad++;
			}
			if (k == 0)
				continue;
			/* Block k - 1's cuts. */
			if (hasher_wait(hs) || !c->valid) {
				jobs_bad++;
				continue;
			}
			if (c->start.len != at_block[k - 1].len
			    || c->start.h != at_block[k - 1].h)
				state_bad++;
			for (size_t i = 0; i < c->n; i++, next++) {
				size_t end
				    = (size_t)(k - 1) * BLOCK + c->chunk[i].end;
				size_t from = next ? want_ch[next - 1].end : 0;

				if (next >= nwant || want_ch[next].end != end
				    || memcmp(want_ch[next].digest,
				           c->chunk[i].digest, 32)
				        != 0)
					chunks_bad++;
				if (end - from > maxlen)
					maxlen = end - from;
			}
			if (k == NBLOCKS)
				tail_ok = c->tail_valid && next == nwant - 1
				    && memcmp(c->tail_digest,
				           want_ch[next].digest, 32)
				        == 0;
			else if (c->tail_valid)
				tail_ok = -1;
		}
		ok(jobs_bad == 0, "%d blocks cut", NBLOCKS);
		ok(state_bad == 0,
		    "each cut from the chunker's state at its block");
		ok(chunks_bad == 0 && nwant > 200,
		    "the chunks and digests of one chunker in line (%zu)",
		    nwant);
		ok(maxlen == CHUNKER_MAX, "zeros cut at the maximum length");
		ok(tail_ok == 1,
		    "the short last block's tail digest is the last chunk's");
	}

	/* A job that does not cut breaks the chain: the next one, not a
	 * file's first block, cuts nothing. */
	{
		static struct hasher_chunk room[MAXCH];
		struct hasher_cuts c;
		struct hasher_job j = job_of(data, BLOCK, NULL, got[0]);

		memset(&c, 0, sizeof(c));
		c.chunk = room;
		c.cap = MAXCH;
		j.cuts = &c;
		j.first = true;
		ok(hasher_start(hs, &j) == 0 && hasher_wait(hs) == 0 && c.valid,
		    "a file's first block cut");
		j = job_of(data + BLOCK, BLOCK, NULL, got[1]);
		ok(hasher_start(hs, &j) == 0 && hasher_wait(hs) == 0,
		    "then a job without cuts");
		c.valid = true;
		j = job_of(data + 2 * (size_t)BLOCK, BLOCK, NULL, got[2]);
		j.cuts = &c;
		ok(hasher_start(hs, &j) == 0 && hasher_wait(hs) == 0 && !c.valid
		        && strcmp(got[2], want[2]) == 0,
		    "then a block not first cuts nothing, still hashed");
	}

	/* A job with nothing to cut, waited for before the cutting thread
	 * looked at it, its slot then given to a later job: that job is cut
	 * as itself, once.  Each round: a job without cuts, a file's first
	 * block, then its last, which continues from the first. */
	{
		static struct hasher_chunk room[3][64];
		struct hasher_cuts c[2];
		int wrong = 0, rounds = 3000;

		for (int i = 0; i < rounds; i++) {
			struct hasher_job a = job_of(data, 64, NULL, got[0]);
			struct hasher_job b1
			    = job_of(data + 4096, 16384, NULL, got[1]);
			struct hasher_job b2
			    = job_of(data + 20480, 16384, NULL, got[2]);

			memset(c, 0, sizeof(c));
			for (int k = 0; k < 2; k++) {
				c[k].chunk = room[k];
				c[k].cap = 64;
			}
			b1.cuts = &c[0];
			b1.first = true;
			b2.cuts = &c[1];
			b2.last = true;
			if (hasher_start(hs, &a) || hasher_start(hs, &b1)
			    || hasher_wait(hs) || hasher_start(hs, &b2)
			    || hasher_wait(hs) || hasher_wait(hs) || !c[0].valid
			    || !c[1].valid || c[1].start.len != c[0].end.len
			    || c[1].start.h != c[0].end.h)
				wrong++;
		}
		ok(wrong == 0,
		    "%d rounds: a job with nothing to cut skipped "
		    "(%d wrong)",
		    rounds, wrong);
	}

	/* Jobs without running hash; one beyond HASHER_DEPTH is refused. */
	struct hasher_job j0 = job_of(data, BLOCK, NULL, got[0]);
	struct hasher_job j1 = job_of(data + BLOCK, BLOCK, NULL, got[1]);
	struct hasher_job j2 = job_of(data, BLOCK, NULL, got[2]);

	memset(got, 0, sizeof(got));
	ok(hasher_start(hs, &j0) == 0 && hasher_start(hs, &j1) == 0,
	    "%d jobs queued", HASHER_DEPTH);
	err_clear();
	ok(hasher_start(hs, &j2) == -1 && *err_msg(), "one more refused: %s",
	    err_msg());
	ok(hasher_wait(hs) == 0 && strcmp(got[0], want[0]) == 0,
	    "the first one finishes first");
	ok(hasher_wait(hs) == 0 && strcmp(got[1], want[1]) == 0,
	    "then the second");
	ok(hasher_wait(hs) == 0, "waiting with no job returns at once");
	got[0][0] = got[1][0] = '\0';
	ok(hasher_start(hs, &j0) == 0 && hasher_start(hs, &j1) == 0,
	    "two more queued");
	err_set("the caller's error");
	hasher_drain(hs);
	ok(strcmp(got[0], want[0]) == 0 && strcmp(got[1], want[1]) == 0
	        && hasher_wait(hs) == 0,
	    "draining waits for both");
	is_str(err_msg(), "the caller's error", "... and keeps the error");
	hasher_destroy(hs);
	ok(hasher_create(&hs) == 0 && hasher_start(hs, &j0) == 0
	        && hasher_start(hs, &j1) == 0,
	    "a helper destroyed with jobs queued ...");
	hasher_destroy(hs);
	ok(1, "... waits for them and stops");
	hasher_destroy(NULL);
	free(data);
	return tap_done();
}
