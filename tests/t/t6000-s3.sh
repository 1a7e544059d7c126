#!/bin/bash
# S3 store against a real S3 server (Ceph radosgw on loopback, started and
# stopped here): backup, incremental backup, restore (each segment fetched
# once), multipart upload, a listing over 1000 objects, cumulus-sync
# file -> S3 -> file, --upload-script="cumulus-store s3://...", a wrong
# secret, and faults injected by a proxy (503, connection resets,
# truncated downloads, stalls, an outage that makes the backup fail
# cleanly).  What the server holds is checked with boto3 too.
. "$(dirname "$0")/../lib.sh"
. "$CUMULUS_TOP/tests/lib-s3.sh"

s3_start
export PATH=$CUMULUS_BUILD:$PATH
MiB=1048576
src=$T/src
db=$T/db
mkdir -p "$src/d"
head -c $((10 * MiB)) /dev/urandom >"$src/big.bin"
seq 1 50000 >"$src/numbers.txt"
for i in 1 2 3 4 5; do echo "file $i" >"$src/d/f$i"; done
ln -s numbers.txt "$src/link"
URL=s3://t6000/store

snapshots() { cumulus-util --store="$1" list-snapshots 2>/dev/null | wc -l; }
restore_cmp() { # URL SNAPSHOT DIR -> compares DIR/<src> with $src
	rm -rf "$3" &&
		cumulus-util --store="$1" restore-snapshot "$2" "$3" >/dev/null &&
		compare_manifests "$src" "$3${src}"
}

# ---- backup, multipart, independent check ----
export CUMULUS_S3_MULTIPART_THRESHOLD=$((5 * MiB)) CUMULUS_S3_PART_SIZE=$((5 * MiB))
test_ok "backup to S3 (bucket created)" cumulus --dest=$URL --localdb="$db" \
	--segment-size=16M "$src"
