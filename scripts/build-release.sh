#!/bin/sh
# Builds the fully static release binaries (livenessprobe, csi-mock-driver)
# into DIR (default build-release), for the demo, the long run and the
# benchmark. Expects the build dependencies (scripts/install-deps.sh).
# Falls back to one job if a parallel build fails (low-memory machines).
set -eu
cd "$(dirname "$0")/.."
dir=${1:-build-release}
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DLP_STATIC=ON -DLP_TESTS=OFF >/dev/null
cmake --build "$dir" -j"$(nproc)" >/dev/null 2>&1 || cmake --build "$dir" -j1
