#!/bin/bash
# Backup round trip: a tree with every file type and hostile names (incl. a
# path longer than PATH_MAX) is backed up, changed, backed up again and
# backed up a third time unchanged; both changed snapshots restore exactly
# (contents, types, modes, mtimes of everything, symlink targets, hard-link
# groups, ownership as root), the second stores only about the changed
# bytes, the third almost nothing, and verify-snapshots passes on all.
. "$(dirname "$0")/../lib.sh"

MiB=1048576
root=0
[ "$(id -u)" = 0 ] && root=1
src=$T/src
store=$T/store
db=$T/db
mkdir -p "$src/tree"

# 45 levels of 100-character names: the leaf path is > PATH_MAX (4096).
DEEP_LEVELS=45
DEEP_NAME=$(printf 'd%.0s' $(seq 1 99))
deep_name() { printf '%s%02d' "${DEEP_NAME:0:98}" "$1"; }

# ---- build the tree ----
build_tree() (
	set -e
	cd "$src/tree"
	: >empty.bin
	printf x >one.bin
	head -c 4095 /dev/urandom >b4095.bin
	head -c 4096 /dev/urandom >b4096.bin
	head -c 4097 /dev/urandom >b4097.bin
	head -c $((5 * MiB + 12345)) /dev/urandom >big.bin
	head -c $MiB /dev/urandom >"$T/block"
	cat "$T/block" "$T/block" "$T/block" "$T/block" >same-blocks.bin
	echo "log line 1" >log.txt
	seq 1 20000 >numbers.txt
	echo replace me >replace-me.txt
	echo chmod me >chmod-me.txt
	echo delete me >delete-me.txt
	mkdir empty-dir private ro-dir dirs
	chmod 0700 private
	echo secret >private/inside
	echo "in read-only dir" >ro-dir/file
	chmod 0555 ro-dir
	mkdir links
	ln -s ../numbers.txt links/relative
	ln -s /etc/passwd links/absolute
	ln -s does/not/exist links/dangling
	ln -s ../dirs links/to-dir
	ln -s "../names/with space
and newline" links/odd-target
	mkdir hard hard/sub other
	echo pair >hard/pair-a
	ln hard/pair-a hard/pair-b
	echo triple >hard/triple-1
	ln hard/triple-1 hard/sub/triple-2
	ln hard/triple-1 other/triple-3
	mkdir special
	mkfifo special/fifo
	truncate -s 16M sparse.img
	printf 'head of sparse' | dd of=sparse.img conv=notrunc status=none
	printf 'tail of sparse' | dd of=sparse.img bs=1 seek=$((16 * MiB - 14)) \
		conv=notrunc status=none
	mkdir names
	cd names
	for n in 'with space' "new
line" "tab	here" $'\xff\xfe' '100%' 'pct%41' '-leading-dash' '@at' '+plus' \
		'back\slash' ' leading space' 'trailing space ' 'ünïcødé-日本語' \
		'a=b:c;d,e' "with space
and newline"; do
		printf '%s\n' "content of $n" >"./$n"
	done
	cd ..
	mkdir perms
	echo suid >perms/setuid && chmod 4755 perms/setuid
	echo sgid >perms/setgid && chmod 2755 perms/setgid
	echo both >perms/suid-sgid-sticky && chmod 7644 perms/suid-sgid-sticky
	echo none >perms/mode0000 && chmod 0000 perms/mode0000
	mkdir perms/sticky-dir && chmod 1777 perms/sticky-dir
	mkdir perms/sgid-dir && chmod 2750 perms/sgid-dir
	mkdir deep
	cd deep
	for i in $(seq 1 $DEEP_LEVELS); do
		mkdir "$(deep_name "$i")"
		cd "$(deep_name "$i")"
	done
	echo "deep leaf" >leaf.txt
)
build_tree
test_eq "test tree built" "$?" 0

if python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' \
	"$src/tree/special/socket" 2>/dev/null ||
	perl -MIO::Socket::UNIX -e 'IO::Socket::UNIX->new(Local => $ARGV[0],
		Listen => 1) or exit 1' "$src/tree/special/socket" 2>/dev/null; then
	have_socket=1
