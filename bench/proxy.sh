#!/bin/sh
# The cost of csi-mock-driver --proxy-to (README "Testing your own driver's
# failure modes"): builds the static release binaries, then loads the
# sidecar's /healthz (one Probe per request) with wrk, once with the sidecar
# calling the driver directly and once through the proxy in front of it, and
# prints for each: /healthz p50/p99 at 1 connection, requests/s, and, through
# the proxy, the proxy's CPU microseconds per forwarded call. The added
# latency per call is the difference of the two p50s (one Probe per request).
# DURATION (seconds per run, default 10) and RUNS (default 3) may be set.
set -eu
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
RUNS=${RUNS:-3}
INSTALL_BENCH_DEPS=1 ./scripts/install-deps.sh >/dev/null
./scripts/build-release.sh build-release

dir=$(mktemp -d)
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
hz=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

build-release/csi-mock-driver --csi-address="$dir/driver.sock" --quiet >/dev/null &
pids="$pids $!"
build-release/csi-mock-driver --csi-address="$dir/proxy.sock" --proxy-to="$dir/driver.sock" \
	--quiet >/dev/null &
proxy=$!
pids="$pids $proxy"

# One sidecar per path; prints "p50 p99 requests/s proxy-CPU-us-per-call".
measure() { # socket
	port=$(free_port)
	build-release/livenessprobe --csi-address="$1" --http-endpoint="127.0.0.1:$port" \
		2>"$dir/lp.log" &
	lp=$!
	until curl -s -o /dev/null "http://127.0.0.1:$port/healthz"; do sleep 0.05; done
	wrk -t1 -c1 -d1s "http://127.0.0.1:$port/healthz" >/dev/null # warm up
	t0=$(cpu_ticks "$proxy")
	wrk -t1 -c1 -d"${DURATION}s" --latency "http://127.0.0.1:$port/healthz" >"$dir/wrk.txt"
	t1=$(cpu_ticks "$proxy")
	kill "$lp"
	wait "$lp" 2>/dev/null || true
	if grep -q 'Non-2xx' "$dir/wrk.txt"; then
		echo "proxy bench: some /healthz answers were not 200" >&2
		exit 1
	fi
	requests=$(awk '/requests in/ { print $1 }' "$dir/wrk.txt")
	awk -v t0="$t0" -v t1="$t1" -v hz="$hz" -v n="$requests" '
		$1 == "50%" { p50 = $2 } $1 == "99%" { p99 = $2 } /Requests\/sec/ { rps = $2 }
		END { printf "%s %s %s %.1f\n", p50, p99, rps, (t1 - t0) * 1e6 / hz / n }' "$dir/wrk.txt"
}

echo "csi-mock-driver --proxy-to benchmark ($(nproc) CPUs, ${DURATION}s per run, $RUNS runs each, alternated)"
printf '  %-8s %-10s %-10s %-10s %-12s %s\n' run path "p50" "p99" "requests/s" "proxy CPU/call"
i=1
while [ "$i" -le "$RUNS" ]; do
	set -- $(measure "$dir/driver.sock")
	printf '  %-8s %-10s %-10s %-10s %-12s %s\n' "$i" direct "$1" "$2" "$3" "-"
	set -- $(measure "$dir/proxy.sock")
	printf '  %-8s %-10s %-10s %-10s %-12s %s us\n' "$i" proxied "$1" "$2" "$3" "$4"
	i=$((i + 1))
done
