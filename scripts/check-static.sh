#!/bin/sh
# Checks that BINARY is a fully static executable for ARCH (amd64, arm64),
# as file(1) describes it: "statically linked" (a static PIE, which needs
# its own relocation at start, says "static-pie linked" and is refused) and
# of ARCH's machine type. Prints what is wrong and exits 1 otherwise.
#   scripts/check-static.sh BINARY ARCH
set -eu
if [ $# -ne 2 ]; then
	echo "usage: check-static.sh BINARY ARCH" >&2
	exit 2
fi
binary=$1
case $2 in
amd64) machine="x86-64" ;;
arm64) machine="ARM aarch64" ;;
*)
	echo "check-static: unknown architecture '$2' (supported: amd64 arm64)" >&2
	exit 2
	;;
esac
what=$(file -bL "$binary") || exit 1
case $what in
*", statically linked,"*) ;;
*)
	echo "check-static: $binary is not statically linked: $what" >&2
	exit 1
	;;
esac
case $what in
"ELF 64-bit LSB executable, $machine,"*) ;;
*)
	echo "check-static: $binary is not an executable for $2 ($machine): $what" >&2
	exit 1
	;;
esac
echo "check-static: $binary: $2, statically linked"
