#!/bin/bash
# A tree that changes under the backup, at the moments a race would hit,
# made exact by an LD_PRELOAD shim (tests/lib/raceshim.c): a file
# rewritten while read is warned of and marked volatile, a file that says
# EAGAIN (as /proc/kmsg does) is skipped instead of hanging the backup, a
# file replaced by a symlink is recorded as the symlink, a symlink whose
# lstat size is 0 (/proc) keeps its target, a warning about a very long
# path keeps its reason, and a killed backup's temp statcache is removed
# by the next backup unless a live writer holds it.
. "$(dirname "$0")/../lib.sh"
saveout() { cp "$T/.stdout" "$T/o.stdout"; cp "$T/.stderr" "$T/o.stderr"; }

shim=$T/raceshim.so
if ! cc -shared -fPIC -O1 -o "$shim" "$CUMULUS_TOP/tests/lib/raceshim.c" -ldl 2>"$T/cc.err"; then
	skip "races" "cannot build the shim: $(head -1 "$T/cc.err")"
	done_testing
	exit 0
fi
src=$T/src
mkdir -p "$src/tree"
head -c 3000000 /dev/urandom >"$src/tree/rewritten"
mkdir -p "$src/tree/small"
head -c 5000 /dev/urandom >"$src/tree/small/rewritten"
echo calm >"$src/tree/calm"
echo soon-a-link >"$src/tree/swapped"
echo never >"$src/tree/blocker"
# A path of about 3000 bytes, whose warning must keep its reason.
long=$src/tree
for i in 1 2 3 4 5 6 7 8 9 10 11 12; do
	long=$long/$(printf "%0250d" "$i")
done
mkdir -p "$long"
echo never >"$long/blocker"
touch -d @1600000000 "$src/tree/rewritten" "$src/tree/small/rewritten"

for threads in 1 3; do
	st=$T/s$threads
	cd "$src" || exit 1
	test_exit "--threads=$threads: a backup of a changing tree warns (exit 3)" 3 \
		env LD_PRELOAD="$shim" timeout -s KILL 60 "$CUMULUS" --dest="$st" \
		--threads=$threads tree
	saveout
	cd "$T" || exit 1
	snap=$(sed -n 's/^Snapshot \([^:]*\):.*/\1/p' "$T/o.stdout")
	"$CUMULUS_UTIL" --store="$st" read-metadata "$snap" >"$T/meta" 2>&1
	for f in rewritten small/rewritten; do
		test_ok "--threads=$threads: '$f' is warned of as changed while read" \
			grep -q "tree/$f' changed while it was read" "$T/o.stderr"
		test_ok "--threads=$threads: ... and marked volatile" \
			awk -v n="name: tree/$f" 'BEGIN { RS = "" } index($0, n "\n") == 1 && /\nvolatile: 1/ { f = 1 } END { exit !f }' "$T/meta"
	done
	test_ok "--threads=$threads: 'calm' is not warned of" \
		sh -c "! grep -q \"tree/calm'\" '$T/o.stderr'"
	test_ok "--threads=$threads: a file that says EAGAIN does not hang the backup, and is warned of" \
		grep -q "tree/blocker'.*would block" "$T/o.stderr"
	test_eq "--threads=$threads: ... once" "$(grep -c "tree/blocker'" "$T/o.stderr")" 1
	test_ok "--threads=$threads: a warning about a 3000-byte path keeps its reason" \
		grep -q "$(printf '%0150d' 12)/blocker'.*would block" "$T/o.stderr"
	test_ok "--threads=$threads: a file replaced by a symlink is recorded as the symlink" \
		awk 'BEGIN { RS = "" } /^name: tree\/swapped\n/ && /\ntype: l\n/ && /\ntarget: swap-target/ { f = 1 } END { exit !f }' "$T/meta"
	test_ok "--threads=$threads: ... with a warning saying so" \
		grep -q "tree/swapped' is no longer a regular file; recorded as it is now" "$T/o.stderr"
	rm -rf "$T/r"
	test_ok "--threads=$threads: the snapshot restores" "$CUMULUS_UTIL" \
		--store="$st" restore-snapshot "$snap" "$T/r"
	test_eq "--threads=$threads: ... with the symlink" \
		"$(readlink "$T/r/tree/swapped")" swap-target
	test_ok "--threads=$threads: ... and the calm file" cmp "$src/tree/calm" "$T/r/tree/calm"
	# The shim replaced it: make it a file again for the next round.
	rm -f "$src/tree/swapped"
	echo soon-a-link >"$src/tree/swapped"
done

# /proc's symlinks have an lstat size of 0: the target is read all the same.
test_exit "a backup of /proc/self (a symlink of lstat size 0)" 0 \
	"$CUMULUS" --dest="$T/sp" /proc/self
saveout
snap=$(sed -n 's/^Snapshot \([^:]*\):.*/\1/p' "$T/o.stdout")
test_ok "... restores" "$CUMULUS_UTIL" --store="$T/sp" restore-snapshot "$snap" "$T/rp"
test_ok "... as a symlink to a process number" \
	sh -c "readlink '$T/rp/proc/self' | grep -Eqx '[0-9]+'"

# A killed backup leaves its temp statcache; the next backup removes it,
# but not one a live writer holds locked.
db=$T/db
test_ok "a backup with --localdb" "$CUMULUS" --dest="$T/sc" --localdb="$db" "$src/tree/small"
dead=$db/.tmp.statcache2.0123456789ab
live=$db/.tmp.statcache2.ba9876543210
echo left >"$dead"
echo held >"$live"
flock "$live" sleep 30 &
holder=$!
sleep 0.5
test_ok "the next backup" "$CUMULUS" --dest="$T/sc" --localdb="$db" "$src/tree/small"
test_ok "... removes a dead backup's temp statcache" test ! -e "$dead"
test_ok "... but not one a live writer holds" test -e "$live"
test_eq "... and leaves no temp statcache of its own" \
	"$(ls -A "$db" | grep -c '^\.tmp\.statcache2' )" 1
kill $holder 2>/dev/null
wait $holder 2>/dev/null

done_testing
