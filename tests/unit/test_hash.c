/*
 * test_hash: the checksums every object, file and segment is named by.
 * The FIPS 180 test vectors for each algorithm, whole and fed in pieces
 * (a piece boundary inside a 64-byte block, and a million bytes), the
 * raw and the "<alg>=<hex>" forms, releasing twice, and the parser.
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "hash.h"
#include "tap.h"

struct vector {
	enum hash_alg alg;
	const char *input;
	const char *want;
};

static const struct vector vectors[] = {
	{ HASH_SHA1, "abc", "sha1=a9993e364706816aba3e25717850c26c9cd0d89d" },
	{ HASH_SHA1, "", "sha1=da39a3ee5e6b4b0d3255bfef95601890afd80709" },
	{ HASH_SHA1, "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
	    "sha1=84983e441c3bd26ebaae4aa1f95129e5e54670f1" },
	{ HASH_SHA224, "abc",
	    "sha224=23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7" },
	{ HASH_SHA224, "",
	    "sha224=d14a028c2a3a2bc9476102bb288234c415a2b01f828ea62ac5b3e42f" },
	{ HASH_SHA256, "abc",
	    "sha256=ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f2"
	    "0015ad" },
	{ HASH_SHA256, "",
	    "sha256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b78"
	    "52b855" },
	{ HASH_SHA256,
	    "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
	    "sha256=248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419"
	    "db06c1" },
};

/* ${in} fed in pieces of ${step} bytes. */
static int
pieces(enum hash_alg alg, const char *in, size_t len, size_t step,
    char out[HASH_STR_MAX])
{
	struct hash h;

	if (hash_init(&h, alg))
		return -1;
	for (size_t off = 0; off < len; off += step)
		hash_update(&h, in + off, len - off < step ? len - off : step);
	return hash_final(&h, out);
}

int
main(void)
{
	char got[HASH_STR_MAX], *million;
	unsigned char raw[HASH_DIGEST_MAX];
	struct hash h;
	enum hash_alg alg;
	int n;

	if (hash_library_init() != 0) {
		printf("Bail out! %s\n", err_msg());
		return 1;
	}
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		const struct vector *v = &vectors[i];
		size_t len = strlen(v->input);

		got[0] = '\0';
		ok(hash_buffer(v->alg, v->input, len, got) == 0
		        && strcmp(got, v->want) == 0,
		    "%s of \"%.10s\" (%zu bytes): %s", hash_name(v->alg),
		    v->input, len, got);
		got[0] = '\0';
		ok(pieces(v->alg, v->input, len, 7, got) == 0
		        && strcmp(got, v->want) == 0,
		    "the same fed 7 bytes at a time");
	}

	/* One million 'a': many blocks, fed in uneven pieces. */
	million = malloc(1000000);
	if (million == NULL)
		return 1;
	memset(million, 'a', 1000000);
	ok(pieces(HASH_SHA256, million, 1000000, 4099, got) == 0
	        && strcmp(got,
	               "sha256=cdc76e5c9914fb9281a1c7e284d73e67f1809a48a4972"
	               "00e046d39ccc7112cd0")
	            == 0,
	    "sha256 of a million 'a'");
	ok(pieces(HASH_SHA1, million, 1000000, 65536, got) == 0
	        && strcmp(got, "sha1=34aa973cd4c4daa4f61eeb2bdbad27316534016f")
	            == 0,
	    "sha1 of a million 'a'");
	free(million);

	/* Raw digests: the length is the algorithm's. */
	ok(hash_init(&h, HASH_SHA224) == 0
	        && (hash_update(&h, "abc", 3), n = hash_final_raw(&h, raw))
	            == 28
	        && raw[0] == 0x23 && raw[27] == 0xa7,
	    "raw sha224 digest, 28 bytes");
	ok(hash_init(&h, HASH_SHA1) == 0 && (n = hash_final_raw(&h, raw)) == 20
	        && raw[0] == 0xda && raw[19] == 0x09,
	    "raw sha1 digest, 20 bytes");
	/* Releasing is safe after a result and twice; a new hash starts
	 * afresh in the same struct. */
	hash_abort(&h);
	hash_abort(&h);
	ok(hash_init(&h, HASH_SHA256) == 0
	        && (hash_update(&h, "ab", 2), hash_abort(&h), 1)
	        && hash_init(&h, HASH_SHA256) == 0
	        && (hash_update(&h, "abc", 3), hash_final(&h, got)) == 0
	        && strcmp(got, vectors[5].want) == 0,
	    "a hash released half way leaves nothing behind");

	/* The parser. */
	ok(hash_parse(vectors[0].want, &alg) == 0 && alg == HASH_SHA1,
	    "sha1 checksum parsed");
	ok(hash_parse(vectors[3].want, &alg) == 0 && alg == HASH_SHA224,
	    "sha224 checksum parsed");
	ok(hash_parse(vectors[5].want, &alg) == 0 && alg == HASH_SHA256,
	    "sha256 checksum parsed");
	ok(hash_parse("sha256=abc", &alg) == -1
	        && strstr(err_msg(), "malformed"),
	    "a short digest is refused: %s", err_msg());
	ok(hash_parse("sha1=A9993E364706816ABA3E25717850C26C9CD0D89D", &alg)
	        == -1,
	    "upper-case hex is refused");
	ok(hash_parse("md5=900150983cd24fb0d6963f7d28e17f72", &alg) == -1
	        && strstr(err_msg(), "unknown"),
	    "an unknown algorithm is refused: %s", err_msg());
	ok(hash_parse("a9993e364706816aba3e25717850c26c9cd0d89d", &alg) == -1,
	    "a digest without its algorithm is refused");
	return tap_done();
}
