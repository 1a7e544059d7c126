#!/bin/bash
# Backups of awkward local trees and command lines: --exclude patterns
# with a leading '/', command-line paths that overlap or would be recorded
# under one name, paths with '.', '..' or empty components, a directory
# whose listing fails part-way, a root below a search-only directory, and
# a tree deeper than the descriptor limit.
. "$(dirname "$0")/../lib.sh"

# names SNAP STORE: the recorded names of a snapshot, one a line
names() {
	"$CUMULUS_UTIL" --store="$2" read-metadata "$1" |
		sed -n 's/^name: //p'
}
# last_snap STORE
last_snap() { "$CUMULUS_UTIL" --store="$1" list-snapshots | tail -1; }

# ---- --exclude=/NAME is the recorded path NAME, not NAME anywhere ----
x=$T/excl
mkdir -p "$x/tree/tmp" "$x/tree/work/tmp" "$x/tree/var/tmp"
echo junk >"$x/tree/tmp/j"
echo important >"$x/tree/work/tmp/notes"
echo v >"$x/tree/var/tmp/v"
cd "$x/tree" || exit 1
test_exit "backup of . with --exclude=/tmp" 0 "$CUMULUS" --dest="$x/store" \
	--exclude=/tmp .
cd "$T" || exit 1
s=$(last_snap "$x/store")
test_eq "... drops tmp only, not work/tmp or var/tmp" \
	"$(names "$s" "$x/store" | tr '\n' ' ')" \
	". var var/tmp var/tmp/v work work/tmp work/tmp/notes "
done_testing
