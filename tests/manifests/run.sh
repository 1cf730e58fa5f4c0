#!/bin/sh
# CTest "manifests/validate": installs the validator's npm packages from
# package-lock.json when node_modules is missing or older than the lock
# (tests/tools/npm_ci.sh), then validates examples/kubernetes/*.yaml
# (validate.mjs).
set -eu
dir=$(cd "$(dirname "$0")" && pwd)
"$dir/../tools/npm_ci.sh" "$dir"
exec node "$dir/validate.mjs" "$@"
