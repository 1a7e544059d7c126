/*
 * ring: pieces of memory taken in order from one block allocated once,
 * given back in any order, their space reused in order.
 *
 * For a producer that makes work items faster than its consumers finish
 * them: the ring bounds the memory waiting, and the heap sees one
 * allocation instead of one per item (freed on other threads, they left
 * the heap with holes).  A piece's space is free again once it and every
 * older piece are given back.  Not locked: callers that share a ring
 * hold their own lock around every call.
 */
#ifndef CUMULUS_RING_H
#define CUMULUS_RING_H

#include <stddef.h>

struct ring;

/* A ring of ${size} bytes; NULL with error set. */
struct ring *ring_new(size_t size);
/* Free ${rg} (NULL is fine); its pieces go with it. */
void ring_free(struct ring *rg);
/* The largest piece ring_take() can give: in an empty ring, any piece
 * of up to this many bytes fits. */
size_t ring_piece_max(const struct ring *rg);
/* ${n} bytes, aligned for any type, contiguous; NULL if they do not fit
 * until older pieces are given back (always, for more than
 * ring_piece_max()). */
void *ring_take(struct ring *rg, size_t n);
/* Give back ${piece}, from ring_take() on ${rg}. */
void ring_give(struct ring *rg, void *piece);

#endif
