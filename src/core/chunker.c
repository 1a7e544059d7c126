/*
 * chunker: Gear (FastCDC-style) and LBFS Rabin chunking, signature blobs.
 * See chunker.h for the parameters; they are part of the stored format
 * (the algorithm names), so never change them under the same name.
 */
#include "chunker.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"

/* FastCDC's spread masks for an 8 KiB normal size (15 and 11 bits). */
#define MASK_S UINT64_C(0x0003590703530000)
#define MASK_L UINT64_C(0x0000d90003530000)

/* G[i]: splitmix64 outputs 1..256 from seed 0x63756d756c757331. */
static const uint64_t gear[256] = {
	0xe3072ad164891f89ULL, 0xe73cffde49694d3bULL, 0x2df7a465c54f344aULL,
	0xb43c988903abe9efULL, 0x39d98fb3ff4e7754ULL, 0xdfa257a47dd0f452ULL,
	0x3b5bf6eb446387baULL, 0x5b8c22f41b82f4cdULL, 0xe2d5426daaa06237ULL,
	0x472d14a9b4c5921fULL, 0xfea5dae0d76071b3ULL, 0x20af80a3a8216b64ULL,
	0x0bc623fc9daf779aULL, 0x2573d0a97a710519ULL, 0xb1aa4d12e6648e1aULL,
	0x1c5f7980e60d65dfULL, 0x0bef4d319f84f737ULL, 0x7cd08ace0d2ee13bULL,
	0x8b5267415596e4d0ULL, 0xdb26ae9491fbd1a9ULL, 0x8494b09397485f95ULL,
	0xc930b063d00da01aULL, 0x9624c3d316eeafb0ULL, 0xaec7866f1ffd156aULL,
	0xb48946396234b673ULL, 0x6448a1bd482f9b6cULL, 0x349628ef61de37f7ULL,
	0xf90bd4bbd5c851b3ULL, 0x35766e3464d2ace4ULL, 0xf19b752f1f2b5985ULL,
	0xfa0ab0c58b0586c4ULL, 0x63c1678666ab81faULL, 0xc996b4ff46b65e28ULL,
	0xfa8b7e79c8caaba5ULL, 0x24e07dc0f4f84f40ULL, 0x5dde9eeba1a9935bULL,
	0xce495759f71fcca5ULL, 0x7b34f28fd47f3ab0ULL, 0x909790b2d7997017ULL,
	0xde48a7ae9bbf9243ULL, 0xab6679cba7e4a4b1ULL, 0x6e30287edd488eebULL,
	0xae365a313d76ac93ULL, 0xee1e7ad58f6c9c9dULL, 0x6394ae6a7fc3a088ULL,
	0x82c3aac4bf581bf2ULL, 0xb1f32df3203f0e20ULL, 0x5849ebb36aa36824ULL,
	0x0560ac00d5119060ULL, 0xf651f64c00914f12ULL, 0x0f1620bd8ec40e62ULL,
	0x08655134ee3036a1ULL, 0xa1a5146facb64cdcULL, 0xfc3e9f63f67755f4ULL,
	0xf1df7a30225533c5ULL, 0x41de71d47aecc00cULL, 0xfec904a8d02bfd5aULL,
	0x79f5fc30d1097d7fULL, 0xdfed63d831cb0825ULL, 0xa4b2ddda2741c785ULL,
	0xdc675a0f028abbd3ULL, 0xed99f9a5f6cf722aULL, 0xe223858217492887ULL,
	0x3611886fe314858aULL, 0x97a87a17c02d5ae1ULL, 0x067c409ae60d6783ULL,
	0xceb75c8ceb53acf3ULL, 0x60056ab4cf369d2fULL, 0x42734f78218c2eb3ULL,
	0xc20f599e4f07af06ULL, 0x24d451bf4a422a7fULL, 0x79e5daa953750a52ULL,
	0x90e4cffd31e21e1aULL, 0x0e845dddd8d9f557ULL, 0x180a5d1fd4037996ULL,
	0xaa687c19ab3fd534ULL, 0x3c8df07158bdc4daULL, 0x87777e8dd757afdbULL,
	0x28a4fbbb286f1871ULL, 0xaa4e41ca6a1141c2ULL, 0x9899f92c786cb235ULL,
	0x683386a76b47749dULL, 0x528ef0ed317a7485ULL, 0x2ca69db216162de9ULL,
	0x57b408cb2da13d57ULL, 0xc42e800a46a79513ULL, 0xfa59f8eb17521bc8ULL,
	0xb15622cb006891c4ULL, 0x19a2e2ede7dcd683ULL, 0x46b586afc23d7983ULL,
	0xf8dfa463acd36c69ULL, 0xd1084547532ae7baULL, 0x8e4fa3125e400965ULL,
	0xd0e3f069d3222b39ULL, 0x2cae6e35284cc577ULL, 0x60c20a0a96df6360ULL,
	0x8216ead233b7ddb3ULL, 0xfde31239681af5c9ULL, 0x8fc0ae4f17803e74ULL,
	0x781ebebe6174656cULL, 0x018b2f9948b48dc3ULL, 0xc0d55f2db9ac348aULL,
	0xcd9035ad3a2516b6ULL, 0x8cac610460a47e66ULL, 0xcc775702ca128357ULL,
	0xfe8e8ca3993cf764ULL, 0x0b2277e2f1c93898ULL, 0x2f22549e6b9d801dULL,
	0x9c5d16359e42c88aULL, 0xee12b515a0967968ULL, 0x39fbe2571d955385ULL,
	0x4f810685ba386514ULL, 0x048bbc1d86de89b0ULL, 0x3af3c022bf9930c6ULL,
	0x765875292469ce2fULL, 0xc63fd37cf4b63171ULL, 0xcb723da85ff2ebd3ULL,
	0x31ea35545a043970ULL, 0x87bc4af900f881aeULL, 0x4d1a065432c09c61ULL,
	0x169eff476b3fd34aULL, 0xac86d04fab0d79ebULL, 0xfd06eaf421333c81ULL,
	0x7c53877b603bbf23ULL, 0x16134883dda32fffULL, 0x911c88b3e0534218ULL,
	0x51f29df61f20574cULL, 0xb1d3ee0b458c31c7ULL, 0x91455c9b71446b4aULL,
	0x2cc556596f3f5a8fULL, 0x69df3bacdcd5b5c9ULL, 0xdfdbede675c0fd7dULL,
	0x552b74366fcb417dULL, 0x99f54f5a20c0e5e8ULL, 0x282cb790c61271aaULL,
	0xdbaa4f4cbdce6ae2ULL, 0x684f1a1fe9521888ULL, 0x5b841f6c86776136ULL,
	0xaa89ad2eeae6b7aeULL, 0x409f9d9032a59662ULL, 0x3553ed7f08e858fdULL,
	0xdb92ddb707290ff6ULL, 0x311f6941dc17eeabULL, 0x098a7c3523be5db5ULL,
	0x87fc75da56e0f299ULL, 0xd2796bf435c455e5ULL, 0x0c564abf54ce0b5cULL,
	0x500b826f47335cc3ULL, 0x941b9ab972b0afbfULL, 0x311b1ad6421b4a3bULL,
	0x1ea6776d73d1c476ULL, 0x59f5b0e00a361830ULL, 0x3bb44c8ba62fc8d0ULL,
	0x650477b901b91ae1ULL, 0x0a5bfb5e5d6a9bf0ULL, 0x1fe53691e22723d7ULL,
	0xd8dad0ad697a86c6ULL, 0x8255c0b294be7a09ULL, 0xb6e36cab1b956630ULL,
	0x896c67580f708b5cULL, 0x03e8b422e37c65a1ULL, 0x61190afa2ae81eb5ULL,
	0xc599f29bf5cfb787ULL, 0x0ceced3955964a1bULL, 0xee36cefaf2f99bb4ULL,
	0x98203c71d530bb07ULL, 0xb6d4509cbdefb934ULL, 0x5bfc7149132b81fdULL,
	0x00fef5abcdc0c51cULL, 0x1573964b08e503faULL, 0x4822d9b6795cfa72ULL,
	0x266b140eeecadeebULL, 0x3eeaafa56902b515ULL, 0x298ef653d6bb864aULL,
	0x92111676315f996cULL, 0x122d17fda81bd00dULL, 0x17982d19612e54faULL,
	0x302a2099db195290ULL, 0x1f9c28eb3b725405ULL, 0xf58bf8784c98cbd1ULL,
	0x3cef9033c61b6cc8ULL, 0x930216e1f858ebc9ULL, 0x04acfefc083e451dULL,
	0x42685088663687cbULL, 0x7caf65ba113c91c0ULL, 0xdc76822cce84ca11ULL,
	0x7c0664488b362c86ULL, 0x4ebaae02c2940821ULL, 0xf043964d62496c00ULL,
	0x27454b8535b135e7ULL, 0x65de4445254f9423ULL, 0x929de534d60f0bb2ULL,
	0xfee33eda3138d364ULL, 0x3158f42e64ba334aULL, 0xcf448aa3d79bfaeeULL,
	0xef961b5783def303ULL, 0x52743ec3663ebe3eULL, 0x31244444a896fe62ULL,
	0x665573bab46ff141ULL, 0x02e67cc4fd1efea1ULL, 0x7b005b65c80a9a8aULL,
	0xa1473287ac8036cfULL, 0xa1b6d93b2c2851b0ULL, 0x0f8d6481d94bc624ULL,
	0x7c2fe27860f09fe1ULL, 0x2c4939223a35a8c4ULL, 0x04c91f4fd79306faULL,
	0xa3f71842cee0ec81ULL, 0xe1d9fce61a00f240ULL, 0xd1ca9f030bbbe269ULL,
	0x22540443be1e5846ULL, 0xed31cf4766c12456ULL, 0xf9b8d619ac69cf4cULL,
	0x63bd810b21926018ULL, 0x7dd7e4bacc3614abULL, 0x13b028f3c93503a1ULL,
	0x1640368e2e943821ULL, 0x4cc4ecfc3fbd6bc4ULL, 0x17a5649c4b2f7fc5ULL,
	0x02aebeaed8406a14ULL, 0x7ee0b0ec916cf668ULL, 0x8edcd12442cebcb8ULL,
	0x806888b572e7448bULL, 0xd9985d15e7b75562ULL, 0x31c556cfe48b623aULL,
	0x32f19a2430728179ULL, 0x2f069ab865498e3fULL, 0x2bb61b3cc7ecb358ULL,
	0x549574cddeb95589ULL, 0x7d884a59992aae0bULL, 0x26705e350f6dcf01ULL,
	0x70605119b28edd32ULL, 0x7ff05697db709451ULL, 0xeb70551b5f1874f1ULL,
	0x4eae5a9969e97001ULL, 0x485e30d12465bf46ULL, 0xdd39340996e51f21ULL,
	0xb715beee796c718eULL, 0xc10fcfa51f5b7de0ULL, 0xdb316746e2505ca8ULL,
	0x49fb1340883f5066ULL, 0xa6a4ac48ef83f5e2ULL, 0xb5eb212f0c0d3d72ULL,
	0xaeab472a064380a8ULL, 0x514dea8f7790a48dULL, 0x3c5658b62227fbafULL,
	0x57d908315557006dULL, 0x62b4041886043863ULL, 0x24f4a9b83e64433dULL,
	0x30c87dd4df6dbbb0ULL, 0xad5bfbdb5ed83c00ULL, 0xe04522f93d5b0568ULL,
	0x71af3330fbe06c25ULL, 0x767e22614b8526efULL, 0x86eef803804f756eULL,
	0xca7507761503748dULL,
};

