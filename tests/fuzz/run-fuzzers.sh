#!/bin/bash
# make fuzz: build every tests/fuzz/fuzz_<target>.c with libFuzzer, ASan and
# UBSan into build-fuzz/, and run each for $FUZZ_SECONDS (default 60).
#   tests/fuzz/run-fuzzers.sh [TARGET...]      (TARGET: e.g. "ref")
# Starts from tests/fuzz/corpus/<target>/ and merges the inputs that add
# coverage back into it (-merge=1 keeps it small).  Crashes are saved in
# tests/fuzz/crashes/<target>/ and make the script exit 1.  Optional
# tests/fuzz/<target>.dict is passed as the libFuzzer dictionary.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
BUILD=build-fuzz

if [ $# -gt 0 ]; then
	targets=("$@")
else
	targets=()
	for f in tests/fuzz/fuzz_*.c; do
		[ -f "$f" ] || continue
		t=${f#tests/fuzz/fuzz_}
		targets+=("${t%.c}")
	done
fi
if [ ${#targets[@]} -eq 0 ]; then
	echo "run-fuzzers: no tests/fuzz/fuzz_*.c" >&2
	exit 1
fi

make -s -j"$(nproc)" BUILD=$BUILD CC=clang \
	CFLAGS='-O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined' \
	"${targets[@]/#/$BUILD/fuzz/fuzz_}" || exit 1

count() { find "$1" -type f | wc -l; }
failed=()
for t in "${targets[@]}"; do
	corpus=tests/fuzz/corpus/$t crashes=tests/fuzz/crashes/$t
	mkdir -p "$corpus" "$crashes"
	scratch=$(mktemp -d "${TMPDIR:-/tmp}/fuzz-$t.XXXXXX")
	dict=()
	[ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
	echo "== fuzz_$t for ${FUZZ_SECONDS}s (corpus: $(count "$corpus") inputs)"
	# New inputs go to the scratch dir (the first one); the corpus is read.
	"$BUILD/fuzz/fuzz_$t" -max_total_time="$FUZZ_SECONDS" -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$crashes/" "${dict[@]}" \
		"$scratch" "$corpus" >"$scratch.log" 2>&1
	rc=$?
	grep -E '^(stat::number_of_executed_units|stat::new_units_added|SUMMARY)' "$scratch.log"
	if [ $rc -ne 0 ]; then
		failed+=("$t")
		echo "fuzz_$t FAILED (status $rc); last lines of the log:"
		tail -25 "$scratch.log" | cut -c1-300
		find "$crashes" -type f | sed 's/^/  /'
	fi
	# Keep only the new inputs that add coverage (crashing ones are left out).
	before=$(count "$corpus")
	"$BUILD/fuzz/fuzz_$t" -merge=1 "$corpus" "$scratch" >"$scratch.merge" 2>&1 ||
		{ echo "fuzz_$t: merge failed"; tail -5 "$scratch.merge"; }
	echo "fuzz_$t: corpus $before -> $(count "$corpus") inputs"
	rm -rf "$scratch" "$scratch.log" "$scratch.merge"
done

if [ ${#failed[@]} -gt 0 ]; then
	echo "fuzzing found crashes in: ${failed[*]}"
	exit 1
fi
echo "fuzzing: no crashes (${targets[*]})"
