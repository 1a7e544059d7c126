#!/bin/bash
# Crash and fault injection: an LD_PRELOAD shim (tests/lib/faultinj.c)
# kills the backup at the Nth write, fsync, rename, link or unlink, or makes
# that call fail with ENOSPC/EIO, for a seeded sample of N over every point
# the backup reaches (TORTURE=1: every point).  After each: every
# descriptor in the store is whole, the earlier snapshot verifies, a failed
# (not killed) backup leaves no temp files, and a rerun succeeds and
# restores the changed tree exactly.
. "$(dirname "$0")/../lib.sh"

# Kill points: a seeded sample of 200 of all the calls (every one when
# there are fewer), 20 in the sanitizer build, whose job is memory errors
# and which is several times slower.  Failure points: 6 per kind and mode.
case $CUMULUS_BUILD in
*-san) KILLS=${FAULT_KILLS:-20} ;;
*) KILLS=${FAULT_KILLS:-200} ;;
esac
SAMPLE=${FAULT_SAMPLE:-6}
MALLOCS=24 # malloc failure points (seeded sample)
[ -n "${TORTURE:-}" ] && SAMPLE=1000000 KILLS=1000000 MALLOCS=400
shim=$T/faultinj.so
if ! cc -shared -fPIC -O1 -o "$shim" "$CUMULUS_TOP/tests/lib/faultinj.c" -ldl 2>"$T/cc.err"; then
	skip "fault injection" "cannot build the shim: $(head -1 "$T/cc.err")"
	done_testing
fi

src=$T/src
mkdir -p "$src/tree/a" "$src/tree/b"
prng 11 700000 >"$src/tree/a/r1"
prng 12 300000 >"$src/tree/b/r2"
for i in $(seq 1 20); do echo "file $i" >"$src/tree/a/s$i"; done
ln -s a/r1 "$src/tree/link"
args=(--segment-size=64K --threads=1)

cd "$src" || exit 1
test_ok "base snapshot" "$CUMULUS" --dest="$T/base/store" \
	--localdb="$T/base/db" "${args[@]}" tree
base_snap=$(sed -n 's/^Snapshot \([^:]*\):.*/\1/p' "$T/.stdout")
make_manifest "$src/tree" >"$T/m1.tsv"
# The change every faulted backup tries to store.
prng 13 200000 >>"$src/tree/a/r1"
prng 14 250000 >"$src/tree/b/new"
rm "$src/tree/a/s3"
make_manifest "$src/tree" >"$T/m2.tsv"

fresh() { # a copy of the state after the base snapshot
	rm -rf "$T/w"
	cp -a "$T/base" "$T/w"
}
run_faulted() { # OP N MODE
	cd "$src" || return 1
	# In a subshell, so the shell's "Killed" notice goes to /dev/null.
	(FAULT_OP=$1 FAULT_N=$2 FAULT_MODE=$3 LD_PRELOAD=$shim \
		"$CUMULUS" --dest="$T/w/store" --localdb="$T/w/db" "${args[@]}" \
		tree >"$T/f.out" 2>&1 </dev/null
	echo $? >"$T/rc") 2>/dev/null
	rc=$(cat "$T/rc")
	cd "$T" || return 1
	return 0
}

# How many calls of each kind a clean run makes.
fresh
cd "$src" && FAULT_COUNTS=$T/counts LD_PRELOAD=$shim "$CUMULUS" \
	--dest="$T/w/store" --localdb="$T/w/db" "${args[@]}" tree >/dev/null 2>&1
cd "$T" || exit 1
test_eq "the shim counted the backup's calls" \
	"$(grep -c . "$T/counts" 2>/dev/null)" 6

points() { # KIND [SAMPLE]: the sampled call numbers for it
	local total sample=${2:-$SAMPLE}
	if [ "$1" = any ]; then
		total=$(awk '$1 != "malloc" { n += $2 } END { print n + 0 }' "$T/counts")
	else
		total=$(awk -v k="$1" '$1 == k { print $2 }' "$T/counts")
	fi
	[ -n "$total" ] && [ "$total" -gt 0 ] || return 0
	if [ "$total" -le "$sample" ]; then
		seq 1 "$total"
	else
		# Seeded: the same points every run; always the first and last.
		{ echo 1; echo "$total"; seq 2 $((total - 1)) |
			shuf -n $((sample - 2)) --random-source=<(yes 7000); } |
			sort -n
	fi
}

