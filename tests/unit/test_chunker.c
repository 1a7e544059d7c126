/*
 * Unit tests for chunker: boundaries independent of how the input is fed,
 * Gear boundaries against a byte-by-byte model of the definition (on
 * cuts placed at each limit too), size limits and resynchronisation after
 * an insertion, signature blobs, and the LBFS chunker against signatures
 * the original program stored in tests/golden/head-bzip2.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "chunker.h"
#include "err.h"
#include "hash.h"
#include "localdb.h"
#include "prng.h"
#include "tap.h"

#define DATA_SIZE ((size_t)2 << 20)

static uint64_t rng = 0x9e3779b97f4a7c15u;

static void
fill(unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(prng_next(&rng) >> 32);
}

/* Chunk ${n} bytes fed in pieces: mode 0 all at once, 1 byte by byte, 2
 * random pieces of 1..70000 bytes.  Returns the chunk ends (exclusive). */
static size_t
boundaries(enum chunker_kind k, const unsigned char *p, size_t n, int mode,
    size_t *out, size_t max)
{
	struct chunker c;
	size_t pos = 0, nb = 0;

	chunker_init(&c, k);
	while (pos < n) {
		size_t piece = n - pos;
		bool cut;

		if (mode == 1)
			piece = 1;
		else if (mode == 2 && piece > 1)
			piece = 1 + (size_t)(prng_next(&rng) %
				(piece < 70000 ? piece : 70000));
		while (piece > 0) {
			size_t used = chunker_scan(&c, p + pos, piece, &cut);

			pos += used;
			piece -= used;
			if (cut && nb < max)
				out[nb++] = pos;
		}
	}
	if ((nb == 0 || out[nb - 1] != n) && nb < max)
		out[nb++] = n;
	return nb;
}

static void
test_feeding(enum chunker_kind k, const char *name, const unsigned char *p)
{
	size_t max = DATA_SIZE / 1024, *a = malloc(max * sizeof(*a)),
	       *b = malloc(max * sizeof(*b)), *c = malloc(max * sizeof(*c));
	size_t na = boundaries(k, p, DATA_SIZE, 0, a, max);
	size_t nb = boundaries(k, p, DATA_SIZE, 1, b, max);
	size_t nc = boundaries(k, p, DATA_SIZE, 2, c, max);
	size_t minlen = SIZE_MAX, maxlen = 0;

	ok(na > 1 && na == nb && memcmp(a, b, na * sizeof(*a)) == 0,
	    "%s: byte by byte gives the same %zu boundaries", name, na);
	ok(na == nc && memcmp(a, c, na * sizeof(*a)) == 0,
	    "%s: random pieces give the same boundaries", name);
	for (size_t i = 0; i + 1 < na; i++) {
		size_t len = a[i] - (i ? a[i - 1] : 0);

		if (len < minlen)
			minlen = len;
		if (len > maxlen)
			maxlen = len;
	}
	ok(minlen >= 2048 && maxlen <= CHUNKER_MAX,
	    "%s: chunks within [2048, 65535] (%zu..%zu)", name, minlen, maxlen);
	if (k == CHUNKER_GEAR)
		ok(DATA_SIZE / na > 6000 && DATA_SIZE / na < 14000,
		    "gear: average chunk %zu bytes near 8-10 KiB",
		    DATA_SIZE / na);
	free(a);
	free(b);
	free(c);
}

/*
 * The Gear chunker as chunker.h defines it, byte by byte with no
 * shortcut: G from splitmix64, no cut before 2048 bytes, MASK_S up to
 * 8192, MASK_L after, 65535 at most.  Boundaries are part of the stored
 * format (signatures of old objects), so the fast scan must agree with
 * this on every input.
 */
