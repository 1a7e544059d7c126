#!/bin/bash
# Hostile input beyond t3000, each rejected with a clear message, in
# bounded memory (peak RSS from /usr/bin/time) and time: decompression
# bombs in every codec, absurd sizes and offsets in references, an include
# chain 10,000 deep and a longer include cycle, a tar member larger than
# its segment, a 1 GiB descriptor, invalid UTF-8 and NUL bytes in names,
# values and descriptors, and a local database altered to point a block at
# the wrong object (verify-snapshots and restore must catch what the next
# backup then writes).
. "$(dirname "$0")/../lib.sh"

D=11111111-1111-4111-8111-111111111111
M=22222222-2222-4222-8222-222222222222
U() { "$CUMULUS_UTIL" "$@"; }
# Peak RSS bound; ASan's shadow memory and quarantine need more.
RSS_MAX=200000
case $CUMULUS_BUILD in *san*) RSS_MAX=900000 ;; esac
TIME_MAX=60

# setup CASE: fresh store S, work dir W, DEST.
setup() {
	C=$T/$1
	S=$C/store W=$C/work DEST=$C/dest
	mkdir -p "$S" "$W/$D" "$W/$M"
}
data() { printf '%s' "$2" >"$W/$D/$(printf %08x "$1")"; }
ref_of() {
	local f=$W/$1/$(printf %08x "$2")
	echo "$1/$(printf %08x "$2")(sha256=$(sha256sum <"$f" | cut -c1-64))[$(stat -c %s "$f")]"
}
seal() { (cd "$W" && tar --format=gnu -cf - "$1"/*) | zstd -q -c >"$S/$1.tar.zst"; }
fstanza() {
	data "$2" "$3"
	printf 'name: %s\nchecksum: sha256=%s\ndata: %s\nmode: 0644\nmtime: 1600000000\nsize: %s\ntype: f\n\n' \
		"$1" "$(printf '%s' "$3" | sha256sum | cut -c1-64)" \
		"$(ref_of $D "$2")" "${#3}"
}
descriptor() { # ROOT_REF
	printf 'Format: Cumulus Snapshot v0.11\nProducer: test\nDate: 2026-01-01 00:00:00 +0000\nRoot: %s\nSegments:\n    %s\n    %s\n' \
		"$1" $D $M >"$S/snapshot-t.lbs"
}
# finish [nodata]: the metadata log from stdin; root object; descriptor.
finish() {
	cat >"$W/$M/00000000"
	[ -f "$W/$M/00000001" ] || printf '@%s\n' "$(ref_of $M 0)" >"$W/$M/00000001"
	seal $M
	[ "${1:-}" = nodata ] || seal $D
	descriptor "$(ref_of $M 1)"
}
# bounded DESC STATUS CMD...: exits with STATUS (1: any failure, not a
# crash) within TIME_MAX seconds and RSS_MAX KiB; output in $C.out.
bounded() {
	local desc=$1 want=$2 rss secs
	shift 2
	# /usr/bin/time runs programs, not shell functions.
	case $1 in
	restore) set -- "$CUMULUS_UTIL" --store="$S" restore-snapshot t "$DEST" "${@:2}" ;;
	U) set -- "$CUMULUS_UTIL" "${@:2}" ;;
	esac
	# Killed at twice the bound, so that a regression fails, not hangs.
	/usr/bin/time -f '%M %e' -o "$T/time.out" \
		timeout -s KILL $((2 * TIME_MAX)) "$@" </dev/null >"$C.out" 2>&1
	_rc=$?
	read -r rss secs < <(tail -1 "$T/time.out")
	if [ "$want" = 1 ]; then
		_tap_result $((_rc >= 1 && _rc <= 125)) "$desc: fails cleanly (status $_rc)"
	else
		_tap_result $((_rc == want)) "$desc: exit status $want (got $_rc)"
	fi
	[ "$_rc" = "$want" ] || [ "$want" = 1 ] || head -5 "$C.out" | sed 's/^/#   /'
	_tap_result $((rss < RSS_MAX)) "$desc: peak RSS ${rss} KiB < $RSS_MAX"
	_tap_result "$(awk -v s="$secs" -v m=$TIME_MAX 'BEGIN { print (s < m) }')" \
		"$desc: ${secs}s < ${TIME_MAX}s"
}
said() { # DESC PATTERN: the last command's output matches
	if grep -Eq -- "$2" "$C.out"; then
		_tap_result 1 "$1: message /$2/"
	else
		_tap_result 0 "$1: message /$2/"
		head -5 "$C.out" | sed 's/^/#   /'
	fi
}
restore() { U --store="$S" restore-snapshot t "$DEST" "$@"; }

# ---- decompression bombs: 11 x 100 MiB zero members, then the object,
# so reaching it decodes more than the 1 GiB limit.  Each codec's stream
# is built from one compressed 100 MiB of zeros, concatenated (every
# decoder reads concatenated streams). ----
head -c 100M /dev/zero >"$T/zeros"
tar_header() { # NAME SIZE: a GNU tar header block
	python3 -c 'import sys, tarfile
t = tarfile.TarInfo(sys.argv[1]); t.size = int(sys.argv[2]); t.mode = 0o644
sys.stdout.buffer.write(t.tobuf(format=tarfile.GNU_FORMAT))' "$1" "$2"
}
for codec in zst:"zstd -q -c" bz2:"bzip2 -c" gz:"gzip -c" xz:"xz -0 -c"; do
	ext=${codec%%:*} z=${codec#*:}
	setup "bomb-$ext"
	{ fstanza file 11 small; } | finish nodata
	$z <"$T/zeros" >"$T/zeros.c"
	{
		for i in 0 1 2 3 4 5 6 7 8 9 10; do
			tar_header "$D/$(printf %08x $i)" $((100 << 20)) | $z
			cat "$T/zeros.c"
		done
		(cd "$W" && tar --format=gnu -cf - "$D/0000000b") | $z
	} >"$S/$D.tar.$ext"
	rm -f "$T/zeros.c"
	test_ok "bomb .$ext: the segment is small ($(stat -c %s "$S/$D.tar.$ext") bytes)" \
		test "$(stat -c %s "$S/$D.tar.$ext")" -lt 2000000
	bounded "bomb .$ext: restore" 1 restore
	said "bomb .$ext: restore" "file.*$D.*exceeds the limit"
	# verify-snapshots reads segments the same way; once is enough.
	[ "$ext" = zst ] || continue
	bounded "bomb .$ext: verify-snapshots" 1 U --store="$S" verify-snapshots t
	said "bomb .$ext: verify-snapshots" "exceeds the limit"
done
rm -f "$T/zeros"

# ---- absurd sizes and offsets in references ----
setup absurd
{
	data 0 abc
	for r in "[3+1]" "[2+2]" "[18446744073709551615+2]" "[1+18446744073709551615]" \
		"[0+4]" "[99999999999999999999999]" "[-1]" "[0+-1]"; do
		printf 'name: bad%s\ndata: %s/00000000%s\nmode: 0644\nsize: 1\ntype: f\n\n' \
			"$(echo "$r" | tr -dc '0-9+-')" $D "$r"
	done
	printf 'name: bigsize\ndata: %s/00000000\nmode: 0644\nsize: 99999999999999999999\ntype: f\n\n' $D
	printf 'name: short\ndata: %s\nmode: 0644\nsize: 1\ntype: f\n\n' "$(ref_of $D 0)"
	printf 'name: zeros\ndata: zero[1099511627776]\nmode: 0644\nsize: 1099511627776\ntype: f\n\n'
	fstanza ok.txt 1 fine
} | finish
bounded "absurd references: restore" 1 restore
said "absurd references" "bad3\\+1.*beyond the object"
said "absurd references" "bad18446744073709551615\\+2.*malformed"
said "absurd references" "short.*segment $D.*longer than"
test_eq "absurd references: more data than recorded writes no file" "$(ls "$DEST" | grep -c '^short')" 0
bounded "absurd references: verify-snapshots" 1 U --store="$S" verify-snapshots t
said "absurd references: verify-snapshots" "short: segment $D: data is longer than"
test_eq "absurd references: the good file is restored" "$(cat "$DEST/ok.txt" 2>/dev/null)" fine
test_eq "absurd references: no bad file is written" "$(ls "$DEST" | grep -c '^bad')" 0

# ---- includes: a chain 10,000 deep, a cycle through 20 objects ----
setup deep
for i in $(seq 1 10000); do
	printf '@%s/%08x\n' $M $((i + 1)) >"$W/$M/$(printf %08x "$i")"
done
printf 'name: deep\nmode: 0644\ntype: d\n\n' >"$W/$M/$(printf %08x 10001)"
fstanza ok.txt 0 fine >"$W/$M/00000000.x"
{ cat "$W/$M/00000000.x"; printf '@%s/00000001\n' $M; } >"$W/$M/00000000"
rm "$W/$M/00000000.x"
printf '@%s/00000000\n' $M >"$W/$M/$(printf %08x 10002)"
seal $M
seal $D
descriptor "$M/$(printf %08x 10002)"
bounded "include depth 10,000: restore" 1 restore
said "include depth 10,000" "depth|deep"
bounded "include depth 10,000: read-metadata" 1 U --store="$S" read-metadata t

setup cycle20
for i in $(seq 0 19); do
	printf '@%s/%08x\n' $M $(((i + 1) % 20)) >"$W/$M/$(printf %08x "$i")"
done
printf '@%s/00000000\n' $M >"$W/$M/00000020"
seal $M
descriptor "$M/00000020"
bounded "include cycle of 20: restore" 1 restore
said "include cycle of 20" "cycle"

# ---- work and memory bounded by what is read, not by what is named ----
# A file's v0.2 indirect data lists, each naming the next 20,000 times:
# 8 x 10^12 references from a store of a few KB.  The lists one file may
# read share 64 MiB.
setup listbomb
EMPTY=$(printf '' | sha256sum | cut -c1-64)
python3 -c 'import sys; sys.stdout.write(" ".join(["zero[0]"] * 20000))' >"$W/$D/00000000"
for i in 1 2; do
	python3 -c 'import sys; sys.stdout.write(" ".join([sys.argv[1]] * 20000))' \
		"@$D/$(printf %08x $((i - 1)))" >"$W/$D/$(printf %08x $i)"
done
{
	printf 'name: bomb\nchecksum: sha256=%s\ndata: @%s/00000002\nmode: 0644\nsize: 0\ntype: f\n\n' "$EMPTY" $D
	fstanza ok.txt 3 fine
} | finish
bounded "indirect lists naming each other 20,000 times: restore" 1 restore
said "indirect lists naming each other" "bomb.*indirect data lists of one file exceed 64 MiB"
test_eq "... the good file is restored" "$(cat "$DEST/ok.txt" 2>/dev/null)" fine

# Includes nested 6 deep, each of a 24 MiB object: the objects held at
# once share 64 MiB, not 64 MiB per level.
setup heldincludes
for i in 1 2 3 4 5 6; do
	{ head -c $((24 << 20)) /dev/zero | tr '\0' '\n'; printf '@%s/%08x\n' $M $((i + 1)); } \
		>"$W/$M/$(printf %08x $i)"
done
fstanza ok.txt 0 fine >"$W/$M/00000007"
printf '@%s/00000001\n' $M >"$W/$M/00000000"
seal $M
seal $D
descriptor "$M/00000000"
bounded "includes 6 deep of 24 MiB objects: restore" 1 restore
said "includes 6 deep of 24 MiB objects" "metadata objects included at once exceed 64 MiB"

# An object that includes a slice of itself: the same object, whatever the
# range, is a cycle (docs/format.md), caught at once rather than after 2^26
# includes.
setup selfslice
{
	fstanza ok.txt 0 fine
	printf '@%s/00000000[0+60]\n@%s/00000000[0+60]\n' $M $M
} >"$W/$M/00000000"
printf '@%s/00000000\n' $M >"$W/$M/00000001"
seal $M
seal $D
descriptor "$M/00000001"
bounded "an object including slices of itself: restore" 1 restore
said "an object including slices of itself" "cycle at $M/00000000"

# Two fifos 80,000 directories deep, named 40 times each in turn: the
# check that no ancestor is a non-directory read each name's ancestors
# one query at a time (80,000 queries comparing prefixes up to 160 KB:
# 1 s an entry), now one pass over the name.
setup deepnames
python3 -c 'import sys
a = "/".join(["a"] * 80000) + "/x"; b = "/".join(["b"] * 80000) + "/y"
for i in range(40):
    for n in (a, b):
        sys.stdout.write("name: %s\ntype: p\nmode: 0644\n\n" % n)
sys.stdout.write("name: ok\ntype: p\nmode: 0644\n\n")' | finish nodata
bounded "two names 80,000 deep, 40 times each: restore" 1 restore
said "two names 80,000 deep" "occurs twice in the snapshot"
test_eq "... the first of each is restored" \
	"$(find "$DEST" -type p | wc -l)" 3
rm -rf "$DEST"

# ---- what restore says and does with odd values ----
# Control bytes in names and references reach no terminal raw.
setup escapes
{
	fstanza "$(printf 'esc\033]0;TITLE\007\033[2J/../x')" 0 a
	printf 'name: t\ntype: \033\n\n'
	printf 'name: f\ndata: \033[2Jjunk\nmode: 0644\nsize: 1\ntype: f\n\n'
	fstanza ok.txt 1 fine
} | finish
bounded "control bytes in names, a type and a reference: restore" 1 restore
test_eq "... no control byte is printed" "$(tr -d '\n\t' <"$C.out" | tr -dc '\000-\037\177' | wc -c)" 0
said "... they are shown escaped" 'esc\\x1b\]0;TITLE\\x07'
said "... in a reference too" "malformed object reference '\\\\x1b\\[2Jjunk'"
test_eq "... the good file is restored" "$(cat "$DEST/ok.txt" 2>/dev/null)" fine

# Numbers out of range are said and left out, not wrapped.
setup numbers
{
	printf 'name: m1\nchecksum: sha256=%s\ndata: %s\nmode: -1\nsize: 1\ntype: f\nmtime: 1600000000\n\n' \
		"$(printf 1 | sha256sum | cut -c1-64)" "$(data 0 1; ref_of $D 0)"
	printf 'name: u1\nchecksum: sha256=%s\ndata: %s\nmode: 0640\nsize: 1\ntype: f\nuser: 4294967295 (x)\n\n' \
		"$(printf 1 | sha256sum | cut -c1-64)" "$(ref_of $D 0)"
	printf 'name: dev1\ntype: c\ndevice: 4294967297/3\nmode: 0600\n\n'
	fstanza ok.txt 1 fine
} | finish
bounded "a mode of -1, a user of 2^32-1, a major of 2^32+1: restore" 1 restore
said "a mode of -1" "'m1': ignoring its malformed mode '-1'"
said "a user of 2^32-1" "'u1': ignoring its malformed user '4294967295 \\(x\\)'"
test_eq "... m1 is restored without the mode (no setuid, setgid, sticky)" \
	"$(stat -c %a "$DEST/m1" 2>/dev/null | grep -c '^[0-7][0-7][0-7]$')" 1
test_eq "... u1 is restored with its mode" "$(stat -c %a "$DEST/u1" 2>/dev/null)" 640
if [ "$(id -u)" = 0 ]; then
	said "a major of 2^32+1" "dev1.*device without a valid 'device' field"
	test_eq "... and no device is made" "$(ls "$DEST" | grep -c dev1)" 0
else
	skip "a major of 2^32+1" "not root: devices are not made"
	skip "... and no device is made" "not root"
fi

# ---- a tar member larger than its segment ----
setup bigmember
{ fstanza ok.txt 0 fine; } | finish
{
	tar_header "$D/00000000" $((1 << 40))
	head -c 4096 /dev/urandom
} | zstd -q -c >"$S/$D.tar.zst"
bounded "1 TiB tar member in a small segment: restore" 1 restore
said "tar member larger than the segment" "ok.txt.*$D.*(truncated|exceeds|limit|short|end)"

# ---- a descriptor of 1 GiB (sparse), and one with a valid head ----
setup bigdesc
{ fstanza ok.txt 0 fine; } | finish
truncate -s 1G "$S/snapshot-big.lbs"
bounded "1 GiB descriptor: read-snapshots" 1 U --store="$S" read-snapshots big
said "1 GiB descriptor" "big.*(too large|limit|exceeds|long)"
bounded "1 GiB descriptor: restore" 1 U --store="$S" restore-snapshot big "$DEST"
bounded "1 GiB descriptor: list-snapshots" 0 U --store="$S" list-snapshots
{ cat "$S/snapshot-t.lbs"; head -c $((20 << 20)) /dev/zero | tr '\0' ' '; } >"$S/snapshot-big2.lbs"
bounded "20 MiB descriptor with a valid head: restore" 1 U --store="$S" restore-snapshot big2 "$DEST"
bounded "a sane snapshot beside them still verifies" 0 U --store="$S" verify-snapshots t

# ---- invalid UTF-8 and NUL bytes ----
setup bytes
{
	fstanza "$(printf 'latin1-\xe9\xff\xfe')" 0 bytes1
	fstanza 'nul%00name' 1 bytes2
	printf 'name: badutf8value\nmode: 0644\ntype: f\nsize: 0\nuser: \xc3\x28\nmtime: 1600000000\n\n'
	fstanza ok.txt 2 fine
} | finish
bounded "invalid UTF-8 and an escaped NUL in metadata: restore" 1 restore
said "an escaped NUL in a name" "nul%00name.*NUL"
test_eq "... the good file is restored" "$(cat "$DEST/ok.txt" 2>/dev/null)" fine
test_eq "... the latin-1 name is restored byte for byte" \
	"$(cat "$DEST/$(printf 'latin1-\xe9\xff\xfe')" 2>/dev/null)" bytes1
test_eq "... no name with a NUL becomes a shorter name" "$(ls "$DEST" | grep -c '^nul')" 0
for raw in 'name: rawnul\0after\nmode: 0644\ntype: f\nsize: 0\n\n' \
	'name: nulvalue\nmode: 06\00044\ntype: f\nsize: 0\n\n' \
	'name: nulcont\nmode: 0644\ntype: f\nsize: 0\nx-note: a\n \0b\n\n'; do
	setup "rawnul-$(printf "$raw" | sed -n '1s/name: //p' | tr -d '\0')"
	{ printf "$raw"; fstanza ok.txt 0 fine; } | finish
	bounded "a raw NUL in metadata ($(printf "$raw" | head -1 | tr -d '\0')): restore" 1 restore
	said "a raw NUL in metadata" "NUL"
	test_eq "... no shortened name is restored" "$(ls "$DEST" 2>/dev/null | grep -c '^rawnul$\|^nul')" 0
done
for field in Format Root Segments; do
	setup "descnul-$field"
	{ fstanza ok.txt 0 fine; } | finish
	sed -i "s/^$field: \?/&\x00/; s/^\(    $D\)/\1\x00/" "$S/snapshot-t.lbs"
	bounded "NUL in the descriptor's $field: restore" 1 restore
	grep -q . "$C.out"
	test_eq "NUL in the descriptor's $field: a message" $? 0
done
setup descutf8
{ fstanza ok.txt 0 fine; } | finish
sed -i "s/^Producer: .*/Producer: \xff\xfe\xc3\x28/; s/^Date: .*/Date: \xe9\xe9/" "$S/snapshot-t.lbs"
bounded "invalid UTF-8 in descriptor values: list-snapshots" 0 U --store="$S" list-snapshots
bounded "invalid UTF-8 in descriptor values: read-snapshots" 0 U --store="$S" read-snapshots t
printf 'Format: Cumulus Snapshot v0.11\nRoot: \xff\xfe/00000001\nSegments: \xff\n' >"$S/snapshot-u.lbs"
bounded "invalid UTF-8 in the root reference: restore" 1 U --store="$S" restore-snapshot u "$C/dest-u"

# ---- a local database pointing a block at the wrong object ----
C=$T/wrongdb
mkdir -p "$C/src/tree"
head -c 1048576 /dev/urandom >"$C/src/tree/a"
head -c 1048576 /dev/urandom >"$C/src/tree/b"
bk() { (cd "$C/src" && "$CUMULUS" --dest="$C/store" --localdb="$C/db" tree); }
test_ok "wrong database: first backup" bk
# Swap the objects of the two blocks: the database now says a's content
# lives where b's does.
set -- $(sqlite3 -separator ' ' "$C/db/localdb.sqlite" "SELECT blockid, segmentid, object
	FROM block_index WHERE size = 1048576 ORDER BY blockid LIMIT 2")
test_eq "wrong database: two 1 MiB blocks to swap" "$#" 6
sqlite3 "$C/db/localdb.sqlite" "
	UPDATE block_index SET object = 'x' WHERE blockid = $1;
	UPDATE block_index SET segmentid = $2, object = '$3' WHERE blockid = $4;
	UPDATE block_index SET segmentid = $5, object = '$6' WHERE blockid = $1;"
test_eq "wrong database: the blocks are swapped" $? 0
cp "$C/src/tree/a" "$C/src/tree/copy-of-a"
U --localdb="$C/db" check-db >"$C/checkdb.out" 2>&1
diag "check-db on the altered database: exit $? $(head -1 "$C/checkdb.out")"
bk >"$C/bk.out" 2>&1
bkrc=$?
if [ $bkrc -ne 0 ] && [ $bkrc -ne 3 ]; then
	test_ok "wrong database: the backup refuses (exit $bkrc)" grep -q . "$C/bk.out"
else
	s=$(sed -n 's/^Snapshot \([^:]*\):.*/\1/p' "$C/bk.out")
	test_fail "wrong database: verify-snapshots catches the wrong data" \
		U --store="$C/store" verify-snapshots "$s"
	grep -q 'copy-of-a' "$T/.out"
	test_eq "wrong database: verify names the file" $? 0
	test_fail "wrong database: restore reports the damaged file" \
		U --store="$C/store" restore-snapshot "$s" "$C/rs"
	if [ -e "$C/rs/tree/copy-of-a" ]; then
		cmp -s "$C/rs/tree/copy-of-a" "$C/src/tree/a"
		test_eq "wrong database: no wrong data under the file's name" $? 0
	else
		test_ok "wrong database: the damaged file is not left" true
	fi
fi
done_testing
