#!/usr/bin/env bash
# start-radosgw.sh PORT DATADIR
# (Copied from the team notes ../shared/s3/start-radosgw.sh: CI machines do not
# have that directory.)
#
# Starts a throwaway, single-node Ceph cluster (Debian 12's Ceph 16.2 "pacific":
# 1 ceph-mon, 1 ceph-osd (in-memory "memstore" by default), 1 radosgw) that
# serves the real S3 API on http://127.0.0.1:PORT (path-style URLs, region
# us-east-1). No systemd, no ceph-mgr, no block devices, loopback only; ready in
# ~1.5-2 s once installed. Installs the Debian packages when they are missing.
# Everything lives under DATADIR, which is wiped first.
#
# Environment (all optional):
#   S3_ACCESS_KEY      access key of the S3 user     (default: testkey)
#   S3_SECRET_KEY      secret key of the S3 user     (default: testsecret123)
#   S3_MON_PORT        loopback port for ceph-mon    (default: PORT+1)
#   S3_OSD_BACKEND     memstore (default: data in RAM, fastest start, RAM grows with
#                      data: the size below is NOT enforced without a ceph-mgr) or
#                      bluestore (data in a sparse 10 GiB file DATADIR/osd/osd.0.block,
#                      ~6 s slower start, RAM bounded)
#   S3_MEMSTORE_BYTES  nominal size of the memstore OSD (default: 2 GiB)
#   S3_START_TIMEOUT   seconds to wait for each step (default: 120)
#
# stdout: exactly one line, "RGW_PID OSD_PID MON_PID" (also written to DATADIR/pids).
# Progress and errors go to stderr; daemon logs are in DATADIR/log/.
# Stop:   kill $(cat DATADIR/pids)      (SIGTERM: all gone within ~1-3 s)
#    or   kill -9 $(cat DATADIR/pids)   (instant; the cluster is throwaway anyway)
#
# Example in a test script:
#   PIDS=$(bash start-radosgw.sh 9200 /tmp/s3data) || exit 1
#   trap 'kill $PIDS 2>/dev/null' EXIT
#   curl --aws-sigv4 aws:amz:us-east-1:s3 --user testkey:testsecret123 \
#        -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' -X PUT http://127.0.0.1:9200/mybucket
set -euo pipefail

PORT=${1:?usage: $0 PORT DATADIR}
D=${2:?usage: $0 PORT DATADIR}
KEY=${S3_ACCESS_KEY:-testkey}
SECRET=${S3_SECRET_KEY:-testsecret123}
MON_PORT=${S3_MON_PORT:-$((PORT + 1))}
MEM_BYTES=${S3_MEMSTORE_BYTES:-2147483648}
TIMEOUT=${S3_START_TIMEOUT:-120}
BACKEND=${S3_OSD_BACKEND:-memstore}
case $BACKEND in memstore|bluestore) ;; *) echo "S3_OSD_BACKEND must be memstore or bluestore" >&2; exit 2;; esac

