# tests/lib-sftp.sh: sourced by the SFTP test scripts after lib.sh.
#   sftp_start    starts a throwaway OpenSSH sshd on a free loopback port
#                 with its own host key, accepting one throwaway user key
#                 for the current user (skips the whole script when
#                 sshd or ssh-keygen are missing); sets SSH_PORT,
#                 SSH_USER, SSH_DIR and exports CUMULUS_SSH_KEY and
#                 CUMULUS_SSH_KNOWN_HOSTS; sshd is stopped on exit
# shellcheck shell=bash

SSHD_PID=
_sftp_stop() {
	if [ -n "$SSHD_PID" ]; then
		kill "$SSHD_PID" 2>/dev/null
		wait "$SSHD_PID" 2>/dev/null
	fi
	true
}

sftp_start() {
	local try i sshd=/usr/sbin/sshd
	if [ ! -x $sshd ] || ! command -v ssh-keygen >/dev/null; then
		skip "SFTP tests" "OpenSSH (openssh-server) is not installed"
		done_testing
		exit 0
	fi
	SSH_DIR=$T/ssh
	SSH_USER=$(id -un)
	mkdir -p "$SSH_DIR" && chmod 700 "$SSH_DIR"
	ssh-keygen -q -t ed25519 -N '' -f "$SSH_DIR/host_key" || return 1
	ssh-keygen -q -t ed25519 -N '' -f "$SSH_DIR/user_key" || return 1
	cp "$SSH_DIR/user_key.pub" "$SSH_DIR/authorized_keys"
	# Run as root, sshd wants its privilege separation directory.
	[ "$(id -u)" = 0 ] && mkdir -p /run/sshd
	cat >"$SSH_DIR/sshd_config" <<EOF
ListenAddress 127.0.0.1
HostKey $SSH_DIR/host_key
PidFile $SSH_DIR/sshd.pid
AuthorizedKeysFile $SSH_DIR/authorized_keys
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
AllowAgentForwarding no
AllowTcpForwarding no
X11Forwarding no
PrintMotd no
LogLevel VERBOSE
Subsystem sftp internal-sftp
EOF
	for try in 1 2 3 4 5; do
		SSH_PORT=$((20000 + (RANDOM % 20000)))
		$sshd -D -e -f "$SSH_DIR/sshd_config" -p "$SSH_PORT" \
			</dev/null 2>>"$SSH_DIR/sshd.log" &
		SSHD_PID=$!
		for i in $(seq 50); do
			kill -0 "$SSHD_PID" 2>/dev/null || break
			if (exec 3<>"/dev/tcp/127.0.0.1/$SSH_PORT") 2>/dev/null; then
				trap '_sftp_stop; _lib_cleanup' EXIT
				printf '[127.0.0.1]:%s %s\n' "$SSH_PORT" \
					"$(cut -d' ' -f1-2 "$SSH_DIR/host_key.pub")" \
					>"$SSH_DIR/known_hosts"
				export CUMULUS_SSH_KEY=$SSH_DIR/user_key
				export CUMULUS_SSH_KNOWN_HOSTS=$SSH_DIR/known_hosts
				unset SSH_AUTH_SOCK
				return 0
			fi
			sleep 0.1
		done
		_sftp_stop
		SSHD_PID=
	done
	diag "$(tail -20 "$SSH_DIR/sshd.log")"
	return 1
}
