#!/bin/sh
# The demo (README "Quick start"): installs what is needed, builds the static
# release binaries, starts csi-mock-driver and livenessprobe, and shows
# /healthz answering, first for a healthy driver, then for a stopped one,
# and /status saying why.
# PORT (default 9808) and BUILD_DIR (default build-release) may be set.
set -eu
cd "$(dirname "$0")/.."
PORT=${PORT:-9808}
BUILD_DIR=${BUILD_DIR:-build-release}

./scripts/install-deps.sh
# curl is the demo's HTTP client; a minimal Debian has none.
if ! command -v curl >/dev/null 2>&1; then
	INSTALL_TEST_DEPS=1 ./scripts/install-deps.sh
fi
./scripts/build-release.sh "$BUILD_DIR"

dir=$(mktemp -d)
sock="$dir/csi.sock"
mock_pid=""
lp_pid=""
cleanup() {
	[ -n "$lp_pid" ] && kill "$lp_pid" 2>/dev/null && wait "$lp_pid" 2>/dev/null
	[ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null && wait "$mock_pid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT INT TERM

echo "== starting csi-mock-driver on $sock"
"$BUILD_DIR/csi-mock-driver" --csi-address="$sock" --quiet >"$dir/mock.out" &
mock_pid=$!
echo "== starting livenessprobe --csi-address=$sock --health-port=$PORT"
"$BUILD_DIR/livenessprobe" --csi-address="$sock" --health-port="$PORT" &
lp_pid=$!

i=0
until curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz"; do
	i=$((i + 1))
	if [ "$i" -gt 100 ]; then
		echo "livenessprobe did not start listening" >&2
		exit 1
	fi
	sleep 0.1
done

echo "== GET /healthz (healthy driver)"
curl -s -i "http://127.0.0.1:$PORT/healthz"
echo
echo "== stopping the driver; GET /healthz again (fails at the 1s probe timeout)"
kill "$mock_pid"
wait "$mock_pid" 2>/dev/null || true
mock_pid=""
curl -s -i -w '\n(answered in %{time_total}s)\n' "http://127.0.0.1:$PORT/healthz"
echo "== GET /status?format=text (why: the checks and probes the sidecar kept)"
curl -s "http://127.0.0.1:$PORT/status?format=text"
echo "== done"
