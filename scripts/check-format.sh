#!/usr/bin/env bash
# Fails when a C++ file differs from what .clang-format makes of it, and
# prints the first differences. `scripts/check-format.sh --fix` rewrites them.
# BPF programs (*.bpf.c) are left alone: their include order matters.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
command -v clang-format >/dev/null || {
  echo "check-format: clang-format not found (apt-get install clang-format); skipped" >&2
  exit 77
}
mapfile -t files < <(cd "$root" && find bench collectors common config exporter tests \
  \( -name '*.cpp' -o -name '*.h' \) -not -path '*/fixtures/*' | sort)
cd "$root"
if [[ "${1:-}" == "--fix" ]]; then
  clang-format -i "${files[@]}"
  exit 0
fi
if ! report=$(clang-format --dry-run --Werror "${files[@]}" 2>&1); then
  head -n 40 <<<"$report" >&2
  echo "check-format: run scripts/check-format.sh --fix" >&2
  exit 1
fi
echo "check-format: ${#files[@]} files match .clang-format"
