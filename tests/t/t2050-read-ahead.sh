#!/bin/bash
# Read-ahead: with worker threads, new small files are read and hashed by
# workers while the main thread stores the files before them.  A snapshot
# must not depend on it: --threads=1 (no read-ahead) and --threads=3 give
# the same metadata log (apart from where objects landed) and the same
# verbose listing, in the same order; small, chunked, empty, all-zero,
# duplicate and large files and every other entry type mixed; large
# files read in line, whose next block is read, hashed and cut into
# chunks by a helper while the main thread stores the one before (several
# blocks, a last block cut short, an end exactly at a block's end or just
# after, a zero block, a duplicate found block by block), with the same
# objects and chunks in the database; a file larger than its size when it
# was opened is read again in line; a backup that fails with files
# waiting stops cleanly.
. "$(dirname "$0")/../lib.sh"

U() { "$CUMULUS_UTIL" "$@"; }
src=$T/src
t=$src/tree
mkdir -p "$t/a/deep/er" "$t/b" "$t/c"
head -c 200000 /dev/urandom >"$T/rand"
for i in $(seq 1 60); do
	echo "small file $i" >"$t/a/s$i.txt"
	head -c $((i * 997)) "$T/rand" >"$t/b/m$i.bin" # 1 KB .. 60 KB
done
head -c 300000 /dev/urandom >"$t/a/deep/chunked.bin"
cp "$t/a/deep/chunked.bin" "$t/c/same-as-chunked.bin" # a duplicate
head -c 1500000 /dev/urandom >"$t/a/deep/er/large.bin" # read in line
head -c 3670016 /dev/urandom >"$t/b/big-3.5M.bin"       # 3 blocks and a half
head -c 2097152 /dev/urandom >"$t/b/big-2M.bin"         # ends at a block's end
head -c 2097252 /dev/urandom >"$t/b/big-tail.bin"  # a last chunk across blocks
{ head -c 1048576 /dev/urandom; head -c 1048576 /dev/zero
  head -c 1000000 /dev/urandom; } >"$t/b/big-zero.bin"  # a zero block inside
