#!/bin/bash
# Restore reads segments by streaming and keeps only the objects with
# planned reads left: more of them than the 2 MiB memory cache go to an
# unlinked spill file under $TMPDIR.  Here small files are slices of a
# 12 MiB file's block objects, read after the whole file, so twelve
# 1 MiB blocks wait for later reads.  The tree restores exactly with the
# spill file, with no usable $TMPDIR (the blocks are decoded again) and
# with a $TMPDIR that fills up part way; objects read out of order within
# a segment and shared chunks restore too.
. "$(dirname "$0")/../lib.sh"

U() { "$CUMULUS_UTIL" "$@"; }
src=$T/src
t=$src/tree
mkdir -p "$t/a" "$t/b" "$t/c"
head -c $((12 << 20)) /dev/urandom >"$t/a/big"
for i in $(seq 0 11); do
	# 300 KiB from the middle of block i, in reverse block order
	dd if="$t/a/big" of="$t/b/s$(printf %02d $((11 - i)))" bs=1K \
		skip=$((i * 1024 + 100)) count=300 2>/dev/null
done
# the same chunk shared by several files, and a file twice
head -c 200000 /dev/urandom >"$t/c/one"
for i in 1 2 3; do cat "$t/c/one" "$t/b/s03" >"$t/c/two$i"; done

mkdir -p "$T/store"
test_ok "backup" sh -c "cd '$src' && '$CUMULUS' --dest='$T/store' \
	--localdb='$T/db' tree"
snap=$(U --store="$T/store" list-snapshots | tail -1)
U --store="$T/store" read-metadata "$snap" >"$T/meta"
bigobjs=$(awk '/^name: tree\/a\/big$/{f=1; next} /^name:/{f=0}
	f && /\//{for (i = 1; i <= NF; i++) if ($i ~ /\//) {
		sub(/\[.*/, "", $i); print $i}}' "$T/meta" | sort -u)
shared=0
for o in $bigobjs; do
	grep -q "$o\[[0-9]*+[0-9]*\]" "$T/meta" && shared=$((shared + 1))
done
test_ok "the small files are slices of the big file's blocks ($shared)" \
	test "$shared" -ge 8
make_manifest "$t" >"$T/want.tsv"

restore_as() { # NAME TMPDIR
	rm -rf "$T/r-$1"
	TMPDIR=$2 U --store="$T/store" restore-snapshot "$snap" "$T/r-$1" &&
		make_manifest "$T/r-$1/tree" >"$T/got-$1.tsv" &&
		compare_manifests "$T/want.tsv" "$T/got-$1.tsv"
}
mkdir -p "$T/tmp"
test_ok "restore spilling to \$TMPDIR" restore_as spill "$T/tmp"
test_eq "... leaves nothing in \$TMPDIR" "$(ls -A "$T/tmp" | wc -l)" 0
test_ok "restore with no usable \$TMPDIR (decodes again)" \
	restore_as nospill "$T/no/such/dir"
test_ok "restore --threads=1" sh -c "rm -rf '$T/r1' &&
	'$CUMULUS_UTIL' --store='$T/store' restore-snapshot --threads=1 \
	'$snap' '$T/r1' && cmp '$T/r1/tree/b/s05' '$t/b/s05'"
test_ok "restore of one slice file alone" sh -c "rm -rf '$T/r2' &&
	'$CUMULUS_UTIL' --store='$T/store' restore-snapshot '$snap' '$T/r2' \
	tree/b/s07 && cmp '$T/r2/tree/b/s07' '$t/b/s07' &&
	test ! -e '$T/r2/tree/a/big'"

mnt=$T/mnt
mkdir -p "$mnt"
if mount -t tmpfs -o size=3m cumulus-t2070 "$mnt" 2>/dev/null; then
	trap 'umount "$mnt" 2>/dev/null; _lib_cleanup' EXIT
	test_ok "restore with a spill disk that fills up" restore_as full "$mnt"
	umount "$mnt"
else
	skip "restore with a spill disk that fills up" "cannot mount a tmpfs"
fi
done_testing
