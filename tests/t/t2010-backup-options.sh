#!/bin/bash
# Backup options: --scheme naming and the .sha1sums file, an external
# segment filter (bzip2), a failing filter (nothing published), --exclude,
# --signature-filter, --upload-script, usage errors, unreadable files
# (exit 3), and the local database location (default, created, hand-made
# from schema.sql).
. "$(dirname "$0")/../lib.sh"

src=$T/src
mkdir -p "$src/tree/sub" "$src/tree/build/deeper" "$src/tree/keep"
head -c 300000 /dev/urandom >"$src/tree/data.bin"
echo hello >"$src/tree/hello.txt"
echo obj >"$src/tree/main.o"
echo obj >"$src/tree/sub/util.o"
echo src >"$src/tree/sub/util.c"
echo skip >"$src/tree/sub/exact-skip.txt"
echo built >"$src/tree/build/deeper/out.bin"
echo kept >"$src/tree/keep/kept.txt"
touch -d @1600000000 "$src/tree"/* "$src/tree"/*/* "$src/tree"

backup_in_src() { # DESC STATUS ARGS...: runs cumulus from $src
	local desc=$1 want=$2
	shift 2
	cd "$src" || return 1
	test_exit "$desc" "$want" "$CUMULUS" "$@"
	local rc=$?
	cd "$T" || return 1
	saveout
	snap=$(sed -n 's/^Snapshot \([^:]*\):.*/\1/p' "$T/o.stdout")
	return $rc
}
# the test_* helpers overwrite $T/.stdout and .stderr: keep a copy
saveout() { cp "$T/.stdout" "$T/o.stdout"; cp "$T/.stderr" "$T/o.stderr"; }
restore_matches() { # DESC STORE SNAP [DIR]: restore and compare with $src/tree
	local desc=$1 store=$2 s=$3 dir=${4:-$src/tree}
	rm -rf "$T/restored"
	test_ok "$desc: restores" "$CUMULUS_UTIL" --store="$store" \
		restore-snapshot "$s" "$T/restored"
	make_manifest "$dir" >"$T/want.tsv"
	make_manifest "$T/restored/tree" >"$T/got.tsv" 2>&1
	test_ok "$desc: restored tree matches" \
		compare_manifests "$T/want.tsv" "$T/got.tsv"
	[ $_rc -eq 0 ] && return 0
	compare_manifests "$T/want.tsv" "$T/got.tsv" | head -20 | sed 's/^/# /'
	return 1
}

# ---- --scheme and .sha1sums ----
st=$T/s-scheme
backup_in_src "--scheme=test backup" 0 --dest="$st" --scheme=test tree
test_eq "snapshot name is test-<UTC timestamp>" \
	"$(echo "$snap" | grep -Ec '^test-[0-9]{8}T[0-9]{6}$')" 1
