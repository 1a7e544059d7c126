/*
 * test_ring: pieces taken from a ring (ring.h) never overlap a piece not
 * yet given back, whatever the order pieces are given back in; they are
 * aligned and inside the ring; a piece that does not fit yet is refused,
 * and fits once the older pieces are back; an empty ring takes any piece
 * up to ring_piece_max().
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "prng.h"
#include "ring.h"
#include "tap.h"

#define ALIGNED(p) ((uintptr_t)(p) % _Alignof(max_align_t) == 0)

struct live {
	unsigned char *p;
	size_t n;
	unsigned char tag;
};

/* Whether ${l}'s bytes still hold its tag. */
static bool
intact(const struct live *l)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->p[i] != l->tag)
			return false;
	return true;
}

static bool
overlaps(const unsigned char *p, size_t n, const struct live *l)
{
	return p < l->p + l->n && l->p < p + n;
}

/* Pieces taken while the oldest is near the start and the head near the
 * end: a piece that does not fit before the end goes to the start only
 * if the oldest piece live leaves room there. */
static void
test_wrap(void)
{
	struct ring *rg = ring_new(1024);
	unsigned char *a, *b, *c, *d;

	ok(rg != NULL, "a ring of 1024 bytes");
	a = ring_take(rg, 100);
	b = ring_take(rg, 400);
	c = ring_take(rg, 400);
	ok(a && b && c && a < b && b < c, "three pieces, in order");
	ok(ALIGNED(a) && ALIGNED(b) && ALIGNED(c), "aligned for any type");
	memset(b, 'b', 400);
	memset(c, 'c', 400);
	ok(ring_take(rg, 200) == NULL, "no room after the third piece");
	ring_give(rg, a);
	/* 100 bytes are free at the start: not room for 200. */
	ok(ring_take(rg, 200) == NULL,
	    "a piece larger than the space before the oldest is refused");
	ring_give(rg, c);
	ok(ring_take(rg, 200) == NULL,
	    "a younger piece given back frees nothing while an older lives");
	ring_give(rg, b);
	d = ring_take(rg, 200);
	ok(d == a, "the ring empty, a piece goes to the start");
	ring_free(rg);

	rg = ring_new(1024);
	a = ring_take(rg, 300);
	b = ring_take(rg, 300);
	c = ring_take(rg, 300);
	memset(c, 'c', 300);
	ring_give(rg, a);
	d = ring_take(rg, 200);
	ok(d == a, "before the oldest piece, with room: to the start");
	memset(d, 'd', 200);
	ok(ring_take(rg, 100) == NULL,
	    "wrapped: the space up to the oldest piece is not enough");
	ring_give(rg, b);
	ok(ring_take(rg, 100) != NULL, "wrapped: room once the oldest is back");
	{
		struct live lc = { c, 300, 'c' }, ld = { d, 200, 'd' };

		ok(intact(&lc) && intact(&ld),
		    "the live pieces kept their bytes");
	}
	ring_free(rg);

	/* Pieces of 304 bytes take 320 with their header, a multiple of
	 * the alignment: the fourth ends exactly where the second starts. */
	rg = ring_new(1024);
	a = ring_take(rg, 304);
	b = ring_take(rg, 304);
	c = ring_take(rg, 304);
	ring_give(rg, a);
	d = ring_take(rg, 304);
	ok(d == a, "a piece may end where the oldest piece starts");
	ok(ring_take(rg, 0) == NULL, "then the ring is full");
	ring_give(rg, b);
	ok(ring_take(rg, 304) == b, "and has room once the oldest is back");
	ring_free(rg);
}

static void
test_limits(void)
{
	struct ring *rg;
	void *p, *q;

	err_clear();
	ok(ring_new(8) == NULL && err_msg()[0] != '\0',
	    "a ring too small for one piece is refused with an error");
	rg = ring_new(4096);
	ok(rg != NULL && ring_piece_max(rg) < 4096
	        && ring_piece_max(rg) >= 4096 - 64,
	    "the largest piece is the ring less a header (%zu)",
	    rg ? ring_piece_max(rg) : 0);
	ok(ring_take(rg, ring_piece_max(rg) + 1) == NULL,
	    "a piece larger than the largest is refused");
	p = ring_take(rg, ring_piece_max(rg));
	ok(p != NULL, "the largest piece fits in the empty ring");
	ok(ring_take(rg, 0) == NULL, "the ring is full");
	ring_give(rg, p);
	p = ring_take(rg, 0);
	q = ring_take(rg, 0);
	ok(p != NULL && q != NULL && p != q, "empty pieces are distinct");
	ring_free(rg);
	ring_free(NULL);
}

/*
 * Random sizes, pieces given back in random order: every piece taken is
 * aligned, inside the ring and clear of every live piece, and every
 * live piece keeps its bytes.  When a piece does not fit, the oldest
 * pieces are given back until it does, as a producer waiting for its
 * consumers would.
 */
static void
test_random(void)
{
	enum { SIZE = 8192, STEPS = 200000, MAXLIVE = 64 };
	struct ring *rg = ring_new(SIZE);
	struct live live[MAXLIVE];
	size_t nlive = 0, refused = 0, wraps = 0, bad_place = 0, bad_bytes = 0,
	       stuck = 0;
	unsigned char *lo = NULL, *last = NULL;
	uint64_t seed = 0x5eed1234abcdULL;
	unsigned char tag = 0;

	for (int step = 0; step < STEPS; step++) {
		size_t n;
		unsigned char *p;

		if (nlive > 0 && (nlive == MAXLIVE || prng_next(&seed) % 2)) {
			size_t i = prng_next(&seed) % nlive;

			if (!intact(&live[i]))
				bad_bytes++;
			ring_give(rg, live[i].p);
			live[i] = live[--nlive];
			continue;
		}
		n = prng_next(&seed) % (SIZE / 4);
		while ((p = ring_take(rg, n)) == NULL) {
			size_t o = 0;

			refused++;
			if (nlive == 0) {
				stuck++;
				break;
			}
			/* Give back the oldest: the lowest tag, mod 256. */
			for (size_t i = 1; i < nlive; i++)
				if ((unsigned char)(live[i].tag - tag)
				    < (unsigned char)(live[o].tag - tag))
					o = i;
			if (!intact(&live[o]))
				bad_bytes++;
			ring_give(rg, live[o].p);
			live[o] = live[--nlive];
		}
		if (p == NULL)
			break;
		if (lo == NULL || p < lo)
			lo = p;
		if (last != NULL && p < last)
			wraps++;
		last = p;
		if (!ALIGNED(p) || p + n > lo + SIZE)
			bad_place++;
		for (size_t i = 0; i < nlive; i++)
			if (overlaps(p, n, &live[i]))
				bad_place++;
		memset(p, ++tag, n);
		live[nlive++] = (struct live) { p, n, tag };
	}
	ok(stuck == 0, "an empty ring took every piece");
	ok(bad_place == 0, "every piece aligned, inside, clear of live pieces");
	ok(bad_bytes == 0, "every live piece kept its bytes");
	ok(wraps > 1000 && refused > 1000,
	    "the run wrapped (%zu times) and waited for room (%zu times)",
	    wraps, refused);
	while (nlive > 0)
		ring_give(rg, live[--nlive].p);
	ok(ring_take(rg, ring_piece_max(rg)) != NULL,
	    "all given back, the ring is empty");
	ring_free(rg);
}

int
main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0); /* what passed, if a bug crashes */
	test_limits();
	test_wrap();
	test_random();
	return tap_done();
}