/* ---- LBFS / rabinpoly (reference 2.6) ---- */

#define LBFS_POLY UINT64_C(0xbfe6b8a5bf378d83)
#define LBFS_DIVISOR 4096
#define LBFS_BREAKMARK 0x78
#define LBFS_SHIFT 55 /* degree 63 - 8 */

static uint64_t lbfs_t[256], lbfs_u[256];
static pthread_once_t lbfs_once = PTHREAD_ONCE_INIT;

/* Index of the highest set bit, 1-based (0 for 0). */
static int
fls64(uint64_t v)
{
	int r = 0;

	while (v) {
		v >>= 1;
		r++;
	}
	return r;
}

/* (nh:nl) mod d over GF(2), as rabinpoly's polymod. */
static uint64_t
polymod(uint64_t nh, uint64_t nl, uint64_t d)
{
	int k = fls64(d) - 1;

	d <<= 63 - k;
	if (nh) {
		if (nh & (UINT64_C(1) << 63))
			nh ^= d;
		for (int i = 62; i >= 0; i--)
			if (nh & (UINT64_C(1) << i)) {
				nh ^= d >> (63 - i);
				nl ^= d << (i + 1);
			}
	}
	for (int i = 63; i >= k; i--)
		if (nl & (UINT64_C(1) << i))
			nl ^= d >> (63 - i);
	return nl;
}