utc_now=$(date -u +%s)
snap_time=$(date -u -d "$(echo "${snap#test-}" |
	sed -E 's/(....)(..)(..)T(..)(..)(..)/\1-\2-\3 \4:\5:\6/')" +%s)
test_ok "... the timestamp is UTC and now ($snap_time vs $utc_now)" \
	test $((utc_now - snap_time)) -ge 0 -a $((utc_now - snap_time)) -lt 120
test_ok "descriptor snapshot-$snap.lbs" test -f "$st/snapshot-$snap.lbs"
test_ok "checksum file snapshot-$snap.sha1sums" test -s "$st/snapshot-$snap.sha1sums"
test_ok "sha1sum -c of the .sha1sums succeeds in the store" \
	sh -c 'cd "$1" && sha1sum -c --strict "snapshot-$2.sha1sums"' sh "$st" "$snap"
test_eq "... and lists every segment" \
	"$(awk '{print $2}' "$st/snapshot-$snap.sha1sums" | sort | sed 's/^\*//')" \
	"$(cd "$st" && ls *.tar* | sort)"
test_ok "descriptor names the scheme" grep -qx 'Scheme: test' "$st/snapshot-$snap.lbs"
test_ok "list-snapshots shows it" "$CUMULUS_UTIL" --store="$st" list-snapshots
test_eq "... exactly" "$(cat "$T/.stdout")" "$snap"
restore_matches "--scheme snapshot" "$st" "$snap"
test_fail "an invalid scheme is refused" "$CUMULUS" --dest="$T/s-bad" \
	--scheme="a/b" "$src/tree"
[ $_rc = 2 ] || diag "(exit status $_rc; a usage error would be 2)"
test_eq "... and writes no snapshot" "$(ls "$T/s-bad"/*.lbs 2>/dev/null | wc -l)" 0

# ---- external filter: bzip2 ----
sb=$T/s-bzip2
backup_in_src "--filter='bzip2 -c' --filter-extension=.bz2" 0 --dest="$sb" \
	--filter="bzip2 -c" --filter-extension=.bz2 tree
test_eq "only .tar.bz2 segments" \
	"$(cd "$sb" && ls | grep -c '^[0-9a-f-]\{36\}\.tar\.bz2$') $(cd "$sb" && ls | grep -c '\.tar')" \
	"$(cd "$sb" && ls | grep -c '\.tar') $(cd "$sb" && ls | grep -c '\.tar')"
test_ok "... at least one" test "$(cd "$sb" && ls | grep -c '\.tar\.bz2$')" -ge 1
bad=0 members=0
for f in "$sb"/*.tar.bz2; do
	uuid=$(basename "$f" .tar.bz2)
	list=$(bzip2 -dc "$f" | tar -t) || bad=$((bad + 1))
	members=$((members + $(grep -c . <<<"$list")))
	bad=$((bad + $(grep -vcE "^$uuid/[0-9a-f]{8}\$" <<<"$list")))
done
test_eq "bzip2 -dc | tar -t lists only <uuid>/<8 hex> members" "$bad" 0
test_ok "... ($members members)" test "$members" -ge 2
test_ok "bzip2 store verifies" "$CUMULUS_UTIL" --store="$sb" verify-snapshots "$snap"
restore_matches "bzip2 snapshot" "$sb" "$snap"
bzsnap=$snap

# ---- a failing filter publishes nothing ----
echo changed >>"$src/tree/hello.txt"
head -c 100000 /dev/urandom >"$src/tree/new.bin"
before=$(cd "$sb" && ls | sort)
backup_in_src "--filter=false fails with exit 1" 1 --dest="$sb" --filter=false tree
test_ok "... with a message about the filter" grep -qi filter "$T/o.stderr"
after=$(cd "$sb" && ls -A | sort)
test_eq "... no new file in the store (no descriptor, no .tmp.*)" "$after" "$before"
test_eq "... no temp file anywhere in the store" \
	"$(find "$sb" -name '*.tmp*' -o -name '.tmp*' | wc -l)" 0
test_ok "the earlier snapshot still verifies" "$CUMULUS_UTIL" --store="$sb" \
	verify-snapshots "$bzsnap"
rm -rf "$T/restored"
test_ok "the earlier snapshot still restores" "$CUMULUS_UTIL" --store="$sb" \
	restore-snapshot "$bzsnap" "$T/restored"
test_ok "... with the old contents" cmp -s "$T/restored/tree/data.bin" "$src/tree/data.bin"
test_eq "... hello.txt as it was" "$(cat "$T/restored/tree/hello.txt")" hello
backup_in_src "a following backup succeeds" 0 --dest="$sb" \
	--filter="bzip2 -c" --filter-extension=.bz2 tree
restore_matches "backup after the failed one" "$sb" "$snap"

# ---- --exclude ----
se=$T/s-exclude
backup_in_src "--exclude (exact path, glob, directory)" 0 --dest="$se" \
	--exclude=tree/sub/exact-skip.txt --exclude='*.o' --exclude=tree/build tree
test_ok "excluded backup restores" "$CUMULUS_UTIL" --store="$se" \
	restore-snapshot "$snap" "$T/excl"
test_eq "exactly the non-excluded entries are restored" \
	"$(cd "$T/excl" && find . | sort | tr '\n' ' ')" \
	". ./tree ./tree/data.bin ./tree/hello.txt ./tree/keep ./tree/keep/kept.txt ./tree/new.bin ./tree/sub ./tree/sub/util.c "
test_ok "read-metadata does not mention them" "$CUMULUS_UTIL" --store="$se" \
	read-metadata "$snap"
test_eq "... (no .o, build or exact-skip)" \
	"$(grep -cE 'main\.o|util\.o|build|exact-skip' "$T/.stdout")" 0
backup_in_src "--exclude with a leading / on the recorded path" 0 --dest="$se" \
	--exclude=/tree/keep tree
rm -rf "$T/excl"
"$CUMULUS_UTIL" --store="$se" restore-snapshot "$snap" "$T/excl" >/dev/null 2>&1
test_ok "... is excluded too" test ! -e "$T/excl/tree/keep" -a -e "$T/excl/tree/sub/exact-skip.txt"

# ---- --signature-filter ----
ss=$T/s-sig
backup_in_src "--signature-filter=cat" 0 --dest="$ss" --signature-filter=cat tree
test_ok "descriptor written" grep -q '^Format: Cumulus Snapshot' "$ss/snapshot-$snap.lbs"
restore_matches "signature-filter snapshot" "$ss" "$snap"
backup_in_src "--signature-filter=false fails with exit 1" 1 --dest="$ss" \
	--signature-filter=false tree
test_eq "... and publishes no descriptor" "$(cd "$ss" && ls *.lbs | wc -l)" 1
test_eq "... nor a stray .sha1sums" "$(cd "$ss" && ls *.sha1sums | wc -l)" 1
backup_in_src "--signature-filter adding a signature line" 0 --dest="$ss" \
	--signature-filter='cat; echo "-- signed --"' tree
test_ok "... the signature is in the descriptor" grep -qx -- '-- signed --' \
	"$ss/snapshot-$snap.lbs"

# ---- errors and usage ----
test_fail "--upload-script fails" "$CUMULUS" --dest="$T/s-up" --upload-script=x "$src/tree"
saveout
test_ok "... with a clear error naming it" grep -q -- '--upload-script' "$T/o.stderr"
test_eq "... and writes no snapshot" "$(ls "$T/s-up"/*.lbs 2>/dev/null | wc -l)" 0

# ---- upload helpers that misbehave: never a hang, never a silent failure ----
# A helper that stores each file in $T/up-store and answers OK, then runs
# ${1:-true} after its input ends.
cat >"$T/up.sh" <<'EOS'
dest=$1
shift
mkdir -p "$dest"
while read -r verb type name path; do
	cp "$path" "$dest/${name##*/}" || exit 1
	echo OK
