#!/bin/bash
# Sub-file incrementals: after an edit to a large file, a backup stores
# only about the changed bytes (slices of the old objects describe the
# rest), for an insertion, a deletion, an overwrite, an append, a
# truncation and a file shrunk to zero; every snapshot restores bit-exactly.
# Slices count towards their objects' utilisation, expired objects are
# never sliced, and --rebuild-statcache gives stored blocks signatures.
. "$(dirname "$0")/../lib.sh"

MiB=1048576
# Seeded data (prng, lib.sh): how much an edit adds depends on where the
# chunks fall, and random data from /dev/urandom sometimes put the
# overwrite case over its bound.
mkdir -p "$T/src/tree" "$T/copies"
f=$T/src/tree/big
prng 1 $((40 * MiB)) >"$f"
cd "$T/src" || exit 1

seg_bytes() {
	find "$T/store" -type f -name '*.tar*' -printf '%s\n' 2>/dev/null |
		awk '{ s += $1 } END { print s + 0 }'
}

# backup NAME MAXBYTES: back up, keep a copy of the file as it was, and
# check that the store grew by less than MAXBYTES.
n=0
backup() {
	local before grew new
	before=$(seg_bytes)
	n=$((n + 1))
	cp "$f" "$T/copies/$n"
	test_ok "$1: backup" "$CUMULUS" --dest="$T/store" --localdb="$T/db" tree
	cp "$T/.stdout" "$T/summary"
	snaps[$n]=$(sed -n 's/^Snapshot \([^:]*\):.*/\1/p' "$T/summary")
	grew=$(($(seg_bytes) - before))
	new=$(sed -n 's/^Snapshot .* \([0-9][0-9.]*\) MiB new.*/\1/p' "$T/summary")
	test_ok "$1: store grew by $grew bytes ($new MiB new), less than $2" \
		test "$grew" -lt "$2"
}

backup "first backup" $((42 * MiB))
test_ok "... which stored the file" test "$(seg_bytes)" -gt $((40 * MiB))

# 1 KiB inserted in the middle, rewriting the file in place.
{ head -c $((20 * MiB)) "$f"; prng 2 1024
  tail -c +$((20 * MiB + 1)) "$f"; } >"$T/tmp" && cat "$T/tmp" >"$f"
backup "insert 1 KiB" $((256 * 1024))
"$CUMULUS_UTIL" --store="$T/store" read-metadata "${snaps[$n]}" |
	awk '/^name: tree\/big$/ { p = 1 } p && /^$/ { exit } p' >"$T/stanza"
test_ok "... described with slices of old objects" \
	grep -Eq '/[0-9a-f]+\[[0-9]+\+[0-9]+\]' "$T/stanza"

# 100 KiB deleted at 5 MiB.
{ head -c $((5 * MiB)) "$f"; tail -c +$((5 * MiB + 102400 + 1)) "$f"; } \
	>"$T/tmp" && cat "$T/tmp" >"$f"
backup "delete 100 KiB" $((256 * 1024))

