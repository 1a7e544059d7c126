#!/bin/bash
# contrib/restore.pl, run as the README's "Disaster recovery" section says
# (segments unpacked with zstd/bzip2/gpg and tar next to the descriptor):
# on a snapshot of our backup (zstd), on a gpg-encrypted and signed one,
# and on the original programs' stores in tests/golden (bzip2); each
# restored tree must match its manifest.  Then hand-made hostile inputs:
# nothing may be written outside DEST and bad data must be refused.
. "$(dirname "$0")/../lib.sh"
. "$CUMULUS_TOP/tests/lib-gpg.sh"

RESTORE_PL=$CUMULUS_TOP/contrib/restore.pl

# unpack STORE DESCRIPTOR-FILE WORKDIR [DECRYPT-COMMAND]: the README's
# commands: copy the descriptor, unpack each listed segment with tar.
unpack() {
	local store=$1 descfile=$2 w=$3 gpgcmd=${4:-gpg -d} seg f
	mkdir -p "$w" && cp "$descfile" "$w/" && (
		cd "$w" || exit 1
		for seg in $(sed -n '/^Segments:/,$p' "${descfile##*/}" |
			grep -Eo '^ +[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}'); do
			f=$(ls "$store/$seg".tar* "$store"/segments*/"$seg".tar* \
				2>/dev/null | head -1)
			case $f in
			*.zst) zstd -dc "$f" ;;
			*.bz2) bzip2 -dc "$f" ;;
			*.gz) gzip -dc "$f" ;;
			*.xz) xz -dc "$f" ;;
			*.gpg) $gpgcmd "$f" ;;
			*) cat "$f" ;;
			esac | tar -xf - || exit 1
		done
	)
}

# ---- a snapshot of our backup (zstd) ----
src=$T/src
mkdir -p "$src/tree/d/e" "$src/tree/ro" "$src/tree/names"
(
	cd "$src/tree" || exit 1
	head -c 3000000 /dev/urandom >big.bin
	printf 'x' >one.bin
	: >empty.bin
	echo hello >d/e/hello.txt
	ln d/e/hello.txt d/hard-hello.txt
	ln -s e/hello.txt d/link
	ln -s /nonexistent dangling
	mkfifo d/fifo
	{ echo start; head -c 2097152 /dev/zero; echo end; } >sparse.img
	printf 'odd\n' >"names/sp ace %41 @at +plus"
	printf 'nl\n' >"names/new
line"
	printf 'hi\n' >"names/$(printf '\xff\xfe')"
	echo secret >ro/secret
	chmod 0400 ro/secret
	chmod 0555 ro
	chmod 2750 d/e
	touch -d '2021-03-04 05:06:07' d/e/hello.txt d/e d ro
	touch -h -d '2020-01-02 03:04:05' d/link
)
make_manifest "$src/tree" >"$T/want.tsv"
store=$T/store
mkdir -p "$store" "$T/db"
test_ok "backup (zstd segments)" "$CUMULUS" --dest="$store" --localdb="$T/db" \
	"$src/tree"
name=$(cd "$store" && ls snapshot-*.lbs)
test_ok "unpack with zstd and tar" unpack "$store" "$store/$name" "$T/w1"
test_ok "restore.pl restores it" perl "$RESTORE_PL" "$T/w1/$name" "$T/r1"
make_manifest "$T/r1/${src#/}/tree" >"$T/got1.tsv"
test_ok "... exactly (contents, types, modes, mtimes, links, names)" \
	compare_manifests "$T/want.tsv" "$T/got1.tsv"
blocks=$(stat -c %b "$T/r1/${src#/}/tree/sparse.img")
test_ok "... the zero blocks are holes ($blocks blocks)" test "$blocks" -lt 2048
test_exit "a non-empty DEST is refused" 1 perl "$RESTORE_PL" "$T/w1/$name" "$T/r1"
test_ok "... unless --force, for selected paths" perl "$RESTORE_PL" --force \
	"$T/w1/$name" "$T/r1b" "${src#/}/tree/d/e"