cp "$t/b/big-3.5M.bin" "$t/c/big-copy.bin"               # found block by block
head -c 40000 /dev/zero >"$t/b/zero40k"
head -c 100 /dev/zero >"$t/b/zero100"
: >"$t/c/empty"
ln -s ../a/s1.txt "$t/c/link"
mkfifo "$t/c/fifo"
for i in $(seq 1 40); do head -c $((i * 50)) "$T/rand" >"$t/c/f$i"; done
touch -d @1600000000 "$t" "$t"/* "$t"/*/* "$t"/*/*/* "$t"/*/*/*/*

backup() { # STORE THREADS
	(cd "$src" && "$CUMULUS" --dest="$1" --localdb="$1.db" -v \
		--threads="$2" tree)
}
# The metadata log with every object reference reduced to its range.
meta_of() { # STORE
	U --store="$1" read-metadata "$(U --store="$1" list-snapshots | tail -1)" |
		sed -E 's#[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}/[0-9a-f]+#REF#g'
}

for n in 1 3; do
	mkdir -p "$T/s$n"
	test_ok "--threads=$n backup" backup "$T/s$n" $n
	# the summary line names the snapshot, whose second may differ
	grep -v '^Snapshot ' "$T/.stdout" >"$T/list$n"
done
test_ok "the verbose listing is in walk order either way" \
	cmp "$T/list1" "$T/list3"
meta_of "$T/s1" >"$T/meta1"
meta_of "$T/s3" >"$T/meta3"
# "volatile: 1" depends on how long after the files' ctime each backup
# started (backup.c: within 30 s), not on the threads: left out.
test_ok "the metadata log is the same with and without read-ahead" \
	cmp <(grep -v '^volatile:' "$T/meta1") <(grep -v '^volatile:' "$T/meta3")
test_eq "it lists every file" "$(grep -c '^type: f' "$T/meta3")" 171
# What the database learnt: each data object's checksum, size and signatures,
# and each chunk's digest, length and offset in its object.  The helper
# cuts large files ahead; it must find the chunks the main thread would.
db_of() { # STORE
	sqlite3 "$1.db/localdb.sqlite" "
		SELECT b.checksum, b.size, s.algorithm, hex(s.signatures)
		FROM block_index b LEFT JOIN subblock_signatures s USING (blockid)
		JOIN segments g USING (segmentid) WHERE g.type = 'data'
		ORDER BY 1, 2;
		SELECT hex(c.hash), c.length, c.offset, b.checksum
		FROM chunk_index c JOIN block_index b USING (blockid)
		ORDER BY 1, 3, 4;"
}
db_of "$T/s1" >"$T/db1"
db_of "$T/s3" >"$T/db3"
test_ok "the database's objects, signatures and chunks are the same" \
	cmp "$T/db1" "$T/db3"
# 10 MB of large files in chunks of 8 KiB on average
test_ok "... with the chunks of the large files among them" \
	test "$(sqlite3 "$T/s3.db/localdb.sqlite" \
		'SELECT count(*) FROM chunk_index')" -gt 800
snap=$(U --store="$T/s3" list-snapshots | tail -1)
test_ok "the read-ahead snapshot restores" \
	U --store="$T/s3" restore-snapshot "$snap" "$T/r3"
make_manifest "$t" >"$T/want.tsv"
make_manifest "$T/r3/tree" >"$T/got.tsv"
test_ok "... exactly" compare_manifests "$T/want.tsv" "$T/got.tsv"
test_eq "the large copy reuses the original's objects" \
	"$(U --store="$T/s3" read-metadata "$snap" |
		grep -A12 -E '^name: tree/(b/big-3.5M|c/big-copy).bin' |
		grep "^data:" | sort -u | wc -l)" 1
test_ok "the duplicate is stored once" \
	test "$(U --store="$T/s3" read-metadata "$snap" |
		grep -A12 -E '^name: tree/(a/deep/chunked|c/same-as-chunked).bin' |
		grep "^data:" | sort -u | wc -l)" -eq 1

# A file whose size was 0 when opened but that has content (like the files
# of /proc): the workers read past the size, the file is read again.
if [ -r /proc/sys/kernel/ostype ] && [ ! -s /proc/sys/kernel/ostype ]; then
	mkdir -p "$T/sp"
	(cd "$T" && "$CUMULUS" --dest="$T/sp" --localdb="$T/sp.db" \
		--threads=2 /proc/sys/kernel/ostype) >"$T/proc.out" 2>&1
	rc=$?
	test_ok "a file larger than its size is backed up (exit $rc)" \
		test $rc -eq 0 -o $rc -eq 3
	snap=$(U --store="$T/sp" list-snapshots | tail -1)
	U --store="$T/sp" restore-snapshot "$snap" "$T/rp" >/dev/null 2>&1
	test_eq "... with all its content" \
		"$(cat "$T/rp/proc/sys/kernel/ostype" 2>&1)" \
		"$(cat /proc/sys/kernel/ostype)"
else
	skip "a file larger than its size is backed up" "no /proc/sys/kernel/ostype"
	skip "... with all its content" "no /proc/sys/kernel/ostype"
fi

# A read error in the block read ahead of a large file (an LD_PRELOAD shim
# fails reads of bad.bin from 1 MiB on): the file is kept up to there,
# marked volatile, with a warning, as when it is read without the helper.
shim=$T/faultinj.so
if cc -shared -fPIC -O1 -o "$shim" "$CUMULUS_TOP/tests/lib/faultinj.c" \
	-ldl 2>"$T/cc.err"; then
	mkdir -p "$T/esrc/t"
	head -c 3145728 /dev/urandom >"$T/esrc/t/bad.bin"
	echo ok >"$T/esrc/t/after.txt"
	touch -d @1600000000 "$T/esrc/t" "$T/esrc/t"/*
	for n in 1 2; do
		mkdir -p "$T/e$n"
		(cd "$T/esrc" && LD_PRELOAD=$shim FAULT_READ_NAME=bad.bin \
			FAULT_READ_AT=1048576 "$CUMULUS" --dest="$T/e$n" \
			--localdb="$T/e$n.db" --threads=$n t) >"$T/e$n.out" 2>&1
		echo $? >"$T/e$n.rc"
	done
	test_eq "a read error part-way: snapshot with warnings (--threads=2)" \
		"$(cat "$T/e2.rc")" 3
	test_ok "... which name the file" grep -q "error reading.*bad.bin" "$T/e2.out"
	meta_of "$T/e1" >"$T/emeta1"
	meta_of "$T/e2" >"$T/emeta2"
	test_ok "... and the same metadata as without the helper" \
		cmp <(grep -v '^volatile:' "$T/emeta1") <(grep -v '^volatile:' "$T/emeta2")
	test_ok "... the first MiB kept, marked volatile" \
		sh -c "grep -A12 '^name: t/bad.bin' '$T/emeta2' | grep -q '^size: 1048576' &&
			grep -A12 '^name: t/bad.bin' '$T/emeta2' | grep -q '^volatile: 1'"
	snap=$(U --store="$T/e2" list-snapshots | tail -1)
	U --store="$T/e2" restore-snapshot "$snap" "$T/er" >/dev/null 2>&1
	test_ok "... restored as read" \
		cmp "$T/er/t/bad.bin" <(head -c 1048576 "$T/esrc/t/bad.bin")
	test_eq "... and the next file is whole" "$(cat "$T/er/t/after.txt")" ok
else
	for d in "a read error part-way" "... which name the file" \
		"... and the same metadata" "... the first MiB kept" \
		"... restored as read" "... and the next file is whole"; do
		skip "$d" "cannot build the shim: $(head -1 "$T/cc.err")"
	done
fi

# How many workers a backup starts: --threads as given, else one more
# than the cores when there are several (backup_worker_count).  An upload
# script sees them: on each file it is sent, it counts the backup's
# read-ahead and compression threads by name.
cat >"$T/count.sh" <<'EOS'
p=$PPID
while [ "$p" -gt 1 ] && [ "$(cat /proc/$p/comm)" != cumulus ]; do
	p=$(sed 's/.*) //' /proc/$p/stat | cut -d' ' -f2)
done
while read -r verb type name path; do
	echo "$(grep -lx cumulus-read /proc/$p/task/*/comm 2>/dev/null | wc -l)" \
		"$(grep -lx cumulus-zstd /proc/$p/task/*/comm 2>/dev/null | wc -l)" \
		"$verb $type" >>"$COUNTS"
	echo OK
done
EOS
workers_seen() { # THREADS-OPTION...: "most read-ahead, most zstd threads"
	rm -f "$T/counts"
	(cd "$src" && COUNTS="$T/counts" "$CUMULUS" --localdb="$T/w.db" \
		--upload-script="sh '$T/count.sh'" --segment-size=64K "$@" tree) \
		>"$T/w.out" 2>&1 || { echo "backup failed: $(cat "$T/w.out")"; return; }
	awk '$1 > r { r = $1 } $2 > z { z = $2 } END { print r + 0, z + 0 }' "$T/counts"
	rm -rf "$T/w.db"
}
cores=$(getconf _NPROCESSORS_ONLN)
if [ "$cores" -gt 1 ]; then
	test_eq "by default, one more worker than the $cores cores" \
		"$(workers_seen)" "$((cores + 1)) $((cores + 1))"
else
	test_eq "by default on one core, no workers" "$(workers_seen)" "0 0"
fi
test_eq "--threads=2: two of each" "$(workers_seen --threads=2)" "2 2"
test_eq "--threads=1: none" "$(workers_seen --threads=1)" "0 0"

# A store that fails while files wait for their turn: the backup fails
# with a message, publishes nothing, and leaves no temp file.
mkdir -p "$T/sbad"
chmod 0555 "$T/sbad"
if [ "$(id -u)" = 0 ]; then
	# root writes anywhere: use a filter that fails half-way instead
	test_fail "a failing segment filter with files waiting fails" \
		sh -c "cd '$src' && '$CUMULUS' --dest='$T/sf2' --localdb='$T/sf2.db' \
		--threads=3 --segment-size=64K \
		--filter='head -c 50000 >/dev/null; exit 1' \
		--filter-extension=.x tree"
else
	test_fail "an unwritable store with files waiting fails" \
		sh -c "cd '$src' && '$CUMULUS' --dest='$T/sbad' --localdb='$T/sb.db' --threads=3 tree"
fi
test_ok "... with a message" grep -q . "$T/.out"
test_eq "... and no snapshot" "$(find "$T" -name 'snapshot-*.lbs' -path '*/sf2/*' -o \
	-name 'snapshot-*.lbs' -path '*/sbad/*' | wc -l)" 0
chmod 0755 "$T/sbad"
done_testing