# Slices are accounted: the bytes this snapshot references add up to at
# least the file size (the new objects alone are a few KiB).
if command -v sqlite3 >/dev/null; then
	used=$(sqlite3 "$T/db/localdb.sqlite" 'SELECT sum(bytes_referenced)
		FROM segment_utilization WHERE snapshotid =
		(SELECT max(snapshotid) FROM snapshots)')
	size=$(stat -c %s "$f")
	test_ok "slices count towards utilisation ($used bytes referenced, file $size)" \
		test "${used:-0}" -ge "$size" -a "${used:-0}" -lt $((size + MiB))
else
	skip "slices count towards utilisation" "no sqlite3"
fi

# 16 KiB overwritten in place at 30 MiB, and at 7 other places.
for off in 30 1 3 9 14 22 27 33; do
	prng $((100 + off)) 16384 |
		dd of="$f" bs=1024 seek=$((off * 1024)) count=16 conv=notrunc \
			iflag=fullblock status=none
done
backup "overwrite 8 x 16 KiB" $((512 * 1024))

prng 3 $MiB >>"$f"
backup "append 1 MiB" $((MiB + 256 * 1024))

truncate -s $((25 * MiB + 12345)) "$f"
backup "truncate to 25 MiB" $((128 * 1024))

# Unchanged content (a touch) references the same objects: nothing new.
touch "$f"
backup "touch only" 16384
test_ok "... nothing new" grep -q ' 0\.0 MiB new' "$T/summary"

: >"$f"
backup "shrink to zero" 16384

for i in $(seq 1 $n); do
	rm -rf "$T/r"
	test_ok "snapshot $i (${snaps[$i]}) restores" "$CUMULUS_UTIL" \
		--store="$T/store" restore-snapshot "${snaps[$i]}" "$T/r"
	test_ok "... bit-exactly" cmp "$T/r/tree/big" "$T/copies/$i"
done
test_ok "all snapshots verify" "$CUMULUS_UTIL" --store="$T/store" \
	verify-snapshots "${snaps[@]:1}"

# The Perl restorer (contrib/restore.pl) reads the slices too.
if command -v zstd >/dev/null && command -v perl >/dev/null; then
	desc=snapshot-${snaps[2]}.lbs
	mkdir -p "$T/w" && cp "$T/store/$desc" "$T/w/"
	for seg in $(sed -n '/^Segments:/,$p' "$T/w/$desc" |
		grep -Eo '^ +[0-9a-f-]{36}'); do
		zstd -dc "$T/store/$seg.tar.zst" | (cd "$T/w" && tar -xf -)
	done
	rm -rf "$T/r"
	test_ok "restore.pl restores the insert snapshot" perl \
		"$CUMULUS_TOP/contrib/restore.pl" "$T/w/$desc" "$T/r"
	test_ok "... bit-exactly" cmp "$T/r/tree/big" "$T/copies/2"
else
	skip "restore.pl restores the insert snapshot" "no zstd or perl"
fi

# Expired objects are never sliced: with every object expired, the file is
# stored again in full, and restores.
if command -v sqlite3 >/dev/null; then
	cat "$T/copies/5" >"$f"
	sqlite3 "$T/db/localdb.sqlite" 'UPDATE block_index SET expired = 0'
	backup "everything expired" $((42 * MiB))
	grew=$(grep -o '[0-9.]* MiB new' "$T/summary" | cut -d' ' -f1)
	test_ok "... the file was stored again ($grew MiB new)" \
		awk -v g="$grew" 'BEGIN { exit !(g >= 40) }'
	rm -rf "$T/r"
	test_ok "... and restores" "$CUMULUS_UTIL" --store="$T/store" \
		restore-snapshot "${snaps[$n]}" "$T/r"
	test_ok "... bit-exactly" cmp "$T/r/tree/big" "$T/copies/$n"

	# Objects without signatures (written before sub-file incrementals)
	# get them from --rebuild-statcache; nothing is stored again.  (A
	# block is found whole only where the file has it at a multiple of
	# 1 MiB, as blocks were stored before: big is left out.)
	: >"$f"
	prng 4 500000 >"$T/src/tree/small"
	backup "small file" $MiB
	sqlite3 "$T/db/localdb.sqlite" 'DELETE FROM subblock_signatures;
		DELETE FROM chunk_index'
	test_ok "--rebuild-statcache" "$CUMULUS" --dest="$T/store" \
		--localdb="$T/db" --rebuild-statcache tree
	cp "$T/.stdout" "$T/summary"
	test_ok "... stored nothing again" grep -q ' 0\.0 MiB new' "$T/summary"
	sigs=$(sqlite3 "$T/db/localdb.sqlite" "SELECT count(*) FROM
		subblock_signatures WHERE algorithm = 'gear-8k/sha256'")
	chunks=$(sqlite3 "$T/db/localdb.sqlite" 'SELECT count(*) FROM chunk_index')
	test_ok "... and added signatures ($sigs objects, $chunks chunks)" \
		test "$sigs" -ge 1 -a "$chunks" -ge 20
else
	skip "expired objects are not sliced" "no sqlite3"
	skip "--rebuild-statcache adds signatures" "no sqlite3"
fi
done_testing
