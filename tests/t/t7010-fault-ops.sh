#!/bin/bash
# Crash and fault injection for the operations besides a plain backup
# (t7000): clean, a backup after clean (it rewrites expired data), forget,
# gc, cumulus-sync (file to file) and restore, through the LD_PRELOAD shim
# tests/lib/faultinj.c.  Each operation is killed at a seeded sample of its
# system calls (FAULT_OP=any: every write, fsync, rename, link and unlink
# it makes) and made to fail with ENOSPC/EIO at a few of them, and its
# malloc calls with ENOMEM at a sample; TORTURE=1 tries every point of
# every kind (and 200 malloc points).  After each fault: every snapshot left
# in the store verifies (so no descriptor names a missing or partial
# segment), the newest restores bit-exactly, the database passes check-db,
# a failed (not killed) operation exited cleanly and left no temp files,
# and a rerun succeeds with the expected result.
. "$(dirname "$0")/../lib.sh"

# Kill points per operation: a seeded sample of 200 (all when fewer), 20
# in the sanitizer build (its job is memory errors; it is several times
# slower).
case $CUMULUS_BUILD in
*-san) KILLS=${FAULT_KILLS:-20} ;;
*) KILLS=${FAULT_KILLS:-200} ;;
esac
FAULTS=${FAULT_SAMPLE:-1} # points per fault kind and mode (sampled)
# malloc/calloc/realloc failing with ENOMEM (our code and every library);
# a sanitizer build allocates through its own runtime, which the shim does
# not see, so there it tries none.
MALLOCS=${FAULT_MALLOC_SAMPLE:-6}
if [ -n "${TORTURE:-}" ]; then
	KILLS=1000000 FAULTS=1000000 MALLOCS=200
fi
shim=$T/faultinj.so
if ! cc -shared -fPIC -O1 -o "$shim" "$CUMULUS_TOP/tests/lib/faultinj.c" -ldl 2>"$T/cc.err"; then
	skip "fault injection" "cannot build the shim: $(head -1 "$T/cc.err")"
	done_testing
fi

U() { "$CUMULUS_UTIL" "$@"; }
src=$T/src
mkdir -p "$src/tree/a" "$src/tree/b"
prng 15 400000 >"$src/tree/a/r1"
for i in $(seq 1 12); do echo "file $i" >"$src/tree/a/s$i"; done
ln -s a/r1 "$src/tree/link"
args=(--segment-size=64K --threads=1)
backup() { # STATE_DIR: back up the tree into it; prints the snapshot name
	(cd "$src" && "$CUMULUS" --dest="$1/store" --localdb="$1/db" "${args[@]}" tree) |
		sed -n 's/^Snapshot \([^:]*\):.*/\1/p'
}

# The base: three snapshots of a changing tree, each with its manifest;
# b/f is replaced each time, so older snapshots hold data the newest lacks.
for n in 1 2 3; do
	prng $((20 + n)) 150000 >"$src/tree/b/f"
	rm -f "$src/tree/a/s$n"
	s=$(backup "$T/base")
	[ -n "$s" ] || echo "# base backup $n failed"
	make_manifest "$src/tree" >"$T/m-$s"
done
snaps=$(U --store="$T/base/store" list-snapshots)
test_eq "three base snapshots" "$(echo "$snaps" | wc -l)" 3
newest=$(echo "$snaps" | tail -1)
# The change the faulted backups store.
prng 17 150000 >>"$src/tree/a/r1"
make_manifest "$src/tree" >"$T/m-now"
# Derived starting states: forgotten (for gc: two snapshots gone, their
# segments still there), pruned (the database forgot them too: for
# clean) and cleaned (for the backup after clean).
cp -a "$T/base" "$T/forgotten"
U --store="$T/forgotten/store" forget --keep-last 1 >/dev/null 2>&1
test_eq "forget --keep-last 1 leaves one snapshot to gc around" \
	"$(U --store="$T/forgotten/store" list-snapshots)" "$newest"
cp -a "$T/forgotten" "$T/pruned"
U --store="$T/pruned/store" --localdb="$T/pruned/db" prune-db >/dev/null 2>&1
cp -a "$T/pruned" "$T/cleaned"
U --localdb="$T/cleaned/db" clean --threshold=0 >"$T/clean.out" 2>&1
grep -q '^Cleaning segment' "$T/clean.out"
test_eq "clean --threshold=0 expires segments" $? 0

