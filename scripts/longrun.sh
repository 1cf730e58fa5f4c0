#!/bin/sh
# The long run (README "Long run"; not part of scripts/test.sh): a flapping
# driver, restarted every minute, probed back to back like kubelet for
# MINUTES (default 10) against the static release build. Prints probes
# answered, wrong and late answers (both must be 0), and the sidecar's RSS,
# fd and CPU figures; exits 1 when anything is off.
set -eu
cd "$(dirname "$0")/.."
MINUTES=${1:-${MINUTES:-10}}
BUILD_DIR=${BUILD_DIR:-build-release}

./scripts/install-deps.sh
# python3 drives the probes; a minimal Debian has none.
if ! command -v python3 >/dev/null 2>&1; then
	INSTALL_TEST_DEPS=1 ./scripts/install-deps.sh
fi
./scripts/build-release.sh "$BUILD_DIR"
exec python3 tests/longrun/longrun.py "$BUILD_DIR" "$(awk "BEGIN { print $MINUTES * 60 }")"
