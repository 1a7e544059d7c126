#!/bin/bash
# gc against a running backup, without a shared database: after a forget
# leaves an old segment unreferenced, a backup reuses it while gc runs.
# The lease protocol (src/ops/lease.h) keeps that segment: gc deletes
# nothing while a fresh backup lease exists; a backup waits for a running
# gc and never reuses a segment the store no longer has.  Every snapshot
# restores bit-exactly.
. "$(dirname "$0")/../lib.sh"

U() { "$CUMULUS_UTIL" "$@"; }
backup() { (cd "$T/src" && "$CUMULUS" --dest="$T/store" --localdb="$T/db" "$@" tree); }
last() { U --store="$T/store" list-snapshots | tail -1; }
segments_of() { sed -n '/^Segments:/,/^[A-Z][a-z-]*:/p' "$T/store/snapshot-$1.lbs" |
	grep -oE '[0-9a-f]{8}-[0-9a-f-]{27}'; }
restores() { # snapshot, manifest file
	rm -rf "$T/r"
	U --store="$T/store" restore-snapshot "$1" "$T/r" >/dev/null 2>&1 || return 1
	make_manifest "$T/r/tree" >"$T/r.m"
	compare_manifests "$2" "$T/r.m" >/dev/null
}

mkdir -p "$T/src/tree"
head -c 700000 /dev/urandom >"$T/keep.data"
cp "$T/keep.data" "$T/src/tree/keep"
test_ok "backup 1 (only keep)" backup
s1=$(last)
sleep 1
mv "$T/src/tree/keep" "$T/keep.moved"
echo small >"$T/src/tree/small"
test_ok "backup 2 (without keep)" backup
s2=$(last)
make_manifest "$T/src/tree" >"$T/m2"
# The segment holding keep's data: in s1's list, not in s2's (the
# largest such: metadata segments are small).
only1=$(comm -23 <(segments_of "$s1" | sort) <(segments_of "$s2" | sort))
old=$(for u in $only1; do stat -c '%s %n' "$T/store/$u".*; done |
	sort -n | tail -1 | sed 's|.*/||; s|\..*||')
test_eq "snapshot 1 alone uses keep's segment" \
	"$(stat -c %s "$T/store/$old".* 2>/dev/null | awk '$1 > 600000' | wc -l)" 1
test_ok "forget snapshot 1" U --store="$T/store" delete-snapshot "$s1"
test_ok "gc --dry-run" U --store="$T/store" gc --dry-run --min-age=0
grep -q "$old" "$T/.stdout"
test_eq "its segment is now garbage" $? 0

# ---- gc while the backup that reuses it runs ----
mv "$T/keep.moved" "$T/src/tree/keep"
head -c 3000000 /dev/urandom >"$T/src/tree/new"
make_manifest "$T/src/tree" >"$T/m3"
sleep 1
(backup --filter="sleep 2; cat" --filter-extension= --segment-size=1000000 \
	>/dev/null 2>&1; echo $? >"$T/bg.rc") &
wait_lease
test_eq "the backup holds a lease" $? 0
test_exit "gc without the database during the backup: nothing deleted (3)" 3 \
	U --store="$T/store" gc --min-age=0
grep -q "backup is running" "$T/.stderr"
test_eq "gc says a backup is running" $? 0
test_eq "the old segment is still there" "$(ls "$T/store" | grep -c "^$old")" 1
wait
test_eq "the backup committed" "$(cat "$T/bg.rc")" 0
s3=$(last)
segments_of "$s3" | grep -q "$old"
test_eq "the backup reused the old segment" $? 0
test_eq "its lease is gone, and the empty directory" \
	"$(ls -d "$T/store/leases" 2>/dev/null | wc -l)" 0
test_ok "gc after the backup" U --store="$T/store" gc --min-age=0
test_eq "the reused segment is kept" "$(ls "$T/store" | grep -c "^$old")" 1
restores "$s2" "$T/m2"
test_eq "snapshot 2 restores" $? 0
restores "$s3" "$T/m3"
test_eq "snapshot 3 restores" $? 0