done
"$@"
EOS
up_backup() { # DESC STATUS HELPER-ARGS...: a bounded backup through up.sh
	local desc=$1 want=$2
	shift 2
	rm -rf "$T/up-db" "$T/up-store"
	test_exit "$desc" "$want" timeout -s KILL 60 "$CUMULUS" \
		--localdb="$T/up-db" --upload-script="sh '$T/up.sh' '$T/up-store' $*" \
		"$src/tree"
	saveout
}
up_backup "a helper that exits 7 after its last answer: exit 3" 3 exit 7
test_ok "... warning of its exit status" grep -q "exit status 7, after every file was confirmed" "$T/o.stderr"
test_eq "... and the snapshot it confirmed is stored" \
	"$(ls "$T/up-store" | grep -c '^snapshot-.*\.lbs$')" 1
CUMULUS_SCRIPT_TIMEOUT=2 up_backup "a helper that never exits after its input ends: exit 3" 3 sleep 3600
test_ok "... it is killed after CUMULUS_SCRIPT_TIMEOUT" grep -q "did not exit within 2 s" "$T/o.stderr"
test_eq "... with what it started (its process group)" \
	"$(pgrep -f "$T/up.sh" | wc -l)" 0
test_exit "a helper that floods its output fails, and does not hang" 1 \
	timeout -s KILL 60 "$CUMULUS" --localdb="$T/up-db2" --upload-script=yes "$src/tree"
saveout
test_ok "... naming its answer" grep -q "error response from upload script.*'y'" "$T/o.stderr"
CUMULUS_SCRIPT_TIMEOUT=2 test_exit "a helper that never answers fails after the timeout" 1 \
	timeout -s KILL 60 "$CUMULUS" --localdb="$T/up-db3" --upload-script="exec sleep 3600" "$src/tree"
saveout
test_ok "... saying so" grep -q "no response from upload script within 2 s" "$T/o.stderr"
CUMULUS_SCRIPT_TIMEOUT=soon test_exit "a malformed CUMULUS_SCRIPT_TIMEOUT is refused" 1 \
	"$CUMULUS" --localdb="$T/up-db4" --upload-script=cat "$src/tree"
