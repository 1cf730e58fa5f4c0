#!/bin/sh
# Installs everything the project needs to build, run and test, from Debian
# bookworm packages only. Safe to run again: apt-get skips what is present.
# Needs root (or sudo); a minimal Debian has no compiler, CMake or pkg-config.
#
#   scripts/install-deps.sh [--arch=ARCH]
#
# --arch=arm64 on an amd64 machine adds what the cross build needs
# (scripts/build-release.sh --arch=arm64): Debian's cross toolchain, the
# arm64 "-dev" packages through dpkg's multiarch, qemu-user-static to run the
# result, and libevent-dev for arm64, which dpkg cannot install beside the
# amd64 one (see cross_libevent below). --arch=amd64 (the machine's own
# architecture) adds nothing. Another architecture exits 2.
set -eu

SUPPORTED_ARCHES="amd64 arm64"
arch=""
for arg in "$@"; do
	case $arg in
	--arch=*) arch=${arg#--arch=} ;;
	*)
		echo "install-deps: unknown argument '$arg' (usage: install-deps.sh [--arch=ARCH])" >&2
		exit 2
		;;
	esac
done
host_arch=$(dpkg --print-architecture)
if [ -n "$arch" ]; then
	case " $SUPPORTED_ARCHES " in
	*" $arch "*) ;;
	*)
		echo "install-deps: unsupported architecture '$arch' (supported: $SUPPORTED_ARCHES)" >&2
		exit 2
		;;
	esac
	if [ "$arch" != "$host_arch" ] && [ "$host_arch" != amd64 ]; then
		echo "install-deps: cross builds are made on amd64 only (this machine is $host_arch)" >&2
		exit 2
	fi
fi

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
# golang-go, golang-google-grpc-dev (grpc-go 1.33), golang-goprotobuf-dev
# (protoc-gen-go): csi-go-driver, a driver in Go like production ones
# (tests/godriver/), built in GOPATH mode from Debian's sources.
TEST="lua5.4 lua-busted python3 python3-grpcio python3-protobuf protobuf-compiler curl valgrind clang clang-format libclang-rt-14-dev procps iproute2 prometheus nodejs $(command -v npm >/dev/null 2>&1 || echo npm) golang-go golang-google-grpc-dev golang-goprotobuf-dev"

# Benchmark: wrk drives the load, strace counts system calls, and
# csi-go-driver (the Go toolchain, see TEST) is the second driver (bench/run.sh).
BENCH="wrk curl procps strace golang-go golang-google-grpc-dev golang-goprotobuf-dev protobuf-compiler"

# Release: python3 writes the SBOM (scripts/sbom.py); file checks that a
# release binary is static and of the right machine.
RELEASE="python3 file"

# Cross build for ARCH: the toolchain, qemu-user-static to run its binaries,
# and the libraries of BUILD + STATIC for ARCH. libevent-dev is not among
# them: it is not "Multi-Arch: same" (its event-config.h sits in the shared
# /usr/include), so dpkg refuses it beside the amd64 one the tests need.
cross_packages() {
	echo "crossbuild-essential-$1 qemu-user-static"
	for p in libgrpc-dev libprotobuf-c-dev liblua5.4-dev libseccomp-dev $STATIC; do
		echo "$p:$1"
	done
}

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

cross=""
if [ -n "$arch" ] && [ "$arch" != "$host_arch" ]; then
	cross=$arch
	if ! dpkg --print-foreign-architectures | grep -qx "$cross"; then
		echo "install-deps: adding the $cross architecture to dpkg"
		$SUDO dpkg --add-architecture "$cross"
	fi
fi

want=""
updated=""
for p in $BUILD $STATIC $RELEASE ${INSTALL_TEST_DEPS:+$TEST} ${INSTALL_BENCH_DEPS:+$BENCH} \
	${cross:+$(cross_packages "$cross")}; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		want="$want $p"
	fi
done
if [ -n "$want" ]; then
	echo "install-deps: installing:$want"
	$SUDO apt-get update -qq
	updated=1
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $want >/dev/null
fi

# libevent-dev for a cross build, unpacked from Debian's own .deb under
# CROSS_ROOT/ARCH/libevent-dev/ (its usr/ tree and its DEBIAN/control, which
# the SBOM reads), with the .pc files pointed at that tree. Unpacked again
# when the amd64 libevent-dev moves to another version (the two come from
# the same Debian source and must match).
CROSS_ROOT=${LP_CROSS_ROOT:-/opt/livenessprobe-cross}
cross_libevent() {
	root=$CROSS_ROOT/$1/libevent-dev
	want_version=$(dpkg-query -W -f='${Version}' libevent-dev)
	have_version=$(sed -n 's/^Version: //p' "$root/DEBIAN/control" 2>/dev/null || true)
	[ "$have_version" = "$want_version" ] && return 0
	echo "install-deps: unpacking libevent-dev:$1 $want_version into $root"
	[ -n "$updated" ] || $SUDO apt-get update -qq
	tmp=$(mktemp -d)
	# apt's download user may not write into a root-owned mktemp directory.
	(cd "$tmp" && $SUDO apt-get download -qq -o APT::Sandbox::User=root \
		"libevent-dev:$1=$want_version" >/dev/null)
	$SUDO rm -rf "$root"
	$SUDO mkdir -p "$root"
	$SUDO dpkg-deb -x "$tmp"/libevent-dev_*_"$1".deb "$root"
	$SUDO dpkg-deb -e "$tmp"/libevent-dev_*_"$1".deb "$root/DEBIAN"
	rm -rf "$tmp"
	for pc in "$root"/usr/lib/*/pkgconfig/*.pc; do
		$SUDO sed -i "s|^prefix=/usr\$|prefix=$root/usr|" "$pc"
	done
}
if [ -n "$cross" ]; then cross_libevent "$cross"; fi
echo "install-deps: all packages present${cross:+ (with the $cross cross build)}"
