/* test_descriptor: descriptor parsing, versions, armour, bad inputs. */
#include <string.h>

#include "descriptor.h"
#include "err.h"
#include "tap.h"

static int
parse(const char *text, struct descriptor *d)
{
	return descriptor_parse(text, strlen(text), d);
}

int
main(void)
{
	struct descriptor d;
	int v[8];

	ok(parse("Format: LBS Snapshot v0.8\nProducer: Cumulus v0.9\n"
		 "Date: 2026-11-26 12:35:35 +0000\nBackup-Intent: 1\n"
		 "Root: 783fac1a-01ec-4d23-9976-eec3d0f660ba/00000001(sha1="
		 "b647b8afd0d844791807911c122bfdbe5812acf4)\n"
		 "Checksums: sha1=236ad94653d2adbeba955d7e9013cd6dc78b4b4a\n"
		 "Segments:\n    783fac1a-01ec-4d23-9976-eec3d0f660ba\n"
		 "    90376755-b809-49ca-aeba-345a873bfa94\n",
		    &d) == 0,
	    "0.9 descriptor parses");
	ok(d.nversion == 2 && d.version[0] == 0 && d.version[1] == 8,
	    "version (0, 8)");
	ok(!descriptor_is_v011(&d), "v0.8 is not v0.11");
	is_str(d.producer, "Cumulus v0.9", "producer");
	is_str(d.backup_intent, "1", "backup intent");
	ok(d.nsegments == 2, "two segments");
	is_str(d.segments[1], "90376755-b809-49ca-aeba-345a873bfa94",
	    "second segment");
	ok(d.root.seq == 1 && strcmp(d.root.checksum,
				  "sha1=b647b8afd0d844791807911c122bfdbe5812acf4") == 0,
	    "root ref parsed");
	ok(descriptor_has_segment(&d, "783fac1a-01ec-4d23-9976-eec3d0f660ba"),
	    "has_segment");
	descriptor_release(&d);

	ok(parse("Format: Cumulus Snapshot v0.11\nRoot: ab/00000001[118]\n"
		 "Scheme: daily\nSegment-metadata: sha224=00\nSegments:\n",
		    &d) == 0,
	    "v0.11 descriptor parses");
	ok(descriptor_is_v011(&d), "v0.11 detected");
	is_str(d.scheme, "daily", "scheme");
	ok(d.nsegments == 0, "no segments");
	descriptor_release(&d);

	ok(parse("Root: ab/1\n", &d) == 0 && d.nversion == 0 &&
		!descriptor_is_v011(&d),
	    "missing Format is version ()");
	descriptor_release(&d);

	ok(parse("Format: Cumulus Snapshot v0.12\nRoot: ab/1\n", &d) < 0,
	    "v0.12 refused");
	ok(strstr(err_msg(), "newer") != NULL, "... as newer: %s", err_msg());
	ok(parse("Format: Cumulus Snapshot v1\nRoot: ab/1\n", &d) < 0,
	    "v1 refused");
	ok(parse("Format: Other Snapshot v0.8\nRoot: ab/1\n", &d) < 0,
	    "unknown format prefix refused");
	ok(parse("Format: LBS Snapshot v0.8\n", &d) < 0, "missing Root refused");
	ok(parse("Root: zero[5]\n", &d) < 0, "zero Root refused");
	ok(parse("Root: ab/1\nSegments: ab ../etc\n", &d) < 0,
	    "malformed segment name refused");
	ok(descriptor_parse_format("LBS Snapshot v0.6", v, 8) == 2 &&
		v[1] == 6,
	    "parse_format 0.6");
	ok(descriptor_parse_format("LBS Snapshot v0..6", v, 8) < 0,
	    "parse_format rejects empty part");

	ok(parse("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n"
		 "Format: Cumulus Snapshot v0.11\nRoot: ab/00000001\n"
		 "- -not-a-key\nSegments:\n    ab\n"
		 "-----BEGIN PGP SIGNATURE-----\nHash: bogus\n"
		 "-----END PGP SIGNATURE-----\n",
		    &d) == 0,
	    "clear-signed descriptor parses");
	ok(stanza_get(&d.fields, "Hash", NULL) == NULL,
	    "armour header not taken as a field");
	ok(d.nsegments == 1 && descriptor_is_v011(&d), "signed body read");
	descriptor_release(&d);
	return tap_done();
}
