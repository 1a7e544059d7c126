#!/bin/bash
# Crash safety: backups of ~60 MiB of incompressible data are SIGKILLed at
# several moments (right after the start, while segments are written, with
# a slow segment filter, and just before the descriptor is published, while
# the signature filter runs).  After each kill: every descriptor in the
# store is a complete snapshot, no partial file sits under a final name
# (segments decompress and untar, every .sha1sums checks), snapshot 1 still
# verifies and restores exactly, and the next backup succeeds and restores.
. "$(dirname "$0")/../lib.sh"

MiB=1048576
src=$T/src
store=$T/store
mkdir -p "$src/tree/sub"
for i in 1 2 3 4 5 6; do
	head -c $((10 * MiB)) /dev/urandom >"$src/tree/sub/f$i"
done
echo small >"$src/tree/small.txt"

backup_args=(--dest="$store" --localdb="$T/db" --tmpdir="$T/tmp")
mkdir -p "$T/tmp"

take_backup() { # DESC: a complete backup of the current tree; sets $snap
	cd "$src" || return 1
	test_ok "$1" "$CUMULUS" "${backup_args[@]}" tree
	local rc=$?
	cd "$T" || return 1
	snap=$(sed -n 's/^Snapshot \([^:]*\):.*/\1/p' "$T/.stdout")
	return $rc
}
restore_check() { # DESC SNAP MANIFEST
	local d=$T/restore.$RANDOM
	test_ok "$1: restores" "$CUMULUS_UTIL" --store="$store" \
		restore-snapshot "$2" "$d"
	make_manifest "$d/tree" >"$T/got.tsv" 2>&1
	test_ok "$1: matches its manifest" compare_manifests "$3" "$T/got.tsv"
	rm -rf "$d"
}
change_data() { # overwrite two of the big files (new inodes) and one in place
	local r=$1
	head -c $((10 * MiB)) /dev/urandom >"$src/tree/sub/new-$r"
	rm -f "$src/tree/sub/f$((r % 6 + 1))"
	head -c $((10 * MiB)) /dev/urandom >"$src/tree/sub/f$((r % 6 + 1))"
	head -c $((10 * MiB)) /dev/urandom |
		dd of="$src/tree/sub/f$(((r + 2) % 6 + 1))" conv=notrunc status=none
	echo "round $r" >>"$src/tree/small.txt"
}

# Checks the store after a kill.  Every descriptor must be complete.
check_store() { # DESC
	local desc=$1 bad=0 n s f
	local names
	names=$("$CUMULUS_UTIL" --store="$store" list-snapshots 2>&1)
	test_eq "$desc: list-snapshots lists every descriptor" \
		"$names" "$(cd "$store" && ls snapshot-*.lbs | sed 's/^snapshot-//; s/\.lbs$//' | sort)"
	for n in $names; do
		"$CUMULUS_UTIL" --store="$store" read-snapshots "$n" >/dev/null 2>&1 ||
			{ bad=$((bad + 1)); diag "read-snapshots $n fails"; }
	done
	test_eq "$desc: every descriptor parses ($(echo $names | wc -w))" "$bad" 0
	test_eq "$desc: only finished snapshots" "$(echo $names | wc -w)" "$nsnaps"
	bad=0
	for f in "$store"/*.tar*; do
		[ -e "$f" ] || continue
		case $f in *.tar.zst) ;; *) bad=$((bad + 1)); diag "odd segment name $f"; continue ;; esac
		if ! zstd -dc "$f" 2>/dev/null | tar -t >/dev/null 2>&1; then
			bad=$((bad + 1))
			diag "partial or corrupt segment under its final name: ${f##*/}"
		fi
	done
	test_eq "$desc: every segment under a final name is complete" "$bad" 0
	bad=0
	for s in "$store"/*.sha1sums; do
		[ -e "$s" ] || continue
		(cd "$store" && sha1sum -c --quiet "${s##*/}" >/dev/null 2>&1) ||
			{ bad=$((bad + 1)); diag "${s##*/} does not check"; }
		[ -e "${s%.sha1sums}.lbs" ] || diag "(orphan ${s##*/}, no descriptor)"
	done
	test_eq "$desc: every .sha1sums checks" "$bad" 0
	n=$(find "$store" -name '.tmp*' -o -name '*.tmp.*' | wc -l)
	[ "$n" = 0 ] || diag "$n temporary files left in the store"
	test_ok "$desc: snapshot 1 verifies" "$CUMULUS_UTIL" --store="$store" \
		verify-snapshots "$snap1"
	restore_check "$desc: snapshot 1" "$snap1" "$T/m1.tsv"
}

