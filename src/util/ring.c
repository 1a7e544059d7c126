/* ring: pieces taken in order, given back in any order (ring.h). */
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

#include "err.h"
#include "ring.h"

/* Before each piece: the next piece taken, and whether it is back. */
struct piece {
	struct piece *later;
	bool given;
};

#define ALIGN _Alignof(max_align_t)
#define ROUND(n) (((n) + ALIGN - 1) & ~(ALIGN - 1))
#define HEADER ROUND(sizeof(struct piece))

struct ring {
	unsigned char *mem;
	size_t size;
	size_t head; /* the next free byte, while pieces live */
	/* The pieces not yet free, oldest first; the oldest one's offset
	 * is the tail. */
	struct piece *oldest, *newest;
};

struct ring *
ring_new(size_t size)
{
	struct ring *rg;

	/* The size is kept a multiple of the alignment, so the end of the
	 * last piece is too. */
	size &= ~(ALIGN - 1);
	if (size < 2 * HEADER) {
		err_set("a ring of %zu bytes is too small", size);
		return NULL;
	}
	if ((rg = calloc(1, sizeof(*rg))) == NULL
	    || (rg->mem = malloc(size)) == NULL) {
		free(rg);
		err_set("out of memory");
		return NULL;
	}
	rg->size = size;
	return rg;
}

void
ring_free(struct ring *rg)
{
	if (rg == NULL)
		return;
	free(rg->mem);
	free(rg);
}

size_t
ring_piece_max(const struct ring *rg)
{
	return rg->size - HEADER;
}

/* Where ${need} bytes (header included) fit; false if they do not yet.
 * A piece that does not fit before the end goes to the start, if the
 * oldest piece leaves room there. */
static bool
fit(const struct ring *rg, size_t need, size_t *at)
{
	size_t tail;

	if (rg->oldest == NULL) {
		*at = 0;
		return true;
	}
	tail = (size_t)((const unsigned char *)rg->oldest - rg->mem);
	/* Ends that meet while pieces live mean a full ring (an empty one
	 * has no oldest piece), so a piece may end at the tail. */
	if (rg->head > tail) { /* pieces in [tail, head) */
		if (rg->size - rg->head >= need)
			*at = rg->head;
		else if (tail >= need)
			*at = 0;
		else
			return false;
		return true;
	}
	if (tail - rg->head >= need) { /* wrapped: in [tail, end), [0, head) */
		*at = rg->head;
		return true;
	}
	return false;
}

void *
ring_take(struct ring *rg, size_t n)
{
	struct piece *pc;
	size_t need, at;

	if (n > ring_piece_max(rg))
		return NULL;
	need = HEADER + ROUND(n);
	if (!fit(rg, need, &at))
		return NULL;
	pc = (struct piece *)(void *)(rg->mem + at);
	pc->later = NULL;
	pc->given = false;
	if (rg->newest != NULL)
		rg->newest->later = pc;
	else
		rg->oldest = pc;
	rg->newest = pc;
	rg->head = at + need;
	return (unsigned char *)pc + HEADER;
}

void
ring_give(struct ring *rg, void *piece)
{
	struct piece *pc
	    = (struct piece *)(void *)((unsigned char *)piece - HEADER);

	pc->given = true;
	while (rg->oldest != NULL && rg->oldest->given)
		rg->oldest = rg->oldest->later;
	if (rg->oldest == NULL) /* empty: the next piece goes to the start */
		rg->newest = NULL;
}