else
	have_socket=0
fi
have_dev=0
if [ $root = 1 ] && mknod "$src/tree/special/chardev" c 1 3 2>/dev/null &&
	mknod "$src/tree/special/blockdev" b 7 200 2>/dev/null; then
	have_dev=1
fi
if [ $root = 1 ]; then
	chown 1234:5678 "$src/tree/one.bin" "$src/tree/private"
	chown -h 4321:8765 "$src/tree/links/relative"
	chown 1001:1001 "$src/tree/hard/pair-a"
	chown 0:5678 "$src/tree/perms/setgid"
	chmod 2755 "$src/tree/perms/setgid" # chown cleared it
fi

# Every mtime is set to a fixed old date: later edits give new mtimes, and
# nothing is "volatile" (changed less than 30 s ago) except by ctime.
(cd "$src" && find tree -depth -execdir touch -h -d @1600000000 {} +)
test_eq "fixed mtimes set" "$(cd "$src" && find tree -newermt @1600000001 | wc -l)" 0

# The manifest tool lstat()s full paths, so it cannot reach below PATH_MAX:
# manifest = the tree's manifest (with the unreachable deep part dropped)
# plus a manifest of the deep part taken from inside it, plus ownership.
DEEP_SPLIT=30
tree_manifest() { # DIR OUT
	local dir=$1 out=$2
	make_manifest "$dir" >"$out" 2>"$out.err"
	# only "File name too long" below deep/ is expected
	if grep -v 'File name too long' "$out.err" | grep -q .; then
		cat "$out.err" >>"$out"
	fi
	grep -Ev "^deep/([^/	]+/){$DEEP_SPLIT}" "$out" >"$out.tmp"
	(
		cd "$dir/deep" || exit 1
		for i in $(seq 1 "$DEEP_SPLIT"); do
			cd "$(deep_name "$i")" || exit 1
		done
		echo "#deep part below level $DEEP_SPLIT"
		make_manifest . | tail -n +2
	) >>"$out.tmp" 2>&1 || echo "deep part unreadable" >>"$out.tmp"
	mv "$out.tmp" "$out"
}
owners() { # DIR: uid:gid of every entry, NUL-safe, sorted
	(cd "$1" && find . -printf '%U:%G %m %P\0' | sort -z | md5sum)
}
compare_trees() { # DESC WANT-MANIFEST WANT-OWNERS RESTORED-DIR
	local desc=$1 want=$2 wantown=$3 dir=$4
	tree_manifest "$dir" "$T/got.tsv"
	test_ok "$desc: restored tree matches the manifest" \
		diff -u "$want" "$T/got.tsv"
	[ $_rc -eq 0 ] || diff "$want" "$T/got.tsv" | head -20 | sed 's/^/# /'
	if [ $root = 1 ]; then
		test_eq "$desc: ownership restored" "$(owners "$dir")" "$wantown"
	else
		skip "$desc: ownership restored" "not root"
	fi
	test_eq "$desc: sparse.img restored with holes" \
		"$(($(stat -c %b "$dir/sparse.img" 2>/dev/null || echo 99999) < 2048))" 1
}

tree_manifest "$src/tree" "$T/m1.tsv"
owners1=$(owners "$src/tree")
test_eq "manifest has the deep leaf" "$(grep -c '/leaf.txt	f	' "$T/m1.tsv")" 1
test_eq "manifest has the hostile names" \
	"$(grep -cE '^names/(new%0aline|tab%09here|%ff%fe|pct%2541|back\\slash|trailing space )	' "$T/m1.tsv")" 6
test_eq "manifest has no unexpected errors" \
	"$(grep -c -e UNEXPECTED -e unreadable -e 'manifest.pl' "$T/m1.tsv")" 0
diag "tree: $(wc -l <"$T/m1.tsv") manifest lines, socket=$have_socket devices=$have_dev"