/* x * y mod d over GF(2). */
static uint64_t
polymmult(uint64_t x, uint64_t y, uint64_t d)
{
	uint64_t ph = 0, pl = 0;

	if (x & 1)
		pl = y;
	for (int i = 1; i < 64; i++)
		if (x & (UINT64_C(1) << i)) {
			ph ^= y >> (64 - i);
			pl ^= y << i;
		}
	return polymod(ph, pl, d);
}

static uint64_t
append8(uint64_t p, unsigned char m)
{
	return ((p << 8) | m) ^ lbfs_t[p >> LBFS_SHIFT];
}

static void
lbfs_tables(void)
{
	uint64_t t1 = polymod(0, UINT64_C(1) << 63, LBFS_POLY), sizeshift = 1;

	/* T[j] = j * x^63 mod P, with j's low bit kept at bit 63. */
	for (uint64_t j = 0; j < 256; j++)
		lbfs_t[j] = polymmult(j, t1, LBFS_POLY) | (j << 63);
	/* U[b] = b * x^(8 * 47) mod P: removes the byte leaving the window. */
	for (int i = 1; i < CHUNKER_LBFS_WINDOW; i++)
		sizeshift = append8(sizeshift, 0);
	for (uint64_t i = 0; i < 256; i++)
		lbfs_u[i] = polymmult(i, sizeshift, LBFS_POLY);
}