test_eq "... which bring only their subtree" \
	"$(cd "$T/r1b/${src#/}/tree" && find . | sort | tr '\n' ' ')" \
	". ./d ./d/e ./d/e/hello.txt "
chmod -R u+rwx "$T/r1" "$T/r1b"

# ---- gpg-encrypted, clear-signed ----
if gpg_available; then
	test_ok "throwaway keys" gpg_setup
	gstore=$T/gstore
	mkdir -p "$gstore" "$T/gdb"
	test_ok "backup with the gpg filter and signature filter" \
		env PATH="$CUMULUS_TOP/contrib:$PATH" LBS_GPG_HOME="$GPG_HOST" \
		LBS_GPG_ENC_KEY="$GPG_ENC_FPR" LBS_GPG_SIGN_KEY="$GPG_SIGN_FPR" \
		"$CUMULUS" --dest="$gstore" --localdb="$T/gdb" \
		--filter="cumulus-filter-gpg --encrypt" --filter-extension=.gpg \
		--signature-filter="cumulus-filter-gpg --clearsign" "$src/tree"
	gname=$(cd "$gstore" && ls snapshot-*.lbs)
	test_ok "gpg --verify checks the descriptor" gpg --homedir "$GPG_RESTORE" \
		--batch --verify "$gstore/$gname"
	test_ok "unpack with gpg -d and tar" unpack "$gstore" "$gstore/$gname" \
		"$T/w2" "gpg --homedir $GPG_RESTORE --batch -q --pinentry-mode loopback --passphrase-file $GPG_PASSFILE -d"
	test_ok "restore.pl restores it" perl "$RESTORE_PL" "$T/w2/$gname" "$T/r2"
	make_manifest "$T/r2/${src#/}/tree" >"$T/got2.tsv"
	test_ok "... exactly" compare_manifests "$T/want.tsv" "$T/got2.tsv"
	chmod -R u+rwx "$T/r2"
else
	skip "gpg-encrypted snapshot" "gpg missing"
fi

# ---- the original programs' stores (bzip2) ----
for fixture in "$CUMULUS_TOP"/tests/golden/*/; do
	fixture=${fixture%/}
	fx=${fixture##*/}
	for m in "$fixture"/manifests/*.tsv; do
		snap=$(basename "$m" .tsv)
		d=$(ls "$fixture/store/snapshots/snapshot-$snap".* \
			"$fixture/store/snapshot-$snap".* 2>/dev/null | grep -v sha1sums | head -1)
		w=$T/w-$fx-$snap
		test_ok "$fx/$snap: unpack with bzip2 and tar" unpack \
			"$fixture/store" "$d" "$w"
		test_ok "$fx/$snap: restore.pl" perl "$RESTORE_PL" "$w/${d##*/}" \
			"$T/r-$fx-$snap"
		make_manifest "$T/r-$fx-$snap/tree" >"$T/got.tsv"
		test_ok "$fx/$snap: restored tree matches the manifest" \
			compare_manifests "$m" "$T/got.tsv"
		chmod -R u+rwx "$T/r-$fx-$snap"
		rm -rf "$w" "$T/r-$fx-$snap"
	done
done

# ---- hostile input (objects written straight into the work directory) ----
D=11111111-1111-4111-8111-111111111111
M=22222222-2222-4222-8222-222222222222
# hcase NAME: work dir W with the segment directories, DEST, sentinel.
hcase() {
	C=$T/h-$1 W=$T/h-$1/w DEST=$T/h-$1/dest SENT=$T/h-$1/sentinel
	mkdir -p "$W/$D" "$W/$M" "$SENT"
}
obj() { printf '%s' "$3" >"$W/$1/$(printf %08x "$2")"; }
ref_of() {
	local f=$W/$1/$(printf %08x "$2")
	echo "$1/$(printf %08x "$2")(sha256=$(sha256sum <"$f" | cut -c1-64))[$(stat -c %s "$f")]"
}
fst() { # NAME SEQ CONTENT
	obj $D "$2" "$3"
	printf 'name: %s\nchecksum: sha256=%s\ndata: %s\nmode: 0644\nmtime: 1600000000\nsize: %s\ntype: f\n\n' \
		"$1" "$(printf '%s' "$3" | sha256sum | cut -c1-64)" \
		"$D/$(printf %08x "$2")" "${#3}"
}
hfinish() { # the log on stdin (may be its own file); VERSION (default v0.11)
	cat >"$W/log.tmp" && mv "$W/log.tmp" "$W/$M/00000000"
	printf '@%s\n' "$(ref_of $M 0)" >"$W/$M/00000001"
	printf 'Format: %s\nRoot: %s\nSegments:\n    %s\n    %s\n' \
		"${1:-Cumulus Snapshot v0.11}" "$(ref_of $M 1)" $D $M >"$W/s.lbs"
}
hrun() { perl "$RESTORE_PL" "$W/s.lbs" "$DEST"; }
contained() {
	test_eq "$1: nothing written outside DEST" \
		"$(ls -A "$SENT"; ls -A "$C" | grep -vx -e dest -e sentinel -e w)" ""
}