segsize() { # total bytes of the store's segment files
	find "$store" -maxdepth 1 -name '*.tar*' -printf '%s\n' | awk '{s+=$1} END {print s+0}'
}
segset() { find "$store" -maxdepth 1 -name '*.tar*' -printf '%f\n' | sort; }
backup() { # DESC: back up "tree" from $src; sets $snap
	cd "$src" || return 1
	test_ok "$1" "$CUMULUS" --dest="$store" --localdb="$db" --tmpdir="$T" tree
	local rc=$?
	cd "$T" || return 1
	snap=$(sed -n 's/^Snapshot \([^:]*\):.*/\1/p' "$T/.stdout")
	cp "$T/.out" "$T/last-backup.out"
	return $rc
}

# ---- snapshot 1 ----
backup "backup 1"
snap1=$snap
size1=$(segsize)
segs1=$(segset)
diag "$(cat "$T/last-backup.out")"
test_ok "snapshot 1 named in the summary line" test -n "$snap1"
test_ok "snapshot 1 descriptor exists" test -f "$store/snapshot-$snap1.lbs"
# random data: 3 x 4 KiB, 5 MiB, one of the four identical 1 MiB blocks;
# the 16 MiB sparse file and repeated blocks must not be stored again.
test_ok "identical blocks and holes stored once ($size1 bytes)" \
	test "$size1" -lt $((7 * MiB))
test_ok "... but the data is there" test "$size1" -gt $((6 * MiB))
test_eq "source tree untouched by the backup" \
	"$(tree_manifest "$src/tree" "$T/m1b.tsv"; cat "$T/m1b.tsv" | md5sum)" \
	"$(md5sum <"$T/m1.tsv")"

# ---- restore 1 ----
test_ok "restore snapshot 1" "$CUMULUS_UTIL" --store="$store" \
	restore-snapshot "$snap1" "$T/r1"
compare_trees "snapshot 1" "$T/m1.tsv" "$owners1" "$T/r1/tree"
if [ $have_socket = 1 ]; then
	test_eq "socket restored as a socket" \
		"$(stat -c %F "$T/r1/tree/special/socket" 2>&1)" "socket"
else
	skip "socket restored as a socket" "cannot create a unix socket"
fi
if [ $have_dev = 1 ]; then
	test_eq "devices restored" \
		"$(stat -c '%F %t:%T' "$T/r1/tree/special/chardev" "$T/r1/tree/special/blockdev" | tr '\n' ' ')" \
		"character special file 1:3 block special file 7:c8 "
else
	skip "devices restored" "not root or mknod not permitted"
fi

# ---- change the tree ----
change_tree() (
	set -e
	cd "$src/tree"
	echo "log line 2" >>log.txt
	# insert 100 bytes in the middle of big.bin, rewriting it in place
	perl -e 'open(my $f, "+<", $ARGV[0]) or die; binmode $f;
		local $/; my $d = <$f>; my $m = int(length($d) / 2);
		substr($d, $m, 0) = "I" x 100; seek($f, 0, 0); print $f $d;
		close($f) or die' big.bin
	rm delete-me.txt
	mkdir new-dir
	echo "added in stage 2" >new-dir/added.txt
	echo "new top file" >added.txt
	chmod 0640 chmod-me.txt
	rm replace-me.txt
	ln -s numbers.txt replace-me.txt
)
ino_before=$(stat -c %i "$src/tree/big.bin")
change_tree
test_eq "tree changed" "$?" 0
test_eq "big.bin rewritten in place (same inode)" \
	"$(stat -c %i "$src/tree/big.bin")" "$ino_before"
# new, distinct mtimes (now) for what changed; the rest keeps its old date
touch -d @1700000000 "$src/tree/log.txt" "$src/tree/big.bin"
tree_manifest "$src/tree" "$T/m2.tsv"
owners2=$(owners "$src/tree")
test_ok "manifest 2 differs from manifest 1" \
	test "$(md5sum <"$T/m1.tsv")" != "$(md5sum <"$T/m2.tsv")"

