#!/bin/bash
# bench/space.sh: the figures of issue 4 ("Space").
#   1. store size over 12 snapshots of a changing tree, with and without
#      cleaning (the cycle of tests/t/t5000-space.sh, scaled up: forget
#      --keep-last 3, prune-db, clean, gc every 4th round);
#   2. rebuild-db time against the initial backup time on a tree
#      (SPACE_TREE, default /var/tmp/rt/src/linux-source-6.1, read only),
#      and the unchanged backup after rebuild-db (files read, data stored).
# Usage: bash bench/space.sh [BUILD_DIR]   (default build)
# Environment: SPACE_DIR work area (default /var/tmp/cumulus-space), removed
# at the start; SPACE_TREE as above ("" to skip part 2).
set -eu -o pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=$ROOT/${1:-build}
W=${SPACE_DIR:-/var/tmp/cumulus-space}
TREE=${SPACE_TREE-/var/tmp/rt/src/linux-source-6.1}
C=$B/cumulus
U=$B/cumulus-util
rm -rf "$W"
mkdir -p "$W"

bytes() { du -sb --apparent-size --exclude=leases "$1" | cut -f1; }
# N pseudo-random bytes from SEED (the same in both modes).
prng() { (set +o pipefail; openssl enc -aes-128-ctr -pass "pass:$1" -nosalt \
	-pbkdf2 </dev/zero 2>/dev/null | head -c "$2"); }

# ---- 1. twelve snapshots, with and without cleaning ----
cycle() { # mode (clean|noclean)
	local w=$W/$1 n
	mkdir -p "$w/src/tree/sub"
	prng space 25000000 >"$w/src/tree/big"
	for i in 1 2 3 4 5 6; do
		prng "f$i" $((i * 30000)) >"$w/src/tree/sub/f$i"
	done
	for n in $(seq 1 12); do
		prng "r$n" 3000000 >"$w/src/tree/sub/f$((n % 6 + 1))"
		echo "round $n" >>"$w/src/tree/log"
		if [ $((n % 4)) = 0 ]; then
			# rewrite half of big: old segments become half used
			prng "b$n" 12000000 |
				dd of="$w/src/tree/big" conv=notrunc 2>/dev/null
		fi
		(cd "$w/src" && "$C" --dest="$w/store" --localdb="$w/db" tree >/dev/null)
		if [ $((n % 4)) = 0 ]; then
			"$U" --store="$w/store" forget --keep-last 3 >/dev/null
			"$U" --store="$w/store" --localdb="$w/db" prune-db >/dev/null
			if [ "$1" = clean ]; then
				# Ages are minutes here, not days: threshold 0.
				"$U" --localdb="$w/db" clean --threshold=0 >/dev/null
			fi
			"$U" --store="$w/store" --localdb="$w/db" gc --min-age=0 >/dev/null
		fi
		echo "$n $(bytes "$w/store")" >>"$W/sizes-$1"
		sleep 1
	done
}
cycle noclean
cycle clean
echo "store bytes after each snapshot (forget/clean/gc every 4th):"
printf '%5s %14s %14s\n' snap "without clean" "with clean"
join "$W/sizes-noclean" "$W/sizes-clean" | while read -r n a b; do
	printf '%5s %14s %14s\n' "$n" "$a" "$b"
done

# ---- 2. rebuild-db against the initial backup ----
[ -n "$TREE" ] && [ -d "$TREE" ] || exit 0
secs() { /usr/bin/time -f %e -o "$W/t" "$@" >"$W/out" 2>&1; cat "$W/t"; }
parent=$(dirname "$TREE")
base=$(basename "$TREE")
b1=$(cd "$parent" && secs "$C" --dest="$W/lst" --localdb="$W/ldb" "$base")
r=$(secs "$U" --store="$W/lst" --localdb="$W/ldb2" rebuild-db)
b2=$(cd "$parent" && secs "$C" --dest="$W/lst" --localdb="$W/ldb2" "$base")
echo
echo "$base: initial backup ${b1} s, rebuild-db ${r} s" \
	"($(awk -v a="$r" -v b="$b1" 'BEGIN { printf "%.1f", 100 * a / b }')%)," \
	"store $(bytes "$W/lst") bytes"
echo "unchanged backup after rebuild-db: ${b2} s: $(tail -1 "$W/out")"
