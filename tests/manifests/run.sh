#!/bin/sh
# CTest "manifests/validate": installs the validator's npm packages from
# package-lock.json when node_modules is missing or older than the lock
# (npm ci), then validates examples/kubernetes/*.yaml (validate.mjs).
set -eu
dir=$(cd "$(dirname "$0")" && pwd)
for tool in node npm; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "manifests: $tool not found; INSTALL_TEST_DEPS=1 ./scripts/install-deps.sh installs it" >&2
		exit 1
	fi
done
if [ ! -f "$dir/node_modules/.package-lock.json" ] ||
	[ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
	npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
fi
exec node "$dir/validate.mjs" "$@"
