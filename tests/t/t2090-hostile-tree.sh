#!/bin/bash
# Backups of awkward local trees and command lines: --exclude patterns
# with a leading '/', command-line paths that overlap or would be recorded
# under one name, paths with '.', '..' or empty components, a directory
# whose listing fails part-way, a root below a search-only directory, and
# a tree deeper than the descriptor limit.
. "$(dirname "$0")/../lib.sh"

# names SNAP STORE: the recorded names of a snapshot, one a line
names() {
	"$CUMULUS_UTIL" --store="$2" read-metadata "$1" |
		sed -n 's/^name: //p'
}
# last_snap STORE
last_snap() { "$CUMULUS_UTIL" --store="$1" list-snapshots | tail -1; }

# ---- --exclude=/NAME is the recorded path NAME, not NAME anywhere ----
x=$T/excl
mkdir -p "$x/tree/tmp" "$x/tree/work/tmp" "$x/tree/var/tmp"
echo junk >"$x/tree/tmp/j"
echo important >"$x/tree/work/tmp/notes"
echo v >"$x/tree/var/tmp/v"
cd "$x/tree" || exit 1
test_exit "backup of . with --exclude=/tmp" 0 "$CUMULUS" --dest="$x/store" \
	--exclude=/tmp .
cd "$T" || exit 1
s=$(last_snap "$x/store")
test_eq "... drops tmp only, not work/tmp or var/tmp" \
	"$(names "$s" "$x/store" | tr '\n' ' ')" \
	". var var/tmp var/tmp/v work work/tmp work/tmp/notes "
# ---- a directory whose listing fails part-way ----
# readdir64() fails with EIO after 3 entries of a directory named "victim"
# (an LD_PRELOAD shim): the backup warns and records none of its entries,
# instead of some of them without a word.
r=$T/readdir
mkdir -p "$r/src/victim" "$r/src/fine"
for i in 1 2 3 4 5 6 7 8 9 10; do echo $i >"$r/src/victim/f$i"; done
echo ok >"$r/src/fine/g"
cat >"$r/shim.c" <<'C'
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
struct dirent64 *
readdir64(DIR *d)
{
	static struct dirent64 *(*real)(DIR *);
	static __thread DIR *cur;
	static __thread int n;
	char p[64], t[4096];
	ssize_t l;

	if (!real)
		real = (struct dirent64 * (*)(DIR *)) dlsym(RTLD_NEXT, "readdir64");
	if (d != cur) {
		cur = d;
		n = 0;
	}
	snprintf(p, sizeof p, "/proc/self/fd/%d", dirfd(d));
	l = readlink(p, t, sizeof t - 1);
	if (l > 0) {
		t[l] = 0;
		if (strstr(t, "/victim") && ++n > 3) {
			errno = EIO;
			return NULL;
		}
	}
	return real(d);
}
C
if ${CC:-cc} -shared -fPIC -o "$r/shim.so" "$r/shim.c" -ldl 2>"$r/cc.err"; then
	cd "$r" || exit 1
	test_exit "readdir failing part-way: exit 3" 3 env \
		LD_PRELOAD="$r/shim.so" "$CUMULUS" --dest="$r/store" src
	cd "$T" || exit 1
	cp "$T/.stderr" "$r/err"
	test_ok "... warning 'cannot list directory' with the reason" grep -q \
		"cannot list directory 'src/victim': Input/output error" "$r/err"
	s=$(last_snap "$r/store")
	test_eq "... the directory is recorded without entries, the rest whole" \
		"$(names "$s" "$r/store" | tr '\n' ' ')" \
		"src src/fine src/fine/g src/victim "
else
	skip "readdir failing part-way" "cannot build the LD_PRELOAD shim"
fi