# ---- the operations: OP_run runs it in $T/w (under the shim when
# asked), OP_check checks the result of a successful run ----
clean_run() { U --localdb="$T/w/db" clean --threshold=0; }
clean_check() { return 0; }
bkclean_run() { (cd "$src" && "$CUMULUS" --dest="$T/w/store" --localdb="$T/w/db" "${args[@]}" tree); }
bkclean_check() { # the new snapshot restores the changed tree
	local s
	s=$(U --store="$T/w/store" list-snapshots | tail -1)
	[ "$s" != "$newest" ] && restores "$s" "$T/m-now"
}
forget_run() { U --store="$T/w/store" forget --keep-last 1; }
forget_check() { [ "$(U --store="$T/w/store" list-snapshots)" = "$newest" ]; }
gc_run() { U --store="$T/w/store" --localdb="$T/w/db" gc --min-age=0; }
gc_check() { # nothing left to collect, and a backup after it is whole
	local s
	U --store="$T/w/store" gc --min-age=0 --dry-run | grep -q 'would delete 0 files' &&
		bkclean_run >/dev/null 2>&1 && bkclean_check
}
sync_run() { "$CUMULUS_SYNC" "$T/w/store" "$T/w/dst"; }
sync_check() {
	[ "$(U --store="$T/w/dst" list-snapshots)" = "$snaps" ] &&
		U --store="$T/w/dst" verify-snapshots $snaps >/dev/null 2>&1 &&
		restores "$newest" "$T/m-$newest" "$T/w/dst"
}
restore_run() { U --store="$T/w/store" restore-snapshot ${force:+--force} "$newest" "$T/w/rs"; }
restore_check() {
	make_manifest "$T/w/rs/tree" >"$T/got.tsv" &&
		compare_manifests "$T/m-$newest" "$T/got.tsv" >/dev/null
}

restores() { # NAME MANIFEST [STORE]: the snapshot restores that tree exactly
	rm -rf "$T/rs"
	U --store="${3:-$T/w/store}" restore-snapshot "$1" "$T/rs" >/dev/null 2>&1 &&
		make_manifest "$T/rs/tree" >"$T/got.tsv" &&
		compare_manifests "$2" "$T/got.tsv" >/dev/null
}

fresh() { # OP: a copy of the operation's starting state in $T/w
	rm -rf "$T/w"
	case $1 in
	clean) cp -a "$T/pruned" "$T/w" ;;
	bkclean) cp -a "$T/cleaned" "$T/w" ;;
	gc) cp -a "$T/forgotten" "$T/w" ;;
	*) cp -a "$T/base" "$T/w" ;;
	esac
}
run_faulted() { # OP KIND N MODE: sets $rc
	# In a subshell, so the shell's "Killed" notice goes to /dev/null.
	(FAULT_OP=$2 FAULT_N=$3 FAULT_MODE=$4 LD_PRELOAD=$shim \
		"$1_run" >"$T/f.out" 2>&1 </dev/null
	echo $? >"$T/rc") 2>/dev/null
	rc=$(cat "$T/rc")
}

# The allocations of the program's start-up (what "--version" makes).
FAULT_COUNTS=$T/c0 LD_PRELOAD=$shim "$CUMULUS" --version >/dev/null 2>&1
malloc_start=$(awk '$1 == "malloc" { print $2 }' "$T/c0")
malloc_start=${malloc_start:-0}

# How many calls of each kind each operation makes, from a clean run.
declare -A count
for op in clean bkclean forget gc sync restore; do
	fresh $op
	rm -f "$T/counts"
	FAULT_COUNTS=$T/counts LD_PRELOAD=$shim "${op}_run" >/dev/null 2>&1 </dev/null
	ok=$?
	"${op}_check"
	test_eq "$op: a run without faults succeeds and is right" "$ok$?" 00
	total=0
	for k in write fsync rename link unlink; do
		count[$op.$k]=$(awk -v k=$k '$1 == k { print $2 }' "$T/counts")
		total=$((total + ${count[$op.$k]:-0}))
	done
	count[$op.any]=$total
	count[$op.malloc]=$(awk '$1 == "malloc" { print $2 }' "$T/counts")
	diag "$op: $(tr '\n' ' ' <"$T/counts")"
done

