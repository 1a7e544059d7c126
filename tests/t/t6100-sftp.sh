#!/bin/bash
# SFTP store against a throwaway OpenSSH server on loopback (started and
# stopped here, its own host key, one throwaway user key): backup with
# parallel uploads, incremental, restore, list-snapshots, a path relative
# to the login directory (/~/), cumulus-sync file -> sftp -> file (and a
# damaged segment replaced), --upload-script="cumulus-store sftp://...",
# ssh-agent authentication; refusals: an unknown host key, a changed host
# key, a wrong user key, a server that never answers (timeout), a server
# that is gone.  The server's files are checked directly (it is this
# machine).
. "$(dirname "$0")/../lib.sh"
. "$CUMULUS_TOP/tests/lib-sftp.sh"

sftp_start || {
	echo "not ok - sshd did not start"
	exit 1
}
export PATH=$CUMULUS_BUILD:$PATH
MiB=1048576
src=$T/src
mkdir -p "$src/d"
head -c $((3 * MiB)) /dev/urandom >"$src/big.bin"
seq 1 50000 >"$src/numbers.txt"
for i in 1 2 3 4 5; do echo "file $i" >"$src/d/f$i"; done
ln -s numbers.txt "$src/link"
HOSTP=127.0.0.1:$SSH_PORT
URL=sftp://$SSH_USER@$HOSTP$T/srv/store

snapshots() { cumulus-util --store="$1" list-snapshots 2>/dev/null | wc -l; }
restore_cmp() { # URL SNAPSHOT DIR -> compares DIR/<src> with $src
	rm -rf "$3" &&
		cumulus-util --store="$1" restore-snapshot "$2" "$3" >/dev/null &&
		compare_manifests "$src" "$3${src}"
}
temps() { find "$T/srv" -name '.tmp.*' | wc -l; }

# ---- backup, incremental, restore ----
test_ok "backup to sftp:// (directories created)" cumulus --dest="$URL" \
	--localdb="$T/db" --segment-size=1M --upload-jobs=4 "$src"
snap1=$(cumulus-util --store="$URL" list-snapshots | tail -1)
test_eq "list-snapshots shows one" "$(snapshots "$URL")" 1
test_ok "the server holds the descriptor" \
	test -s "$T/srv/store/snapshot-$snap1.lbs"
nseg=$(grep -c '^    ' "$T/srv/store/snapshot-$snap1.lbs")
test_eq "... and every segment it names" \
	"$(find "$T/srv/store" -name '*.tar*' | wc -l)" "$nseg"
test_ok "several segments (parallel uploads)" test "$nseg" -ge 3
test_eq "no temp files left" "$(temps)" 0
test_ok "verify-snapshots over sftp" cumulus-util --store="$URL" \
	verify-snapshots "$snap1"
test_ok "restore from sftp" restore_cmp "$URL" "$snap1" "$T/r1"

echo changed >>"$src/d/f3"
echo new >"$src/d/new"
test_ok "incremental backup to sftp" cumulus --dest="$URL" --localdb="$T/db" "$src"
test_ok "incremental stored little" grep -q ' 0.0 MiB new' "$T/.out"
test_eq "two snapshots" "$(snapshots "$URL")" 2
snap2=$(cumulus-util --store="$URL" list-snapshots | tail -1)
test_ok "restore the incremental" restore_cmp "$URL" "$snap2" "$T/r2"
test_ok "restore the first again" restore_cmp "$URL" "$snap1" "$T/r3"

# ---- a path relative to the login directory ----
home=$(getent passwd "$SSH_USER" | cut -d: -f6)
rel=$(realpath -m --relative-to="$home" "$T/srv/rel")
test_ok "backup to sftp://HOST/~/RELATIVE" cumulus \
	--dest="sftp://$HOSTP/~/$rel" --localdb="$T/dbrel" "$src/d"
test_eq "... lands in the login directory's subtree" \
	"$(find "$T/srv/rel" -name 'snapshot-*.lbs' | wc -l)" 1