# ---- a root whose directory is search-only (0111) ----
# Only the root itself is listed: its directory is never read, as with
# tar or ls.  Root ignores permissions: then run as uid 65534.
set_as_user
if [ ${#as_user[@]} -gt 0 ]; then
	p=$T/searchonly
	mkdir -p "$p/home/docs" "$p/store"
	echo precious >"$p/home/docs/f"
	[ "$(id -u)" = 0 ] && chown -R 65534:65534 "$p" && chmod 755 "$T"
	chmod 0111 "$p/home"
	cd "$p" || exit 1
	test_exit "root below a search-only directory: exit 0" 0 \
		"${as_user[@]}" "$CUMULUS" --dest="$p/store" --tmpdir="$p" home/docs
	s=$("${as_user[@]}" "$CUMULUS_UTIL" --store="$p/store" list-snapshots | tail -1)
	test_eq "... and it is all in the snapshot" \
		"$("${as_user[@]}" "$CUMULUS_UTIL" --store="$p/store" read-metadata "$s" |
			sed -n 's/^name: //p' | tr '\n' ' ')" "home/docs home/docs/f "
	chmod 0 "$p/home"
	test_exit "a root whose directory cannot be searched: exit 3" 3 \
		"${as_user[@]}" "$CUMULUS" --dest="$p/store" --tmpdir="$p" home/docs
	cp "$T/.stderr" "$p/err"
	test_ok "... the warning names the path given" \
		grep -q "'home/docs': Permission denied" "$p/err"
	chmod 755 "$p/home"
	cd "$T" || exit 1
else
	skip "root below a search-only directory" "root, and no setpriv"
fi

# ---- command-line paths: the same place once, different places never
# under one name ----
c=$T/roots
mkdir -p "$c/cwd/src/sub" "$c/other" "$c/cwd/real/in"
echo f >"$c/cwd/src/f"
echo g >"$c/cwd/src/sub/g"
echo important >"$c/other/data"
echo h >"$c/cwd/real/in/h"
ln -s real "$c/cwd/rl"
rel=${c#/}
mkdir -p "$c/cwd/$rel/other"
echo cwd-copy >"$c/cwd/$rel/other/cwdfile"
n=0
# roots_backup STATUS ARGS...: a backup from $c/cwd into a new store $st
roots_backup() {
	local want=$1
	shift
	n=$((n + 1))
	st=$c/store$n
	cd "$c/cwd" || exit 1
	test_exit "cumulus $*: exit $want" "$want" "$CUMULUS" --dest="$st" "$@"
	cp "$T/.stderr" "$c/err"
	cd "$T" || exit 1
}
roots_backup 1 . "$c/other"
test_ok "... '.' and a path outside it: an error naming both" grep -q \
	"'$c/other' is not inside '.' but would be recorded inside it" "$c/err"
test_eq "... and no snapshot" "$(ls "$st"/*.lbs 2>/dev/null | wc -l)" 0
roots_backup 1 "$rel/other" "$c/other"
test_ok "... relative and absolute, one name: an error naming both" grep -q \
	"'$rel/other' and '$c/other' are different places but would both be recorded as '$rel/other'" "$c/err"
roots_backup 0 . src "$c/cwd/src/sub"
test_eq "... paths inside '.' are recorded once, under '.'" \
	"$(names "$(last_snap "$st")" "$st" | grep -c '^src/sub/g$')" 1
roots_backup 0 src "$c/cwd/src"
test_eq "... the same directory twice: once, as given first" \
	"$(names "$(last_snap "$st")" "$st" | tr '\n' ' ')" \
	"src src/f src/sub src/sub/g "
cd "$c/cwd/src" || exit 1
test_exit "cumulus . PARENT-OF-CWD: exit 0" 0 "$CUMULUS" \
	--dest="$c/store-in2" . "$c/cwd"
cd "$T" || exit 1
test_eq "... '.' is recorded once, inside the other" \
	"$(names "$(last_snap "$c/store-in2")" "$c/store-in2" | grep -c "^$rel/cwd/src/sub/g\$")" 1

# ---- '.', '..' and empty components are not recorded ----
for r in ./src src/. src//sub src/../src ../other "src/sub/.." src/sub/../../src; do
	roots_backup 0 "$r"
	s=$(last_snap "$st")
	test_eq "... no '.', '..' or empty component recorded" \
		"$(names "$s" "$st" | grep -Ec '(^|/)\.\.?(/|$)|//')" 0
	rm -rf "$c/out"
	test_ok "... restores" "$CUMULUS_UTIL" --store="$st" restore-snapshot \
		"$s" "$c/out"
	test_eq "... every file" "$(find "$c/out" -type f | wc -l)" \
		"$(case $r in ../other) echo 1 ;; src//sub) echo 1 ;; *) echo 2 ;; esac)"
done
roots_backup 0 src ./src src/
test_eq "... the same tree given three ways is stored once" \
	"$(names "$(last_snap "$st")" "$st" | tr '\n' ' ')" \
	"src src/f src/sub src/sub/g "
roots_backup 0 rl/in/..
test_eq "... LINK/DIR/.. is the directory LINK leads to, not the link" \
	"$(names "$(last_snap "$st")" "$st" | grep -c "^$rel/cwd/real/in/h\$")" 1

# ---- a tree deeper than the descriptor limit ----
# The walk holds a descriptor per level: past (limit - a reserve) it stops
# descending, with a warning naming the directory, and leaves the rest of
# the backup the descriptors it needs, whatever the timing.
dp=$T/deep
mkdir -p "$dp"
python3 - "$dp/src" <<'PY'
import os, sys
os.mkdir(sys.argv[1])
os.chdir(sys.argv[1])
for i in range(600):
    os.mkdir('d')
    os.chdir('d')
    if i % 50 == 0:
        open('f', 'wb').write(bytes(range(256)) * 600 + str(i).encode())
PY
for threads in 1 4; do
	cd "$dp" || exit 1
	test_exit "600 levels, 512 descriptors, --threads=$threads: exit 3" 3 \
		bash -c 'ulimit -n 512 && exec "$@"' sh "$CUMULUS" \
		--dest="$dp/store$threads" --segment-size=65536 \
		--threads=$threads src
	cd "$T" || exit 1
	cp "$T/.stderr" "$dp/err"
	test_ok "... warning: cannot open directory src/d/...: Too many open files" \
		grep -Eq "cannot open directory 'src(/d)+': Too many open files" \
		"$dp/err"
	s=$(last_snap "$dp/store$threads")
	names "$s" "$dp/store$threads" >"$dp/names$threads"
	test_ok "... the deepest directory recorded leaves half the descriptors" \
		test "$(awk -F/ '{ if (NF > m) m = NF } END { print m }' \
			"$dp/names$threads")" -le 256
	rm -rf "$dp/out"
	test_ok "... restores" "$CUMULUS_UTIL" --store="$dp/store$threads" \
		restore-snapshot "$s" "$dp/out"
done
test_ok "... the same entries with a walk on a thread and without" \
	cmp "$dp/names1" "$dp/names4"

done_testing
