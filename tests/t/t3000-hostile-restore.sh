#!/bin/bash
# Restoring from hostile stores.  Each case crafts a small store by hand
# (segments are GNU tars of "<uuid>/<8 hex>" members, compressed with
# zstd; the descriptor is written as text) and checks that the restore
# fails clearly (non-zero exit, a message), restores what it safely can,
# and writes nothing outside DEST: a sentinel directory beside DEST must
# stay empty, and no other entry may appear beside DEST.
. "$(dirname "$0")/../lib.sh"

D=11111111-1111-4111-8111-111111111111
M=22222222-2222-4222-8222-222222222222

# setup CASE: fresh store S, work dir W, DEST, sentinel SENT.
setup() {
	C=$T/$1
	S=$C/store W=$C/work DEST=$C/dest SENT=$C/sentinel
	mkdir -p "$S" "$W/$D" "$W/$M" "$SENT"
}
# data SEQ CONTENT: an object of the data segment.
data() { printf '%s' "$2" >"$W/$D/$(printf %08x "$1")"; }
# ref_of UUID SEQ: its reference with checksum and size.
ref_of() {
	local f=$W/$1/$(printf %08x "$2")
	echo "$1/$(printf %08x "$2")(sha256=$(sha256sum <"$f" | cut -c1-64))[$(stat -c %s "$f")]"
}
seal() { (cd "$W" && tar --format=gnu -cf - "$1"/*) | zstd -q -c >"$S/$1.tar.zst"; }
# fstanza NAME SEQ CONTENT: a regular file whose data is object SEQ.
fstanza() {
	data "$2" "$3"
	printf 'name: %s\nchecksum: sha256=%s\ndata: %s\nmode: 0644\nmtime: 1600000000\nsize: %s\ntype: f\n\n' \
		"$1" "$(printf '%s' "$3" | sha256sum | cut -c1-64)" \
		"$(ref_of $D "$2")" "${#3}"
}
dstanza() { printf 'name: %s\nmode: 0755\nmtime: 1600000000\ntype: d\n\n' "$1"; }
# finish: the metadata log from stdin; root object; descriptor.
finish() {
	cat >"$W/$M/00000000"
	[ -f "$W/$M/00000001" ] || printf '@%s\n' "$(ref_of $M 0)" >"$W/$M/00000001"
	seal $M
	ls "$W/$D" | grep -q . && seal $D
	printf 'Format: Cumulus Snapshot v0.11\nProducer: test\nDate: 2026-01-01 00:00:00 +0000\nRoot: %s\nSegments:\n    %s\n    %s\n' \
		"$(ref_of $M 1)" $D $M >"$S/snapshot-t.lbs"
}
restore() { "$CUMULUS_UTIL" --store="$S" restore-snapshot t "$DEST" "$@"; }
# contained DESC: nothing outside DEST.
contained() {
	test_eq "$1: sentinel untouched" "$(ls -A "$SENT")" ""
	test_eq "$1: nothing beside DEST" \
		"$(ls -A "$C" | grep -vx -e dest -e sentinel -e store -e work)" ""
}
# failed DESC PATTERN: non-zero exit with a message matching PATTERN.
failed() {
	test_fail "$1: restore fails" restore
	cp "$T/.out" "$C.out"
	test_ok "$1: message /$2/" grep -Eq -- "$2" "$C.out"
	[ $_rc -eq 0 ] || sed 's/^/# /' "$C.out" | head -5
}

setup dotdot
{ fstanza ok.txt 0 fine; fstanza ../sentinel/pwned 1 evil; fstanza 'a/../../sentinel/p2' 2 evil; } | finish
failed "'..' names" "refusing entry.*\\.\\."
test_eq "'..' names: the good file is restored" "$(cat "$DEST/ok.txt")" fine
contained "'..' names"

setup absolute
{ fstanza ok.txt 0 fine; fstanza "$T/absolute/sentinel/pwned" 1 evil; } | finish
failed "absolute names" "absolute name"
test_eq "absolute names: the good file is restored" "$(cat "$DEST/ok.txt")" fine
contained "absolute names"

setup encslash
{ dstanza a; fstanza 'a%2f..%2f..%2fsentinel%2fpwned' 0 evil; fstanza 'b%2f%2fc' 1 x; } | finish
failed "%2f-encoded slashes" "refusing entry"
contained "%2f-encoded slashes"

setup symlink
{
	printf 'name: evil\nmode: 0777\nmtime: 1600000000\ntarget: %s\ntype: l\n\n' "$T/symlink/sentinel"
	fstanza evil/pwned 0 evil
	printf 'name: up\nmode: 0777\nmtime: 1600000000\ntarget: ..\ntype: l\n\n'
	fstanza up/sentinel/pwned 1 evil
	dstanza up2
	fstanza ok.txt 2 fine
} | finish
failed "entries under a symlink" "evil/pwned.*non-directory"
test_ok "entries under a symlink: the symlink itself is restored" test -L "$DEST/evil"
test_eq "entries under a symlink: the good file is restored" "$(cat "$DEST/ok.txt")" fine
contained "entries under a symlink"

setup dup
{
	dstanza dup
	printf 'name: dup\nmode: 0777\nmtime: 1600000000\ntarget: %s\ntype: l\n\n' "$T/dup/sentinel"
	fstanza dup/x 0 inside
	fstanza f 1 first
	fstanza f 2 second
} | finish
failed "a name repeated with another type" "dup.*occurs twice"
test_ok "repeated name: the first (directory) stays" test -d "$DEST/dup" -a ! -L "$DEST/dup"
test_eq "repeated name: a file in it is restored" "$(cat "$DEST/dup/x")" inside
test_eq "repeated name: the first regular file wins" "$(cat "$DEST/f")" first
contained "repeated name"

setup badsum
{
	fstanza good.txt 0 good
	data 1 bad
	printf 'name: bad.txt\ndata: %s/00000001(sha256=%064d)[3]\nmode: 0644\nsize: 3\ntype: f\n\n' $D 0
	fstanza wrongsize.txt 2 abc | sed 's/^size: 3/size: 4/'
	fstanza wrongsum.txt 3 abc | sed 's/^checksum: .*/checksum: sha256=0000000000000000000000000000000000000000000000000000000000000000/'
} | finish
failed "object checksum mismatch" "bad\\.txt.*$D.*checksum mismatch"
test_ok "... a whole-file size mismatch is reported" grep -q "wrongsize.txt.*size" "$C.out"
test_ok "... a whole-file checksum mismatch is reported" grep -q "wrongsum.txt.*$D.*checksum" "$C.out"
test_eq "checksum mismatch: the good file is restored" "$(cat "$DEST/good.txt")" good
test_ok "checksum mismatch: the damaged files are not left behind" \
	test ! -e "$DEST/bad.txt" -a ! -e "$DEST/wrongsum.txt"
contained "checksum mismatch"

setup missing
{ dstanza dir; fstanza dir/file 0 data; } | finish
rm "$S/$D.tar.zst"
failed "missing segment" "dir/file.*$D.*not found"
test_ok "missing segment: the directory is restored" test -d "$DEST/dir"
contained "missing segment"

setup truncated
{ fstanza file 0 "$(head -c 100000 /dev/urandom | base64)"; } | finish
head -c 2000 "$S/$D.tar.zst" >"$S/x" && mv "$S/x" "$S/$D.tar.zst"
failed "truncated segment" "file.*$D.*truncated"
contained "truncated segment"

setup bomb
# Eleven 100 MiB zero members, then the object: decoding passes 1 GiB.
for i in 0 1 2 3 4 5 6 7 8 9 10; do truncate -s 100M "$W/$D/$(printf %08x $i)"; done
{ fstanza file 11 small; } | finish
failed "decompression bomb" "file.*$D.*exceeds the limit"
test_ok "decompression bomb: the segment file is small" \
	test "$(stat -c %s "$S/$D.tar.zst")" -lt 2000000
contained "decompression bomb"
rm -rf "$W/$D"

setup cycle
printf 'name: a\nmode: 0644\ntype: d\n\n@%s/00000002\n' $M >"$W/$M/00000000"
printf '@%s/00000000\n' $M >"$W/$M/00000002"
printf '@%s/00000000\n' $M >"$W/$M/00000001"
cp "$W/$M/00000000" "$C.log"
finish <"$C.log"
failed "include cycle" "cycle"
contained "include cycle"

setup absurd
{
	data 0 abc
	printf 'name: huge\ndata: %s/00000000[0+99999999999999]\nmode: 0644\nsize: 3\ntype: f\n\n' $D
	printf 'name: zeros\ndata: zero[99999999999999999]\nmode: 0644\nsize: 3\ntype: f\n\n'
	fstanza ok.txt 1 fine
} | finish
failed "absurd references" "huge.*beyond the object"
test_ok "absurd references: an oversized zero ref is refused" grep -q "zeros.*longer" "$C.out"
test_eq "absurd references: the good file is restored" "$(cat "$DEST/ok.txt")" fine
contained "absurd references"

setup nonempty
{ fstanza ok.txt 0 fine; } | finish
mkdir -p "$DEST" && echo keep >"$DEST/existing"
failed "non-empty DEST" "not empty"
test_eq "non-empty DEST: nothing restored" "$(ls "$DEST")" existing
contained "non-empty DEST"

setup newer
{ fstanza ok.txt 0 fine; } | finish
sed -i 's/v0.11/v0.12/' "$S/snapshot-t.lbs"
failed "a format newer than v0.11" "newer"
contained "a format newer than v0.11"

# Two names with one inode number but different data: each is restored
# from its own data (the inode's key includes size and checksum, as the
# original's restore.pl has it), never one with the other's.
setup hardlinkdata
{
	fstanza x 0 good | sed 's/^type: f$/type: f\ninode: 7\/1\nlinks: 2/'
	fstanza y 1 'other content' | sed 's/^type: f$/type: f\ninode: 7\/1\nlinks: 2/'
	fstanza z 2 good | sed 's/^type: f$/type: f\ninode: 7\/1\nlinks: 2/'
} | finish
test_ok "one inode, different data: restore" restore
test_eq "... the first name has its data" "$(cat "$DEST/x" 2>/dev/null)" good
test_eq "... the second name has its own data, not the first's" \
	"$(cat "$DEST/y" 2>/dev/null)" "other content"
test_eq "... a name with the same data is linked to the first" \
	"$(stat -c %i "$DEST/z" 2>/dev/null)" "$(stat -c %i "$DEST/x" 2>/dev/null)"
test_eq "... and the different one is not" \
	"$(stat -c %h "$DEST/y" 2>/dev/null)" 1
contained "one inode, different data"

done_testing