void
chunker_init(struct chunker *c, enum chunker_kind kind)
{
	memset(c, 0, sizeof(*c));
	c->kind = kind;
	c->wpos = -1;
	if (kind == CHUNKER_LBFS)
		pthread_once(&lbfs_once, lbfs_tables);
}

/*
 * Roll the hash over p[*i] .. p[end - 1], stopping just after the first
 * byte that leaves (h & mask) == 0: true then, false at end.  Unrolled,
 * with no length bookkeeping inside, because this loop is most of the
 * chunker's time: the hash's own dependency is one lea a byte, the rest
 * is instruction count.
 */
static inline bool
gear_span(const unsigned char *p, size_t *ip, size_t end, uint64_t *hp,
    uint64_t mask)
{
	size_t i = *ip;
	uint64_t h = *hp;
	bool hit = true;

	for (; end - i >= 4; i += 4) {
		h = (h << 1) + gear[p[i]];
		if ((h & mask) == 0) {
			i += 1;
			goto out;
		}
		h = (h << 1) + gear[p[i + 1]];
		if ((h & mask) == 0) {
			i += 2;
			goto out;
		}
		h = (h << 1) + gear[p[i + 2]];
		if ((h & mask) == 0) {
			i += 3;
			goto out;
		}
		h = (h << 1) + gear[p[i + 3]];
		if ((h & mask) == 0) {
			i += 4;
			goto out;
		}
	}
	while (i < end) {
		h = (h << 1) + gear[p[i++]];
		if ((h & mask) == 0)
			goto out;
	}
	hit = false;
out:
	*ip = i;
	*hp = h;
	return hit;
}

static size_t
min_size(size_t a, size_t b)
{
	return a < b ? a : b;
}

/*
 * The chunk's length is always c->len + i: every byte taken, skipped or
 * hashed, adds one.  Three spans by that length: up to CHUNKER_GEAR_MIN - 1
 * no cut, up to CHUNKER_GEAR_AVG - 1 a cut needs MASK_S, then MASK_L until
 * CHUNKER_MAX, where the chunk is cut regardless.
 */
static size_t
gear_scan(struct chunker *c, const unsigned char *p, size_t n, bool *cut)
{
	const size_t base = c->len;
	size_t i = 0;
	uint64_t h = c->h;

	/* The hash forgets a byte after 64 shifts: bytes more than 64
	 * before the first possible cut cannot matter, skip them. */
	if (base < CHUNKER_GEAR_MIN - 64)
		i = min_size(n, CHUNKER_GEAR_MIN - 64 - base);
	if (base + i < CHUNKER_GEAR_MIN - 1) {
		size_t end = min_size(n, CHUNKER_GEAR_MIN - 1 - base);

		for (; i < end; i++)
			h = (h << 1) + gear[p[i]];
	}
	/* Normalized chunking: harder to cut before the normal size. */
	if (i < n && base + i < CHUNKER_GEAR_AVG - 1 &&
	    gear_span(p, &i, min_size(n, CHUNKER_GEAR_AVG - 1 - base), &h,
		MASK_S))
		goto cut;
	if (i < n &&
	    (gear_span(p, &i, min_size(n, CHUNKER_MAX - base), &h, MASK_L) ||
		base + i >= CHUNKER_MAX))
		goto cut;
	c->len = base + i;
	c->h = h;
	*cut = false;
	return i;
cut:
	c->len = 0;
	c->h = 0;
	*cut = true;
	return i;
}

