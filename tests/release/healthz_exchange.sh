#!/bin/sh
# The demo's /healthz exchange as a check, for release binaries wherever
# they are (a release directory, a mounted image) and whatever runs them:
#
#   healthz_exchange.sh LIVENESSPROBE CSI_MOCK_DRIVER [EMULATOR]
#
# Starts the mock driver and the sidecar (each under EMULATOR when given,
# e.g. qemu-aarch64-static for arm64 binaries on amd64), checks that
# GET /healthz answers 200 "ok", stops the driver, and checks the answer
# becomes 500 "context deadline exceeded". Uses a fresh unix socket and
# PORT (default: a free loopback port). Exits 0 on success, 1 with the
# processes' output on any mismatch; cleans up its processes and files.
set -eu
if [ $# -lt 2 ] || [ $# -gt 3 ]; then
	echo "usage: healthz_exchange.sh LIVENESSPROBE CSI_MOCK_DRIVER [EMULATOR]" >&2
	exit 2
fi
lp=$1
mock=$2
emulator=${3:-}

tmp=$(mktemp -d /tmp/lp-exchange.XXXXXX)
mock_pid=""
lp_pid=""
cleanup() {
	rc=$?
	for p in $lp_pid $mock_pid; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	rm -rf "$tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
	echo "healthz_exchange: FAIL: $*" >&2
	for f in mock lp; do
		[ -s "$tmp/$f.out" ] && sed "s/^/  $f: /" "$tmp/$f.out" >&2
	done
	exit 1
}

# A free port from the kernel unless PORT says which.
port=${PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
sock=$tmp/csi.sock

# shellcheck disable=SC2086 # EMULATOR is a command word or nothing
$emulator "$mock" --csi-address="$sock" --quiet >"$tmp/mock.out" 2>&1 &
mock_pid=$!
# shellcheck disable=SC2086
$emulator "$lp" --csi-address="$sock" --http-endpoint="127.0.0.1:$port" >"$tmp/lp.out" 2>&1 &
lp_pid=$!

# Wait for the listener (an emulated start takes longer): up to 30 s.
body=""
i=0
while [ $i -lt 300 ]; do
	if body=$(curl -sS --max-time 10 "http://127.0.0.1:$port/healthz" 2>/dev/null); then break; fi
	kill -0 "$lp_pid" 2>/dev/null || fail "livenessprobe exited"
	sleep 0.1
	i=$((i + 1))
done
[ "$body" = ok ] || fail "GET /healthz with the driver running answered '$body', expected 'ok'"
echo "healthz_exchange: GET /healthz (driver running): 200 $body"

kill "$mock_pid"
wait "$mock_pid" 2>/dev/null || true
mock_pid=""
code=$(curl -sS --max-time 10 -o "$tmp/body" -w '%{http_code}' "http://127.0.0.1:$port/healthz") || true
body=$(cat "$tmp/body" 2>/dev/null || true)
[ "$code" = 500 ] && [ "$body" = "context deadline exceeded" ] ||
	fail "GET /healthz with the driver stopped answered $code '$body', expected 500 'context deadline exceeded'"
echo "healthz_exchange: GET /healthz (driver stopped): $code $body"
