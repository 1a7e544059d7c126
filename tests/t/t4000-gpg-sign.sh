#!/bin/bash
# Encryption and signing with gpg, as the seed README sets them up:
# backups with the seed's exact command line on a write-only host (public
# encryption key and secret signing key only), full and incremental with
# the old segments out of reach, restores on another "machine" holding the
# secret encryption key (passphrase from a file), and --verify-key
# refusing altered, unsigned and foreign-signed descriptors, while an
# altered segment under a good signature fails on its checksum.
. "$(dirname "$0")/../lib.sh"
. "$CUMULUS_TOP/tests/lib-gpg.sh"

if ! gpg_available; then
	skip "gpg tests" "gpg, gpgv or gpgconf missing"
	done_testing
fi
test_ok "throwaway keys for a host, a restoring machine and a stranger" \
	gpg_setup
export PATH=$CUMULUS_TOP/contrib:$PATH
unset GNUPGHOME CUMULUS_VERIFY_KEY LBS_GPG_PASSPHRASE LBS_GPG_PASSPHRASE_FILE

src=$T/src
store=$T/store
MARKER=plaintext-marker-4b1d
mkdir -p "$src/docs" "$src/sub" "$store" "$T/db"
printf '%s\n' "$MARKER" "first version" >"$src/docs/a.txt"
head -c 1500000 /dev/urandom >"$src/big.bin"
ln -s ../docs/a.txt "$src/sub/link"
mkfifo "$src/sub/fifo"

# The seed README's script, on the host's keyring.
on_host() {
	env LBS_GPG_HOME="$GPG_HOST" LBS_GPG_ENC_KEY="$GPG_ENC_FPR" \
		LBS_GPG_SIGN_KEY="$GPG_SIGN_FPR" "$@"
}
seed_backup() {
	(cd "$T" && on_host "$CUMULUS" --dest="$store" --localdb="$T/db" \
		--scheme=test \
		--filter="cumulus-filter-gpg --encrypt" --filter-extension=.gpg \
		--signature-filter="cumulus-filter-gpg --clearsign" \
		src)
}
# The restoring machine: its keyring, the passphrase in a file.
on_restore() {
	env LBS_GPG_HOME="$GPG_RESTORE" LBS_GPG_PASSPHRASE_FILE="$GPG_PASSFILE" \
		"$@"
}
snaps() { (cd "$1" && ls snapshot-*.lbs | sed 's/^snapshot-//; s/\.lbs$//'); }

# ---- full backup on the write-only host ----
make_manifest "$src" >"$T/m1.tsv"
test_ok "full backup with the seed's command line" seed_backup
s1=$(snaps "$store")
test_eq "one snapshot, named by the scheme" "$(echo "$s1" | grep -c '^test-')" 1
test_eq "every segment is a .tar.gpg file" \
	"$(ls "$store" | grep -v '^snapshot-' | grep -vc '\.tar\.gpg$')" 0
test_eq "no plaintext reaches the store" \
	"$(grep -l "$MARKER" "$store"/*.gpg | wc -l)" 0
test_eq "the descriptor is clear-signed" \
	"$(head -1 "$store/snapshot-$s1.lbs")" "-----BEGIN PGP SIGNED MESSAGE-----"
test_fail "the host cannot decrypt its own backups" \
	on_host "$CUMULUS_UTIL" --store="$store" restore-snapshot "$s1" "$T/h"
test_ok "... gpg says why" grep -q 'gpg' "$T/.out"

