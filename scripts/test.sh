#!/bin/sh
# Every test (README "Testing"): installs what is needed, then
#   1. checks formatting against the committed .clang-format,
#   2. builds the dynamic Debug build and runs all CTest tests
#      (C unit tests, busted policy specs, end-to-end tests),
#   3. rebuilds with AddressSanitizer + UndefinedBehaviorSanitizer and runs
#      the unit and end-to-end tests again,
#   4. runs the end-to-end tests against the daemon under valgrind,
#   5. builds the fully static release binaries and checks them: static,
#      running, the /healthz exchange, their SBOMs (tests/release/),
#   6. the same for arm64: cross-compiled, run under qemu-user-static,
#   7. builds the libFuzzer targets with clang and runs each for 20 s
#      (scripts/fuzz.sh).
# Ends with one summary line per stage and "N passed, N failed".
# STAGES (default "format build asan valgrind static arm64 fuzz") picks stages.
set -u
cd "$(dirname "$0")/.."
STAGES=${STAGES:-"format build asan valgrind static arm64 fuzz"}
JOBS=$(nproc)
root=$(pwd)
results=""
passed=0
failed=0

INSTALL_TEST_DEPS=1 ./scripts/install-deps.sh || exit 1

record() { # stage, status (0 ok), detail [, log whose failures to quote]
	if [ "$2" -eq 0 ]; then
		passed=$((passed + 1))
		results="$results\n  PASS  $1  $3"
	else
		failed=$((failed + 1))
		results="$results\n  FAIL  $1  $3"
		if [ -n "${4:-}" ] && [ -f "$4" ]; then
			results="$results\n$(failure_lines "$4")"
		fi
	fi
}

# What failed, for the summary: unittest's FAIL/ERROR headers and the
# assertion lines under them (busted and the C tests print similar lines).
failure_lines() {
	grep -E '^(FAIL|ERROR): |^not ok - |FAIL: |^[A-Za-z.]*(Error|Exception): |^FAILED |Assertion|^[^ ]+:[0-9]+: ' "$1" |
		head -12 | cut -c1-240 | tr '\\' '/' | sed 's/^/        /'
}

# ctest's own closing line, e.g. "100% tests passed, 0 tests failed out of 42".
ctest_line() { grep -E 'tests passed, [0-9]+ tests? failed out of' "$1" | tail -1; }

configure_build() { # dir, cmake args...
	dir=$1
	shift
	cmake -S . -B "$dir" "$@" >"$dir.configure.log" 2>&1 &&
		cmake --build "$dir" -j"$JOBS" >"$dir.build.log" 2>&1
}

for stage in $STAGES; do
	echo "=== stage: $stage"
	case $stage in
	format)
		# The C sources (and the one C++ file), found without git (a copy of the tree need not be a clone).
		files=$(find src tests/unit tests/fuzz -type f \( -name '*.c' -o -name '*.h' -o -name '*.cc' \) | sort)
		count=$(printf '%s\n' "$files" | grep -c .)
		if [ "$count" -eq 0 ]; then
			record format 1 "no C file found to check"
		# shellcheck disable=SC2086
		elif clang-format --dry-run -Werror $files >format.log 2>&1; then
			record format 0 "clang-format clean ($count files)"
		else
			head -20 format.log
			record format 1 "clang-format differences (see format.log)"
		fi
		;;
	build)
		mkdir -p build-test
		if configure_build build-test -DCMAKE_BUILD_TYPE=Debug; then
			(cd build-test && ctest -j"$JOBS" -LE e2e --output-on-failure) >build-test.unit.log 2>&1
			rc1=$?
			# Two files at a time; those that measure deadlines tightly run alone
			# (RUN_SERIAL in tests/CMakeLists.txt).
			(cd build-test && ctest -j2 -L e2e --output-on-failure) >build-test.e2e.log 2>&1
			rc2=$?
			tail -30 build-test.unit.log
			tail -30 build-test.e2e.log
			record "build/unit+spec" $rc1 "$(ctest_line build-test.unit.log)" build-test.unit.log
			record "build/e2e" $rc2 "$(ctest_line build-test.e2e.log)" build-test.e2e.log
		else
			tail -30 build-test.build.log
			record build 1 "build failed (build-test.build.log)"
		fi
		;;
	asan)
		mkdir -p build-asan
		if configure_build build-asan -DCMAKE_BUILD_TYPE=Debug -DLP_SANITIZE=ON; then
			# gRPC's abseil keeps process-lifetime allocations; leaks are valgrind's job.
			# test_godriver repeats test_healthz's rows (run here) against
			# another peer: left out to keep CI within its time.
			(cd build-asan && ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
				UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
				LP_TIME_SCALE=3 ctest -j2 -L 'unit|e2e' -E '^e2e/test_godriver$' --output-on-failure) >build-asan.log 2>&1
			rc=$?
			tail -30 build-asan.log
			record "asan+ubsan" $rc "$(ctest_line build-asan.log)" build-asan.log
		else
			tail -30 build-asan.build.log
			record asan 1 "build failed (build-asan.build.log)"
		fi
		;;
	valgrind)
		if [ ! -x build-test/livenessprobe ]; then
			configure_build build-test -DCMAKE_BUILD_TYPE=Debug
		fi
		(cd build-test &&
			LP_WRAPPER="valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --suppressions=$root/tests/valgrind.supp --quiet" \
				LP_TIME_SCALE=10 ctest -j1 -L valgrind --output-on-failure) >build-valgrind.log 2>&1
		rc=$?
		tail -30 build-valgrind.log
		record valgrind $rc "$(ctest_line build-valgrind.log)" build-valgrind.log
		;;
	static | arm64)
		# The release build for this machine (static) or cross-compiled for
		# arm64 and run under qemu (arm64): scripts/build-release.sh, then
		# tests/release/check_release.sh (static, machine type, --version,
		# the /healthz exchange, the SBOMs).
		arch=amd64
		[ "$stage" = static ] || arch=arm64
		dir=build-release
		[ "$arch" = amd64 ] || dir=build-release-$arch
		if ./scripts/build-release.sh --arch="$arch" "$dir" >"$dir.log" 2>&1; then
			tests/release/check_release.sh "$dir" "$arch" >"$dir.check.log" 2>&1
			rc=$?
			cat "$dir.check.log"
			record "$stage" $rc "$(tail -1 "$dir.check.log"); livenessprobe $(stat -c %s "$dir/livenessprobe") bytes" \
				"$dir.check.log"
		else
			tail -30 "$dir.log"
			record "$stage" 1 "release build for $arch failed ($dir.log)"
		fi
		;;
	fuzz)
		# Two targets at a time, 20 s each: about a minute with the build.
		./scripts/fuzz.sh 20 >build-fuzz.log 2>&1
		rc=$?
		tail -8 build-fuzz.log
		record fuzz $rc "$(sed -n 's/^fuzz: //p' build-fuzz.log | tail -1)"
		;;
	*)
		record "$stage" 1 "unknown stage"
		;;
	esac
done

echo "=== summary"
printf '%b\n' "$results"
echo "stages: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