test_exit "a missing store without create fails" 1 cumulus-util \
	--store="sftp://$HOSTP$T/srv/nothere" list-snapshots
test_ok "... saying so" grep -q 'no such directory' "$T/.out"

# ---- cumulus-sync file -> sftp -> file ----
test_ok "backup to a directory" cumulus --dest="$T/local" --localdb="$T/db2" "$src"
lsnap=$(cumulus-util --store="$T/local" list-snapshots | tail -1)
test_ok "sync file -> sftp" cumulus-sync "$T/local" "sftp://$HOSTP$T/srv/synced"
test_ok "sync again copies nothing" cumulus-sync "$T/local" \
	"sftp://$HOSTP$T/srv/synced"
test_ok "... and says so" grep -q ' 0 copied' "$T/.out"
# A segment cut short on the server is copied again.
seg=$(cd "$T/srv/synced" && ls ./*.tar.zst | head -1)
seg=${seg#./}
truncate -s -7 "$T/srv/synced/$seg"
test_ok "sync replaces a truncated segment on the server" \
	cumulus-sync -v "$T/local" "sftp://$HOSTP$T/srv/synced"
test_ok "... copying exactly it" grep -q "copy $seg" "$T/.out"
test_ok "... which now matches" cmp -s "$T/local/$seg" "$T/srv/synced/$seg"
# Same size, different bytes: found by reading the file back ...
# (seven bytes: one byte was already 'X' in one segment out of 256)
printf 'garbage' | dd of="$T/srv/synced/$seg" bs=1 seek=100 conv=notrunc status=none
test_ok "--size-only trusts the same-size damaged segment" \
	cumulus-sync -v --size-only "$T/local" "sftp://$HOSTP$T/srv/synced"
test_ok "... copying nothing" grep -q ' 0 copied' "$T/.out"
test_ok "by default sync reads it back and replaces it" \
	cumulus-sync -v "$T/local" "sftp://$HOSTP$T/srv/synced"
test_ok "... copying exactly it" grep -q "copy $seg" "$T/.out"
test_ok "... which now matches" cmp -s "$T/local/$seg" "$T/srv/synced/$seg"
test_ok "sync sftp -> file" cumulus-sync "sftp://$HOSTP$T/srv/synced" "$T/back"
test_ok "synced copy restores" restore_cmp "$T/back" "$lsnap" "$T/r4"
test_eq "no temp files left after syncs" "$(temps)" 0

# ---- gc removes what an interrupted upload left ----
before=$(snapshots "$URL")
head -c 1000 /dev/urandom >"$T/srv/store/.tmp.left.1"
mkdir -p "$T/srv/store/snapshots"
head -c 1000 /dev/urandom >"$T/srv/store/snapshots/.tmp.left.2"
test_ok "gc over sftp" cumulus-util --store="$URL" gc --min-age=0
test_eq "... removes the temp files of interrupted uploads" "$(temps)" 0
test_ok "... and names them" grep -q 'temp file: snapshots/.tmp.left.2 (1000 bytes)' "$T/.out"
test_eq "... but no snapshot" "$(snapshots "$URL")" "$before"

# ---- upload script ----
test_ok "backup through cumulus-store sftp://" cumulus \
	--upload-script="cumulus-store sftp://$HOSTP$T/srv/up" \
	--localdb="$T/db3" "$src"
usnap=$(cumulus-util --store="sftp://$HOSTP$T/srv/up" list-snapshots | tail -1)
test_ok "upload-script snapshot restores" restore_cmp "sftp://$HOSTP$T/srv/up" \
	"$usnap" "$T/r5"

# ---- ssh-agent ----
if command -v ssh-agent >/dev/null && command -v ssh-add >/dev/null; then
	eval "$(ssh-agent -s)" >/dev/null
	trap 'kill "$SSH_AGENT_PID" 2>/dev/null; _sftp_stop; _lib_cleanup' EXIT
	ssh-add -q "$SSH_DIR/user_key" 2>/dev/null
	mkdir -p "$T/emptyhome"
	test_ok "authentication through ssh-agent alone" env -u CUMULUS_SSH_KEY \
		HOME="$T/emptyhome" cumulus-util --store="$URL" list-snapshots
	test_eq "... lists the snapshots" "$(wc -l <"$T/.stdout")" 2
	kill "$SSH_AGENT_PID" 2>/dev/null
	unset SSH_AUTH_SOCK SSH_AGENT_PID
else
	skip "authentication through ssh-agent" "ssh-agent is not installed"
fi

# ---- refusals ----
: >"$T/empty_known_hosts"
test_exit "an unknown host key is refused" 1 env \
	CUMULUS_SSH_KNOWN_HOSTS="$T/empty_known_hosts" \
	cumulus-util --store="$URL" list-snapshots
cp "$T/.out" "$T/unknown.out"
test_ok "... clearly, with its fingerprint" \
	grep -q 'unknown host key (ssh-ed25519 SHA256:.*refusing' "$T/unknown.out"
fp=$(ssh-keygen -l -f "$SSH_DIR/host_key.pub" | cut -d' ' -f2)
test_ok "... the one ssh-keygen prints" grep -qF "$fp" "$T/unknown.out"

ssh-keygen -q -t ed25519 -N '' -f "$T/other_host_key"
printf '[127.0.0.1]:%s %s\n' "$SSH_PORT" \
	"$(cut -d' ' -f1-2 "$T/other_host_key.pub")" >"$T/changed_known_hosts"
test_exit "a changed host key is refused" 1 env \
	CUMULUS_SSH_KNOWN_HOSTS="$T/changed_known_hosts" \
	cumulus --dest="$URL" --localdb="$T/db" "$src"
test_ok "... clearly" grep -q 'HOST KEY CHANGED' "$T/.out"
test_eq "... and nothing was written" "$(snapshots "$URL")" 2

ssh-keygen -q -t ed25519 -N '' -f "$T/wrong_user_key"
test_exit "a wrong user key is refused" 1 env \
	CUMULUS_SSH_KEY="$T/wrong_user_key" \
	cumulus-util --store="$URL" list-snapshots
cp "$T/.out" "$T/wrong.out"
test_ok "... clearly, naming what was tried" \
	grep -q "authentication refused for user '$SSH_USER' (tried: $T/wrong_user_key)" \
	"$T/wrong.out"
test_fail "... without key material in the message" \
	grep -qF "$(sed -n 2p "$T/wrong_user_key")" "$T/wrong.out"
test_exit "a bad URL is refused" 1 cumulus-util --store="sftp://$HOSTP" \
	list-snapshots
test_ok "... with the expected form" grep -q 'sftp://\[USER@\]HOST' "$T/.out"

# A server that accepts the connection and never speaks.
if command -v python3 >/dev/null; then
	# Port 0: the kernel picks a free port, printed once it listens.
	python3 -c "
import socket, time
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(4)
print('port', s.getsockname()[1], flush=True)
c = s.accept(); time.sleep(30)" >"$T/mute.out" 2>&1 &
	mute_pid=$!
	mute=
	for i in $(seq 50); do
		mute=$(sed -n 's/^port \([0-9][0-9]*\)$/\1/p' "$T/mute.out")
		[ -n "$mute" ] && break
		sleep 0.1
	done
	test_ok "a mute server listens ($mute)" test -n "$mute"
	start=$(date +%s)
	test_exit "a mute server times out" 1 env CUMULUS_SFTP_TIMEOUT=1 \
		cumulus-util --store="sftp://127.0.0.1:$mute/x" list-snapshots
	test_ok "... saying the handshake failed" grep -q 'handshake failed' "$T/.out"
	test_ok "... within the timeout" test $(($(date +%s) - start)) -le 5
	kill "$mute_pid" 2>/dev/null
else
	skip "a mute server times out" "python3 is not installed"
fi

_sftp_stop
SSHD_PID=
test_exit "a stopped server: clear failure" 1 cumulus-util --store="$URL" \
	list-snapshots
test_ok "... cannot connect" grep -q 'cannot connect' "$T/.out"

done_testing