snap1=$(cumulus-util --store=$URL list-snapshots | tail -1)
test_eq "one snapshot listed" "$(snapshots $URL)" 1
s3py "
objs = s3.list_objects_v2(Bucket='t6000', Prefix='store/')['Contents']
keys = [o['Key'] for o in objs]
print('descriptor', sum(k.endswith('.lbs') for k in keys))
segs = [o for o in objs if '.tar' in o['Key']]
print('segments', len(segs))
print('multipart', sum('-' in o['ETag'] for o in segs))
" >"$T/boto" 2>&1
test_ok "boto3 sees one descriptor" grep -qx 'descriptor 1' "$T/boto"
test_ok "boto3 sees a multipart segment (ETag md5-N)" grep -qx 'multipart 1' "$T/boto"
nseg=$(grep -c '^    ' <(s3py "
print(s3.get_object(Bucket='t6000', Key='store/snapshot-$snap1.lbs')['Body'].read().decode())"))
test_eq "boto3 segment count matches the descriptor" \
	"$(sed -n 's/^segments //p' "$T/boto")" "$nseg"
test_ok "verify-snapshots on S3" cumulus-util --store=$URL verify-snapshots "$snap1"
test_ok "restore from S3" restore_cmp $URL "$snap1" "$T/r1"

# ---- incremental ----
echo changed >>"$src/d/f3"
echo new >"$src/d/new"
test_ok "incremental backup to S3" cumulus --dest=$URL --localdb="$db" "$src"
test_ok "incremental stored little" grep -q ' 0.0 MiB new' "$T/.out"
snap2=$(cumulus-util --store=$URL list-snapshots | tail -1)
test_ok "restore incremental from S3" restore_cmp $URL "$snap2" "$T/r2"

# ---- restore fetches each segment once (counted by the proxy) ----
proxy_start || echo "not ok - proxy did not start"
test_ok "restore through the proxy" via_proxy restore_cmp $URL "$snap2" "$T/r3"
gets=$(grep -c '^GET /t6000/store/.*\.tar' "$PROXY_LOG")
uniq=$(grep '^GET /t6000/store/.*\.tar' "$PROXY_LOG" | sort -u | wc -l)
test_eq "each segment fetched once ($gets GETs)" "$gets" "$uniq"

# ---- faults ----
printf '503 PUT 2\nreset PUT 1\n503 GET 1 .lbs\n' >"$PROXY_RULES"
echo more >>"$src/d/f1"
test_ok "backup retries 503s and a reset" via_proxy cumulus --dest=$URL \
	--localdb="$db" "$src"
test_ok "proxy did answer 503" grep -q ' 503$' "$PROXY_LOG"
test_ok "proxy did reset an upload" grep -q ' reset$' "$PROXY_LOG"
snap3=$(cumulus-util --store=$URL list-snapshots | tail -1)
printf 'truncate GET 2 .tar\n' >"$PROXY_RULES"
test_ok "restore survives truncated downloads" via_proxy restore_cmp $URL \
	"$snap3" "$T/r4"
test_ok "proxy did truncate" grep -q ' truncate$' "$PROXY_LOG"
printf 'stall GET 1 .tar\n' >"$PROXY_RULES"
test_ok "restore survives a stalled download" env CUMULUS_S3_STALL_SECONDS=2 \
	bash -c "$(declare -f restore_cmp compare_manifests make_manifest normalize_manifest); AWS_ENDPOINT_URL=http://127.0.0.1:$PROXY_PORT restore_cmp $URL $snap3 $T/r5"
# Downloads are bounded in size (the listed size: an endless answer
# must not fill $TMPDIR; ulimit stops the test's damage if it does) and
# in time (a trickle of 2 bytes/s is too slow).
printf 'endless GET 100 .tar\n' >"$PROXY_RULES"
test_exit "an endless download fails" 1 via_proxy timeout 30 bash -c \
	"ulimit -f 204800; exec cumulus-util --store=$URL restore-snapshot $snap3 $T/r5b"
test_ok "... beyond the listed size" grep -q 'larger than its listed size' "$T/.out"
printf 'trickle GET 100 .tar\n' >"$PROXY_RULES"
test_exit "a trickling download times out" 1 via_proxy timeout 40 env \
	CUMULUS_S3_STALL_SECONDS=2 CUMULUS_S3_RETRIES=1 \
	cumulus-util --store=$URL restore-snapshot "$snap3" "$T/r5c"
test_ok "... as too slow" grep -q 'too slow' "$T/.out"
before=$(snapshots $URL)
printf '503 PUT 1000\n' >"$PROXY_RULES"
echo outage >>"$src/d/f2"
test_exit "backup during an outage fails" 1 via_proxy env CUMULUS_S3_RETRIES=2 \
	cumulus --dest=$URL --localdb="$db" "$src"
test_ok "... with the S3 error" grep -q 'HTTP 503' "$T/.out"
test_eq "... and no descriptor" "$(snapshots $URL)" "$before"
: >"$PROXY_RULES"
test_ok "earlier snapshot still restores" restore_cmp $URL "$snap3" "$T/r6" ||
	true
test_ok "next backup succeeds" cumulus --dest=$URL --localdb="$db" "$src"
snap4=$(cumulus-util --store=$URL list-snapshots | tail -1)
test_ok "and restores" restore_cmp $URL "$snap4" "$T/r7"

# ---- crafted listings (answered by the proxy) ----
# page KEY [TRUNCATED TOKEN]: a ListObjectsV2 page holding one key of odd/.
page() {
	printf '<?xml version="1.0"?><ListBucketResult><Name>t6000</Name>'
	printf '<Contents><Key>odd/snapshots/%s</Key><Size>5</Size></Contents>' "$1"
	printf '<IsTruncated>%s</IsTruncated>' "${2:-false}"
	[ -n "${3+set}" ] && printf '<NextContinuationToken>%s</NextContinuationToken>' "$3"
	printf '</ListBucketResult>'
}
n=0
for key in 'snapshot-&#x9b;2J.lbs' $'snapshot-\x9b31m.lbs' $'snapshot-\xc2\x9b31m.lbs' \
	$'snapshot-\x7fx.lbs'; do
	n=$((n + 1))
	page "$key" >"$T/odd$n.xml"
	echo "body=$T/odd$n.xml GET 1 prefix=odd%2F" >"$PROXY_RULES"
	test_exit "a key with a control character (C1, DEL) is refused ($n)" 1 \
		via_proxy cumulus-util --store=s3://t6000/odd list-snapshots
	test_ok "... as such" grep -q 'control character' "$T/.out"
done
# A page over the 8 MiB limit, and a truncated page with an empty token:
# messages that say what is wrong with the listing.
python3 -c "
import sys
sys.stdout.write('<?xml version=\"1.0\"?><ListBucketResult><Name>t6000</Name>')
for i in range(120000):
    sys.stdout.write('<Contents><Key>odd/snapshots/seg-%07d.tar</Key><Size>10</Size></Contents>' % i)
sys.stdout.write('<IsTruncated>false</IsTruncated></ListBucketResult>')" >"$T/huge.xml"
echo "body=$T/huge.xml GET 1 prefix=odd%2F" >"$PROXY_RULES"
test_exit "a listing page over 8 MiB fails" 1 \
	via_proxy cumulus-util --store=s3://t6000/odd list-snapshots
test_ok "... naming the listing and the limit" \
	grep -q 'listing s3://t6000/odd/.*limit for a listing page' "$T/.out"
page snapshot-a.lbs true '' >"$T/notoken.xml"
echo "body=$T/notoken.xml GET 1 prefix=odd%2F" >"$PROXY_RULES"
test_exit "a truncated page with an empty token fails" 1 \
	via_proxy cumulus-util --store=s3://t6000/odd list-snapshots
test_ok "... saying so" grep -q 'empty continuation token' "$T/.out"
# Continuation tokens cycling A, B, A, ..., each page repeating a key of
# an earlier one: the listing fails instead of looping.
page snapshot-1.lbs true A >"$T/pageA.xml"
page snapshot-2.lbs true B >"$T/pageB.xml"
printf '%s\n' "body=$T/pageB.xml GET 100000 continuation-token=A&" \
	"body=$T/pageA.xml GET 100000 continuation-token=B&" \
	"body=$T/pageA.xml GET 100000 prefix=odd%2F" >"$PROXY_RULES"
test_exit "a listing whose tokens cycle fails" 1 \
	via_proxy timeout 20 cumulus-util --store=s3://t6000/odd list-snapshots
test_ok "... as not advancing" grep -q 'does not advance' "$T/.out"
: >"$PROXY_RULES"

# ---- wrong secret ----
test_exit "wrong secret fails" 1 env AWS_SECRET_ACCESS_KEY=wrong-secret-XYZ \
	cumulus-util --store=$URL list-snapshots
test_ok "... with a clear authentication error" \
	grep -q 'SignatureDoesNotMatch.*AWS_SECRET_ACCESS_KEY' "$T/.out"
test_fail "... without the secret in the message" grep -q 'wrong-secret-XYZ' "$T/.out"
test_exit "no credentials: clear error" 1 env -u AWS_ACCESS_KEY_ID \
	cumulus-util --store=$URL list-snapshots
test_ok "... naming the variables" grep -q 'AWS_ACCESS_KEY_ID' "$T/.out"
AWS_SESSION_TOKEN=SeSsIoN-ToKeN-SECRET CUMULUS_S3_DEBUG=1 \
	cumulus-util --store=$URL list-snapshots >"$T/debug.out" 2>&1
test_ok "CUMULUS_S3_DEBUG shows the headers" \
	grep -q '^> x-amz-security-token: \[redacted\]' "$T/debug.out"
test_eq "... without the session token or the signature" \
	"$(grep -c 'SeSsIoN-ToKeN\|Signature=' "$T/debug.out")" 0
test_exit "remote --dest without --localdb is a usage error" 2 \
	cumulus --dest=$URL "$src"

# ---- sync file -> S3 -> file ----
test_ok "backup to a directory" cumulus --dest="$T/local" --localdb="$T/db2" "$src"
lsnap=$(cumulus-util --store="$T/local" list-snapshots | tail -1)
test_ok "sync file -> S3" cumulus-sync "$T/local" s3://t6000/synced
test_ok "sync again copies nothing" cumulus-sync "$T/local" s3://t6000/synced
test_ok "... and says so" grep -q ' 0 copied' "$T/.out"
printf '503 PUT 1000\n' >"$PROXY_RULES"
test_exit "sync during an outage fails" 1 via_proxy env CUMULUS_S3_RETRIES=0 \
	cumulus-sync "$T/local" s3://t6000/outage
test_ok "... and counts no failed upload as copied" grep -q ' 0 copied' "$T/.out"
: >"$PROXY_RULES"
test_ok "sync S3 -> file" cumulus-sync s3://t6000/synced "$T/back"
test_ok "synced copy restores" restore_cmp "$T/back" "$lsnap" "$T/r8"
seg=$(cd "$T/back" && ls ./*.tar.zst | head -1)
printf 'garbage' | dd of="$T/back/$seg" bs=1 seek=100 conv=notrunc 2>/dev/null
test_ok "sync replaces a damaged same-size segment" cumulus-sync -v \
	s3://t6000/synced "$T/back"
test_ok "... copying exactly it" grep -q "copy ${seg#./}" "$T/.out"
test_ok "repaired copy verifies" cumulus-util --store="$T/back" verify-snapshots "$lsnap"

# ---- upload script ----
test_exit "--upload-script without --localdb is a usage error" 2 \
	cumulus --upload-script="cumulus-store s3://t6000/up" "$src"
test_ok "backup through cumulus-store" cumulus \
	--upload-script="cumulus-store s3://t6000/up" --localdb="$T/db3" "$src"
usnap=$(cumulus-util --store=s3://t6000/up list-snapshots | tail -1)
test_ok "upload-script snapshot restores from S3" restore_cmp s3://t6000/up \
	"$usnap" "$T/r9"
test_ok "cumulus-store LIST" bash -c "printf 'LIST snapshots\n' | cumulus-store s3://t6000/up"
test_ok "... lists the descriptor" grep -qx "\* snapshot-$usnap.lbs" "$T/.out"
test_exit "a failing upload script fails the backup" 1 cumulus \
	--upload-script="echo NO; cat >/dev/null" --localdb="$T/db4" "$src"
test_ok "... with its answer" grep -q "error response from upload script" "$T/.out"

# ---- more than 1000 objects ----
mkdir -p "$T/many"
for i in $(seq 1 1100); do head -c 4500 /dev/urandom >"$T/many/f$i"; done
test_ok "backup of 1100 files in 4 KiB segments" cumulus --dest=s3://t6000/many \
	--localdb="$T/db5" --segment-size=4096 --upload-jobs=8 "$T/many"
count=$(s3py "
p = s3.get_paginator('list_objects_v2')
print(sum(len(pg.get('Contents', [])) for pg in p.paginate(Bucket='t6000', Prefix='many/')))")
test_ok "boto3 counts over 1000 objects ($count)" test "$count" -gt 1000
msnap=$(cumulus-util --store=s3://t6000/many list-snapshots | tail -1)
rm -rf "$T/rm"
test_ok "restore from a store of over 1000 objects" cumulus-util \
	--store=s3://t6000/many restore-snapshot "$msnap" "$T/rm"
test_ok "... matches" compare_manifests "$T/many" "$T/rm$T/many"

done_testing
