#!/bin/sh
# Checks the release binaries scripts/build-release.sh left in DIR for ARCH:
#
#   tests/release/check_release.sh DIR ARCH
#
#   1. each binary is static and of ARCH's machine type, and the check
#      refuses it for the other architecture (scripts/check-static.sh);
#      an unknown --arch makes the scripts exit 2 naming the supported ones;
#   2. each runs: --version, under qemu-user-static for a foreign ARCH
#      (called directly: no binfmt registration needed);
#   3. the demo's /healthz exchange between them, emulated the same way:
#      200 "ok", then 500 "context deadline exceeded" (healthz_exchange.sh);
#   4. their SBOMs (validate_sbom.mjs, with its npm packages from
#      package-lock.json).
# Ends with "release: N passed, N failed"; exits 1 on any failure.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
if [ $# -ne 2 ]; then
	echo "usage: check_release.sh DIR ARCH" >&2
	exit 2
fi
dir=$1
arch=$2
case $arch in
amd64) other=arm64 qemu=qemu-x86_64-static ;;
arm64) other=amd64 qemu=qemu-aarch64-static ;;
*)
	echo "check_release: unknown architecture '$arch' (supported: amd64 arm64)" >&2
	exit 2
	;;
esac
emulator=""
[ "$arch" = "$(dpkg --print-architecture)" ] || emulator=$qemu

passed=0
failed=0
check() { # name, command...
	name=$1
	shift
	if out=$("$@" 2>&1); then
		passed=$((passed + 1))
		echo "ok - $name"
	else
		failed=$((failed + 1))
		echo "not ok - $name"
		printf '%s\n' "$out" | sed 's/^/    /'
	fi
}
refuses() { ! "$@"; }
version_is() { # expected, command...
	expected=$1
	shift
	got=$("$@") || return 1
	[ "$got" = "$expected" ] || {
		echo "printed '$got', expected '$expected'"
		return 1
	}
}

# An architecture the scripts do not build: exit 2 naming the ones they do.
exits_2_naming_arches() {
	out=$("$@" 2>&1)
	rc=$?
	[ "$rc" -eq 2 ] && printf '%s\n' "$out" | grep -q "unsupported architecture 'mips' (supported: amd64 arm64)" || {
		echo "exit $rc: $out"
		return 1
	}
}
check "build-release.sh --arch=mips exits 2" exits_2_naming_arches "$root/scripts/build-release.sh" --arch=mips
check "install-deps.sh --arch=mips exits 2" exits_2_naming_arches "$root/scripts/install-deps.sh" --arch=mips

# A dynamic executable (the shell itself) is refused, whatever its machine.
check "a dynamic executable is refused" refuses "$root/scripts/check-static.sh" "$(command -v sh)" "$arch"

version=$(sed -n 's/^CMAKE_PROJECT_VERSION:[A-Z]*=//p' "$dir/CMakeCache.txt")
for binary in livenessprobe csi-mock-driver; do
	check "$binary is static, for $arch" "$root/scripts/check-static.sh" "$dir/$binary" "$arch"
	check "$binary is refused as $other" refuses "$root/scripts/check-static.sh" "$dir/$binary" "$other"
	# shellcheck disable=SC2086 # emulator is a command word or nothing
	check "$binary --version${emulator:+ under $emulator}" \
		version_is "$binary $version" $emulator "$dir/$binary" --version
done
check "/healthz exchange${emulator:+ under $emulator}" \
	"$here/healthz_exchange.sh" "$dir/livenessprobe" "$dir/csi-mock-driver" $emulator
if "$root/tests/tools/npm_ci.sh" "$here"; then
	check "SBOMs (validate_sbom.mjs)" node "$here/validate_sbom.mjs" "$dir"
else
	check "npm ci for validate_sbom.mjs" false
fi

echo "release: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
