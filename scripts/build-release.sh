#!/bin/sh
# Builds the fully static release binaries (livenessprobe, csi-mock-driver)
# for one architecture, checks them, and writes each one's SBOM beside it:
#
#   scripts/build-release.sh [--arch=ARCH] [DIR]
#
# ARCH is amd64 (the default, this machine's) or arm64, cross-compiled with
# Debian's cross toolchain (cmake/toolchain-arm64.cmake). DIR defaults to
# build-release for amd64 and build-release-arm64 for arm64. Installs what
# the build needs first (scripts/install-deps.sh --arch=ARCH), so a missing
# cross package is installed, never assumed. Then, for each binary:
#   - scripts/check-static.sh: file(1) says statically linked, for ARCH;
#   - DIR/BINARY.spdx.json: its SPDX 2.3 SBOM (scripts/sbom.py), from the
#     linker's map of the link and dpkg's records.
# Falls back to one job if a parallel build fails (low-memory machines).
# Exits 2 on an unknown ARCH or argument, 1 on a failed build or check.
set -eu
cd "$(dirname "$0")/.."
SUPPORTED_ARCHES="amd64 arm64"

arch=amd64
dir=""
for arg in "$@"; do
	case $arg in
	--arch=*) arch=${arg#--arch=} ;;
	-*)
		echo "build-release: unknown option '$arg' (usage: build-release.sh [--arch=ARCH] [DIR])" >&2
		exit 2
		;;
	*) dir=$arg ;;
	esac
done
case " $SUPPORTED_ARCHES " in
*" $arch "*) ;;
*)
	echo "build-release: unsupported architecture '$arch' (supported: $SUPPORTED_ARCHES)" >&2
	exit 2
	;;
esac

./scripts/install-deps.sh --arch="$arch"

toolchain=""
if [ "$arch" != "$(dpkg --print-architecture)" ]; then
	toolchain="-DCMAKE_TOOLCHAIN_FILE=$(pwd)/cmake/toolchain-$arch.cmake"
fi
if [ -z "$dir" ]; then
	dir=build-release
	[ -z "$toolchain" ] || dir=build-release-$arch
fi

# shellcheck disable=SC2086 # toolchain is one word or none
cmake -S . -B "$dir" $toolchain -DCMAKE_BUILD_TYPE=Release -DLP_STATIC=ON -DLP_TESTS=OFF >/dev/null
cmake --build "$dir" -j"$(nproc)" >/dev/null 2>&1 || cmake --build "$dir" -j1

version=$(sed -n 's/^CMAKE_PROJECT_VERSION:[A-Z]*=//p' "$dir/CMakeCache.txt")
for binary in livenessprobe csi-mock-driver; do
	./scripts/check-static.sh "$dir/$binary" "$arch"
	python3 scripts/sbom.py --map "$dir/$binary.map" --binary "$dir/$binary" --arch "$arch" \
		--version "$version" --out "$dir/$binary.spdx.json"
done
echo "build-release: $arch binaries in $dir"
