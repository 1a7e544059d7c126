#!/bin/bash
# make demo: build cumulus, back up a directory (default /usr/share/doc, or
# $DEMO_SRC) to a local store with the embedded database, list the
# snapshots, restore the snapshot and check that the restored tree equals
# the source (tests/manifest.pl).  Works in a new temporary directory,
# removed at the end unless the demo fails or DEMO_KEEP=1.
# On a fresh Debian 12 it installs the missing build dependencies first
# (as root; otherwise it prints the apt-get line to run).
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1

PKGS=(build-essential pkg-config libsqlite3-dev libssl-dev uuid-dev
	libzstd-dev libbz2-dev bzip2 zlib1g-dev liblzma-dev perl)
missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' ||
		missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "missing build dependencies; run:"
		echo "  sudo apt-get install -y ${missing[*]}"
		exit 1
	fi
	echo "== installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q && apt-get install -y -q "${missing[@]}" || exit 1
fi

echo "== building"
make -s -j"$(nproc 2>/dev/null || echo 2)" || exit 1

SRC=$(realpath -e -- "${DEMO_SRC:-/usr/share/doc}") || exit 1
T=$(mktemp -d "${TMPDIR:-/tmp}/cumulus-demo.XXXXXX") || exit 1
mkdir -p "$T/db"
echo "== working in $T"

now() { date +%s.%N; }
fail() {
	echo "demo FAILED: $*"
	echo "kept for inspection: $T"
	exit 1
}

echo "== backing up $SRC"
t0=$(now)
./cumulus --dest="$T/store" --localdb="$T/db" "$SRC" || fail "backup"
t1=$(now)

echo "== snapshots"
./cumulus-util --store="$T/store" list-snapshots | tee "$T/snapshots" ||
	fail "list-snapshots"
name=$(awk 'NF { n = $1 } END { print n }' "$T/snapshots")
[ -n "$name" ] || fail "no snapshot listed"

echo "== restoring $name"
t2=$(now)
./cumulus-util --store="$T/store" restore-snapshot "$name" "$T/restore" \
	</dev/null || fail "restore-snapshot"
t3=$(now)

# Stored paths have no leading '/': the tree comes back at $T/restore$SRC.
echo "== comparing $SRC with $T/restore$SRC"
perl tests/manifest.pl "$SRC" >"$T/source.tsv" || fail "manifest of $SRC"
perl tests/manifest.pl "$T/restore$SRC" >"$T/restored.tsv" ||
	fail "manifest of the restored tree"
diff -u <(perl tests/manifest.pl --normalize "$T/source.tsv") \
	<(perl tests/manifest.pl --normalize "$T/restored.tsv") >"$T/diff" || {
	head -40 "$T/diff"
	fail "the restored tree differs ($(grep -c '^[-+][^-+]' "$T/diff") lines, see $T/diff)"
}

awk -F'\t' '
	$2 == "f" { files++; bytes += $4 } !/^#/ { entries++ }
	END { printf "entries %d, files %d, %.1f MiB\n", entries, files, bytes / 1048576 }
' "$T/source.tsv" | sed 's/^/source:   /'
echo "store:    $(du -sh "$T/store" | cut -f1) in $(find "$T/store" -type f | wc -l) files"
awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" \
	'BEGIN { printf "times:    backup %.1f s, restore %.1f s\n", b - a, d - c }'
echo "demo OK: the restored tree equals $SRC"

if [ "${DEMO_KEEP:-0}" = 1 ]; then
	echo "kept: $T"
else
	chmod -R u+w "$T" 2>/dev/null
	rm -rf "$T"
fi