static size_t
lbfs_scan(struct chunker *c, const unsigned char *p, size_t n, bool *cut)
{
	uint64_t f = c->h;
	size_t len = c->len;

	for (size_t i = 0; i < n; i++) {
		unsigned char om;

		if (++c->wpos >= CHUNKER_LBFS_WINDOW)
			c->wpos = 0;
		om = c->win[c->wpos];
		c->win[c->wpos] = p[i];
		f = append8(f ^ lbfs_u[om], p[i]);
		len++;
		if ((f % LBFS_DIVISOR == LBFS_BREAKMARK &&
			len >= CHUNKER_LBFS_MIN) ||
		    len >= CHUNKER_MAX) {
			/* The original resets fingerprint and window contents,
			 * not the window position. */
			c->h = 0;
			c->len = 0;
			memset(c->win, 0, sizeof(c->win));
			*cut = true;
			return i + 1;
		}
	}
	c->h = f;
	c->len = len;
	*cut = false;
	return n;
}

size_t
chunker_scan(struct chunker *c, const unsigned char *p, size_t n, bool *cut)
{
	if (c->kind == CHUNKER_LBFS)
		return lbfs_scan(c, p, n, cut);
	return gear_scan(c, p, n, cut);
}

/* ---- algorithm names and signature blobs ---- */

int
chunker_parse_algorithm(const char *name, enum chunker_kind *kind,
    enum hash_alg *hash)
{
	if (name == NULL)
		return -1;
	if (strcmp(name, CHUNKER_ALG_GEAR) == 0) {
		*kind = CHUNKER_GEAR;
		*hash = HASH_SHA256;
	} else if (strcmp(name, CHUNKER_ALG_LBFS_SHA1) == 0) {
		*kind = CHUNKER_LBFS;
		*hash = HASH_SHA1;
	} else if (strcmp(name, CHUNKER_ALG_LBFS_SHA224) == 0) {
		*kind = CHUNKER_LBFS;
		*hash = HASH_SHA224;
	} else {
		return -1;
	}
	return 0;
}

const char *
chunker_algorithm_name(enum chunker_kind kind, enum hash_alg hash)
{
	if (kind == CHUNKER_GEAR)
		return hash == HASH_SHA256 ? CHUNKER_ALG_GEAR : NULL;
	if (hash == HASH_SHA1)
		return CHUNKER_ALG_LBFS_SHA1;
	if (hash == HASH_SHA224)
		return CHUNKER_ALG_LBFS_SHA224;
	return NULL;
}

int
chunker_sig_parse(const void *blob, size_t len, size_t dlen,
    struct chunker_sig **out, size_t *n)
{
	const unsigned char *p = blob;
	size_t rec = 2 + dlen, count;
	struct chunker_sig *v;
	uint64_t off = 0;

	*out = NULL;
	*n = 0;
	if (dlen == 0 || dlen > HASH_DIGEST_MAX || len % rec != 0) {
		err_set("signatures: %zu bytes is not a whole number of records",
		    len);
		return -1;
	}
	count = len / rec;
	if ((v = calloc(count ? count : 1, sizeof(*v))) == NULL) {
		err_set("out of memory");
		return -1;
	}
	for (size_t i = 0; i < count; i++, p += rec) {
		static const unsigned char zero[HASH_DIGEST_MAX];

		v[i].length = (uint32_t)p[0] << 8 | p[1];
		if (v[i].length == 0) {
			free(v);
			err_set("signatures: record %zu has length 0", i);
			return -1;
		}
		v[i].offset = off;
		off += v[i].length;
		memcpy(v[i].digest, p + 2, dlen);
		v[i].unknown = memcmp(p + 2, zero, dlen) == 0;
	}
	*out = v;
	*n = count;
	return 0;
}

int
chunker_sig_append(struct buf *out, uint32_t length,
    const unsigned char *digest, size_t dlen)
{
	unsigned char len[2];

	if (length == 0 || length > CHUNKER_MAX) {
		err_set("signatures: bad chunk length %u", (unsigned)length);
		return -1;
	}
	len[0] = (unsigned char)(length >> 8);
	len[1] = (unsigned char)length;
	return buf_append(out, len, 2) || buf_append(out, digest, dlen) ? -1 : 0;
}