saveout
test_ok "... naming it" grep -q "CUMULUS_SCRIPT_TIMEOUT must be" "$T/o.stderr"
test_exit "no paths: usage error" 2 "$CUMULUS" --dest="$T/s-none"
test_exit "no --dest: usage error" 2 "$CUMULUS" "$src/tree"
test_exit "unknown option: usage error" 2 "$CUMULUS" --dest="$T/s-none" --frobnicate "$src/tree"
test_exit "--help exits 0" 0 "$CUMULUS" --help
saveout
test_ok "... and prints usage on stdout" grep -q -- '--dest' "$T/o.stdout"
test_exit "--version exits 0" 0 "$CUMULUS" --version
saveout
test_ok "... and prints a version" grep -Eq '[0-9]+\.[0-9]+' "$T/o.stdout"
test_fail "a missing path fails (or warns)" "$CUMULUS" --dest="$T/s-missing" \
	"$T/does-not-exist"

# ---- unreadable file: exit 3, warning, snapshot written ----
set_as_user
if [ ${#as_user[@]} -gt 0 ]; then
	u=$T/unread
	mkdir -p "$u/tree"
	echo readable >"$u/tree/ok.txt"
	echo secret >"$u/tree/locked.txt"
	chmod 000 "$u/tree/locked.txt"
	mkdir -p "$u/tree/lockeddir/sub" "$u/tree/zz"
	echo hidden >"$u/tree/lockeddir/sub/f"
	echo after >"$u/tree/zz/after.txt"
	chmod 000 "$u/tree/lockeddir"
	mkdir -p "$u/store"
	[ "$(id -u)" = 0 ] && chown -R 65534:65534 "$u" && chmod 755 "$T"
	cd "$u" || exit 1
	test_exit "unreadable file: exit 3" 3 "${as_user[@]}" "$CUMULUS" \
		--dest="$u/store" --tmpdir="$u" tree
	saveout
	cd "$T" || exit 1
	test_ok "... a warning names the file" grep -q 'locked.txt' "$T/o.stderr"
	usnap=$(sed -n 's/^Snapshot \([^:]*\):.*/\1/p' "$T/o.stdout")
	test_ok "... the snapshot is still written" test -f "$u/store/snapshot-$usnap.lbs"
	test_ok "... and restores" "$CUMULUS_UTIL" --store="$u/store" \
		restore-snapshot "$usnap" "$u/r"
	test_eq "... with the readable file" "$(cat "$u/r/tree/ok.txt")" readable
	test_ok "... a warning names the directory it could not open" \
		grep -q "cannot open directory 'tree/lockeddir'" "$T/o.stderr"
	test_ok "... which is restored, empty" test -d "$u/r/tree/lockeddir" -a \
		! -e "$u/r/tree/lockeddir/sub"
	test_eq "... and what comes after it is all there" \
		"$(cat "$u/r/tree/zz/after.txt")" after
else
	skip "unreadable file: exit 3" "root, and no setpriv to drop privileges"
fi

# ---- local database location ----
sd=$T/s-db
backup_in_src "no --localdb" 0 --dest="$sd" tree
test_ok "... the database is in the store directory" test -s "$sd/localdb.sqlite"
test_ok "... and the statcache" test -e "$sd/statcache2"
backup_in_src "... a second backup uses it (nothing new)" 0 --dest="$sd" tree
test_ok "... ' 0.0 MiB new'" grep -q ' 0\.0 MiB new' "$T/o.stdout"
nodb=$T/new-db-dir
backup_in_src "--localdb naming a missing directory" 0 --dest="$T/s-db2" \
	--localdb="$nodb" tree
test_ok "... it is created with the database" test -s "$nodb/localdb.sqlite"
test_ok "... and not in the store" test ! -e "$T/s-db2/localdb.sqlite"
mkdir "$T/handdb"
sqlite3 "$T/handdb/localdb.sqlite" <"$CUMULUS_TOP/schema.sql"
test_eq "hand-made database from schema.sql" "$?" 0
backup_in_src "... is accepted" 0 --dest="$T/s-db3" --localdb="$T/handdb" tree
test_ok "... and used (snapshot recorded in it)" test \
	"$(sqlite3 "$T/handdb/localdb.sqlite" 'select count(*) from snapshots')" -ge 1
restore_matches "hand-made database snapshot" "$T/s-db3" "$snap"

done_testing
