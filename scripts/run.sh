#!/usr/bin/env bash
# Installs dependencies, builds socket_exporter and runs it on its embedded
# default config. Extra arguments are passed to the exporter.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$root/build" -j"$(nproc)" --target socket_exporter
exec "$root/build/exporter/socket_exporter" "$@"