static uint64_t
splitmix64(uint64_t *s)
{
	uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static uint64_t model_g[256];

static void
model_init(void)
{
	uint64_t seed = UINT64_C(0x63756d756c757331);

	for (int i = 0; i < 256; i++)
		model_g[i] = splitmix64(&seed);
}

/* Take one byte into the chunk (*h, *len); true if the chunk ends. */
static bool
model_step(uint64_t *h, size_t *len, unsigned char byte)
{
	*h = (*h << 1) + model_g[byte];
	++*len;
	if ((*len >= 2048 && *len < 8192 &&
		(*h & UINT64_C(0x0003590703530000)) == 0) ||
	    (*len >= 8192 && (*h & UINT64_C(0x0000d90003530000)) == 0) ||
	    *len >= 65535) {
		*h = 0;
		*len = 0;
		return true;
	}
	return false;
}

static size_t
model_gear(const unsigned char *p, size_t n, size_t *out, size_t max)
{
	uint64_t h = 0;
	size_t len = 0, nb = 0;

	for (size_t i = 0; i < n; i++)
		if (model_step(&h, &len, p[i]) && nb < max)
			out[nb++] = i + 1;
	if ((nb == 0 || out[nb - 1] != n) && nb < max)
		out[nb++] = n;
	return nb;
}

/*
 * Fill p[0 .. want - 1] with a chunk the definition ends at exactly
 * ${want} bytes: random bytes that cut nothing, then the last 8 drawn
 * again until they cut just there (the hash depends on the last 64
 * bytes only, so each draw is cheap).  Random data alone seldom lands a
 * cut on a limit between masks; this puts one on each.
 */
static void
chunk_ending_at(unsigned char *p, size_t want)
{
	for (;;) {
		uint64_t h = 0, h0;
		size_t len = 0, len0;
		bool early = false;

		for (size_t i = 0; i + 8 < want && !early; i++) {
			p[i] = (unsigned char)(prng_next(&rng) >> 24);
			early = model_step(&h, &len, p[i]);
		}
		if (early)
			continue;
		h0 = h;
		len0 = len;
		for (long tries = 0; tries < 4000000; tries++) {
			size_t i = want - 8;

			h = h0;
			len = len0;
			for (; i < want; i++) {
				p[i] = (unsigned char)(prng_next(&rng) >> 24);
				if (model_step(&h, &len, p[i]))
					break;
			}
			if (i == want - 1)
				return;
		}
	}
}

/* Random bytes; runs of one byte (chunks cut at 65535); text-like bytes
 * from a small alphabet; all three spliced: each fed whole, byte by byte
 * and in random pieces. */
static void
test_gear_model(const unsigned char *random)
{
	size_t max = DATA_SIZE / 1024 + 64;
	size_t *want = malloc(max * sizeof(*want)),
	       *got = malloc(max * sizeof(*got));
	unsigned char *p = malloc(DATA_SIZE);
	static const char *const name[] = { "random", "constant", "text",
		"spliced" };
	/* Chunk lengths at each limit of the definition, and beside it. */
	static const size_t limit[] = { 2048, 2049, 2050, 2051, 2052, 8190, 8191,
		8192, 8193, 8194, 8195, 8196 };
	size_t pos = 0, nw, bad = 0;

	model_init();

	for (int kind = 0; kind < 4; kind++) {
		bad = 0;

		for (size_t i = 0; i < DATA_SIZE; i++) {
			uint64_t r = prng_next(&rng);

			if (kind == 0)
				p[i] = random[i];
			else if (kind == 1)
				p[i] = (unsigned char)(i < DATA_SIZE / 2 ? 0 : 'x');
			else if (kind == 2)
				p[i] = (unsigned char)"etaoin shrdlu\n{};"[r % 17];
			else
				p[i] = (i / 100000) % 3 == 0 ? random[i]
				    : (i / 100000) % 3 == 1   ? 0
							      : (unsigned char)(' ' + r % 4);
		}
		nw = model_gear(p, DATA_SIZE, want, max);
		for (int mode = 0; mode < 3; mode++) {
			size_t ng = boundaries(CHUNKER_GEAR, p, DATA_SIZE, mode,
			    got, max);

			if (ng != nw || memcmp(got, want, nw * sizeof(*got)))
				bad++;
		}
		ok(nw > 1 && bad == 0,
		    "gear: %s data, fed three ways, cut where the definition "
		    "cuts (%zu chunks)",
		    name[kind], nw);
	}
	for (size_t k = 0; k < sizeof(limit) / sizeof(limit[0]); k++) {
		chunk_ending_at(p + pos, limit[k]);
		pos += limit[k];
	}
	nw = model_gear(p, pos, want, max);
	bad = nw == sizeof(limit) / sizeof(limit[0]) ? 0 : 1;
	for (size_t k = 0, end = 0; k < nw && !bad; k++)
		if (want[k] != (end += limit[k]))
			bad++;
	for (int mode = 0; mode < 3; mode++) {
		size_t ng = boundaries(CHUNKER_GEAR, p, pos, mode, got, max);

		if (ng != nw || memcmp(got, want, nw * sizeof(*got)))
			bad++;
	}
	ok(bad == 0,
	    "gear: chunks of 2048-2052 and 8190-8196 bytes cut where the "
	    "definition cuts, fed three ways");
	free(p);
	free(want);
	free(got);
}

/* An insertion changes only the chunks around it. */
static void
test_shift(const unsigned char *p)
{
	size_t max = DATA_SIZE / 1024, ins = 1000, at = 400000;
	size_t *a = malloc(max * sizeof(*a)), *b = malloc(max * sizeof(*b));
	unsigned char *q = malloc(DATA_SIZE + ins);
	size_t na, nb, same = 0, j = 0;

	memcpy(q, p, at);
	fill(q + at, ins);
	memcpy(q + at + ins, p + at, DATA_SIZE - at);
	na = boundaries(CHUNKER_GEAR, p, DATA_SIZE, 0, a, max);
	nb = boundaries(CHUNKER_GEAR, q, DATA_SIZE + ins, 0, b, max);
	/* Boundaries before the insertion, or shifted by it, are shared. */
	for (size_t i = 0; i < na; i++) {
		size_t want = a[i] < at ? a[i] : a[i] + ins;

		while (j < nb && b[j] < want)
			j++;
		if (j < nb && b[j] == want)
			same++;
	}
	ok(same + 3 >= na, "gear: %zu of %zu boundaries survive a 1000-byte "
			   "insertion", same, na);
	free(a);
	free(b);
	free(q);
}

static void
test_blobs(void)
{
	struct buf b;
	unsigned char d1[32], d2[32], zero[32] = { 0 };
	struct chunker_sig *v = NULL;
	size_t n = 0;
	enum chunker_kind k;
	enum hash_alg h;

	memset(d1, 0xab, sizeof(d1));
	memset(d2, 0x01, sizeof(d2));
	buf_init(&b, BUF_UNLIMITED);
	ok(chunker_sig_append(&b, 65535, d1, 32) == 0 &&
	    chunker_sig_append(&b, 300, zero, 32) == 0 &&
	    chunker_sig_append(&b, 7, d2, 32) == 0 && b.len == 3 * 34,
	    "three records appended");
	ok(b.len >= 2 && (unsigned char)b.data[0] == 0xff &&
	    (unsigned char)b.data[1] == 0xff, "length is 16-bit big-endian");
	ok(chunker_sig_parse(b.data, b.len, 32, &v, &n) == 0 && n == 3,
	    "blob parsed");
	ok(n == 3 && v[0].length == 65535 && v[0].offset == 0 && !v[0].unknown &&
	    memcmp(v[0].digest, d1, 32) == 0 && v[1].offset == 65535 &&
	    v[1].length == 300 && v[1].unknown && v[2].offset == 65835 &&
	    v[2].length == 7 && memcmp(v[2].digest, d2, 32) == 0,
	    "records, offsets and unknown marks round-trip");
	free(v);
	ok(chunker_sig_parse(b.data, b.len - 1, 32, &v, &n) < 0,
	    "partial record refused");
	ok(chunker_sig_parse(b.data, b.len, 20, &v, &n) < 0,
	    "wrong digest size refused (102 is not a multiple of 22)");
	b.data[0] = b.data[1] = 0;
	ok(chunker_sig_parse(b.data, b.len, 32, &v, &n) < 0,
	    "record of length 0 refused");
	ok(chunker_sig_append(&b, 65536, d1, 32) < 0 &&
	    chunker_sig_append(&b, 0, d1, 32) < 0, "bad lengths not written");
	buf_release(&b);
	err_clear();
	ok(chunker_parse_algorithm("gear-8k/sha256", &k, &h) == 0 &&
	    k == CHUNKER_GEAR && h == HASH_SHA256 &&
	    chunker_parse_algorithm("lbfs-4096/sha1", &k, &h) == 0 &&
	    k == CHUNKER_LBFS && h == HASH_SHA1 &&
	    chunker_parse_algorithm("lbfs-4096/sha224", &k, &h) == 0 &&
	    k == CHUNKER_LBFS && h == HASH_SHA224 &&
	    chunker_parse_algorithm("lbfs-4096/md5", &k, &h) < 0 &&
	    chunker_parse_algorithm("gear-8k/sha1", &k, &h) < 0,
	    "algorithm names");
	is_str(chunker_algorithm_name(CHUNKER_LBFS, HASH_SHA224),
	    "lbfs-4096/sha224", "name of lbfs/sha224");
	ok(chunker_algorithm_name(CHUNKER_GEAR, HASH_SHA1) == NULL,
	    "no name for gear/sha1");
}

/*
 * Objects of the original's HEAD store whose signatures it recorded: the
 * LBFS chunker must cut them where the original did, and their sha224
 * must be the recorded digests.
 */
static void
test_golden(void)
{
	static const char *const objs[] = { "00000003", "00000005",
	    "00000007" };
	const char *top = getenv("CUMULUS_TOP");
	const char *seg = "e89ccca5-7b90-4c4b-8d67-aae4bf2f6487";
	char tmp[] = "/tmp/test_chunker.XXXXXX", cmd[2048];
	struct localdb *db = NULL;

	if (top == NULL)
		top = ".";
	if (mkdtemp(tmp) == NULL) {
		ok(0, "mkdtemp");
		return;
	}
	/* A copy: opening the fixture must not touch it. */
	snprintf(cmd, sizeof(cmd),
	    "cp '%s/tests/golden/head-bzip2/localdb/localdb.sqlite' '%s/'", top,
	    tmp);
	ok(system(cmd) == 0 && localdb_open(tmp, &db) == 0,
	    "golden localdb opened: %s", err_msg());
	for (size_t o = 0; db && o < sizeof(objs) / sizeof(objs[0]); o++) {
		char *alg = NULL;
		void *sig = NULL;
		size_t slen = 0, n = 0, nb, bounds[1024], pos = 0, good = 0;
		struct chunker_sig *v = NULL;
		enum chunker_kind k;
		enum hash_alg h;
		struct buf obj;
		FILE *f;

		ok(localdb_get_signatures(db, seg, strtoull(objs[o], NULL, 16),
		       &alg, &sig, &slen) == 1 &&
			chunker_parse_algorithm(alg, &k, &h) == 0 &&
			k == CHUNKER_LBFS && h == HASH_SHA224 &&
			chunker_sig_parse(sig, slen, 28, &v, &n) == 0 && n > 10,
		    "object %s: %zu lbfs-4096/sha224 records", objs[o], n);
		snprintf(cmd, sizeof(cmd),
		    "tar -xOjf '%s/tests/golden/head-bzip2/store/segments1/"
		    "%s.tar.bz2' %s/%s",
		    top, seg, seg, objs[o]);
		buf_init(&obj, BUF_UNLIMITED);
		if ((f = popen(cmd, "r")) != NULL) {
			char tmpb[65536];
			size_t r;

			while ((r = fread(tmpb, 1, sizeof(tmpb), f)) > 0)
				buf_append(&obj, tmpb, r);
			pclose(f);
		}
		ok(obj.len == 1048576, "object %s extracted (%zu bytes)", objs[o],
		    obj.len);
		nb = boundaries(CHUNKER_LBFS, (unsigned char *)obj.data, obj.len,
		    2, bounds, 1024);
		for (size_t i = 0; i < n && i < nb; i++) {
			unsigned char d[HASH_DIGEST_MAX];
			struct hash hh;

			if (bounds[i] - pos != v[i].length ||
			    hash_init(&hh, HASH_SHA224))
				break;
			hash_update(&hh, obj.data + pos, v[i].length);
			if (hash_final_raw(&hh, d) != 28 ||
			    memcmp(d, v[i].digest, 28) != 0)
				break;
			pos = bounds[i];
			good++;
		}
		ok(n > 0 && good == n && nb == n,
		    "object %s: LBFS cuts and sha224 digests match the original's "
		    "(%zu of %zu records, %zu chunks)",
		    objs[o], good, n, nb);
		buf_release(&obj);
		free(v);
		free(alg);
		free(sig);
	}
	localdb_close(db);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	if (system(cmd) != 0)
		ok(0, "cleanup");
}

int
main(void)
{
	unsigned char *p = malloc(DATA_SIZE);

	fill(p, DATA_SIZE);
	test_feeding(CHUNKER_GEAR, "gear", p);
	test_feeding(CHUNKER_LBFS, "lbfs", p);
	test_gear_model(p);
	test_shift(p);
	test_blobs();
	test_golden();
	free(p);
	return tap_done();
}