# ---- incremental on the host, old segments out of reach ----
mkdir "$T/away"
mv "$store"/*.tar.gpg "$T/away/"
printf '%s\n' "$MARKER" "second version" >"$src/docs/a.txt"
echo "new file" >"$src/docs/new.txt"
sleep 1 # a new snapshot name (one per second)
make_manifest "$src" >"$T/m2.tsv"
test_ok "incremental backup with no old segment readable" seed_backup
new_bytes=$(cat "$store"/*.tar.gpg | wc -c)
test_ok "... stores only the changes ($new_bytes bytes; big.bin is 1500000)" \
	test "$new_bytes" -lt 200000
mv "$T/away"/* "$store/"
s2=$(snaps "$store" | tail -1)
test_ok "... and names a second snapshot" test "$s2" != "$s1"

# ---- restoring machine ----
test_fail "a wrong passphrase does not decrypt" \
	env LBS_GPG_HOME="$GPG_RESTORE" LBS_GPG_PASSPHRASE=wrong \
	"$CUMULUS_UTIL" --store="$store" restore-snapshot "$s1" "$T/wrong"
n=0
for s in "$s1" "$s2"; do
	n=$((n + 1))
	test_ok "$s: verify-snapshots with --verify-key" on_restore \
		"$CUMULUS_UTIL" --store="$store" --verify-key="$GPG_SIGN_FPR" \
		verify-snapshots "$s"
	test_ok "$s: restore with --verify-key (long key ID)" on_restore \
		"$CUMULUS_UTIL" --store="$store" --verify-key="${GPG_SIGN_FPR: -16}" \
		restore-snapshot "$s" "$T/r$n"
	make_manifest "$T/r$n/src" >"$T/got$n.tsv"
	test_ok "$s: restored tree matches the source" \
		compare_manifests "$T/m$n.tsv" "$T/got$n.tsv"
done
test_ok "list-snapshot-sizes checks every snapshot" on_restore \
	"$CUMULUS_UTIL" --store="$store" --verify-key="$GPG_SIGN_FPR" \
	list-snapshot-sizes

# ---- refusals ----
# bad_store NAME: a copy of the store; its newest descriptor is $b/$desc.
bad_store() {
	b=$T/$1
	cp -r "$store" "$b"
	desc=snapshot-$s2.lbs
}
refused() { # DESC WANT-REGEX STORE COMMAND...
	local desc=$1 want=$2 st=$3
	shift 3
	test_fail "$desc: $1 refuses" on_restore "$CUMULUS_UTIL" --store="$st" \
		--verify-key="$GPG_SIGN_FPR" "$@"
	test_ok "$desc: ... saying why" grep -Eq "$want" "$T/.out"
	[ $_rc -eq 0 ] || diag "$(cat "$T/.out")"
}

bad_store altered
sed -i 's/^Backup-Intent: .*/Backup-Intent: 7/' "$b/$desc"
# (list-snapshot-sizes parses every descriptor and decrypts nothing.)
test_ok "altered descriptor: still readable without --verify-key" on_restore \
	"$CUMULUS_UTIL" --store="$b" list-snapshot-sizes
for cmd in verify-snapshots read-metadata read-snapshots; do
	refused "altered descriptor" "BAD signature" "$b" $cmd "$s2"
done
refused "altered descriptor" "BAD signature" "$b" restore-snapshot "$s2" \
	"$T/x1"
test_ok "... and restores nothing" test ! -e "$T/x1/src"
refused "altered descriptor" "BAD signature" "$b" list-snapshot-sizes

bad_store unsigned
on_restore gpg --homedir "$GPG_RESTORE" --batch --quiet --decrypt \
	"$store/$desc" >"$b/$desc" 2>/dev/null
test_ok "unsigned descriptor: readable without --verify-key" on_restore \
	"$CUMULUS_UTIL" --store="$b" list-snapshot-sizes
refused "unsigned descriptor" "not signed" "$b" restore-snapshot "$s2" "$T/x2"
test_exit "CUMULUS_VERIFY_KEY sets the key by default" 1 on_restore \
	env CUMULUS_VERIFY_KEY="$GPG_SIGN_FPR" "$CUMULUS_UTIL" --store="$b" \
	list-snapshot-sizes
test_ok "... and --verify-key= turns it off" on_restore \
	env CUMULUS_VERIFY_KEY="$GPG_SIGN_FPR" "$CUMULUS_UTIL" --store="$b" \
	--verify-key= list-snapshot-sizes

bad_store foreign
gpg --homedir "$GPG_MASTER" --batch --quiet --local-user "$GPG_OTHER_FPR" \
	--clearsign <"$T/unsigned/$desc" >"$b/$desc"
refused "signed by another key" "signed by key $GPG_OTHER_FPR, not by" "$b" \
	restore-snapshot "$s2" "$T/x3"
test_ok "... which is accepted when named" on_restore "$CUMULUS_UTIL" \
	--store="$b" --verify-key="$GPG_OTHER_FPR" read-snapshots "$s2"

bad_store twice
cat "$store/$desc" "$T/foreign/$desc" >"$b/$desc"
refused "two signatures" "not one signed message" "$b" verify-snapshots "$s2"

# Unsigned text in front of the signed descriptor of the first snapshot:
# with --verify-key only the signed text counts (no docs/new.txt).
bad_store outside
{ cat "$T/unsigned/$desc"; cat "$store/snapshot-$s1.lbs"; } >"$b/$desc"
test_ok "text outside the armour: ignored with --verify-key" on_restore \
	"$CUMULUS_UTIL" --store="$b" --verify-key="$GPG_SIGN_FPR" \
	read-metadata "$s2"
test_eq "... only the signed text is parsed" \
	"$(grep -q 'docs/a.txt' "$T/.stdout" &&
	grep -c 'docs/new.txt' "$T/.stdout")" 0