# ---- snapshot 2 ----
backup "backup 2"
snap2=$snap
diag "$(cat "$T/last-backup.out")"
test_ok "snapshot 2 has a new name" test -n "$snap2" -a "$snap2" != "$snap1"
size2=$(segsize)
growth=$((size2 - size1))
# Sub-file incrementals: only the chunks around the 100 inserted bytes of
# big.bin are stored again (a few chunks of ~8 KiB), plus the small files
# and the metadata; not the rest of big.bin after the insertion.
big=$(stat -c %s "$src/tree/big.bin")
test_ok "snapshot 2 stores only about the changed bytes ($growth < 256 KiB)" \
	test "$growth" -lt $((256 * 1024))
test_ok "... and not the whole of big.bin again" test "$growth" -lt "$big"
test_ok "... but it did store the changed chunks" test "$growth" -gt 2048

# ---- snapshot 3: no changes ----
segs2=$(segset)
backup "backup 3 (nothing changed)"
snap3=$snap
size3=$(segsize)
new3=$(comm -13 <(echo "$segs2") <(segset))
new3size=0
for s in $new3; do new3size=$((new3size + $(stat -c %s "$store/$s"))); done
test_ok "unchanged backup adds only metadata ($new3size bytes in new segments)" \
	test "$new3size" -lt 65536
test_ok "... and the store grew by that only" test $((size3 - size2)) -eq "$new3size"
test_ok "... and no new data (summary says 0.0 MiB new)" \
	grep -q ' 0\.0 MiB new' "$T/last-backup.out"

# ---- restore and verify everything ----
for n in 1 2 3; do
	eval "s=\$snap$n"
	test_ok "verify-snapshots $n" "$CUMULUS_UTIL" --store="$store" \
		verify-snapshots "$s"
done
test_ok "verify-snapshots of all three at once" "$CUMULUS_UTIL" \
	--store="$store" verify-snapshots "$snap1" "$snap2" "$snap3"
chmod -R u+rwx "$T/r1"
rm -rf "$T/r1"
test_ok "restore snapshot 1 again (after two more backups)" "$CUMULUS_UTIL" \
	--store="$store" restore-snapshot "$snap1" "$T/r1"
compare_trees "snapshot 1 (again)" "$T/m1.tsv" "$owners1" "$T/r1/tree"
test_ok "restore snapshot 2" "$CUMULUS_UTIL" --store="$store" \
	restore-snapshot "$snap2" "$T/r2"
compare_trees "snapshot 2" "$T/m2.tsv" "$owners2" "$T/r2/tree"
test_ok "restore snapshot 3" "$CUMULUS_UTIL" --store="$store" \
	restore-snapshot "$snap3" "$T/r3"
compare_trees "snapshot 3" "$T/m2.tsv" "$owners2" "$T/r3/tree"
test_eq "big.bin of snapshot 2 has the inserted bytes" \
	"$(grep -c IIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIII "$T/r2/tree/big.bin")" 1

# The checksum field of files around the block size (1 MiB), empty and
# all-zero ones is the SHA-256 of the content (a one-block file takes its
# block's checksum instead of hashing twice).
mkdir -p "$T/sizes/s"
head -c 5000 /dev/zero >"$T/sizes/s/zero"
: >"$T/sizes/s/empty"
for n in 1 100000 1048575 1048576 1048577 3000000; do
	head -c $n /dev/urandom >"$T/sizes/s/r$n"
done
(cd "$T/sizes" && "$CUMULUS" --dest="$T/sizes/store" --localdb="$T/sizes/db" s >/dev/null)
ssnap=$("$CUMULUS_UTIL" --store="$T/sizes/store" list-snapshots)
"$CUMULUS_UTIL" --store="$T/sizes/store" read-metadata "$ssnap" |
	awk '/^name:/ { n = $2 } /^checksum:/ { print n, $2 }' >"$T/sizes/sums"
bad=0
while read -r n c; do
	[ "$c" = "sha256=$(sha256sum <"$T/sizes/$n" | cut -d' ' -f1)" ] ||
		{ bad=$((bad + 1)); diag "checksum of $n: $c"; }
done <"$T/sizes/sums"
test_eq "checksums of 8 files of edge sizes are their SHA-256 ($(wc -l <"$T/sizes/sums") checked)" \
	"$bad $(wc -l <"$T/sizes/sums")" "0 8"

done_testing
