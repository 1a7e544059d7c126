# tests/lib.sh: sourced by the tests/t/tNNNN-*.sh scripts; prints TAP.
#
#   . "$(dirname "$0")/../lib.sh"
#   test_ok   "desc" cmd args...     ok if the command exits 0
#   test_fail "desc" cmd args...     ok if it exits 1..125 (not a crash,
#                                    not "command not found")
#   test_exit "desc" STATUS cmd...   ok if it exits with STATUS
#   test_eq   "desc" ACTUAL EXPECTED
#   skip      "desc" "reason"        ok N - desc # SKIP reason
#   diag "text"                      a "# text" comment
#   done_testing                     prints the plan; exit 1 if any failed
#   make_manifest DIR                manifest of a tree (tests/manifest.pl)
#   normalize_manifest [--ignore=COL,...] [FILE]
#   compare_manifests A B [--ignore=COL,...]   diff; non-zero if different
#   count_incomplete GOT WANT        how many files under GOT differ from
#                                    theirs under WANT (each one a diag)
#   test_full_disk_left PATTERN GOT WANT   after a restore that ran out of
#                                    disk: no segment blamed, a file named
#                                    (PATTERN), every file left complete
#   prng SEED BYTES                  BYTES of seeded pseudo-random data
#
# The command output of the last test_* helper is in $T/.out (stdout and
# stderr), and $T/.stdout (stdout only).  $T is this test's scratch
# directory, removed on exit unless CUMULUS_KEEP=1.  Binaries:
# $CUMULUS_BUILD (tests/run.sh sets it; else build/ of the repository).

# shellcheck shell=bash disable=SC2034  # variables for the test scripts

# Byte order for sort and ls, messages untranslated: the same on every
# machine, whatever its locale.
export LC_ALL=C

if [ -z "${CUMULUS_TOP:-}" ]; then
	CUMULUS_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fi
CUMULUS_BUILD=${CUMULUS_BUILD:-build}
case $CUMULUS_BUILD in
/*) ;;
*) CUMULUS_BUILD=$CUMULUS_TOP/$CUMULUS_BUILD ;;
esac
export CUMULUS_TOP CUMULUS_BUILD
CUMULUS=$CUMULUS_BUILD/cumulus
CUMULUS_UTIL=$CUMULUS_BUILD/cumulus-util
CUMULUS_SYNC=$CUMULUS_BUILD/cumulus-sync
CUMULUS_STORE=$CUMULUS_BUILD/cumulus-store

T=$(mktemp -d "${TMPDIR:-/tmp}/cumulus-t.XXXXXX") || exit 1
_lib_cleanup() {
	if [ "${CUMULUS_KEEP:-0}" = 1 ]; then
		echo "# scratch directory kept: $T"
	else
		chmod -R u+rwx "$T" 2>/dev/null
		rm -rf "$T"
	fi
}
trap _lib_cleanup EXIT

_tap_n=0
_tap_failed=0

diag() {
	printf '%s\n' "$@" | sed 's/^/# /'
}

# _tap_result PASSED DESC
_tap_result() {
	_tap_n=$((_tap_n + 1))
	if [ "$1" = 1 ]; then
		echo "ok $_tap_n - $2"
	else
		echo "not ok $_tap_n - $2"
		_tap_failed=$((_tap_failed + 1))
	fi
}

# _run cmd...: runs it with stdin from /dev/null; sets _rc.
_run() {
	"$@" </dev/null >"$T/.stdout" 2>"$T/.stderr"
	_rc=$?
	cat "$T/.stdout" "$T/.stderr" >"$T/.out"
}

_show_run() {
	diag "command: $*" "exit status: $_rc"
	head -20 "$T/.out" | sed 's/^/#   /'
}

test_ok() {
	local desc=$1
	shift
	_run "$@"
	_tap_result $((_rc == 0)) "$desc"
	[ $_rc -eq 0 ] || _show_run "$@"
	return $_rc
}

test_fail() {
	local desc=$1
	shift
	_run "$@"
	_tap_result $((_rc >= 1 && _rc <= 125)) "$desc"
	[ $_rc -ge 1 ] && [ $_rc -le 125 ] && return 0
	_show_run "$@"
	return 1
}

test_exit() {
	local desc=$1 want=$2
	shift 2
	_run "$@"
	_tap_result $((_rc == want)) "$desc"
	[ $_rc -eq "$want" ] && return 0
	diag "wanted exit status $want"
	_show_run "$@"
	return 1
}

test_eq() {
	if [ "$2" = "$3" ]; then
		_tap_result 1 "$1"
		return 0
	fi
	_tap_result 0 "$1"
	diag "got:  '$2'" "want: '$3'"
	return 1
}

skip() {
	_tap_n=$((_tap_n + 1))
	echo "ok $_tap_n - $1 # SKIP ${2:-}"
}

done_testing() {
	echo "1..$_tap_n"
	[ $_tap_failed -eq 0 ] || exit 1
	exit 0
}

make_manifest() {
	perl "$CUMULUS_TOP/tests/manifest.pl" "$@"
}

normalize_manifest() {
	perl "$CUMULUS_TOP/tests/manifest.pl" --normalize "$@"
}

compare_manifests() {
	local a=$1 b=$2
	shift 2
	diff -u --label "$a" --label "$b" \
		<(normalize_manifest "$@" "$a") <(normalize_manifest "$@" "$b")
}

# Prints how many regular files under GOT are not byte for byte the file
# at the same path under WANT: what a failed restore left must be whole.
count_incomplete() {
	local got=$1 want=$2 f bad=0
	while IFS= read -r -d '' f; do
		cmp -s "$f" "$want/${f#"$got"/}" || {
			diag "incomplete: $f" >&2
			bad=$((bad + 1))
		}
	done < <(find "$got" -type f -print0)
	echo "$bad"
}

# Three checks of what a restore onto a disk that filled up reported and
# left (its output in $T/.out): the disk is at fault, not the store, so no
# segment is blamed; a file it could not restore is named by the extended
# regular expression PATTERN; every file under GOT is whole (see WANT).
test_full_disk_left() {
	test_eq "... blaming no segment" \
		"$(grep -c "cannot restore.*segment" "$T/.out")" 0
	test_ok "... naming what it could not restore" grep -Eq "$1" "$T/.out"
	test_eq "... and every file it left is complete" \
		"$(count_incomplete "$2" "$3")" 0
}

# Waits (up to 10 s) until a backup's lease shows up in the store STORE
# (default $T/store): a backup started in the background is under way.
wait_lease() {
	for _ in $(seq 1 100); do
		ls "${1:-$T/store}/leases" 2>/dev/null | grep -q '^backup-' && return 0
		sleep 0.1
	done
	return 1
}

# Sets as_user to a command prefix that runs a command as a user whom file
# permissions apply to: nothing more when not root, else uid 65534 through
# setpriv; empty when there is no such way (the caller skips).
set_as_user() {
	as_user=()
	if [ "$(id -u)" != 0 ]; then
		as_user=(env)
	elif command -v setpriv >/dev/null &&
		setpriv --reuid=65534 --regid=65534 --clear-groups true 2>/dev/null; then
		as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups)
	fi
}

# BYTES of pseudo-random data from SEED, the same on every run: a failure
# replays, and how much an edit adds (where the chunks fall) is fixed.
prng() {
	python3 -c 'import random, sys
sys.stdout.buffer.write(random.Random(int(sys.argv[1])).randbytes(int(sys.argv[2])))' "$1" "$2"
}
