#!/bin/bash
# verify-snapshots --read-data-subset=N%: a scrub checks ceil(N%) of the
# segments (SHA-1 against .sha1sums, every object decoded), remembers in the
# local database what it checked, so successive runs cover every segment
# before repeating one; it finds a flipped byte, a truncated segment and a
# missing one, and refuses a bad percentage.
. "$(dirname "$0")/../lib.sh"

U() { "$CUMULUS_UTIL" "$@"; }
mkdir -p "$T/src/tree"
for i in 1 2 3 4 5; do head -c 150000 /dev/urandom >"$T/src/tree/f$i"; done
(cd "$T/src" && "$CUMULUS" --dest="$T/store" --localdb="$T/db" --segment-size=64K tree) >/dev/null 2>&1
head -c 150000 /dev/urandom >"$T/src/tree/f6"
(cd "$T/src" && "$CUMULUS" --dest="$T/store" --localdb="$T/db" --segment-size=64K tree) >/dev/null 2>&1
nseg=$(ls "$T/store" | grep -c '\.tar')
test_ok "two snapshots, several segments ($nseg)" test "$nseg" -ge 4
scrub() { U --store="$T/store" --localdb="$T/db" verify-snapshots --read-data-subset="$1"; }

# 25% per run: ceil(n/4) segments each time; four runs cover them all.
per=$(((nseg * 25 + 99) / 100))
: >"$T/seen"
for run in 1 2 3 4; do
	test_ok "scrub run $run" scrub 25%
	test_eq "run $run checks $per segments" "$(grep -c '^OK ' "$T/.stdout")" "$per"
	grep '^OK ' "$T/.stdout" | cut -d' ' -f2 >>"$T/seen"
done
test_eq "four runs of 25% cover every segment" "$(sort -u "$T/seen" | wc -l)" "$nseg"
test_eq "... and none twice before all were checked" \
	"$(head -n "$nseg" "$T/seen" | sort | uniq -d | wc -l)" 0
test_ok "the database remembers the checks" \
	test "$(sqlite3 "$T/db/localdb.sqlite" 'SELECT count(*) FROM scrub_checked')" -eq "$nseg"
test_ok "check-db accepts the scrub table" U --localdb="$T/db" check-db
test_ok "100% checks everything" scrub 100
grep -q "checked $nseg of $nseg segments" "$T/.stdout"
test_eq "... and says so" $? 0
test_ok "without a database: the first N% by name" \
	U --store="$T/store" verify-snapshots --read-data-subset=10%

# Damage: the scrub must find each.
segs=$(ls "$T/store" | grep '\.tar' | sort)
s1=$(echo "$segs" | sed -n 1p) s2=$(echo "$segs" | sed -n 2p) s3=$(echo "$segs" | sed -n 3p)
size=$(stat -c %s "$T/store/$s1")
# Invert the byte, so it changes whatever it was (writing a fixed value left
# the segment intact one time in 256).
byte=$(od -An -tu1 -j $((size / 2)) -N1 "$T/store/$s1" | tr -d ' ')
printf "\\$(printf '%03o' $((255 - byte)))" |
	dd of="$T/store/$s1" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
test_ok "the byte changed" test "$(od -An -tu1 -j $((size / 2)) -N1 "$T/store/$s1" | tr -d ' ')" -eq $((255 - byte))
test_exit "a flipped byte: exit 1" 1 scrub 100%
grep -q "${s1%%.*}.*sha1 .*sha1sums says" "$T/.stderr"
test_eq "... named with the checksum mismatch" $? 0
truncate -s $(($(stat -c %s "$T/store/$s2") / 2)) "$T/store/$s2"
rm "$T/store/$s3"
test_exit "truncated and missing segments: exit 1" 1 scrub 100%
grep -q "${s2%%.*}" "$T/.stderr" && grep -q "${s3%%.*}.*missing" "$T/.stderr"
test_eq "... both named" $? 0
grep -q "3 bad" "$T/.stdout"
test_eq "... three bad in the summary" $? 0

for bad in 0 101 x 5%% -3; do
	test_exit "--read-data-subset=$bad is a usage error" 2 scrub "$bad"
done
done_testing
