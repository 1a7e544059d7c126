#!/bin/bash
# Continuing from the original programs' local databases (tests/golden):
# the newest fixture snapshot is restored, and backed up again with a copy
# of the fixture's localdb into a copy of its store.  The blocks are found
# in the database by the original's checksums, so (almost) no data is
# stored again, and the new snapshot restores to the fixture's manifest.
# The 0.9 database is migrated, after a copy is kept.
. "$(dirname "$0")/../lib.sh"

KiB=1024
for fixture in head-bzip2 v09-bzip2; do
	fx=$CUMULUS_TOP/tests/golden/$fixture
	if [ ! -d "$fx/store" ] || [ ! -d "$fx/localdb" ]; then
		skip "$fixture: continue from the fixture database" "fixture missing"
		continue
	fi
	want=$(cd "$fx/manifests" && ls | sed -n 's/\.tsv$//p' | sort | tail -1)
	work=$T/$fixture
	mkdir -p "$work"
	cp -a "$fx/store" "$work/store"
	cp -a "$fx/localdb" "$work/db"
	chmod -R u+w "$work"
	test_ok "$fixture: restore $want from the fixture store" "$CUMULUS_UTIL" \
		--store="$fx/store" restore-snapshot "$want" "$work/src"
	make_manifest "$work/src/tree" >"$work/src.tsv"
	test_ok "$fixture: restored tree matches the fixture manifest" \
		compare_manifests "$fx/manifests/$want.tsv" "$work/src.tsv"

	seg_bytes() {
		find "$work/store" -type f -name '*.tar*' -printf '%s\n' |
			awk '{s+=$1} END {print s+0}'
	}
	before=$(seg_bytes)
	segs_before=$(cd "$work/store" && find . -name '*.tar*' | sort)
	tree_bytes=$(du -sb --apparent-size "$work/src/tree" | cut -f1)
	cd "$work/src" || exit 1
	# Files the original stored as sub-file incrementals (data refs to
	# byte ranges, "[a+b]"): their changed blocks were never stored whole,
	# so no block checksum can find them.  Their chunks are found through
	# the original's lbfs-4096 signatures instead: only the chunks next to
	# the edits (at most 64 KiB per file) are stored again.  Everything
	# else must be found in the database.
	"$CUMULUS_UTIL" --store="$fx/store" read-metadata "$want" |
		awk 'BEGIN { RS = "" } /\[[0-9]+\+[0-9]+\]/ {
			n = ""; s = 0; k = split($0, L, "\n")
			for (i = 1; i <= k; i++) {
				if (L[i] ~ /^name: /) n = substr(L[i], 7)
				if (L[i] ~ /^size: /) s = substr(L[i], 7)
			}
			print n "\t" s }' >"$work/subfile"
	allowed=$(awk -F'\t' '{ s += ($2 < 65536 ? $2 : 65536) } END { print s + 0 }' "$work/subfile")
	diag "$fixture: sub-file incremental files: $(cut -f1 "$work/subfile" | tr '\n' ' ')($allowed bytes)"
	test_ok "$fixture: backup with the fixture's localdb" "$CUMULUS" -v \
		--dest="$work/store" --localdb="$work/db" --tmpdir="$T" tree
	cp "$T/.stdout" "$work/summary"
	cp "$T/.stderr" "$work/stderr"
	cd "$T" || exit 1
	tail -1 "$work/summary" | sed 's/^/# /'
	sed 's/^/# /' "$work/stderr"
	awk '/^    \[(new|partial)\]$/ { print prev } { prev = $0 }' "$work/summary" |
		sort >"$work/read-new"
	test_eq "$fixture: only sub-file incremental files have new data" \
		"$(cat "$work/read-new")" "$(cut -f1 "$work/subfile" | sort)"
	snap=$(sed -n 's/^Snapshot \([^:]*\):.*/\1/p' "$work/summary")
	test_ok "$fixture: snapshot named in the summary" test -n "$snap"
	new=$(sed -n 's/^Snapshot .* \([0-9][0-9.]*\) MiB new.*/\1/p' "$work/summary")
	test_ok "$fixture: summary reports (almost) no new data ($new MiB new, $allowed bytes allowed)" \
		awk -v n="${new:-999}" -v a="$allowed" \
		'BEGIN { exit !(n * 1048576 <= a + 0.05 * 1048576) }'
	grew=$(($(seg_bytes) - before))
	new_segs=$(comm -13 <(echo "$segs_before") \
		<(cd "$work/store" && find . -name '*.tar*' | sort) | wc -l)
	test_ok "$fixture: store grew by $grew bytes in $new_segs segments ($tree_bytes bytes in the tree)" \
		test "$grew" -lt $((allowed + 64 * KiB))
	if [ "$fixture" = v09-bzip2 ]; then
		test_ok "$fixture: a copy of the 0.9 database is kept" \
			test -s "$work/db/localdb.sqlite.pre-0.11-backup"
		test_eq "$fixture: ... identical to the fixture's" \
			"$(cmp "$work/db/localdb.sqlite.pre-0.11-backup" \
			"$fx/localdb/localdb.sqlite" && echo same)" same
		test_ok "$fixture: the database is migrated (schema_version)" \
			sqlite3 "$work/db/localdb.sqlite" 'select * from schema_version'
	fi
	test_ok "$fixture: new snapshot verifies" "$CUMULUS_UTIL" \
		--store="$work/store" verify-snapshots "$snap"
	test_ok "$fixture: old snapshots still verify" "$CUMULUS_UTIL" \
		--store="$work/store" verify-snapshots $(cd "$fx/manifests" && ls | sed -n 's/\.tsv$//p')
	test_ok "$fixture: new snapshot restores" "$CUMULUS_UTIL" \
		--store="$work/store" restore-snapshot "$snap" "$work/r"
	make_manifest "$work/r/tree" >"$work/got.tsv" 2>&1
	test_ok "$fixture: ... and matches the fixture manifest of $want" \
		compare_manifests "$fx/manifests/$want.tsv" "$work/got.tsv"
	[ $_rc -eq 0 ] || compare_manifests "$fx/manifests/$want.tsv" \
		"$work/got.tsv" | head -20 | sed 's/^/# /'
	test_ok "$fixture: sparse.img restored with holes" \
		test "$(stat -c %b "$work/r/tree/sparse.img" 2>/dev/null || echo 99999)" -lt 2048
	# a second backup: the statcache written by the first makes it cheap
	cd "$work/src" || exit 1
	test_ok "$fixture: a second backup" "$CUMULUS" \
		--dest="$work/store" --localdb="$work/db" --tmpdir="$T" tree
	cp "$T/.stdout" "$work/summary2"
	cd "$T" || exit 1
	test_ok "$fixture: ... stores no data (0.0 MiB new)" \
		grep -q ' 0\.0 MiB new' "$work/summary2"
	chmod -R u+rwx "$work"
done

done_testing
