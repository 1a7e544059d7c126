#!/bin/bash
# Space management: delete-snapshot, forget (retention per scheme), gc
# (dry run equals the real effect, never deletes what a snapshot or a
# running backup needs, warns about missing segments), prune-db, clean,
# check-db, and rebuild-db (the next unchanged backup stores no data).
. "$(dirname "$0")/../lib.sh"

U() { "$CUMULUS_UTIL" "$@"; }
backup() { (cd "$T/src" && "$CUMULUS" --dest="$T/store" --localdb="$T/db" "$@" tree); }
# Segments and snapshot files, not the coordination files in leases/
# (a deleting gc leaves leases/last-gc there).
store_bytes() { du -sb --apparent-size --exclude=leases "$T/store" | cut -f1; }
# Clear the volatile marks (recent ctimes) so the statcache is trusted,
# as it would be for a tree not touched in the last seconds.
trust_statcache() { sed -i '/^volatile: 1$/d' "$T/db/statcache2"; }

mkdir -p "$T/src/tree/sub"
head -c 2500000 /dev/urandom >"$T/src/tree/big"
for i in 1 2 3 4 5 6; do head -c $((i * 3000)) /dev/urandom >"$T/src/tree/sub/f$i"; done
ln -s sub/f1 "$T/src/tree/link"

# ---- the 12-snapshot cycle: changing tree, retention, clean, gc ----
declare -A manifest
for n in $(seq 1 12); do
	head -c 300000 /dev/urandom >"$T/src/tree/sub/f$((n % 6 + 1))"
	echo "round $n" >>"$T/src/tree/log"
	[ $((n % 4)) = 0 ] && head -c 1200000 /dev/urandom >"$T/src/tree/big"
	backup >/dev/null 2>&1 || echo "# backup $n failed"
	name=$(U --store="$T/store" list-snapshots | tail -1)
	manifest[$name]=$(make_manifest "$T/src/tree" | grep -v '^tree\b' | sort | md5sum)
	make_manifest "$T/src/tree" >"$T/m-$name"
	if [ $((n % 4)) = 0 ]; then
		U --store="$T/store" forget --keep-last 3 >"$T/forget.out"
		U --store="$T/store" --localdb="$T/db" prune-db >/dev/null
		U --localdb="$T/db" clean --threshold=0 >"$T/clean.out"
		before=$(store_bytes)
		U --store="$T/store" gc --min-age=0 --dry-run >"$T/gcdry.out"
		predicted=$(sed -n 's/.*would delete [0-9]* files, \([0-9]*\) bytes.*/\1/p' "$T/gcdry.out")
		U --store="$T/store" --localdb="$T/db" gc --min-age=0 >"$T/gc.out"
		after=$(store_bytes)
		test_eq "round $n: gc reclaimed what --dry-run predicted" \
			"$((before - after))" "$predicted"
	fi
done
test_eq "forget --keep-last 3 left 3 snapshots after the last round" \
	"$(U --store="$T/store" list-snapshots | wc -l)" 3
grep -q '^keep .*(last)' "$T/forget.out"
test_eq "forget says why it keeps a snapshot" $? 0
grep -q '^Cleaning segment' "$T/clean.out"
test_eq "clean expired segments" $? 0
test_ok "nothing referenced is missing after the cycle" U --store="$T/store" gc --dry-run --min-age=0
for s in $(U --store="$T/store" list-snapshots); do
	rm -rf "$T/r"
	U --store="$T/store" restore-snapshot "$s" "$T/r" >/dev/null 2>&1
	make_manifest "$T/r/tree" >"$T/r.m"
	compare_manifests "$T/m-$s" "$T/r.m" >/dev/null
	test_eq "snapshot $s restores bit-exactly" $? 0
done
test_ok "check-db: healthy" U --localdb="$T/db" check-db

# ---- gc: what it must keep, what it must report ----
seg=$(ls "$T/store" | grep -E '^[0-9a-f-]{36}\.tar' | head -1)
cp "$T/store/$seg" "$T/$seg.keep"
touch "$T/store/.tmp.x.1234"
test_ok "gc with the default --min-age" U --store="$T/store" gc
grep -q '0 files' "$T/.stdout"
test_eq "default --min-age=1d keeps fresh garbage" $? 0
rm -f "$T/store/$seg"
test_exit "gc warns about a referenced segment missing (exit 1)" 1 \
	U --store="$T/store" gc --dry-run --min-age=0
grep -q "MISSING" "$T/.stderr"
test_eq "the warning names the missing segment" $? 0
mv "$T/$seg.keep" "$T/store/$seg"
touch -d '3 days ago' "$T/store/.tmp.x.1234"
test_ok "gc deletes an old temp file" U --store="$T/store" gc
test_eq "temp file gone" "$(ls -a "$T/store" | grep -c '^\.tmp\.')" 0

# ---- names with control characters in the store ----
# Not shown by the store layer (so gc is not blocked by them), and names
# that are shown are printed escaped: no escape sequences on a terminal.
evil=$(printf 'X\033]0;TITLE\007\033[31mRED')
: >"$T/store/snapshot-$evil.lbs"
: >"$T/store/snapshot-$evil-old.sha1sums"
: >"$T/store/snapshot-C1$(printf '\302\233')31m.lbs"
test_ok "list-snapshots with odd names in the store" U --store="$T/store" \
	list-snapshots
cp "$T/.stdout" "$T/list.out"
test_eq "... prints no control bytes" \
	"$(tr -d '\n' <"$T/list.out" | LC_ALL=C grep -c $'[\001-\037\177]\|\302[\200-\237]')" 0
