#!/bin/sh
# Installs everything the project needs to build, run and test, from Debian
# bookworm packages only. Safe to run again: apt-get skips what is present.
# Needs root (or sudo); a minimal Debian has no compiler, CMake or pkg-config.
set -eu

# Build: compiler, CMake, pkg-config and the four libraries of DESIGN.md.
BUILD="build-essential cmake pkg-config libgrpc-dev protobuf-c-compiler libprotobuf-c-dev liblua5.4-dev libevent-dev libseccomp-dev"
# Static release link (GRPC-NOTES.md): grpc_unsecure.pc omits these archives.
# libupb.a and libaddress_sorting.a come with libgrpc-dev itself; Debian's
# separate libupb-dev is an unrelated old upb that conflicts with it.
STATIC="libc-ares-dev zlib1g-dev libabsl-dev libssl-dev libre2-dev"
# Tests: Lua interpreter + busted for policy specs; python3 drives the
# end-to-end tests (standard library only); curl for the demo; valgrind and
# clang's sanitizer runtime for the checked builds, whose libclang-rt-14-dev
# also holds libFuzzer (scripts/fuzz.sh); procps for ps in bench.
# prometheus brings promtool and a real server for the metrics tests.
# python3-grpcio, python3-protobuf, protobuf-compiler: csi_pydriver.py, a CSI driver sharing no code with ours.
TEST="lua5.4 lua-busted python3 python3-grpcio python3-protobuf protobuf-compiler curl valgrind clang clang-format libclang-rt-14-dev procps iproute2 prometheus nodejs $(command -v npm >/dev/null 2>&1 || echo npm)"

# Benchmark: wrk drives the load (bench/run.sh).
BENCH="wrk curl procps"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

want=""
for p in $BUILD $STATIC ${INSTALL_TEST_DEPS:+$TEST} ${INSTALL_BENCH_DEPS:+$BENCH}; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		want="$want $p"
	fi
done
if [ -n "$want" ]; then
	echo "install-deps: installing:$want"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $want >/dev/null
fi
echo "install-deps: all packages present"
