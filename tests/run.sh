#!/bin/bash
# Runs every test program and script, reads their TAP, and ends with the one
# line "N passed, N failed, N skipped".  Exit status 1 if anything failed.
#   tests/run.sh [BUILD_DIR] [PATTERN]
BUILD=${1:-build}
PATTERN=${2:-}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
export CUMULUS_TOP="$top" CUMULUS_BUILD="$top/$BUILD"
pass=0 fail=0 skip=0
failed_names=()
logdir=$(mktemp -d "${TMPDIR:-/tmp}/cumulus-tests.XXXXXX")

run_one() { # name, command...
	local name=$1; shift
	local log="$logdir/$(echo "$name" | tr '/ ' '__').log"
	"$@" >"$log" 2>&1
	local rc=$?
	local p f s
	p=$(grep -cE '^ok [0-9]+' "$log" | head -1)
	s=$(grep -cE '^ok [0-9]+.*# *(SKIP|skip)' "$log")
	f=$(grep -cE '^not ok [0-9]+' "$log")
	p=$((p - s))
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1
		echo "not ok - $name exited with status $rc" >>"$log"
	fi
	if [ $((p + f + s)) -eq 0 ]; then
		f=1
		echo "not ok - $name ran no test" >>"$log"
	fi
	pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
	if [ "$f" -gt 0 ]; then
		failed_names+=("$name")
		echo "FAIL $name ($p passed, $f failed, $s skipped)"
		grep -E '^not ok|^#' "$log" | head -40 | sed 's/^/    /'
		tail -5 "$log" | sed 's/^/  | /'
	else
		echo "ok   $name ($p passed, $s skipped)"
	fi
}

for t in "$BUILD"/tests/test_*; do
	[ -x "$t" ] || continue
	case "$t" in *"$PATTERN"*) ;; *) continue ;; esac
	run_one "unit/$(basename "$t")" "$t"
done
for t in "$BUILD"/tests/replay_fuzz_*; do
	[ -x "$t" ] || continue
	case "$t" in *"$PATTERN"*) ;; *) continue ;; esac
	target=${t##*/replay_fuzz_}
	run_one "fuzz-replay/$target" "$t" tests/fuzz/corpus/"$target"
done
for t in tests/t/t[0-9]*.sh; do
	[ -f "$t" ] || continue
	case "$t" in *"$PATTERN"*) ;; *) continue ;; esac
	run_one "$t" bash "$t"
done

rm -rf "$logdir"
if [ ${#failed_names[@]} -gt 0 ]; then
	echo "failed: ${failed_names[*]}"
fi
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