test_ok "... and escapes a C1 control" grep -qxF 'C1\xc2\x9b31m' "$T/list.out"
U --store="$T/store" forget --keep-last 100 --dry-run >"$T/forget.out" 2>&1
test_eq "forget --dry-run prints no control bytes" \
	"$(tr -d '\n' <"$T/forget.out" | LC_ALL=C grep -c $'[\001-\037\177]\|\302[\200-\237]')" 0
rm -f "$T/store/snapshot-$evil.lbs" "$T/store/snapshot-C1"*
test_ok "gc is not blocked by a side file with an odd name" U --store="$T/store" \
	gc --dry-run --min-age=0
rm -f "$T/store/snapshot-$evil-old.sha1sums"

# ---- concurrent backup, gc in the middle (default --min-age) ----
head -c 3000000 /dev/urandom >"$T/src/tree/new1"
# A slow filter keeps the backup running, segments published one by one.
(cd "$T/src" && "$CUMULUS" --dest="$T/store" --localdb="$T/db" \
	--filter="sleep 2; cat" --filter-extension= --segment-size=1000000 tree \
	>/dev/null 2>&1; echo $? >"$T/bg.rc") &
test_ok "the concurrent backup took its lease" wait_lease
# The backup's lease makes gc delete nothing and say so (exit 3).
test_exit "gc while a backup runs" 3 U --store="$T/store" gc
wait
test_eq "the concurrent backup committed" "$(cat "$T/bg.rc")" 0
last=$(U --store="$T/store" list-snapshots | tail -1)
rm -rf "$T/r"
U --store="$T/store" restore-snapshot "$last" "$T/r" >/dev/null 2>&1
cmp -s "$T/src/tree/new1" "$T/r/tree/new1"
test_eq "the concurrent backup's snapshot restores" $? 0

# ---- delete-snapshot, prune-db ----
first=$(U --store="$T/store" list-snapshots | head -1)
test_ok "delete-snapshot" U --store="$T/store" delete-snapshot "$first"
test_eq "its descriptor and checksum file are gone" \
	"$(ls "$T/store" | grep -c -- "$first")" 0
test_exit "delete-snapshot of an unknown name fails" 1 \
	U --store="$T/store" delete-snapshot 20000101T000000
test_ok "gc after delete-snapshot" U --store="$T/store" --localdb="$T/db" gc --min-age=0
test_ok "prune-db" U --store="$T/store" --localdb="$T/db" prune-db
test_eq "prune-db dropped the deleted snapshot" \
	"$(sqlite3 "$T/db/localdb.sqlite" "select count(*) from snapshots where '$first' like '%'||name")" 0

# ---- forget: calendar rules per scheme, on dated copies ----
mkdir -p "$T/fs"
d=$(ls "$T/store"/snapshot-*.lbs | tail -1)
for ts in 20250101T100000 20250101T200000 20250102T100000 20250110T100000 \
	20250215T100000 20250301T100000; do
	cp "$d" "$T/fs/snapshot-home-$ts.lbs"
	cp "$d" "$T/fs/snapshot-etc-$ts.lbs"
done
test_ok "forget --keep-daily 2 --keep-monthly 2 --scheme home --dry-run" \
	U --store="$T/fs" forget --keep-daily 2 --keep-monthly 2 --scheme home --dry-run
test_eq "kept: the newest two days and the newest of two months" \
	"$(grep '^keep' "$T/.stdout" | awk '{print $2}' | sort | tr '\n' ' ')" \
	"home-20250215T100000 home-20250301T100000 "
test_ok "forget --keep-within 10d" U --store="$T/fs" forget --keep-within 45d --scheme home
test_eq "keep-within counts from the scheme's newest snapshot" \
	"$(ls "$T/fs" | grep -c home)" 2
test_eq "other schemes untouched" "$(ls "$T/fs" | grep -c etc)" 6
test_exit "forget without a policy is a usage error" 2 U --store="$T/fs" forget

# ---- rebuild-db: the next unchanged backup stores no file data ----
backup >/dev/null 2>&1
mv "$T/db" "$T/db.lost"
test_ok "rebuild-db" U --store="$T/store" --localdb="$T/db" rebuild-db
test_ok "check-db after rebuild" U --localdb="$T/db" check-db
trust_statcache
test_ok "backup after rebuild" backup
test_eq "no file data stored again" \
	"$(grep -o '[0-9.]* MiB new' "$T/.stdout" | head -1)" "0.0 MiB new"
last=$(U --store="$T/store" list-snapshots | tail -1)
rm -rf "$T/r"
U --store="$T/store" restore-snapshot "$last" "$T/r" >/dev/null 2>&1
make_manifest "$T/src/tree" >"$T/a.m"; make_manifest "$T/r/tree" >"$T/b.m"
compare_manifests "$T/a.m" "$T/b.m" >/dev/null
test_eq "the backup after rebuild restores" $? 0

# ---- check-db on a damaged database ----
printf 'garbage' | dd of="$T/db/localdb.sqlite" bs=1 seek=100 conv=notrunc 2>/dev/null
dd if=/dev/urandom of="$T/db/localdb.sqlite" bs=1024 seek=1 count=2 conv=notrunc 2>/dev/null
test_fail "check-db fails on a damaged database" U --localdb="$T/db" check-db
grep -q 'rebuild-db' "$T/.stderr"
test_eq "and names rebuild-db" $? 0
done_testing
