/*
 * hash: sha1/sha224/sha256 with OpenSSL's libcrypto (see hash.h).
 *
 * The digest functions themselves (SHA256_Init and the like), not EVP:
 * EVP's provider set-up kept 1.7 MiB more of libcrypto resident (3.4 MiB
 * against 1.7 MiB, measured in /proc/self/smaps; a tenth of the initial
 * backup's peak memory) and allocated a context per hash, once per chunk.
 * Both run the same assembly (SHA extensions where the CPU has them).
 * OpenSSL 3 marks these functions deprecated, not removed; if a release
 * drops them, this file is the only one to change.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "hash.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "err.h"

_Static_assert(sizeof(SHA_CTX) <= sizeof(((struct hash *)0)->state.bytes),
    "struct hash holds a SHA_CTX");
_Static_assert(sizeof(SHA256_CTX) <= sizeof(((struct hash *)0)->state.bytes),
    "struct hash holds a SHA256_CTX");

int
hash_library_init(void)
{
	/* OpenSSL sets itself up on first use (the S3 and SFTP stores use
	 * EVP); when that fails half way (out of memory) later calls crash,
	 * so do it here, once, checked. */
	if (OPENSSL_init_crypto(0, NULL) != 1) {
		err_set("cannot initialise OpenSSL's libcrypto");
		return -1;
	}
	return 0;
}

const char *
hash_name(enum hash_alg alg)
{
	switch (alg) {
	case HASH_SHA1:
		return "sha1";
	case HASH_SHA224:
		return "sha224";
	case HASH_SHA256:
		return "sha256";
	}
	return "?";
}

size_t
hash_size(enum hash_alg alg)
{
	switch (alg) {
	case HASH_SHA1:
		return 20;
	case HASH_SHA224:
		return 28;
	case HASH_SHA256:
		return 32;
	}
	return 0;
}

int
hash_init(struct hash *h, enum hash_alg alg)
{
	int ok = 0;

	h->alg = alg;
	switch (alg) {
	case HASH_SHA1:
		ok = SHA1_Init((SHA_CTX *)h->state.bytes);
		break;
	case HASH_SHA224:
		ok = SHA224_Init((SHA256_CTX *)h->state.bytes);
		break;
	case HASH_SHA256:
		ok = SHA256_Init((SHA256_CTX *)h->state.bytes);
		break;
	}
	if (ok != 1) {
		err_set("cannot start a %s hash", hash_name(alg));
		return -1;
	}
	return 0;
}

void
hash_update(struct hash *h, const void *p, size_t n)
{
	if (n == 0)
		return;
	switch (h->alg) {
	case HASH_SHA1:
		SHA1_Update((SHA_CTX *)h->state.bytes, p, n);
		break;
	case HASH_SHA224:
		SHA224_Update((SHA256_CTX *)h->state.bytes, p, n);
		break;
	case HASH_SHA256:
		SHA256_Update((SHA256_CTX *)h->state.bytes, p, n);
		break;
	}
}

void
hash_abort(struct hash *h)
{
	/* Nothing to free: the state is cleared, as freeing it was. */
	OPENSSL_cleanse(h->state.bytes, sizeof(h->state.bytes));
}

int
hash_final_raw(struct hash *h, unsigned char digest[HASH_DIGEST_MAX])
{
	int ok = 0;

	switch (h->alg) {
	case HASH_SHA1:
		ok = SHA1_Final(digest, (SHA_CTX *)h->state.bytes);
		break;
	case HASH_SHA224:
		ok = SHA224_Final(digest, (SHA256_CTX *)h->state.bytes);
		break;
	case HASH_SHA256:
		ok = SHA256_Final(digest, (SHA256_CTX *)h->state.bytes);
		break;
	}
	hash_abort(h);
	if (ok != 1) {
		err_set("hash computation failed");
		return -1;
	}
	return (int)hash_size(h->alg);
}

void
hash_hex(const unsigned char *p, size_t n, char *out)
{
	static const char hexd[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hexd[p[i] >> 4];
		out[2 * i + 1] = hexd[p[i] & 15];
	}
	out[2 * n] = '\0';
}

int
hash_final(struct hash *h, char out[HASH_STR_MAX])
{
	unsigned char d[HASH_DIGEST_MAX];
	enum hash_alg alg = h->alg;
	int n = hash_final_raw(h, d);
	size_t pre;

	if (n < 0)
		return -1;
	pre = strlen(hash_name(alg));
	memcpy(out, hash_name(alg), pre);
	out[pre] = '=';
	hash_hex(d, (size_t)n, out + pre + 1);
	return 0;
}

int
hash_buffer(enum hash_alg alg, const void *p, size_t n, char out[HASH_STR_MAX])
{
	struct hash h;

	if (hash_init(&h, alg))
		return -1;
	hash_update(&h, p, n);
	return hash_final(&h, out);
}

int
hash_parse(const char *s, enum hash_alg *alg)
{
	static const enum hash_alg all[]
	    = { HASH_SHA1, HASH_SHA224, HASH_SHA256 };
	const char *eq = strchr(s, '=');

	if (eq == NULL) {
		err_set("malformed checksum '%.80s'", s);
		return -1;
	}
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		const char *name = hash_name(all[i]);
		size_t hexlen = 2 * hash_size(all[i]);

		if ((size_t)(eq - s) != strlen(name)
		    || memcmp(s, name, strlen(name)) != 0)
			continue;
		if (strlen(eq + 1) != hexlen
		    || strspn(eq + 1, "0123456789abcdef") != hexlen) {
			err_set("malformed %s checksum '%.80s'", name, s);
			return -1;
		}
		*alg = all[i];
		return 0;
	}
	err_set("unknown checksum algorithm in '%.80s'", s);
	return -1;
}
