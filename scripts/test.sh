#!/usr/bin/env bash
# Installs dependencies, builds with warnings as errors, and runs every test:
# unit tests, then integration tests (namespaces, real sockets, ss, promtool,
# prometheus). Integration tests skip with a message where they cannot run
# (no root); CI runs as root.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build-test"
"$root/scripts/install-deps.sh"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSOCKET_EXPORTER_WERROR=ON >/dev/null
cmake --build "$build" -j"$(nproc)"
cd "$build"
ctest --output-on-failure --timeout 900 "$@"