tried=0 bad=0
check_point() { # OP N MODE
	local what="$1 #$2 ($3)" s
	tried=$((tried + 1))
	run_faulted "$1" "$2" "$3"
	# Killed runs die by SIGKILL (137) unless the point was after the
	# last call; failed runs must exit normally.
	if [ "$3" != kill ] && [ "$rc" -ge 128 ]; then
		echo "# $what: died with status $rc"; bad=$((bad + 1)); return
	fi
	if [ "$3" != kill ] && ls -a "$T/w/store" "$T/w/db" | grep -q '^\.tmp\.'; then
		echo "# $what: temporary files left behind"; bad=$((bad + 1)); return
	fi
	for s in $("$CUMULUS_UTIL" --store="$T/w/store" list-snapshots); do
		if ! "$CUMULUS_UTIL" --store="$T/w/store" read-snapshots "$s" >/dev/null 2>&1; then
			echo "# $what: descriptor $s unreadable"; bad=$((bad + 1)); return
		fi
	done
	if ! "$CUMULUS_UTIL" --store="$T/w/store" verify-snapshots "$base_snap" >/dev/null 2>&1; then
		echo "# $what: the earlier snapshot no longer verifies"; bad=$((bad + 1)); return
	fi
	cd "$src" || return
	if ! "$CUMULUS" --dest="$T/w/store" --localdb="$T/w/db" "${args[@]}" tree >"$T/r.out" 2>&1; then
		cd "$T"; echo "# $what: the rerun failed: $(tail -1 "$T/r.out")"; bad=$((bad + 1)); return
	fi
	cd "$T" || return
	s=$(sed -n 's/^Snapshot \([^:]*\):.*/\1/p' "$T/r.out")
	rm -rf "$T/rs"
	if ! "$CUMULUS_UTIL" --store="$T/w/store" restore-snapshot "$s" "$T/rs" >/dev/null 2>&1 ||
		! make_manifest "$T/rs/tree" >"$T/got.tsv" ||
		! compare_manifests "$T/m2.tsv" "$T/got.tsv" >/dev/null; then
		echo "# $what: the rerun's snapshot does not restore the tree"; bad=$((bad + 1)); return
	fi
}

# Killed at the Nth call of any kind (write, fsync, rename, link, unlink).
total_calls=$(points any 1000000 | wc -l)
before=$bad n=0
for p in $(points any "$KILLS"); do
	fresh
	check_point any "$p" kill
	n=$((n + 1))
done
test_eq "killed at $n of its $total_calls calls: store, database and rerun fine" \
	"$((bad - before))" 0
for spec in write:enospc write:eio fsync:eio rename:eio link:eio unlink:eio; do
	op=${spec%%:*} mode=${spec#*:}
	before=$bad n=0
	for p in $(points "$op"); do
		fresh
		check_point "$op" "$p" "$mode"
		n=$((n + 1))
	done
	if [ "$n" -eq 0 ]; then
		diag "the backup makes no $op calls: nothing to fail there"
		continue
	fi
	test_eq "$mode at $n sampled $op calls: clean failure, nothing lost" \
		"$((bad - before))" 0
done
# malloc/calloc/realloc failing with ENOMEM (in our code and in every
# library: SQLite, zstd, OpenSSL, libc), at a seeded sample of the calls.
# A sanitizer build allocates through its own runtime, which the shim
# cannot replace.
nmalloc=$(awk '$1 == "malloc" { print $2 }' "$T/counts")
if [ "${nmalloc:-0}" -eq 0 ]; then
	skip "malloc failures" "the shim sees no malloc calls (sanitizer runtime)"
else
	# Not inside the program's start-up (all of it before any work, the
	# same for every command: what "cumulus --version" allocates): a
	# failed allocation while OpenSSL 3.0 sets itself up leaves it with a
	# NULL lock that crashes its next call, a libcrypto bug we cannot
	# handle from outside.
	rm -f "$T/c0"
	FAULT_COUNTS=$T/c0 LD_PRELOAD=$shim "$CUMULUS" --version >/dev/null 2>&1
	start=$(awk '$1 == "malloc" { print $2 }' "$T/c0")
	msample=${FAULT_MALLOC_SAMPLE:-$MALLOCS}
	before=$bad n=0
	for p in $({ echo "$nmalloc"; seq $((start + 1)) $((nmalloc - 1)) |
		shuf -n $((msample - 1)) --random-source=<(yes 7001); } | sort -nu); do
		fresh
		check_point malloc "$p" enomem
		n=$((n + 1))
	done
	test_eq "enomem at $n sampled of $nmalloc malloc calls (after $start of start-up): clean failure, nothing lost" \
		"$((bad - before))" 0
fi
diag "fault points tried: $tried"
done_testing