# kill_backup DESC DELAY [OPTIONS...]: start a backup in its own process
# group, SIGKILL the whole group after DELAY seconds.
kill_backup() {
	local desc=$1 delay=$2 pid rc before after
	shift 2
	before=$(cd "$store" && ls snapshot-*.lbs 2>/dev/null | sort)
	make_manifest "$src/tree" >"$T/m-killed.tsv"
	cd "$src" || return 1
	set -m
	"$CUMULUS" "${backup_args[@]}" "$@" tree >"$T/killed.out" 2>&1 </dev/null &
	pid=$!
	set +m
	cd "$T" || return 1
	sleep "$delay"
	kill -KILL -- "-$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	rc=$?
	last_rc=$rc
	committed=
	if [ "$rc" = 137 ]; then
		diag "$desc: killed after ${delay}s"
		killed=$((killed + 1))
		# On a fast machine the kill can land after the descriptor was
		# published (while the database commits): that snapshot is
		# finished and must be complete; check_store and the caller
		# verify and restore it.
		after=$(cd "$store" && ls snapshot-*.lbs 2>/dev/null | sort)
		committed=$(comm -13 <(echo "$before") <(echo "$after") |
			sed 's/^snapshot-//; s/\.lbs$//')
		if [ -n "$committed" ]; then
			diag "$desc: its descriptor $committed was published before the kill"
			nsnaps=$((nsnaps + 1))
		fi
	else
		diag "$desc: finished before the kill (exit $rc)"
		if [ "$rc" = 0 ]; then
			nsnaps=$((nsnaps + 1))
		fi
	fi
	# give orphans of the group nothing to do: it is dead
	sleep 0.1
}

# ---- snapshot 1 ----
make_manifest "$src/tree" >"$T/m1.tsv"
take_backup "snapshot 1"
snap1=$snap
nsnaps=1
killed=0
test_ok "snapshot 1 descriptor" test -f "$store/snapshot-$snap1.lbs"
restore_check "snapshot 1" "$snap1" "$T/m1.tsv"

round=0
for spec in 0.02 0.05 0.1 0.2 0.3 1 slow:0.3 slow:1 slow:2 sig:1.5; do
	round=$((round + 1))
	delay=${spec#*:}
	case $spec in
	slow:*) set -- "--filter=sleep 0.3; zstd -c" --filter-extension=.zst ;;
	sig:*) set -- "--signature-filter=sleep 5; cat" ;;
	*) set -- ;;
	esac
	change_data $round
	kill_backup "round $round (kill at ${delay}s${1:+, $*})" "$delay" "$@"
	case $spec in sig:*)
		test_eq "round $round: killed while the signature filter ran" "$last_rc" 137
		test_ok "... after its segments were written" \
			test "$(find "$store" -name '*.tar.zst' -newer "$T/m-killed.tsv" | wc -l)" -gt 0
	esac
	check_store "round $round"
	if [ -n "$committed" ]; then
		restore_check "round $round: the snapshot committed before the kill" \
			"$committed" "$T/m-killed.tsv"
	fi
	if [ $((round % 3)) = 0 ] || [ $round -ge 9 ]; then
		# a following backup succeeds and restores
		make_manifest "$src/tree" >"$T/m-$round.tsv"
		take_backup "round $round: the next backup succeeds" &&
			nsnaps=$((nsnaps + 1))
		restore_check "round $round: that backup" "$snap" "$T/m-$round.tsv"
		test_ok "round $round: it verifies" "$CUMULUS_UTIL" --store="$store" \
			verify-snapshots "$snap"
	fi
done
test_ok "at least 6 of the 10 backups were really killed ($killed)" test "$killed" -ge 6
done_testing
