#!/bin/sh
# Benchmark (README "Performance"): builds the static release binaries,
# starts csi-mock-driver and livenessprobe, and prints
#   RSS idle and peak, /healthz p50/p99 at 1 connection, requests/s at 32
#   connections, CPU microseconds per request, threads, binary size.
# DURATION (seconds per load run, default 10) may be set.
set -eu
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
INSTALL_BENCH_DEPS=1 ./scripts/install-deps.sh >/dev/null
./scripts/build-release.sh build-release

dir=$(mktemp -d)
sock="$dir/csi.sock"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() {
	kill "$lp" "$mock" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT

build-release/csi-mock-driver --csi-address="$sock" --quiet >/dev/null &
mock=$!
build-release/livenessprobe --csi-address="$sock" --http-endpoint="127.0.0.1:$port" 2>"$dir/lp.log" &
lp=$!
until curl -s -o /dev/null "http://127.0.0.1:$port/healthz"; do sleep 0.05; done

status() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$lp/status"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$lp/stat"; }
hz=$(getconf CLK_TCK)

sleep 1
rss_idle=$(status VmRSS)
anon_idle=$(status RssAnon)
threads=$(status Threads)

# wrk prints latency percentiles and the request count; CPU comes from /proc.
run_wrk() { # connections, threads
	t0=$(cpu_ticks)
	wrk -t"$2" -c"$1" -d"${DURATION}s" --latency "http://127.0.0.1:$port/healthz" >"$dir/wrk.txt"
	t1=$(cpu_ticks)
	requests=$(awk '/requests in/ { print $1 }' "$dir/wrk.txt")
	cpu_us=$(python3 -c "print(round(($t1 - $t0) * 1e6 / $hz / $requests, 1))")
}

run_wrk 1 1
p50=$(awk '$1 == "50%" { print $2 }' "$dir/wrk.txt")
p99=$(awk '$1 == "99%" { print $2 }' "$dir/wrk.txt")
rps1=$(awk '/Requests\/sec/ { print $2 }' "$dir/wrk.txt")
cpu1=$cpu_us
errors1=$(grep -c 'Non-2xx' "$dir/wrk.txt" || true)

run_wrk 32 2
rps32=$(awk '/Requests\/sec/ { print $2 }' "$dir/wrk.txt")
cpu32=$cpu_us
errors32=$(grep -c 'Non-2xx' "$dir/wrk.txt" || true)
rss_peak=$(status VmHWM)

size=$(stat -c %s build-release/livenessprobe)
echo "livenessprobe benchmark ($(nproc) CPUs, ${DURATION}s per run, static release build)"
printf '  %-34s %s kB (anonymous %s kB)\n' "RSS idle" "$rss_idle" "$anon_idle"
printf '  %-34s %s kB\n' "RSS peak under load" "$rss_peak"
printf '  %-34s %s / %s\n' "/healthz p50 / p99, 1 connection" "$p50" "$p99"
printf '  %-34s %s\n' "requests/s, 1 connection" "$rps1"
printf '  %-34s %s\n' "requests/s, 32 connections" "$rps32"
printf '  %-34s %s us (1 conn), %s us (32 conns)\n' "CPU per request" "$cpu1" "$cpu32"
printf '  %-34s %s\n' "threads" "$threads"
printf '  %-34s %s bytes\n' "binary size (stripped, static)" "$size"
if [ "$errors1" != "0" ] || [ "$errors32" != "0" ]; then
	echo "  WARNING: some answers were not 2xx" >&2
	exit 1
fi