# ---- a backup waits for a running gc, then trusts only the listing ----
sleep 1
mv "$T/src/tree/keep" "$T/keep.moved"
test_ok "backup 4 (without keep)" backup
s4=$(last)
test_ok "forget snapshot 3" U --store="$T/store" delete-snapshot "$s3"
mv "$T/keep.moved" "$T/src/tree/keep"
make_manifest "$T/src/tree" >"$T/m5"
# A gc that took its lease before the backup looked: the backup must wait
# until it is done, then see what it deleted.
mkdir -p "$T/store/leases"
printf 'cumulus-lease: 1\nkind: gc\nrefreshed: %s\n' "$(date +%s)" \
	>"$T/store/leases/gc-test"
sleep 1
start=$(date +%s)
(backup >/dev/null 2>&1; echo $? >"$T/bg.rc") &
wait_lease
sleep 2
test_eq "the backup waits while gc holds its lease" "$(last)" "$s4"
rm -f "$T/store/$old".*   # what that gc deleted: unreferenced since s3 went
rm "$T/store/leases/gc-test"
wait
test_eq "the backup committed after gc" "$(cat "$T/bg.rc")" 0
test_eq "it waited for gc" "$(($(date +%s) - start >= 2))" 1
s5=$(last)
segments_of "$s5" | grep -q "$old"
test_eq "it does not reference the deleted segment" $? 1
restores "$s5" "$T/m5"
test_eq "snapshot 5 restores" $? 0
test_ok "nothing referenced is missing" U --store="$T/store" gc --dry-run --min-age=0

# ---- a gc without the database, before the next backup ----
sleep 1
mv "$T/src/tree/keep" "$T/keep.moved"
test_ok "backup 6 (without keep)" backup
s6=$(last)
old2=$(comm -23 <(segments_of "$s5" | sort) <(segments_of "$s6" | sort) |
	while read -r u; do stat -c '%s %n' "$T/store/$u".*; done |
	sort -n | tail -1 | sed 's|.*/||; s|\..*||')
test_ok "forget snapshot 5" U --store="$T/store" delete-snapshot "$s5"
test_ok "gc without the database" U --store="$T/store" gc --min-age=0
test_eq "it deleted keep's new segment" "$(ls "$T/store" | grep -c "^$old2")" 0
mv "$T/keep.moved" "$T/src/tree/keep"
make_manifest "$T/src/tree" >"$T/m7"
test_ok "backup 7 (keep again)" backup
s7=$(last)
segments_of "$s7" | grep -q "$old2"
test_eq "it does not reference the deleted segment" $? 1
restores "$s7" "$T/m7"
test_eq "snapshot 7 restores" $? 0
cmp -s "$T/db/gc-seen" "$T/store/leases/last-gc"
test_eq "the database has caught up with that gc" $? 0

# ---- a killed backup's lease does not block gc ----
head -c 2000000 /dev/urandom >"$T/src/tree/new2"
(backup --filter="sleep 2; cat" --filter-extension= --segment-size=1000000 \
	>/dev/null 2>&1) &
wait_lease
pid=$(sed -n 's/^pid: //p' "$T/store/leases"/backup-*)
kill -9 "$pid"
wait
test_eq "the killed backup left its lease" "$(ls "$T/store/leases" | grep -c '^backup-')" 1
test_ok "gc: the lease of a dead process on this node is ignored" \
	U --store="$T/store" gc --min-age=0
test_eq "and deleted" "$(ls "$T/store/leases" | grep -c '^backup-')" 0

# ---- stale and unreadable leases ----
mkdir -p "$T/store/leases"
printf 'cumulus-lease: 1\nkind: backup\nrefreshed: %s\n' "$(($(date +%s) - 7200))" \
	>"$T/store/leases/backup-dead"
test_ok "gc ignores a stale backup lease" U --store="$T/store" gc --min-age=0
test_eq "and deletes it" "$(ls "$T/store/leases" | grep -c dead)" 0
echo garbage >"$T/store/leases/backup-odd"
test_exit "an unreadable lease counts as a running backup (3)" 3 \
	U --store="$T/store" gc --min-age=0
test_ok "gc --force ignores it" U --store="$T/store" gc --min-age=0 --force
test_eq "which is left alone" "$(ls "$T/store/leases" | grep -c odd)" 1
done_testing
