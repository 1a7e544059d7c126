/*
 * chunker: content-defined chunking and sub-block signatures (reference
 * 2.6).  Pure computation: no I/O, no allocation except in
 * chunker_sig_parse().
 *
 * Two chunkers:
 *   CHUNKER_GEAR  a FastCDC-style Gear chunker with normalized chunking:
 *                 h = (h << 1) + G[byte] over the bytes of the current
 *                 chunk; no cut before CHUNKER_GEAR_MIN bytes; from there
 *                 to CHUNKER_GEAR_AVG bytes a cut needs (h & MASK_S) == 0
 *                 (15 bits), after that (h & MASK_L) == 0 (11 bits); a
 *                 chunk never exceeds CHUNKER_MAX.  Average ~10 KiB.  G is
 *                 the fixed table in chunker.c (splitmix64 from seed
 *                 0x63756d756c757331, "cumulus1").  Signatures
 *                 "gear-8k/sha256".
 *   CHUNKER_LBFS  the original program's Rabin/LBFS chunker, bit-exact
 *                 (48-byte window, polynomial 0xbfe6b8a5bf378d83, divisor
 *                 4096, break mark 0x78, min 2048, max 65535).  Signatures
 *                 "lbfs-4096/sha1" (0.9) and "lbfs-4096/sha224" (HEAD).
 *
 * Boundaries depend only on the bytes since the last cut, never on how the
 * input is split into calls: feed any pieces to chunker_scan().
 *
 * A signature blob (subblock_signatures.signatures) is a sequence of
 * records: uint16 big-endian chunk length, then the raw digest; the records
 * cover the object in order.  An all-zero digest means "bytes not
 * described" (HEAD's rebuild tool writes such records).
 */
#ifndef CUMULUS_CHUNKER_H
#define CUMULUS_CHUNKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hash.h"

struct buf;

enum chunker_kind { CHUNKER_GEAR, CHUNKER_LBFS };

#define CHUNKER_GEAR_MIN 2048
#define CHUNKER_GEAR_AVG 8192
#define CHUNKER_LBFS_MIN 2048
#define CHUNKER_LBFS_WINDOW 48
/* No chunk of either chunker is longer (a record's length is 16 bits). */
#define CHUNKER_MAX 65535

#define CHUNKER_ALG_GEAR "gear-8k/sha256"
#define CHUNKER_ALG_LBFS_SHA1 "lbfs-4096/sha1"
#define CHUNKER_ALG_LBFS_SHA224 "lbfs-4096/sha224"

struct chunker {
	enum chunker_kind kind;
	size_t len;     /* bytes of the current chunk seen so far */
	uint64_t h;     /* gear hash, or the Rabin fingerprint */
	int wpos;       /* LBFS: circular window position (never reset) */
	unsigned char win[CHUNKER_LBFS_WINDOW];
};

/* Start chunking a new stream. */
void chunker_init(struct chunker *c, enum chunker_kind kind);
/*
 * Scan up to ${n} bytes at ${p}.  Returns how many of them belong to the
 * current chunk; *${cut} is true when the chunk ends after them (the
 * chunker is then ready for the next chunk), false when all ${n} bytes
 * were consumed without a cut.  The caller ends the last chunk of a stream
 * itself.
 */
size_t chunker_scan(struct chunker *c, const unsigned char *p, size_t n,
    bool *cut);

/*
 * The chunker and digest an algorithm name stands for.  0, or -1 for a
 * name we do not understand (such signatures are to be ignored).
 */
int chunker_parse_algorithm(const char *name, enum chunker_kind *kind,
    enum hash_alg *hash);
/* The algorithm name of a chunker and digest; NULL if there is none. */
const char *chunker_algorithm_name(enum chunker_kind kind, enum hash_alg hash);

/* One record of a signature blob, placed in its object. */
struct chunker_sig {
	uint64_t offset;
	uint32_t length;
	bool unknown; /* all-zero digest: no signature for these bytes */
	unsigned char digest[HASH_DIGEST_MAX];
};

/*
 * Parse a blob of records with ${dlen}-byte digests.  Refuses (-1, error
 * recorded) a blob that is not a whole number of records or has a record
 * of length 0.  On success *${out} (free()) holds *${n} records; the sum
 * of their lengths is the last offset + length.
 */
int chunker_sig_parse(const void *blob, size_t len, size_t dlen,
    struct chunker_sig **out, size_t *n);
/* Append one record to ${out}.  0 or -1. */
int chunker_sig_append(struct buf *out, uint32_t length,
    const unsigned char *digest, size_t dlen);

#endif