log() { printf 's3-start: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---- 1. install if missing -------------------------------------------------
have_all() {
  local b
  for b in ceph-mon ceph-osd radosgw radosgw-admin monmaptool ceph curl; do
    command -v "$b" >/dev/null 2>&1 || return 1
  done
}
if ! have_all; then
  log "installing radosgw ceph-mon ceph-osd (about 66 MB, ~20 s)"
  export DEBIAN_FRONTEND=noninteractive
  pkgs=(radosgw ceph-mon ceph-osd curl)
  apt_install() { apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${pkgs[@]}" >&2; }
  apt_install || { apt-get -o DPkg::Lock::Timeout=600 update >&2 && apt_install; } ||
    die "apt-get install failed"
  have_all || die "packages installed but binaries missing"
fi

# ---- 2. fresh data dir (refuse to wipe a directory that is not ours) -------
if [ -e "$D" ] && [ -n "$(ls -A "$D" 2>/dev/null)" ] && [ ! -e "$D/.s3-test-ceph" ]; then
  die "$D exists, is not empty and was not made by this script; refusing to wipe it"
fi
rm -rf "$D"
mkdir -p "$D"/mon "$D"/osd "$D"/run "$D"/log "$D"/rgw
touch "$D/.s3-test-ceph" "$D/keyring"
D=$(cd "$D" && pwd)

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port_busy "$PORT" && die "127.0.0.1:$PORT is already in use"
port_busy "$MON_PORT" && die "127.0.0.1:$MON_PORT (mon) is already in use"

FSID=$(cat /proc/sys/kernel/random/uuid)
CONF=$D/ceph.conf
cat >"$CONF" <<EOF
[global]
fsid = $FSID
mon host = v2:127.0.0.1:$MON_PORT
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
# no cephx: daemons and clients talk without keys (S3 users still need keys)
auth cluster required = none
auth service required = none
auth client required = none
# radosgw otherwise insists on msgr2 "secure" mode towards the mon, which needs cephx
ms mon client mode = crc secure
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
# commit mon map changes at once (default waits ~1 s per pool created by radosgw)
paxos propose interval = 0.01
paxos min wait = 0.001
osd crush chooseleaf type = 0
# do not wait 5 s for a (maybe already stopped) mon when told to stop
osd fast shutdown notify mon = false
osd mon shutdown timeout = 0.5
osd objectstore = $BACKEND
memstore device bytes = $MEM_BYTES
bluestore block path = $D/osd/\$name.block
bluestore block create = true
bluestore block size = 10737418240
bluestore block db create = false
bluestore block wal create = false
bluestore fsck on mount = false
bluestore cache size = 268435456
run dir = $D/run
admin socket = $D/run/\$name.asok
pid file = $D/run/\$name.pid
log file = $D/log/\$name.log
mon data = $D/mon/\$name
osd data = $D/osd/\$name
keyring = $D/keyring
log to stderr = false
err to stderr = true

[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:$PORT
rgw dns name = localhost
rgw data = $D/rgw
rgw thread pool size = 64
# bound the shutdown wait if the cluster is already gone when radosgw gets SIGTERM
rgw exit timeout secs = 1
EOF

PIDS=()
cleanup_on_error() {
  local rc=$?
  if [ $rc -ne 0 ]; then
    log "start failed (rc=$rc); stopping what was started: ${PIDS[*]:-none}"
    for f in "$D"/log/*.log "$D"/log/*.out; do
      [ -s "$f" ] && { log "--- tail $f"; tail -n 15 "$f" >&2; }
    done
    [ ${#PIDS[@]} -gt 0 ] && kill -9 "${PIDS[@]}" 2>/dev/null || true
  fi
}
trap cleanup_on_error EXIT

wait_until() { # wait_until DESCRIPTION COMMAND...
  local what=$1; shift
  local end=$((SECONDS + TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -ge $end ] && die "timed out after ${TIMEOUT}s waiting for $what"
    for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null || die "a daemon (pid $p) died while waiting for $what"; done
    sleep 0.2
  done
}
ceph_() { timeout 10 ceph -c "$CONF" --connect-timeout 5 "$@"; }

# ---- 3. monitor ------------------------------------------------------------
monmaptool --create --fsid "$FSID" --addv a "[v2:127.0.0.1:$MON_PORT]" "$D/monmap" >/dev/null
ceph-mon -c "$CONF" -i a --mkfs --monmap "$D/monmap" >"$D/log/mon-mkfs.out" 2>&1
ceph-mon -c "$CONF" -i a -f </dev/null >"$D/log/mon.out" 2>&1 &
MON_PID=$!; PIDS+=("$MON_PID")
wait_until "ceph-mon" ceph_ mon stat

# ---- 4. one OSD (memstore or bluestore-on-a-file) --------------------------
OSD_UUID=$(cat /proc/sys/kernel/random/uuid)
OSD_ID=$(timeout "$TIMEOUT" ceph -c "$CONF" --connect-timeout 5 osd new "$OSD_UUID")
mkdir -p "$D/osd/osd.$OSD_ID"
timeout "$TIMEOUT" ceph-osd -c "$CONF" -i "$OSD_ID" --mkfs --osd-uuid "$OSD_UUID" >"$D/log/osd-mkfs.out" 2>&1
ceph-osd -c "$CONF" -i "$OSD_ID" -f </dev/null >"$D/log/osd.out" 2>&1 &
OSD_PID=$!; PIDS+=("$OSD_PID")
osd_up() { ceph_ osd stat -f json | grep -q '"num_up_osds":1'; }
wait_until "ceph-osd up" osd_up

# ---- 5. radosgw + S3 user --------------------------------------------------
radosgw -c "$CONF" -n client.rgw -f </dev/null >"$D/log/rgw.out" 2>&1 &
RGW_PID=$!; PIDS+=("$RGW_PID")
wait_until "radosgw on 127.0.0.1:$PORT" curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/"
timeout "$TIMEOUT" radosgw-admin -c "$CONF" user create --uid=test --display-name=test \
  --access-key="$KEY" --secret-key="$SECRET" >"$D/log/user-create.out" 2>&1 ||
  die "radosgw-admin user create failed"
# Ready = a SigV4-signed ListBuckets answers 200.
signed_ok() {
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 \
        --aws-sigv4 aws:amz:us-east-1:s3 --user "$KEY:$SECRET" \
        -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "http://127.0.0.1:$PORT/")" = 200 ]
}
wait_until "signed S3 request" signed_ok

echo "$RGW_PID $OSD_PID $MON_PID" >"$D/pids"
log "ready: http://127.0.0.1:$PORT  key=$KEY  (stop: kill \$(cat $D/pids))"
trap - EXIT
echo "$RGW_PID $OSD_PID $MON_PID"
