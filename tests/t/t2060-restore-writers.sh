#!/bin/bash
# Restore writer threads: with --threads above one, small files are
# decoded on the main thread and created by writer threads.  The restored
# tree is the same as with --threads=1 (contents, holes, modes, times,
# hard links, symlinks); a writer that runs out of space reports the file,
# removes it and the restore exits 1 with every file it left complete;
# a bad --threads value is a usage error.
. "$(dirname "$0")/../lib.sh"

U() { "$CUMULUS_UTIL" "$@"; }
src=$T/src
t=$src/tree
mkdir -p "$t/d1/d2" "$t/d3"
head -c 100000 /dev/urandom >"$T/rand"
for i in $(seq 1 80); do
	head -c $((i * 131)) "$T/rand" >"$t/d1/f$i"
	echo "text $i" >"$t/d3/t$i"
done
: >"$t/empty"
head -c 70000 /dev/zero >"$t/zeros"
# sparse, small (to the writers) and large (in line)
printf 'head' >"$t/sparse-small"
truncate -s 600K "$t/sparse-small"
printf 'tail' >>"$t/sparse-small"
head -c 5000 "$T/rand" >"$t/sparse-large"
truncate -s 3M "$t/sparse-large"
head -c 1500000 /dev/urandom >"$t/d1/d2/large.bin"
# 18 MB of files up to 1 MiB: the writers' ring (4 MiB) wraps round
# several times while three writers finish jobs out of order.
mkdir -p "$t/d4"
for i in $(seq 1 30); do
	head -c $(((i * 37 % 900 + 100) * 1024)) /dev/urandom >"$t/d4/r$i"
done
ln "$t/d1/f7" "$t/d3/hardlink-to-f7"
ln -s ../d1/f1 "$t/d3/link"
chmod 0600 "$t/d1/f2"
chmod 0755 "$t/d1/f3"
touch -d @1600000000 "$t" "$t"/* "$t"/*/* "$t"/*/*/*
touch -h -d @1600000000 "$t/d3/link"

mkdir -p "$T/store"
test_ok "backup" sh -c "cd '$src' && '$CUMULUS' --dest='$T/store' \
	--localdb='$T/db' tree"
snap=$(U --store="$T/store" list-snapshots | tail -1)
make_manifest "$t" >"$T/want.tsv"
for n in 1 4; do
	test_ok "restore --threads=$n" \
		U --store="$T/store" restore-snapshot --threads=$n "$snap" "$T/r$n"
	make_manifest "$T/r$n/tree" >"$T/got$n.tsv"
	test_ok "... restores the tree exactly" \
		compare_manifests "$T/want.tsv" "$T/got$n.tsv"
done
test_ok "... the same with and without writer threads" \
	cmp "$T/got1.tsv" "$T/got4.tsv"
test_eq "a hard link is still one inode" \
	"$(stat -c %i "$T/r4/tree/d1/f7")" "$(stat -c %i "$T/r4/tree/d3/hardlink-to-f7")"
test_ok "the small sparse file keeps a hole" \
	test "$(stat -c %b "$T/r4/tree/sparse-small")" -lt 600
test_exit "--threads=0 is a usage error" 2 \
	U --store="$T/store" restore-snapshot --threads=0 "$snap" "$T/rbad"
test_ok "... that creates nothing" test ! -e "$T/rbad"

# Out of space while the writers work.
mnt=$T/mnt
mkdir -p "$mnt"
if mount -t tmpfs -o size=1m cumulus-t2060 "$mnt" 2>/dev/null; then
	trap 'umount "$mnt" 2>/dev/null; _lib_cleanup' EXIT
	test_exit "a restore onto a full disk exits 1" 1 \
		U --store="$T/store" restore-snapshot --threads=3 "$snap" "$mnt/rs"
	test_full_disk_left "cannot restore '.*No space left" "$mnt/rs/tree" "$t"
	umount "$mnt"
else
	skip "a restore onto a full disk exits 1" "cannot mount a tmpfs"
	skip "... blaming no segment" "cannot mount a tmpfs"
	skip "... naming what it could not restore" "cannot mount a tmpfs"
	skip "... and every file it left is complete" "cannot mount a tmpfs"
fi
done_testing
