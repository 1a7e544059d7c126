#!/bin/bash
# The local database is a cache: it is in WAL mode (and still readable by
# a stock sqlite3), check-db runs PRAGMA integrity_check, a damaged file
# makes a backup and every command fail with a message naming
# "cumulus-util ... rebuild-db", and after rebuild-db an unchanged tree
# stores no file data again.
. "$(dirname "$0")/../lib.sh"

U() { "$CUMULUS_UTIL" "$@"; }
backup() { (cd "$T/src" && "$CUMULUS" --dest="$T/store" --localdb="$T/db" "$@" tree); }
# Clear the volatile marks (recent ctimes) so the statcache is trusted.
trust_statcache() { sed -i '/^volatile: 1$/d' "$T/db/statcache2"; }

mkdir -p "$T/src/tree/sub"
head -c 600000 /dev/urandom >"$T/src/tree/big"
for i in $(seq 1 40); do head -c $((i * 997)) /dev/urandom >"$T/src/tree/sub/f$i"; done
test_ok "first backup" backup
db=$T/db/localdb.sqlite

if command -v sqlite3 >/dev/null; then
	test_eq "the database is in WAL mode" \
		"$(sqlite3 "$db" 'PRAGMA journal_mode')" wal
	test_eq "a stock sqlite3 reads it" \
		"$(sqlite3 "$db" 'select count(*) from snapshots')" 1
else
	skip "the database is in WAL mode" "no sqlite3"
	skip "a stock sqlite3 reads it" "no sqlite3"
fi
test_ok "check-db: healthy" U --localdb="$T/db" check-db
cp "$db" "$T/good.sqlite"

# A damaged header: not a database any more.
printf 'this is no SQLite header' | dd of="$db" conv=notrunc bs=1 seek=0 2>/dev/null
test_exit "a backup on a damaged database fails (1)" 1 backup
grep -q "damaged.*cumulus-util --store=.* --localdb=$T/db rebuild-db" "$T/.stderr"
test_eq "the backup names the rebuild command" $? 0
test_exit "check-db on it fails (1)" 1 U --localdb="$T/db" check-db
grep -q "rebuild-db" "$T/.stderr"
test_eq "check-db names the rebuild command" $? 0
test_exit "clean on it fails (1)" 1 U --localdb="$T/db" clean --dry-run
grep -q "rebuild-db" "$T/.stderr"
test_eq "clean names the rebuild command" $? 0
test_eq "the message is given once" "$(grep -c 'rebuild-db' "$T/.stderr")" 1

# Damaged b-tree pages behind a valid header.
cp "$T/good.sqlite" "$db"
rm -f "$db-wal" "$db-shm"
pages=$(($(stat -c %s "$db") / 4096))
head -c $(((pages - 2) * 4096)) /dev/zero | tr '\0' 'x' |
	dd of="$db" conv=notrunc bs=4096 seek=2 2>/dev/null
test_exit "check-db finds damaged pages (1)" 1 U --localdb="$T/db" check-db
grep -q "rebuild-db" "$T/.stderr"
test_eq "check-db names the rebuild command" $? 0
test_exit "a backup on damaged pages fails (1)" 1 backup
grep -q "damaged.*rebuild-db" "$T/.stderr"
test_eq "the backup names the rebuild command" $? 0
test_eq "no snapshot was added" "$(U --store="$T/store" list-snapshots | wc -l)" 1

# The repair the message describes.
mv "$db" "$T/damaged.sqlite"
rm -f "$db-wal" "$db-shm" "$T/db/statcache2"
test_ok "rebuild-db" U --store="$T/store" --localdb="$T/db" rebuild-db
test_ok "check-db after rebuild-db" U --localdb="$T/db" check-db
trust_statcache
test_ok "backup after rebuild-db" backup
grep -q "(0 read), .* 0.0 MiB new" "$T/.out"
test_eq "the unchanged tree stores no file data" $? 0
done_testing
