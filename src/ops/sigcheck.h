/*
 * sigcheck: checking the OpenPGP signature of a snapshot descriptor
 * against one named key (reference 2.11, 1.6).
 *
 * The descriptor names the root object with its checksum and lists every
 * segment; metadata objects carry checksums and every file carries a
 * whole-content checksum.  So a good signature on the descriptor, by the
 * key the user names, covers the whole snapshot.
 *
 * The check runs gpgv (keyring taken from the gpg home directory) with
 * the descriptor on its standard input and reads gpgv's status lines:
 * exactly one signature, good (GOODSIG, VALIDSIG), made by the named key
 * (its subkey or primary fingerprint).  Only the text gpgv reports as
 * signed is handed back; anything around the armour is dropped.
 */
#ifndef CUMULUS_SIGCHECK_H
#define CUMULUS_SIGCHECK_H

#include <stddef.h>

struct buf;

/* Fingerprints are at most 64 hex digits (v5 keys); v4 ones are 40. */
#define SIGCHECK_FPR_MAX 64

struct sigcheck {
	/* Required signer: a key ID or fingerprint in hex (8, 16, 40 or 64
	 * digits, optional "0x", spaces allowed); matched against the end
	 * of the signing subkey's or primary key's fingerprint. */
	const char *key;
	/* Keyring directory (pubring.kbx or pubring.gpg in it); NULL or ""
	 * means $GNUPGHOME, else ~/.gnupg. */
	const char *gpg_home;
	/* The gpgv program; NULL means "gpgv" from PATH. */
	const char *gpgv;
};

/* Whether ${key} has a form sigcheck accepts.  0, or -1 (error says
 * why). */
int sigcheck_key_valid(const char *key);

/*
 * Verify ${n} bytes of ${text} (a clear-signed or signed descriptor) as
 * ${sc} says.  On success the signed text is appended to ${out} (bounded
 * by out->max) and the signer's fingerprint is copied to ${fpr} (may be
 * NULL).  0, or -1 with an error saying why the descriptor was refused
 * (unsigned, bad signature, unknown key, another key, gpgv missing).
 */
int sigcheck_verify(const struct sigcheck *sc, const char *text, size_t n,
    struct buf *out, char fpr[SIGCHECK_FPR_MAX + 1]);

#endif
