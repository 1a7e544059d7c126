/*
 * test_hasher: the helper that hashes a file's next block (hasher.h)
 * gives the same block checksums and the same running file checksum as
 * hashing in line, in order, block after block; a second job before the
 * first is waited for is refused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "hash.h"
#include "hasher.h"
#include "tap.h"

#define NBLOCKS 5
#define BLOCK (1u << 20)

int
main(void)
{
	unsigned char *data = malloc((size_t)NBLOCKS * BLOCK);
	char want[NBLOCKS][HASH_STR_MAX], got[NBLOCKS][HASH_STR_MAX];
	char want_file[HASH_STR_MAX], got_file[HASH_STR_MAX];
	struct hasher *hs = NULL;
	struct hash inline_h, helper_h;
	int bad = 0;

	if (data == NULL || hash_library_init())
		return 1;
	for (size_t i = 0; i < (size_t)NBLOCKS * BLOCK; i++)
		data[i] = (unsigned char)(i * 2654435761u >> 13);
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

	/* Helper: the first block in line, the others handed over. */
	hash_init(&helper_h, HASH_SHA256);
	hash_update(&helper_h, data, BLOCK);
	hash_buffer(HASH_SHA256, data, BLOCK, got[0]);
	for (int k = 1; k < NBLOCKS; k++) {
		size_t n = k == NBLOCKS - 1 ? BLOCK / 3 : BLOCK;

		if (hasher_start(
		        hs, data + (size_t)k * BLOCK, n, &helper_h, got[k])
		        != 0
		    || hasher_wait(hs) != 0)
			bad++;
	}
	hash_final(&helper_h, got_file);
	ok(bad == 0, "%d jobs done", NBLOCKS - 1);
	bad = 0;
	for (int k = 0; k < NBLOCKS; k++)
		if (strcmp(want[k], got[k]) != 0)
			bad++;
	ok(bad == 0, "every block's checksum as in line");
	is_str(got_file, want_file, "the file's checksum as in line");

	/* A job without running hash; a second start is refused. */
	ok(hasher_start(hs, data, BLOCK, NULL, got[0]) == 0,
	    "a job without running hash");
	err_clear();
	ok(hasher_start(hs, data, BLOCK, NULL, got[1]) == -1 && *err_msg(),
	    "a second job before the wait refused: %s", err_msg());
	ok(hasher_wait(hs) == 0 && strcmp(got[0], want[0]) == 0,
	    "the first one finishes");
	ok(hasher_wait(hs) == 0, "waiting with no job returns at once");
	hasher_destroy(hs);
	ok(hasher_create(&hs) == 0
	        && hasher_start(hs, data, BLOCK, NULL, got[2]) == 0,
	    "a helper destroyed with a job queued ...");
	hasher_destroy(hs);
	ok(1, "... waits for it and stops");
	hasher_destroy(NULL);
	free(data);
	return tap_done();
}
