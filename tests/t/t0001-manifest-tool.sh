#!/bin/bash
# tests/manifest.pl: the manifest format of the compatibility fixtures
# (escaping, sorting, types, modes, hard-link groups) and its comparison.
. "$(dirname "$0")/../lib.sh"

umask 022
d=$T/tree
mkdir -p "$d/sub" "$d/sub/empty"
printf '' >"$d/empty"
printf 'hello\n' >"$d/sub/hello"
printf 'x' >"$d/100%.txt"
printf 'x' >"$d/new
line"
printf 'x' >"$d/tab	here"
printf 'x' >"$d/bad-"$'\xff\xfe'
printf 'x' >"$d/ lead"
ln "$d/sub/hello" "$d/hard"
ln -s "../with space" "$d/sub/link"
mkfifo "$d/fifo"
perl -MIO::Socket::UNIX -e 'IO::Socket::UNIX->new(Local => $ARGV[0], Listen => 1) or die' "$d/sock"
chmod 2750 "$d/sub/hello"
chmod 0700 "$d/sub"
find "$d" -exec touch -h -d @1614834367 {} +

h=5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03
e=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
x=2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881
{
	printf '#path\ttype\tmode\tsize\tsha256\ttarget\tmtime\thlgroup\n'
	printf '.\td\t0755\t-\t-\t-\t1614834367\t-\n'
	printf ' lead\tf\t0644\t1\t%s\t-\t1614834367\t-\n' $x
	printf '100%%25.txt\tf\t0644\t1\t%s\t-\t1614834367\t-\n' $x
	printf 'bad-%%ff%%fe\tf\t0644\t1\t%s\t-\t1614834367\t-\n' $x
	printf 'empty\tf\t0644\t0\t%s\t-\t1614834367\t-\n' $e
	printf 'fifo\tp\t0644\t-\t-\t-\t1614834367\t-\n'
	printf 'hard\tf\t2750\t6\t%s\t-\t1614834367\t1\n' $h
	printf 'new%%0aline\tf\t0644\t1\t%s\t-\t1614834367\t-\n' $x
	printf 'sock\ts\t0755\t-\t-\t-\t1614834367\t-\n'
	printf 'sub\td\t0700\t-\t-\t-\t1614834367\t-\n'
	printf 'sub/empty\td\t0755\t-\t-\t-\t1614834367\t-\n'
	printf 'sub/hello\tf\t2750\t6\t%s\t-\t1614834367\t1\n' $h
	printf 'sub/link\tl\t0777\t-\t-\t../with space\t1614834367\t-\n'
	printf 'tab%%09here\tf\t0644\t1\t%s\t-\t1614834367\t-\n' $x
} >"$T/want"
make_manifest "$d" >"$T/got"
test_ok "manifest.pl exits 0" test -s "$T/got"
test_ok "manifest has the fixture format" \
	compare_manifests "$T/want" "$T/got"

sed 's/\t1$/\t7/' "$T/want" >"$T/renumbered"
test_ok "hard-link group numbers are normalised" \
	compare_manifests "$T/want" "$T/renumbered"
sed 's/^empty\tf\t0644\t0/empty\tf\t0600\t0/' "$T/want" >"$T/changed"
test_fail "a changed mode is a difference" \
	compare_manifests "$T/want" "$T/changed"
test_ok "--ignore=mode hides it" \
	compare_manifests "$T/want" "$T/changed" --ignore=mode

if mknod "$d/null" c 1 3 2>/dev/null && mknod "$d/loop" b 7 0 2>/dev/null; then
	chmod 0600 "$d/null" "$d/loop"
	make_manifest "$d" >"$T/dev"
	test_eq "character and block devices" \
		"$(grep -E '^(null|loop)	' "$T/dev" | cut -f1-6 | tr '\t\n' ' ;')" \
		"loop b 0600 - - -;null c 0600 - - -;"
else
	skip "character and block devices" "mknod not permitted"
fi

done_testing