points() { # TOTAL SAMPLE SEED: sampled call numbers, first and last included
	local total=$1
	[ -n "$total" ] && [ "$total" -gt 0 ] || return 0
	if [ "$total" -le "$2" ]; then
		seq 1 "$total"
	elif [ "$2" -eq 1 ]; then
		seq 2 "$total" | shuf -n 1 --random-source=<(yes "$3")
	else
		{ echo 1; echo "$total"; seq 2 $((total - 1)) |
			shuf -n $(($2 - 2)) --random-source=<(yes "$3"); } | sort -n
	fi
}

tried=0 injected=0 bad=0
declare -A tried_op
fault() { echo "# $what: $*"; bad=$((bad + 1)); }
check_point() { # OP KIND N MODE
	local op=$1 what="$1: $2 #$3 ($4)" s left
	tried=$((tried + 1))
	tried_op[$op]=$((${tried_op[$op]:-0} + 1))
	fresh "$op"
	run_faulted "$op" "$2" "$3" "$4"
	[ "$rc" -ne 0 ] && injected=$((injected + 1))
	if [ "$4" != kill ] && [ "$rc" -ge 128 ]; then
		fault "died with status $rc"; return
	fi
	if [ "$4" != kill ] && [ "$rc" -ne 0 ] && ! grep -q . "$T/f.out"; then
		fault "failed (status $rc) without a message"; return
	fi
	if [ "$4" != kill ] && find "$T/w/store" "$T/w/db" "$T/w/dst" -name '.tmp.*' 2>/dev/null | grep -q .; then
		fault "temporary files left behind"; return
	fi
	# Every snapshot still listed is whole; the newest restores.
	left=$(U --store="$T/w/store" list-snapshots 2>&1)
	if [ -n "$left" ] && ! U --store="$T/w/store" verify-snapshots $left >"$T/v.out" 2>&1; then
		fault "a snapshot no longer verifies: $(grep -v '^OK' "$T/v.out" | head -1)"; return
	fi
	case " $(echo $left) " in
	*" $newest "*) ;;
	*) fault "the newest snapshot is gone"; return ;;
	esac
	if [ "$op" != restore ] && ! restores "$newest" "$T/m-$newest"; then
		fault "the newest snapshot does not restore exactly"; return
	fi
	if [ -e "$T/w/dst" ]; then
		left=$(U --store="$T/w/dst" list-snapshots 2>&1)
		if [ -n "$left" ] && ! U --store="$T/w/dst" verify-snapshots $left >"$T/v.out" 2>&1; then
			fault "a copied snapshot does not verify: $(grep -v '^OK' "$T/v.out" | head -1)"; return
		fi
	fi
	if ! U --localdb="$T/w/db" check-db >"$T/c.out" 2>&1; then
		fault "check-db: $(tail -1 "$T/c.out")"; return
	fi
	# The rerun (restore: with --force over what the killed run left).
	if ! force=1 "${op}_run" >"$T/r.out" 2>&1 </dev/null; then
		fault "the rerun failed: $(tail -1 "$T/r.out")"; return
	fi
	if ! "${op}_check"; then
		fault "the rerun's result is wrong"; return
	fi
	U --localdb="$T/w/db" check-db >/dev/null 2>&1 || fault "check-db after the rerun"
}

seed=7010
for op in clean bkclean forget gc sync restore; do
	before=$bad
	n=0
	for p in $(points "${count[$op.any]}" "$KILLS" $seed); do
		check_point "$op" any "$p" kill
		n=$((n + 1))
	done
	for spec in write:enospc write:eio fsync:eio rename:eio link:eio unlink:eio malloc:enomem; do
		k=${spec%%:*}
		sample=$FAULTS
		[ "$k" = malloc ] && sample=$MALLOCS
		skipped=0
		# malloc: not inside the program's start-up (see t7000)
		[ "$k" = malloc ] && skipped=$malloc_start
		for p in $(points $((${count[$op.$k]:-0} - skipped)) "$sample" $((seed + ${#spec})) |
			awk -v s="$skipped" '{ print $1 + s }'); do
			check_point "$op" "$k" "$p" "${spec#*:}"
			n=$((n + 1))
		done
	done
	seed=$((seed + 1))
	test_eq "$op: $n fault points (of ${count[$op.any]} calls): nothing lost, reruns fine" \
		"$((bad - before))" 0
done
diag "fault points tried: $tried (operations failed or died at $injected)"
for op in clean bkclean forget gc sync restore; do
	diag "  $op: ${tried_op[$op]:-0} points of ${count[$op.any]} calls"
done
done_testing
