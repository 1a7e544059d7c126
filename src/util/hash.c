/* hash: sha1/sha224/sha256 through OpenSSL's EVP interface (see hash.h). */
#include "hash.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "err.h"

/* The digests fetched once by hash_library_init(); NULL before. */
static EVP_MD *fetched[3];

int
hash_library_init(void)
{
	static const char *const names[3] = { "SHA1", "SHA224", "SHA256" };

	/* OpenSSL sets itself up on first use; when that fails half way
	 * (out of memory) later calls crash, so do it here, once, checked. */
	if (OPENSSL_init_crypto(0, NULL) != 1) {
		err_set("cannot initialise OpenSSL's libcrypto");
		return -1;
	}
	for (int i = 0; i < 3; i++) {
		if (fetched[i] == NULL &&
		    (fetched[i] = EVP_MD_fetch(NULL, names[i], NULL)) == NULL) {
			err_set("cannot initialise OpenSSL's %s", names[i]);
			return -1;
		}
	}
	return 0;
}

static const EVP_MD *
md_of(enum hash_alg alg)
{
	if ((unsigned)alg < 3 && fetched[alg] != NULL)
		return fetched[alg];
	switch (alg) {
	case HASH_SHA1:
		return EVP_sha1();
	case HASH_SHA224:
		return EVP_sha224();
	case HASH_SHA256:
		return EVP_sha256();
	}
	return NULL;
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
	EVP_MD_CTX *c = EVP_MD_CTX_new();

	h->alg = alg;
	h->ctx = c;
	if (c == NULL || EVP_DigestInit_ex(c, md_of(alg), NULL) != 1) {
		EVP_MD_CTX_free(c);
		h->ctx = NULL;
		err_set("cannot start a %s hash", hash_name(alg));
		return -1;
	}
	return 0;
}

void
hash_update(struct hash *h, const void *p, size_t n)
{
	if (n)
		EVP_DigestUpdate(h->ctx, p, n);
}

void
hash_abort(struct hash *h)
{
	EVP_MD_CTX_free(h->ctx);
	h->ctx = NULL;
}

int
hash_final_raw(struct hash *h, unsigned char digest[HASH_DIGEST_MAX])
{
	unsigned int len = 0;
	int ok = EVP_DigestFinal_ex(h->ctx, digest, &len) == 1;

	hash_abort(h);
	if (!ok) {
		err_set("hash computation failed");
		return -1;
	}
	return (int)len;
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
	static const enum hash_alg all[] = { HASH_SHA1, HASH_SHA224, HASH_SHA256 };
	const char *eq = strchr(s, '=');

	if (eq == NULL) {
		err_set("malformed checksum '%.80s'", s);
		return -1;
	}
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		const char *name = hash_name(all[i]);
		size_t hexlen = 2 * hash_size(all[i]);

		if ((size_t)(eq - s) != strlen(name) ||
		    memcmp(s, name, strlen(name)) != 0)
			continue;
		if (strlen(eq + 1) != hexlen ||
		    strspn(eq + 1, "0123456789abcdef") != hexlen) {
			err_set("malformed %s checksum '%.80s'", name, s);
			return -1;
		}
		*alg = all[i];
		return 0;
	}
	err_set("unknown checksum algorithm in '%.80s'", s);
	return -1;
}
