/*
 * prng.h: xorshift64 for unit tests: seeded, so every run draws the same
 * numbers and a failure replays.
 */
#ifndef CUMULUS_TEST_PRNG_H
#define CUMULUS_TEST_PRNG_H

#include <stdint.h>

/* The next number after ${state} (not zero), which it becomes. */
static inline uint64_t
prng_next(uint64_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return *state;
}

#endif
