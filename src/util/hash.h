/*
 * hash: the checksums of the Cumulus format, "<algorithm>=<lowercase hex>".
 *
 * sha1, sha224 and sha256 are understood; our writer uses sha256 for
 * objects and files, and sha1 for the .sha1sums side file.
 */
#ifndef CUMULUS_HASH_H
#define CUMULUS_HASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum hash_alg { HASH_SHA1, HASH_SHA224, HASH_SHA256 };

/* Longest "<alg>=<hex>" string plus NUL. */
#define HASH_STR_MAX 72
/* Largest raw digest. */
#define HASH_DIGEST_MAX 32

/* A running hash.  Its state lives in the struct: starting one allocates
 * nothing, and releasing one (hash_abort) is always safe. */
struct hash {
	enum hash_alg alg;
	union {
		unsigned char bytes[160]; /* SHA_CTX or SHA256_CTX */
		unsigned long long align;
	} state;
};

/* Set up libcrypto once, at program start: checked here rather than
 * failing (or crashing) on first use.  0 or -1. */
int hash_library_init(void);
/* Start a hash.  0, or -1 (error recorded). */
int hash_init(struct hash *h, enum hash_alg alg);
void hash_update(struct hash *h, const void *p, size_t n);
/* Finish into ${out} as "<alg>=<hex>" and release.  0 or -1. */
int hash_final(struct hash *h, char out[HASH_STR_MAX]);
/* Finish into the raw ${digest} (returns its length) and release. -1 error */
int hash_final_raw(struct hash *h, unsigned char digest[HASH_DIGEST_MAX]);
/* Release without a result (safe after hash_final, and twice). */
void hash_abort(struct hash *h);
/* One-shot: checksum string of ${n} bytes.  0 or -1. */
int hash_buffer(enum hash_alg alg, const void *p, size_t n,
    char out[HASH_STR_MAX]);
/* The name "sha1"/"sha224"/"sha256". */
const char *hash_name(enum hash_alg alg);
/* Digest length in bytes. */
size_t hash_size(enum hash_alg alg);
/*
 * Parse the algorithm of "<alg>=<hex>" into ${alg}; checks that the hex part
 * has the right length and digits.  0, or -1 (error recorded).
 */
int hash_parse(const char *s, enum hash_alg *alg);
/* Write 2*n lowercase hex digits of ${p} and a NUL into ${out}. */
void hash_hex(const unsigned char *p, size_t n, char *out);

/*
 * FNV-1a, 64 bits: the hash of names and keys for in-memory tables, not
 * a checksum.  The hash of a prefix is a step of the whole's, so one pass
 * can hash every prefix (fnv1a_step from FNV1A_INIT).
 */
#define FNV1A_INIT UINT64_C(0xcbf29ce484222325)

static inline uint64_t
fnv1a_step(uint64_t h, unsigned char c)
{
	return (h ^ c) * UINT64_C(0x100000001b3);
}

static inline uint64_t
fnv1a(const void *p, size_t n)
{
	const unsigned char *c = p;
	uint64_t h = FNV1A_INIT;

	for (size_t i = 0; i < n; i++)
		h = fnv1a_step(h, c[i]);
	return h;
}

#endif
