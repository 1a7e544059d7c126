#!/bin/bash
# The statcache: an unchanged file is not read again (its data and
# metadata are reused), a changed one is, and --rebuild-statcache reads
# everything and warns when content changed behind unchanged stat data.
. "$(dirname "$0")/../lib.sh"

mkdir -p "$T/src/tree"
head -c 2000000 /dev/urandom >"$T/src/tree/big"
echo small >"$T/src/tree/small"
touch -d @1600000000 "$T/src/tree"/* "$T/src/tree"
cd "$T/src" || exit 1

test_ok "first backup" "$CUMULUS" --dest="$T/store" --localdb="$T/db" tree
# ctime is recent, so the entries are volatile: simulate an old backup by
# clearing the volatile flags the statcache recorded.
sed -i '/^volatile: 1$/d' "$T/db/statcache2"
test_ok "second backup" "$CUMULUS" --dest="$T/store" --localdb="$T/db" -v tree
test_eq "unchanged files are not read" \
	"$(grep -c '\[new\]\|\[old\]' "$T/.stdout")" 0
grep -q '2 files (0 read)' "$T/.stdout"
test_eq "summary says nothing was read" $? 0

# Flip the first digit of each recorded checksum (to a different one).
perl -pi -e 's/^(checksum: sha256=)(.)/$1 . ($2 eq "0" ? "1" : "0")/e' "$T/db/statcache2"
sed -i '/^volatile: 1$/d' "$T/db/statcache2"
test_exit "--rebuild-statcache re-reads and warns (exit 3)" 3 \
	"$CUMULUS" --dest="$T/store" --localdb="$T/db" --rebuild-statcache tree
grep -q "checksum of 'tree/big' does not match" "$T/.stderr"
test_eq "the warning names the file" $? 0
grep -q '2 files (2 read)' "$T/.stdout"
test_eq "every file was read" $? 0

last=$("$CUMULUS_UTIL" --store="$T/store" list-snapshots | tail -1)
test_ok "the last snapshot restores" "$CUMULUS_UTIL" --store="$T/store" \
	restore-snapshot "$last" "$T/restore"
cmp -s "$T/src/tree/big" "$T/restore/tree/big"
test_eq "restored content is the file's" $? 0

# Every segment an incremental snapshot names is in its .sha1sums, and
# sha1sum -c verifies them.
lbs=$(ls "$T/store"/snapshot-*.lbs | tail -1)
want=$(sed -n '/^Segments:/,$p' "$lbs" | sed 1d | tr -d ' ' | sort)
got=$(sed 's/^.* \*\([^.]*\)\..*/\1/' "${lbs%.lbs}.sha1sums" | sort)
test_eq ".sha1sums lists every segment of the descriptor" "$got" "$want"
(cd "$T/store" && sha1sum --quiet -c "$(basename "${lbs%.lbs}.sha1sums")") >/dev/null 2>&1
test_eq "sha1sum -c verifies them" $? 0

test_exit "an invalid scheme is a usage error" 2 \
	"$CUMULUS" --dest="$T/store" --scheme=a/b tree
test_ok "--localdb with missing parents is created" \
	"$CUMULUS" --dest="$T/store2" --localdb="$T/new/deep/db" tree
test -f "$T/new/deep/db/localdb.sqlite"
test_eq "the database is inside it" $? 0
done_testing
