/* test_ref: reference parse/format/resolve/merge, the version-dependent
 * bare [N] rule, and malformed inputs. */
#include <string.h>

#include "buf.h"
#include "ref.h"
#include "tap.h"

#define U "7c3d2e10-5a1b-4f0e-9d1c-0a2b3c4d5e6f"

static int
P(const char *s, struct ref *r)
{
	return ref_parse(s, strlen(s), r);
}

static const char *
F(const struct ref *r, struct buf *b)
{
	buf_reset(b);
	ref_format(r, b);
	return buf_str(b);
}

int
main(void)
{
	static const char *const round[] = { U "/0000001f",
		U "/0000001f[=1048576]", U "/00000020[0+3071]", U "/00000004[100]",
		U "/00000001(sha1=b647b8afd0d844791807911c122bfdbe5812acf4)",
		U "/00000001(sha224=9143e40ec890b2dcd1b3fcd00be1cd82b0cab348d8c0ba"
		  "27bb30fc8a)[118]",
		"zero[65536]" };
	static const char *const bad[] = { "", "zero", "zero[]", "zero[=5]",
		U, U "/", "/00000001", U "/xyz", U "/1[", U "/1[5", U "/1[+5]",
		U "/1[5+]", U "/1(sha1=00)", U "/1(", U "/1[=5+3]", "ABC/1",
		U "/1[99999999999999999999999]", U "/1 [5]", U "/1[-5]" };
	struct ref r, a, b2;
	struct buf b;
	uint64_t off, len;

	buf_init(&b, 4096);
	for (size_t i = 0; i < sizeof(round) / sizeof(*round); i++) {
		ok(P(round[i], &r) == 0, "parses: %s", round[i]);
		is_str(F(&r, &b), round[i], "formats back");
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		ok(P(bad[i], &r) < 0, "refused: '%s'", bad[i]);

	ok(P("zero[10+5]", &r) == 0 && r.kind == REF_ZERO && r.length == 5,
	    "zero[s+n] is n zero bytes");
	ok(P(U "/1", &r) == 0 && r.seq == 1, "short sequence accepted");
	ok(P(U "/00000004[100]", &r) == 0 && r.range == REF_RANGE_BARE,
	    "bare range kept as such");
	ok(ref_resolve(&r, 200, false, &off, &len) == 0 && off == 0 &&
		len == 100,
	    "before v0.11 [N] is a prefix");
	ok(ref_resolve(&r, 200, true, &off, &len) < 0,
	    "from v0.11 [N] asserts the size");
	ok(ref_resolve(&r, 100, true, &off, &len) == 0 && len == 100,
	    "... and passes when it matches");
	ok(ref_resolve(&r, 50, false, &off, &len) < 0, "prefix beyond object");
	P(U "/1[=10]", &r);
	ok(ref_resolve(&r, 10, false, &off, &len) == 0 &&
		ref_resolve(&r, 11, false, &off, &len) < 0,
	    "[=N] asserts");
	P(U "/1[5+10]", &r);
	ok(ref_resolve(&r, 15, true, &off, &len) == 0 && off == 5 && len == 10,
	    "slice resolves");
	ok(ref_resolve(&r, 14, true, &off, &len) < 0, "slice beyond object");
	P(U "/1[0+99999999999999]", &r);
	ok(ref_resolve(&r, 3, true, &off, &len) < 0, "absurd slice refused");
	P(U "/1[18446744073709551615+1]", &a);
	ok(P(U "/1[4611686018427387904+1]", &a) < 0 ||
		ref_resolve(&a, 10, true, &off, &len) < 0,
	    "start near 2^62 refused or unresolvable");
	P(U "/1", &r);
	ok(ref_resolve(&r, 77, true, &off, &len) == 0 && len == 77,
	    "whole object");
	ok(ref_known_length(&r, true) == -1, "whole object: length unknown");

	P(U "/1[100+20]", &a);
	P(U "/1[120+5]", &b2);
	ok(ref_merge(&a, &b2) && a.start == 100 && a.length == 25,
	    "adjacent slices merge");
	P(U "/1[200+5]", &b2);
	ok(!ref_merge(&a, &b2), "gap: no merge");
	P(U "/2[125+5]", &b2);
	ok(!ref_merge(&a, &b2), "other object: no merge");
	P("zero[5]", &a);
	P("zero[7]", &b2);
	ok(ref_merge(&a, &b2) && a.length == 12, "zero refs merge");
	P(U "/1[=5]", &a);
	P(U "/1[5+5]", &b2);
	ok(!ref_merge(&a, &b2), "assertion does not merge");
	ref_set_object(&r, U, 0x1ad);
	is_str(F(&r, &b), U "/000001ad", "ref_set_object");
	buf_release(&b);
	return tap_done();
}
