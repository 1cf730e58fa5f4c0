#!/bin/sh
# Installs the npm packages of a test directory from its package-lock.json
# (npm ci) when DIR/node_modules is missing or older than the lock file.
# Needs node and npm: INSTALL_TEST_DEPS=1 ./scripts/install-deps.sh.
#   tests/tools/npm_ci.sh DIR
set -eu
dir=$1
for tool in node npm; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "npm_ci: $tool not found; INSTALL_TEST_DEPS=1 ./scripts/install-deps.sh installs it" >&2
		exit 1
	fi
done
if [ ! -f "$dir/node_modules/.package-lock.json" ] ||
	[ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
	npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
fi
