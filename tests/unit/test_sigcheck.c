/*
 * Unit tests of sigcheck: the decisions on gpgv's status lines, with
 * stand-in gpgv scripts (no gpg needed), and the key ID forms.
 */
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "sigcheck.h"
#include "tap.h"

#define PRIMARY "0123456789ABCDEF0123456789ABCDEF01234567"
#define SUBKEY "FEDCBA9876543210FEDCBA9876543210FEDCBA98"
#define VALID "[GNUPG:] VALIDSIG " SUBKEY " 2026-01-01 1 0 4 0 22 8 01 " PRIMARY "\n"

static char dir[] = "/tmp/cumulus-sigcheck.XXXXXX";

/* A stand-in gpgv: copies its input to its output, writes ${status} to
 * descriptor 3, exits ${code}. */
static char *
fake_gpgv(const char *name, const char *status, int code)
{
	static char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (f == NULL)
		return NULL;
	fprintf(f, "#!/bin/sh\ncat\nprintf '%%s' '%s' >&3\nexit %d\n", status,
	    code);
	fclose(f);
	chmod(path, 0755);
	return path;
}

/* Run sigcheck with a stand-in; 0 or -1; the output in ${out}. */
static int
check(const char *key, const char *status, int code, struct buf *out,
    char fpr[SIGCHECK_FPR_MAX + 1])
{
	struct sigcheck sc = { key, dir, NULL };
	static int n;
	char name[32];

	snprintf(name, sizeof(name), "gpgv%d", n++);
	sc.gpgv = fake_gpgv(name, status, code);
	buf_reset(out);
	return sigcheck_verify(&sc, "Root: x\n", 8, out, fpr);
}

int
main(void)
{
	struct buf out;
	char fpr[SIGCHECK_FPR_MAX + 1], ring[300];
	FILE *f;

	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(ring, sizeof(ring), "%s/pubring.kbx", dir);
	f = fopen(ring, "w");
	if (f)
		fclose(f);
	buf_init(&out, 1 << 20);

	ok(sigcheck_key_valid("0x89ABCDEF") == 0, "8-digit key ID with 0x");
	ok(sigcheck_key_valid("0123456789abcdef") == 0, "16-digit key ID");
	ok(sigcheck_key_valid("0123 4567 89AB CDEF 0123  4567 89AB CDEF 0123 4567") ==
		0, "fingerprint in groups");
	ok(sigcheck_key_valid("alice@example.org") < 0, "a user ID is refused");
	ok(strstr(err_msg(), "hex digits") != NULL, "... saying what is wanted");
	ok(sigcheck_key_valid("0123456789AB") < 0, "12 digits are refused");
	ok(sigcheck_key_valid("") < 0, "empty is refused");

	ok(check(PRIMARY, "[GNUPG:] NEWSIG\n[GNUPG:] GOODSIG 0123 x\n" VALID,
	       0, &out, fpr) == 0,
	    "one good signature by the primary key");
	is_str(buf_str(&out), "Root: x\n", "... hands back gpgv's output");
	is_str(fpr, PRIMARY, "... and the primary fingerprint");
	ok(check("89ABCDEF01234567", "[GNUPG:] NEWSIG\n[GNUPG:] GOODSIG 0123 x\n" VALID,
	       0, &out, fpr) == 0,
	    "a long key ID of the primary key matches");
	ok(check("0x76543210FEDCBA98", "[GNUPG:] NEWSIG\n[GNUPG:] GOODSIG 0123 x\n" VALID,
	       0, &out, NULL) == 0,
	    "the signing subkey's ID matches");
	ok(check("1111111111111111", "[GNUPG:] NEWSIG\n[GNUPG:] GOODSIG 0123 x\n" VALID,
	       0, &out, fpr) < 0,
	    "a good signature by another key is refused");
	ok(strstr(err_msg(), "not by the required key") != NULL, "... saying so: %s",
	    err_msg());
	ok(check(PRIMARY, "[GNUPG:] NEWSIG\n[GNUPG:] BADSIG 0123 x\n", 1, &out,
	       fpr) < 0 && strstr(err_msg(), "BAD signature"),
	    "a bad signature is refused: %s", err_msg());
	ok(check(PRIMARY, "[GNUPG:] NODATA 1\n", 2, &out, fpr) < 0 &&
		strstr(err_msg(), "not signed"),
	    "no signature is refused: %s", err_msg());
	ok(check(PRIMARY,
	       "[GNUPG:] NEWSIG\n[GNUPG:] ERRSIG 89ABCDEF01234567 22 8 01 1 9\n"
	       "[GNUPG:] NO_PUBKEY 89ABCDEF01234567\n",
	       2, &out, fpr) < 0 && strstr(err_msg(), "not in the keyring"),
	    "an unknown key is refused: %s", err_msg());
	ok(check(PRIMARY,
	       "[GNUPG:] NEWSIG\n[GNUPG:] GOODSIG 0123 x\n" VALID
	       "[GNUPG:] NEWSIG\n[GNUPG:] GOODSIG 0123 x\n" VALID,
	       0, &out, fpr) < 0 && strstr(err_msg(), "not one signed message"),
	    "two signatures are refused: %s", err_msg());
	ok(check(PRIMARY,
	       "[GNUPG:] PLAINTEXT 74 0\n[GNUPG:] NEWSIG\n[GNUPG:] GOODSIG 0 x\n" VALID
	       "[GNUPG:] PLAINTEXT 74 0\n",
	       0, &out, fpr) < 0,
	    "two signed texts are refused");
	ok(check(PRIMARY, "[GNUPG:] NEWSIG\n[GNUPG:] GOODSIG 0123 x\n" VALID, 1,
	       &out, fpr) < 0,
	    "a good signature with gpgv failing is refused");
	ok(check(PRIMARY,
	       "[GNUPG:] NEWSIG\n[GNUPG:] EXPKEYSIG 0123 x\n" VALID, 0, &out,
	       fpr) < 0,
	    "a signature by an expired key is refused");
	ok(check(PRIMARY, "[GNUPG:] NEWSIG\n[GNUPG:] GOODSIG 0123 x\n", 0, &out,
	       fpr) < 0,
	    "GOODSIG without VALIDSIG is refused");
	{
		struct sigcheck sc = { PRIMARY, dir, "/nonexistent/gpgv" };

		ok(sigcheck_verify(&sc, "x", 1, &out, fpr) < 0 &&
			strstr(err_msg(), "cannot run"),
		    "a missing gpgv is an error: %s", err_msg());
		sc.gpg_home = "/nonexistent";
		sc.gpgv = NULL;
		ok(sigcheck_verify(&sc, "x", 1, &out, fpr) < 0 &&
			strstr(err_msg(), "no public keyring"),
		    "a home without a keyring is an error: %s", err_msg());
	}
	buf_release(&out);
	/* Clean up the scripts and the directory. */
	{
		char cmd[300];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			printf("# could not remove %s\n", dir);
	}
	return tap_done();
}
