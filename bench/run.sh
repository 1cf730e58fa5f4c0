#!/bin/sh
# Benchmark (README "Performance"): builds the static release binaries and
# csi-go-driver (a driver in Go with grpc-go, tests/godriver/), then for each
# driver in DRIVERS starts it and livenessprobe and prints, for the sidecar:
#   private memory (RssAnon) idle, peak and idle after the load, RSS idle
#   and peak, /healthz p50/p99 at 1 connection, requests/s at 1 and 32 connections, CPU
#   microseconds per request at 1 and 32 connections, threads, and the
#   system calls per probe by name (strace -f on every thread, over
#   SYSCALL_REQUESTS keep-alive requests on one connection).
# DURATION (seconds per load run, default 10), DRIVERS (default "mock go")
# and SYSCALL_REQUESTS (default 2000) may be set.
set -eu
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
DRIVERS=${DRIVERS:-mock go}
SYSCALL_REQUESTS=${SYSCALL_REQUESTS:-2000}
INSTALL_BENCH_DEPS=1 ./scripts/install-deps.sh >/dev/null
./scripts/build-release.sh build-release >/dev/null
case " $DRIVERS " in
*" go "*) tests/godriver/build.sh build-release/godriver ;;
esac

dir=$(mktemp -d)
lp=""
drv=""
sampler=""
cleanup() {
	kill $lp $drv $sampler 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT
hz=$(getconf CLK_TCK)

status() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$lp/status"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$lp/stat"; }

# wrk prints latency percentiles and the request count; CPU comes from /proc.
run_wrk() { # connections, threads
	t0=$(cpu_ticks)
	wrk -t"$2" -c"$1" -d"${DURATION}s" --latency "http://127.0.0.1:$port/healthz" >"$dir/wrk.txt"
	t1=$(cpu_ticks)
	requests=$(awk '/requests in/ { print $1 }' "$dir/wrk.txt")
	cpu_us=$(python3 -c "print(round(($t1 - $t0) * 1e6 / $hz / $requests, 1))")
	if grep -q 'Non-2xx' "$dir/wrk.txt"; then
		echo "bench: some answers were not 2xx ($1 connections, driver $driver)" >&2
		exit 1
	fi
}

# The largest RssAnon seen while the load runs (sampled every 50 ms).
start_sampler() {
	(
		max=0
		while kill -0 "$lp" 2>/dev/null; do
			now=$(status RssAnon)
			[ "$now" -le "$max" ] || {
				max=$now
				echo "$max" >"$dir/anon_peak"
			}
			sleep 0.05
		done
	) &
	sampler=$!
}

# System calls of every sidecar thread while SYSCALL_REQUESTS keep-alive
# requests run one after another on one connection: per request, by name.
count_syscalls() {
	tids=$(ls "/proc/$lp/task")
	# shellcheck disable=SC2046 # one -p per thread
	strace -f -c -o "$dir/strace.txt" $(for t in $tids; do echo "-p $t"; done) 2>/dev/null &
	strace_pid=$!
	# strace says nothing when attached: wait until every thread is traced.
	for t in $tids; do
		until grep -q "^TracerPid:[[:space:]]*$strace_pid" "/proc/$lp/task/$t/status" 2>/dev/null; do
			sleep 0.01
		done
	done
	python3 - "$port" "$SYSCALL_REQUESTS" <<-'PY'
		import http.client, sys
		c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
		for _ in range(int(sys.argv[2])):
		    c.request("GET", "/healthz")
		    r = c.getresponse()
		    if r.status != 200 or r.read() != b"ok":
		        sys.exit("bench: /healthz answered %d during the strace run" % r.status)
	PY
	kill -INT "$strace_pid"
	wait "$strace_pid" 2>/dev/null || true
	# strace -c: "% time seconds usecs/call calls errors syscall".
	awk -v n="$SYSCALL_REQUESTS" '
		$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" { calls[$NF] = $4; total += $4 }
		END {
			printf "%.1f", total / n
			for (s in calls) if (calls[s] / n >= 0.05) printf " %s=%.1f", s, calls[s] / n
			printf "\n"
		}' "$dir/strace.txt" >"$dir/syscalls"
}

for driver in $DRIVERS; do
	sock="$dir/$driver.sock"
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	case $driver in
	mock) build-release/csi-mock-driver --csi-address="$sock" --quiet >/dev/null & ;;
	go) build-release/godriver/csi-go-driver --csi-address="$sock" --quiet >/dev/null & ;;
	*)
		echo "bench: unknown driver '$driver' (mock, go)" >&2
		exit 2
		;;
	esac
	drv=$!
	build-release/livenessprobe --csi-address="$sock" --http-endpoint="127.0.0.1:$port" 2>"$dir/lp.log" &
	lp=$!
	until curl -s -o /dev/null "http://127.0.0.1:$port/healthz"; do sleep 0.05; done

	sleep 1
	rss_idle=$(status VmRSS)
	anon_idle=$(status RssAnon)
	threads=$(status Threads)
	echo 0 >"$dir/anon_peak"
	start_sampler

	run_wrk 1 1
	p50=$(awk '$1 == "50%" { print $2 }' "$dir/wrk.txt")
	p99=$(awk '$1 == "99%" { print $2 }' "$dir/wrk.txt")
	rps1=$(awk '/Requests\/sec/ { print $2 }' "$dir/wrk.txt")
	cpu1=$cpu_us
	run_wrk 32 2
	rps32=$(awk '/Requests\/sec/ { print $2 }' "$dir/wrk.txt")
	cpu32=$cpu_us
	rss_peak=$(status VmHWM)
	kill "$sampler" 2>/dev/null || true
	wait "$sampler" 2>/dev/null || true
	sampler=""
	anon_peak=$(cat "$dir/anon_peak")
	# Idle again: what the load left behind (kept records, heap not returned).
	sleep 1
	anon_after=$(status RssAnon)
	count_syscalls

	echo "livenessprobe against the $driver driver ($(nproc) CPUs, ${DURATION}s per run, static release build)"
	printf '  %-36s %s kB idle, %s kB peak, %s kB idle after the load\n' "private memory (RssAnon)" \
		"$anon_idle" "$anon_peak" "$anon_after"
	printf '  %-36s %s kB idle, %s kB peak\n' "RSS" "$rss_idle" "$rss_peak"
	printf '  %-36s %s / %s\n' "/healthz p50 / p99, 1 connection" "$p50" "$p99"
	printf '  %-36s %s (1 conn), %s (32 conns)\n' "requests/s" "$rps1" "$rps32"
	printf '  %-36s %s us (1 conn), %s us (32 conns)\n' "CPU per request" "$cpu1" "$cpu32"
	printf '  %-36s %s\n' "threads" "$threads"
	printf '  %-36s %s\n' "system calls per probe (strace -f)" "$(cut -d' ' -f1 "$dir/syscalls")"
	printf '  %-36s %s\n' "  by name" "$(cut -d' ' -f2- "$dir/syscalls")"

	kill "$lp" "$drv" 2>/dev/null || true
	wait "$lp" "$drv" 2>/dev/null || true
	lp=""
	drv=""
done
printf '  %-36s %s bytes\n' "binary size (stripped, static)" "$(stat -c %s build-release/livenessprobe)"
