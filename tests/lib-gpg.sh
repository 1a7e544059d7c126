# tests/lib-gpg.sh: throwaway gpg keys for the tests (source after
# lib.sh).  gpg_setup makes, under $T (short paths: agent sockets have a
# length limit):
#   $GPG_MASTER   every key, secret and public
#   $GPG_HOST     the write-only backup host: public encryption key
#                 (trusted) and the secret signing key only
#   $GPG_RESTORE  the restoring machine: secret encryption key and the
#                 public signing keys
# and sets $GPG_SIGN_FPR, $GPG_ENC_FPR (primary fingerprints), and
# $GPG_OTHER_FPR (a second signing key, public in $GPG_RESTORE too).
# Keys are ed25519/cv25519 without passphrase, except $GPG_ENC_FPR whose
# secret key is protected by the passphrase in $GPG_PASSFILE.
# gpg_teardown stops the agents; it runs on exit.
# shellcheck shell=bash disable=SC2034

gpg_available() {
	command -v gpg >/dev/null && command -v gpgv >/dev/null &&
		command -v gpgconf >/dev/null
}

_gpg_fpr() { # HOME UID
	gpg --homedir "$1" --batch --with-colons --list-keys "$2" |
		awk -F: '/^fpr/ { print $10; exit }'
}

gpg_teardown() {
	local h
	for h in "${GPG_MASTER:-}" "${GPG_HOST:-}" "${GPG_RESTORE:-}"; do
		[ -n "$h" ] && [ -d "$h" ] &&
			gpgconf --homedir "$h" --kill gpg-agent 2>/dev/null
	done
	return 0
}

gpg_setup() {
	local q=(--batch --quiet --no-tty) m
	GPG_MASTER=$T/gm GPG_HOST=$T/gh GPG_RESTORE=$T/gr
	GPG_PASSFILE=$T/passphrase
	printf 'correct horse battery\n' >"$GPG_PASSFILE"
	mkdir -m 700 "$GPG_MASTER" "$GPG_HOST" "$GPG_RESTORE" || return 1
	trap 'gpg_teardown; _lib_cleanup' EXIT
	m=(gpg --homedir "$GPG_MASTER" "${q[@]}" --pinentry-mode loopback)
	"${m[@]}" --passphrase '' --quick-gen-key 'Backup signing <sign@test>' \
		ed25519 sign never || return 1
	"${m[@]}" --passphrase '' --quick-gen-key 'Other signer <other@test>' \
		ed25519 sign never || return 1
	"${m[@]}" --passphrase-file "$GPG_PASSFILE" --quick-gen-key \
		'Backup encryption <enc@test>' ed25519 cert never || return 1
	GPG_SIGN_FPR=$(_gpg_fpr "$GPG_MASTER" sign@test)
	GPG_OTHER_FPR=$(_gpg_fpr "$GPG_MASTER" other@test)
	GPG_ENC_FPR=$(_gpg_fpr "$GPG_MASTER" enc@test)
	"${m[@]}" --passphrase-file "$GPG_PASSFILE" --quick-add-key \
		"$GPG_ENC_FPR" cv25519 encr never || return 1
	# The host: public encryption key, secret signing key.
	"${m[@]}" --export "$GPG_ENC_FPR" >"$T/enc.pub"
	"${m[@]}" --passphrase '' --export-secret-keys "$GPG_SIGN_FPR" \
		>"$T/sign.sec"
	gpg --homedir "$GPG_HOST" "${q[@]}" --import "$T/enc.pub" "$T/sign.sec" \
		2>/dev/null || return 1
	# An imported key is not trusted; encrypting to it in batch mode
	# needs that (the README says the same).
	echo "$GPG_ENC_FPR:6:" | gpg --homedir "$GPG_HOST" "${q[@]}" \
		--import-ownertrust 2>/dev/null || return 1
	# The restoring machine: secret encryption key, public signing keys.
	"${m[@]}" --passphrase-file "$GPG_PASSFILE" --export-secret-keys \
		"$GPG_ENC_FPR" >"$T/enc.sec"
	"${m[@]}" --export "$GPG_SIGN_FPR" "$GPG_OTHER_FPR" >"$T/sign.pub"
	gpg --homedir "$GPG_RESTORE" "${q[@]}" --import "$T/enc.sec" \
		"$T/sign.pub" 2>/dev/null || return 1
	[ -n "$GPG_SIGN_FPR" ] && [ -n "$GPG_ENC_FPR" ] && [ -n "$GPG_OTHER_FPR" ]
}
