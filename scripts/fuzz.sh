#!/bin/sh
# libFuzzer targets (README "Fuzzing"): builds build-fuzz with clang
# (-DLP_FUZZ=ON), then runs every tests/fuzz/fuzz_*.c target for SECONDS
# (default 20), two at a time, each from a scratch copy of its committed
# seed corpus (tests/fuzz/corpus/NAME/, never written to) with its
# dictionary (tests/fuzz/NAME.dict) when there is one.
#
# Prints one line per target (executions, coverage, crashes) and a closing
# "fuzz: ..." line; exits non-zero if a target crashed, leaked, timed out or
# did not run. Crash inputs land in build-fuzz/artifacts/TARGET-crash-* (or
# leak-, timeout-, oom-); replay one with
#   build-fuzz/tests/fuzz/TARGET build-fuzz/artifacts/TARGET-crash-...
# Logs: build-fuzz/logs/TARGET.log. TARGETS="fuzz_http ..." runs only those.
set -u
cd "$(dirname "$0")/.." || exit 1
SECONDS_EACH=${1:-20}
JOBS=$(nproc)
root=$(pwd)
out=build-fuzz
case $SECONDS_EACH in
'' | *[!0-9]*)
	echo "usage: $0 [SECONDS]" >&2
	exit 2
	;;
esac

mkdir -p "$out"
# clang++ too: the one C++ file (src/absl_tuning.cc) makes CMake link with
# the C++ compiler, and only clang's knows -fsanitize=fuzzer.
if ! CC=${CC:-clang} CXX=${CXX:-clang++} cmake -S . -B "$out" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLP_TESTS=OFF \
	-DLP_FUZZ=ON >"$out.configure.log" 2>&1 ||
	! cmake --build "$out" --target fuzz -j"$JOBS" >"$out.build.log" 2>&1; then
	tail -30 "$out.configure.log" "$out.build.log" 2>/dev/null
	echo "fuzz: build failed ($out.build.log)"
	exit 1
fi

targets=${TARGETS:-}
if [ -z "$targets" ]; then
	for f in tests/fuzz/fuzz_*.c; do
		t=${f##*/}
		targets="$targets ${t%.c}"
	done
fi
scratch=$(mktemp -d "${TMPDIR:-/tmp}/lp-fuzz.XXXXXX") || exit 1
trap 'rm -rf "$scratch"' EXIT
trap 'exit 130' INT TERM
mkdir -p "$out/artifacts" "$out/logs"

# Artifacts a target has left so far (crash-, leak-, timeout-, oom-).
artifacts() {
	n=0
	for f in "$out/artifacts/$1-"*; do
		if [ -e "$f" ]; then n=$((n + 1)); fi
	done
	echo "$n"
}

run_target() { # target; writes $out/logs/TARGET.log and $scratch/TARGET.rc
	t=$1
	name=${t#fuzz_}
	corpus=$scratch/$t
	mkdir -p "$corpus"
	if [ -d "tests/fuzz/corpus/$name" ]; then
		cp "tests/fuzz/corpus/$name"/* "$corpus"/ 2>/dev/null
	fi
	dict=""
	if [ -f "tests/fuzz/$name.dict" ]; then
		dict="-dict=tests/fuzz/$name.dict"
	fi
	# shellcheck disable=SC2086
	"$out/tests/fuzz/$t" -max_total_time="$SECONDS_EACH" -print_final_stats=1 -timeout=10 \
		-rss_limit_mb=2048 -artifact_prefix="$root/$out/artifacts/$t-" $dict "$corpus" \
		>"$out/logs/$t.log" 2>&1
	echo $? >"$scratch/$t.rc"
}

# Two at a time (CI has two CPUs).
for t in $targets; do
	artifacts "$t" >"$scratch/$t.before"
done
# shellcheck disable=SC2086
set -- $targets
while [ $# -gt 0 ]; do
	run_target "$1" &
	if [ $# -gt 1 ]; then
		run_target "$2" &
		shift
	fi
	shift
	wait
done

failed=0
total_runs=0
total_crashes=0
for t in $targets; do
	log=$out/logs/$t.log
	rc=$(cat "$scratch/$t.rc" 2>/dev/null || echo 1)
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	# The last status line ("#N DONE cov: X ft: Y ...") has the final coverage.
	cov=$(grep -E '^#[0-9]+.* cov: ' "$log" | tail -1 | sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\).*/\1 \2/p')
	crashes=$(($(artifacts "$t") - $(cat "$scratch/$t.before")))
	status=ok
	if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ] || [ -z "$runs" ]; then
		status="FAILED (exit $rc; see $log)"
		failed=$((failed + 1))
		grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error)' "$log" | head -5
	fi
	printf '%-20s executions %9s  cov %5s  ft %6s  crashes %s  %ss  %s\n' "$t" "${runs:-?}" \
		"${cov% *}" "${cov#* }" "$crashes" "$SECONDS_EACH" "$status"
	total_runs=$((total_runs + ${runs:-0}))
	total_crashes=$((total_crashes + crashes))
done
count=$(echo "$targets" | wc -w)
echo "fuzz: $count targets x ${SECONDS_EACH}s, $total_runs executions, $total_crashes crashes, $failed failed"
[ "$failed" -eq 0 ]
