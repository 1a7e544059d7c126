#!/bin/bash
# Stores written by the original programs (tests/golden): listing,
# verification, and restores that reproduce each snapshot's manifest
# exactly (contents, types, modes, mtimes of everything including
# directories and symlinks, hard-link groups, awkward names), with the
# sparse file restored with holes.
. "$(dirname "$0")/../lib.sh"

for fixture in "$CUMULUS_TOP"/tests/golden/*/; do
	fixture=${fixture%/}
	name=${fixture##*/}
	store=$fixture/store
	[ -d "$store" ] && [ -d "$fixture/manifests" ] || continue
	want=$(cd "$fixture/manifests" && ls | sed -n 's/\.tsv$//p' | sort)
	test_ok "$name: list-snapshots" "$CUMULUS_UTIL" --store="$store" \
		list-snapshots
	test_eq "$name: snapshot names" "$(cat "$T/.stdout")" "$want"
	test_ok "$name: list-snapshot-sizes" "$CUMULUS_UTIL" \
		--store="file://$store" list-snapshot-sizes
	test_eq "$name: one size line per snapshot" \
		"$(grep -c ' segments)$' "$T/.stdout")" "$(echo "$want" | wc -l)"
	for snap in $want; do
		test_ok "$name/$snap: verify-snapshots" "$CUMULUS_UTIL" \
			--store="$store" verify-snapshots "$snap"
		test_ok "$name/$snap: read-metadata" "$CUMULUS_UTIL" \
			--store="$store" read-metadata "$snap"
		test_ok "$name/$snap: read-snapshots" "$CUMULUS_UTIL" \
			--store="$store" read-snapshots "$snap"
		dest=$T/restore-$name-$snap
		test_ok "$name/$snap: restore-snapshot" "$CUMULUS_UTIL" \
			--store="$store" restore-snapshot "$snap" "$dest"
		make_manifest "$dest/tree" >"$T/got.tsv"
		test_ok "$name/$snap: restored tree matches the manifest" \
			compare_manifests "$fixture/manifests/$snap.tsv" "$T/got.tsv"
		[ $_rc -eq 0 ] || diff <(normalize_manifest \
			"$fixture/manifests/$snap.tsv") \
			<(normalize_manifest "$T/got.tsv") | head -20 | sed 's/^/# /'
		blocks=$(stat -c %b "$dest/tree/sparse.img" 2>/dev/null || echo 99999)
		test_ok "$name/$snap: sparse.img restored with holes ($blocks blocks)" \
			test "$blocks" -lt 2048
		if [ "$(id -u)" = 0 ]; then
			test_eq "$name/$snap: ownership restored" \
				"$(find "$dest/tree" ! -user 0 -o ! -group 0 | wc -l)" 0
		else
			skip "$name/$snap: ownership restored" "not root"
		fi
		chmod -R u+rwx "$dest"
		test_fail "$name/$snap: restore into a non-empty directory is refused" \
			"$CUMULUS_UTIL" --store="$store" restore-snapshot "$snap" "$dest"
		test_ok "$name/$snap: ... unless --force is given, for one path" \
			"$CUMULUS_UTIL" --store="$store" restore-snapshot --force \
			"$snap" "$T/part-$name-$snap" tree/hard
		test_eq "$name/$snap: a selected path brings only its subtree" \
			"$(cd "$T/part-$name-$snap" && find . | sort | tr '\n' ' ')" \
			". ./tree ./tree/hard ./tree/hard/pair-a ./tree/hard/pair-b ./tree/hard/sub ./tree/hard/sub/triple-3 ./tree/hard/triple-1 ./tree/hard/triple-2 "
		chmod -R u+rwx "$dest" "$T/part-$name-$snap"
		rm -rf "$dest" "$T/part-$name-$snap"
	done
	test_ok "$name: object-sums" "$CUMULUS_UTIL" --store="$store" object-sums
	cp "$T/.stdout" "$T/sums"
	test_ok "$name: object-sums lines have the expected form" \
		grep -Eq '^[0-9a-f-]{36}/[0-9a-f]{8}:[0-9]+:sha256=[0-9a-f]{64}$' \
		"$T/sums"
	test_eq "$name: every line has that form" \
		"$(grep -Evc '^[0-9a-f-]{36}/[0-9a-f]{8}:[0-9]+:sha256=[0-9a-f]{64}$' \
		"$T/sums")" 0
done

test_exit "unknown command: usage error" 2 "$CUMULUS_UTIL" frobnicate
test_ok "... and it is named" grep -q 'Unknown command: frobnicate' "$T/.out"
test_exit "clean is not available" 1 "$CUMULUS_UTIL" clean
test_ok "--help lists commands" "$CUMULUS_UTIL" --help
cp "$T/.stdout" "$T/help"
test_ok "... restore-snapshot among them" grep -q restore-snapshot "$T/help"

done_testing
