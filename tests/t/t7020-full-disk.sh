#!/bin/bash
# A real full disk: an 8 MiB tmpfs holds the store (then, separately, the
# local database) and fills up during a backup.  The backup must fail with
# a clear message and exit status 1, leave no temp file and no partial file
# under a final name, keep the earlier snapshot whole, and a rerun after
# space is freed must succeed and restore exactly.  Needs root (mount).
. "$(dirname "$0")/../lib.sh"

U() { "$CUMULUS_UTIL" "$@"; }
mnt=$T/mnt
mkdir -p "$mnt"
if ! mount -t tmpfs -o size=8m cumulus-test "$mnt" 2>"$T/mount.err"; then
	skip "full disk" "cannot mount a tmpfs (needs root): $(head -1 "$T/mount.err")"
	done_testing
fi
trap 'umount "$mnt" 2>/dev/null; _lib_cleanup' EXIT

src=$T/src
mkdir -p "$src/tree"
head -c 600000 /dev/urandom >"$src/tree/r1"
for i in $(seq 1 30); do echo "small $i" >"$src/tree/s$i"; done
args=(--segment-size=256K --threads=1)
backup() { # STORE DB
	(cd "$src" && "$CUMULUS" --dest="$1" --localdb="$2" "${args[@]}" tree)
}
fill() { # leave about KiB free on the tmpfs
	local avail
	avail=$(df -k --output=avail "$mnt" | tail -1)
	rm -f "$mnt/filler"
	avail=$(df -k --output=avail "$mnt" | tail -1)
	[ "$avail" -gt "$1" ] &&
		head -c $(((avail - $1) * 1024)) /dev/zero >"$mnt/filler" 2>/dev/null
	return 0
}
# Each segment in STORE decodes whole (zstd -t), so none is partial.
segments_whole() {
	local f
	for f in "$1"/*.tar.zst; do
		[ -e "$f" ] || continue
		zstd -q -t "$f" 2>/dev/null || { echo "# partial segment $f"; return 1; }
	done
	return 0
}
no_temp() { ! find "$@" -name '.tmp.*' | grep -q .; }
restores() { # STORE NAME MANIFEST
	rm -rf "$T/rs"
	U --store="$1" restore-snapshot "$2" "$T/rs" >/dev/null 2>&1 &&
		make_manifest "$T/rs/tree" >"$T/got.tsv" &&
		compare_manifests "$3" "$T/got.tsv" >/dev/null
}

# ---- the store fills up ----
store=$mnt/store db=$T/db1
test_ok "base snapshot on the tmpfs" backup "$store" "$db"
base=$(sed -n 's/^Snapshot \([^:]*\):.*/\1/p' "$T/.stdout")
make_manifest "$src/tree" >"$T/m-base"
head -c 4000000 /dev/urandom >"$src/tree/r2"
make_manifest "$src/tree" >"$T/m-new"
fill 1500
test_exit "backup into a full store: exit 1" 1 backup "$store" "$db"
grep -qi 'no space left' "$T/.stderr"
test_eq "the message says the disk is full" $? 0
diag "$(head -3 "$T/.stderr")"
test_eq "no new snapshot" "$(U --store="$store" list-snapshots)" "$base"
test_ok "no temp file left in the store or the database" no_temp "$store" "$db"
test_ok "every segment in the store is whole" segments_whole "$store"
test_ok "the earlier snapshot verifies" U --store="$store" verify-snapshots "$base"
test_ok "the earlier snapshot restores exactly" restores "$store" "$base" "$T/m-base"
test_ok "check-db passes" U --localdb="$db" check-db
rm -f "$mnt/filler"
test_ok "after freeing space the rerun succeeds" backup "$store" "$db"
new=$(sed -n 's/^Snapshot \([^:]*\):.*/\1/p' "$T/.stdout")
test_ok "its snapshot restores exactly" restores "$store" "$new" "$T/m-new"
test_ok "gc then removes what the failed run left" U --store="$store" --localdb="$db" gc --min-age=0
test_ok "both snapshots still verify after gc" U --store="$store" verify-snapshots "$base" "$new"

# ---- the local database fills up ----
rm -rf "$store" "$mnt/filler" "$src/tree/r2"
store=$T/store2 db=$mnt/db
test_ok "base snapshot with the database on the tmpfs" backup "$store" "$db"
base=$(sed -n 's/^Snapshot \([^:]*\):.*/\1/p' "$T/.stdout")
make_manifest "$src/tree" >"$T/m-base"
# Many new files: the database and the statcache grow.
mkdir "$src/tree/many"
for i in $(seq 1 3000); do echo "many $i" >"$src/tree/many/f$i"; done
make_manifest "$src/tree" >"$T/m-new"
fill 8
test_exit "backup with a full database disk: exit 1" 1 backup "$store" "$db"
grep -qiE 'no space left|disk is full|full' "$T/.stderr"
test_eq "the message says the disk is full" $? 0
diag "$(head -3 "$T/.stderr")"
test_ok "no temp file left in the store or the database" no_temp "$store" "$db"
test_ok "every segment in the store is whole" segments_whole "$store"
test_ok "the earlier snapshot verifies" U --store="$store" verify-snapshots "$base"
test_ok "the earlier snapshot restores exactly" restores "$store" "$base" "$T/m-base"
rm -f "$mnt/filler"
test_ok "check-db passes after freeing space" U --localdb="$db" check-db
test_ok "the rerun succeeds" backup "$store" "$db"
new=$(sed -n 's/^Snapshot \([^:]*\):.*/\1/p' "$T/.stdout")
test_ok "its snapshot restores exactly" restores "$store" "$new" "$T/m-new"
test_ok "check-db passes after the rerun" U --localdb="$db" check-db
done_testing