hcase names
{
	fst ok.txt 0 fine
	fst ../sentinel/p1 1 evil
	fst "$T/h-names/sentinel/p2" 2 evil
	fst 'a/./b' 3 evil
	fst 'x%2f..%2f..%2fsentinel%2fp3' 4 evil
	fst ok.txt 5 again
} | hfinish
test_exit "'..', absolute, '.', encoded-slash and duplicate names fail" 1 hrun
test_eq "... each one refused" "$(grep -c 'unsafe name\|duplicate' "$T/.out")" 5
test_eq "... the good file is restored" "$(cat "$DEST/ok.txt")" fine
contained "bad names"

hcase symlink
{
	printf 'name: evil\nmode: 0777\nmtime: 1600000000\ntarget: %s\ntype: l\n\n' "$SENT"
	fst evil/p 0 evil
	printf 'name: up\nmode: 0777\nmtime: 1600000000\ntarget: ..\ntype: l\n\n'
	fst up/p2 1 evil
} | hfinish
test_exit "writing through restored symlinks fails" 1 hrun
test_ok "... refused as not a directory" grep -q 'non-directory is in the way' "$T/.out"
contained "symlinks"

hcase corrupt
{
	fst good 0 good
	fst bad 1 original
	fst short 2 short
} | hfinish
obj $D 1 tampered
printf 'name: short2\ndata: %s[1+100]\nsize: 100\ntype: f\n\n' "$D/00000002" >>"$W/$M/00000000"
hfinish <"$W/$M/00000000"
test_exit "a file whose data changed fails" 1 hrun
cp "$T/.out" "$C.out"
test_ok "... on its checksum" grep -q 'bad: checksum mismatch' "$C.out"
test_ok "... and is not left behind" test ! -e "$DEST/bad"
test_ok "a range outside its object fails" grep -q 'short2: .*outside' "$C.out"
test_eq "... the intact files are restored" "$(cat "$DEST/good")$(cat "$DEST/short")" goodshort

hcase metasum
fst f 0 data | hfinish
printf 'name: f\ntype: f\n\n' >>"$W/$M/00000000"
test_exit "a metadata object that fails its checksum is fatal" 1 hrun
test_ok "... and says so" grep -q 'checksum mismatch' "$T/.out"

hcase cycle
fst f 0 data >"$W/$M/00000000"
printf '@%s/00000002\n' $M >>"$W/$M/00000000"
printf '@%s/00000000\n' $M >"$W/$M/00000002"
hfinish <"$W/$M/00000000"
test_exit "an include cycle is refused" 1 hrun
test_ok "... as a cycle" grep -q 'cycle' "$T/.out"

hcase versions
# v0.8: bare [N] is a prefix; v0.11: it asserts the whole object size.
obj $D 0 abcdef
printf 'name: p\ndata: %s/00000000[3]\nsize: 3\ntype: f\n\n' $D | hfinish 'LBS Snapshot v0.8'
test_ok "v0.8: [N] is a prefix" hrun
test_eq "... of N bytes" "$(cat "$DEST/p")" abc
rm -rf "$DEST"
hfinish 'Cumulus Snapshot v0.11' <"$W/$M/00000000"
test_exit "v0.11: [N] asserts the object size" 1 hrun
test_ok "... and the mismatch is named" grep -q 'is 6 bytes, reference says 3' "$T/.out"
test_eq "... nothing else is restored" "$(ls -A "$DEST")" ""
rm -rf "$DEST"
hfinish 'Cumulus Snapshot v0.12' <"$W/$M/00000000"
test_exit "a newer format is refused" 1 hrun
test_ok "... saying so" grep -q 'newer than v0.11' "$T/.out"

done_testing
