# tests/lib-s3.sh: sourced by the S3 test scripts after lib.sh.
#   s3_start           starts radosgw on a free loopback port (skips the
#                      whole script when it cannot be installed); sets
#                      S3_PORT and the AWS_* variables; stopped on exit
#   proxy_start        starts tests/s3-fault-proxy.py in front of it;
#                      sets PROXY_PORT (a free port), PROXY_RULES, PROXY_LOG
#   via_proxy CMD...   runs CMD with AWS_ENDPOINT_URL at the proxy
#   s3py 'python'      runs python3 with boto3 client "s3" already made
# shellcheck shell=bash

S3_PIDS=
PROXY_PID=
_s3_stop() {
	[ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null
	[ -n "$S3_PIDS" ] && kill $S3_PIDS 2>/dev/null
	sleep 0.5
	[ -n "$S3_PIDS" ] && kill -9 $S3_PIDS 2>/dev/null
	true
}

s3_start() {
	local try
	if ! command -v radosgw >/dev/null && [ "$(id -u)" != 0 ]; then
		skip "S3 tests" "radosgw is not installed and we are not root"
		done_testing
		exit 0
	fi
	for try in 1 2 3; do
		S3_PORT=$((20000 + (RANDOM % 20000)))
		if S3_PIDS=$(bash "$CUMULUS_TOP/tests/s3-start-radosgw.sh" \
			"$S3_PORT" "$T/s3" 2>"$T/s3-start.log"); then
			break
		fi
		S3_PIDS=
	done
	if [ -z "$S3_PIDS" ]; then
		diag "$(tail -20 "$T/s3-start.log")"
		if ! command -v radosgw >/dev/null; then
			skip "S3 tests" "radosgw could not be installed"
			done_testing
			exit 0
		fi
		echo "not ok - radosgw did not start"
		exit 1
	fi
	trap '_s3_stop; _lib_cleanup' EXIT
	export AWS_ACCESS_KEY_ID=testkey AWS_SECRET_ACCESS_KEY=testsecret123
	export AWS_ENDPOINT_URL=http://127.0.0.1:$S3_PORT AWS_REGION=us-east-1
	export CUMULUS_S3_RETRY_BASE_MS=20
	unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
}

proxy_start() {
	local i
	# Port 0: the kernel picks a free one, so no other listener can be
	# mistaken for the proxy; it prints the port once it listens.
	PROXY_PORT=
	PROXY_RULES=$T/proxy.rules
	PROXY_LOG=$T/proxy.log
	: >"$PROXY_RULES"
	: >"$PROXY_LOG"
	python3 "$CUMULUS_TOP/tests/s3-fault-proxy.py" 0 "$S3_PORT" \
		"$PROXY_RULES" "$PROXY_LOG" </dev/null >"$T/proxy.port" 2>&1 &
	PROXY_PID=$!
	for i in $(seq 100); do
		PROXY_PORT=$(sed -n 's/^port \([0-9][0-9]*\)$/\1/p' "$T/proxy.port")
		[ -n "$PROXY_PORT" ] && return 0
		kill -0 "$PROXY_PID" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

via_proxy() {
	AWS_ENDPOINT_URL=http://127.0.0.1:$PROXY_PORT "$@"
}

s3py() {
	python3 -c "
import boto3, sys
from botocore.config import Config
s3 = boto3.client('s3', endpoint_url='$AWS_ENDPOINT_URL', aws_access_key_id='testkey',
    aws_secret_access_key='testsecret123', region_name='us-east-1',
    config=Config(s3={'addressing_style': 'path'}))
$1
"
}
