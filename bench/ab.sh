#!/bin/bash
# ab.sh: interleaved A/B timing of the initial backup of a tree.
#
#   bash bench/ab.sh ROUNDS TREE LABEL=COMMAND [LABEL=COMMAND]...
#
# Each round runs every COMMAND once, in the order given, as
#   COMMAND --dest=STORE --localdb=DB TREE
# into a fresh store and database under $AB_TMP (default /var/tmp/cumulus-ab),
# and prints each label's wall times, sorted, with their median.  COMMAND is
# split on spaces and may start with VAR=value words (passed through env),
# e.g.  base=/tmp/cumulus.old  new=build/cumulus  t1="build/cumulus --threads=1"
# Interleaving spreads the machine's slow phases over every variant; compare
# medians of several rounds, never single runs (bench/README.md).
set -eu
[ $# -ge 3 ] || { sed -n '2,13p' "$0"; exit 2; }
rounds=$1 tree=$2
shift 2
tmp=${AB_TMP:-/var/tmp/cumulus-ab}
declare -A times
for ((r = 1; r <= rounds; r++)); do
	for v in "$@"; do
		label=${v%%=*} cmd=${v#*=}
		rm -rf "$tmp"
		mkdir -p "$tmp/store" "$tmp/db"
		# shellcheck disable=SC2086 # the command is split on purpose
		t=$( { /usr/bin/time -f %e env $cmd --dest="$tmp/store" \
			--localdb="$tmp/db" "$tree" >/dev/null; } 2>&1 | tail -n 1)
		times[$label]="${times[$label]:-} $t"
	done
done
rm -rf "$tmp"
for v in "$@"; do
	label=${v%%=*}
	sorted=$(printf '%s\n' ${times[$label]} | sort -n)
	median=$(printf '%s\n' "$sorted" | awk '{a[NR] = $1}
		END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}')
	echo "$label: $(echo $sorted)  median $median"
done
