#!/bin/bash
# halves.sh: what two cores give a backup here when its threads share
# nothing: two --threads=1 backups of two halves of a tree at once.
#
#   bash bench/halves.sh ROUNDS TREE [CUMULUS]
#
# TREE's entries (those of its largest directories one level down) are split
# into two halves of equal estimated cost (bytes and files, weighted as a
# --threads=1 backup spends them here).  Each round then times, into fresh
# stores under $HALVES_TMP (default /var/tmp/cumulus-halves):
#   halves  both halves at once, each a --threads=1 backup of its own
#   t2      the whole tree, --threads=2
#   t1      the whole tree, --threads=1
# and prints each one's sorted wall times, median, and t1 / halves, t1 / t2.
# t1 / halves bounds what any split of the backup into threads can reach on
# this machine: the two processes take no locks and wake nobody.
set -eu
[ $# -ge 2 ] || { sed -n '2,16p' "$0"; exit 2; }
rounds=$1 tree=$2 bin=${3:-build/cumulus}
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
tmp=${HALVES_TMP:-/var/tmp/cumulus-halves}
mkdir -p "$tmp"

# Per byte and per file costs of a --threads=1 backup, measured here on the
# linux tree (two halves by bytes alone took 5.2 s and 7.7 s).
python3 - "$tree" "$tmp" <<'EOF'
import os, sys
tree, tmp = sys.argv[1], sys.argv[2]
def cost(path):
    if not os.path.isdir(path) or os.path.islink(path):
        return os.lstat(path).st_size * 5.3e-9 + 62e-6
    total = 0.0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size * 5.3e-9
            except OSError:
                pass
            total += 62e-6
    return total
entries = []
for top in sorted(os.listdir(tree)):
    full = os.path.join(tree, top)
    if os.path.isdir(full) and not os.path.islink(full):
        subs = sorted(os.listdir(full))
        # split a large directory into its entries, keep a small one whole
        c = cost(full)
        if c > 0.2 and subs:
            entries += [(cost(os.path.join(full, s)), os.path.join(top, s))
                        for s in subs]
            continue
        entries.append((c, top))
    else:
        entries.append((cost(full), top))
entries.sort(reverse=True)
half = [[], []]
load = [0.0, 0.0]
for c, p in entries:
    i = 0 if load[0] <= load[1] else 1
    half[i].append(p)
    load[i] += c
for i in range(2):
    with open(os.path.join(tmp, "half%d" % i), "w") as f:
        f.write("\0".join(half[i]))
print("halves: %d and %d entries, estimated %.2f s and %.2f s" %
      (len(half[0]), len(half[1]), load[0], load[1]))
EOF

now() { date +%s.%N; }
fresh() { rm -rf "${tmp:?}/$1"; mkdir -p "$tmp/$1/store" "$tmp/$1/db"; }
backup_half() { # N
	xargs -0 -a "$tmp/half$1" "$bin" --dest="$tmp/h$1/store" \
		--localdb="$tmp/h$1/db" --threads=1 >/dev/null
}
declare -A times
for ((r = 1; r <= rounds; r++)); do
	fresh h0
	fresh h1
	cd "$tree"
	start=$(now)
	backup_half 0 &
	p0=$!
	backup_half 1 &
	p1=$!
	wait "$p0"
	wait "$p1"
	times[halves]="${times[halves]:-} $(echo "$(now) - $start" | bc)"
	for t in 2 1; do
		fresh w
		start=$(now)
		"$bin" --dest="$tmp/w/store" --localdb="$tmp/w/db" --threads=$t \
			. >/dev/null
		times[t$t]="${times[t$t]:-} $(echo "$(now) - $start" | bc)"
	done
	cd - >/dev/null
done
rm -rf "$tmp/h0" "$tmp/h1" "$tmp/w"
declare -A median
for k in halves t2 t1; do
	sorted=$(echo "${times[$k]}" | tr ' ' '\n' | grep . | sort -n)
	median[$k]=$(echo "$sorted" | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
	printf '%-7s %s  median %.2f\n' "$k:" "$(echo "$sorted" |
		xargs printf '%.2f ')" "${median[$k]}"
done
printf 't1 / halves %.2f   t1 / t2 %.2f\n' \
	"$(echo "${median[t1]} / ${median[halves]}" | bc -l)" \
	"$(echo "${median[t1]} / ${median[t2]}" | bc -l)"
