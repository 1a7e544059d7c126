#!/bin/bash
# The restore walker keeps the directories of the last path open and
# re-opens only what the next path does not share (32 levels, then only
# the deepest).  Trees deeper than that, paths that climb back up, jump
# between siblings and diverge part way down restore exactly, with and
# without writer threads, after two backups whose files sit in different
# segments.
. "$(dirname "$0")/../lib.sh"

U() { "$CUMULUS_UTIL" "$@"; }
src=$T/src
t=$src/tree
deep=$t/a
for i in $(seq 1 40); do
	deep=$deep/l$i
	mkdir -p "$deep"
	if [ $((i % 5)) -eq 0 ]; then
		echo "level $i" >"$deep/f"
		mkdir -p "$deep-side"
		echo "side $i" >"$deep-side/g"
	fi
done
echo bottom >"$deep/bottom"
# a second chain sharing the first 20 levels, then diverging
other=$t/a
for i in $(seq 1 20); do other=$other/l$i; done
for i in $(seq 21 45); do
	other=$other/m$i
	mkdir -p "$other"
done
echo other >"$other/end"
for i in $(seq 1 30); do
	mkdir -p "$t/flat/d$i"
	echo "flat $i" >"$t/flat/d$i/x"
done
echo top >"$t/top"

mkdir -p "$T/store"
test_ok "first backup" sh -c "cd '$src' && '$CUMULUS' --dest='$T/store' \
	--localdb='$T/db' tree"
# New files all over the tree: the second snapshot's files come from two
# segments, so the restore jumps between directories.
for i in 10 25 40; do
	p=$t/a
	for j in $(seq 1 $i); do p=$p/l$j; done
	echo "new $i" >"$p/new"
done
echo "new other" >"$other/new"
for i in 3 17 29; do echo "new flat $i" >"$t/flat/d$i/new"; done
sleep 1
test_ok "second backup" sh -c "cd '$src' && '$CUMULUS' --dest='$T/store' \
	--localdb='$T/db' tree"
snap=$(U --store="$T/store" list-snapshots | tail -1)
make_manifest "$t" >"$T/want.tsv"
for n in 1 2; do
	test_ok "restore --threads=$n" \
		U --store="$T/store" restore-snapshot --threads=$n "$snap" "$T/r$n"
	make_manifest "$T/r$n/tree" >"$T/got$n.tsv"
	test_ok "... restores the deep tree exactly" \
		compare_manifests "$T/want.tsv" "$T/got$n.tsv"
done
test_eq "the bottom of the 40-level chain" "$(cat "$T/r2/tree/a/l1/l2/l3/l4/l5/l6/l7/l8/l9/l10/l11/l12/l13/l14/l15/l16/l17/l18/l19/l20/l21/l22/l23/l24/l25/l26/l27/l28/l29/l30/l31/l32/l33/l34/l35/l36/l37/l38/l39/l40/bottom")" bottom
done_testing