# An attacker holds the public key: re-encrypt a segment with one object
# changed.  The signature stays good; the checksums catch it.
bad_store segment
seg=$(ls -S "$b"/*.tar.gpg | head -1)
on_restore cumulus-filter-gpg --decrypt <"$seg" >"$T/seg.tar" 2>/dev/null
perl -e 'open(my $f, "+<", $ARGV[0]) or die; seek($f, 512 + 100, 0);
	read($f, my $c, 16); seek($f, 512 + 100, 0);
	print $f ~$c; close($f) or die' "$T/seg.tar"
on_host cumulus-filter-gpg --encrypt <"$T/seg.tar" >"$seg"
test_ok "altered segment: the signature is still good" on_restore \
	"$CUMULUS_UTIL" --store="$b" --verify-key="$GPG_SIGN_FPR" \
	read-metadata "$s1"
# The largest segment holds big.bin, which only the first snapshot wrote.
test_fail "altered segment: verify-snapshots fails" on_restore \
	"$CUMULUS_UTIL" --store="$b" --verify-key="$GPG_SIGN_FPR" \
	verify-snapshots "$s1"
test_ok "... on a checksum" grep -qi 'checksum' "$T/.out"
test_fail "altered segment: restore fails" on_restore "$CUMULUS_UTIL" \
	--store="$b" --verify-key="$GPG_SIGN_FPR" restore-snapshot "$s1" "$T/x4"
test_ok "... on a checksum" grep -qi 'checksum' "$T/.out"

# ---- cleaning and gc on the host: no old segment is read either ----
sleep 1
head -c 1000 /dev/urandom >>"$src/big.bin"
test_ok "host: delete both snapshots" on_host "$CUMULUS_UTIL" \
	--store="$store" --localdb="$T/db" delete-snapshot "$s1" "$s2"
test_ok "host: clean (every segment is rewritten)" on_host \
	"$CUMULUS_UTIL" --store="$store" --localdb="$T/db" clean --threshold=0
mv "$store"/*.tar.gpg "$T/away/"
make_manifest "$src" >"$T/m3.tsv"
test_ok "host: backup after cleaning, no old segment readable" seed_backup
mv "$T/away"/* "$store/"
s3=$(snaps "$store" | tail -1)
test_ok "host: gc" on_host "$CUMULUS_UTIL" --store="$store" --localdb="$T/db" \
	gc --min-age=0
test_ok "... reads the one descriptor left, nothing missing" grep -q '^1 snapshots' "$T/.out"
test_ok "$s3: restores on the other machine" on_restore "$CUMULUS_UTIL" \
	--store="$store" --verify-key="$GPG_SIGN_FPR" restore-snapshot "$s3" \
	"$T/r3"
make_manifest "$T/r3/src" >"$T/got3.tsv"
test_ok "$s3: restored tree matches the source" \
	compare_manifests "$T/m3.tsv" "$T/got3.tsv"

test_exit "a malformed key is a usage error" 2 "$CUMULUS_UTIL" \
	--store="$store" --verify-key=alice list-snapshots
test_fail "a key without a keyring is refused" env LBS_GPG_HOME="$T/none" \
	"$CUMULUS_UTIL" --store="$store" --verify-key="$GPG_SIGN_FPR" \
	verify-snapshots "$s3"
test_ok "... saying so" grep -q 'keyring' "$T/.out"

# ---- cumulus-filter-gpg keeps the passphrase out of argv ----
mkdir "$T/fakebin"
cat >"$T/fakebin/gpg" <<EOF
#!/bin/sh
printf '%s\n' "\$@" >"$T/argv"
cat <&3 >"$T/fd3"
EOF
chmod +x "$T/fakebin/gpg"
test_ok "filter: passphrase from LBS_GPG_PASSPHRASE" env PATH="$T/fakebin:$PATH" \
	LBS_GPG_PASSPHRASE=s3cret-env cumulus-filter-gpg --decrypt
test_eq "... on descriptor 3" "$(cat "$T/fd3")" "s3cret-env"
test_eq "... not in gpg's arguments" "$(grep -c s3cret "$T/argv")" 0
echo s3cret-file >"$T/pp"
test_ok "filter: passphrase from LBS_GPG_PASSPHRASE_FILE" \
	env PATH="$T/fakebin:$PATH" LBS_GPG_PASSPHRASE_FILE="$T/pp" \
	cumulus-filter-gpg --decrypt
test_eq "... on descriptor 3" "$(cat "$T/fd3")" "s3cret-file"
test_eq "... not in gpg's arguments" "$(grep -c s3cret "$T/argv")" 0
test_exit "filter: unknown mode" 1 cumulus-filter-gpg --frobnicate
test_ok "... is named" grep -q 'Unknown command or command not specified: --frobnicate' "$T/.out"

done_testing
