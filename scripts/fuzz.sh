#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan + libFuzzer) in
# build-fuzz/ and runs each one for a bounded time, starting from the
# checked-in seed corpus (tests/fuzz/corpus/<target>/). Fails on the first
# crash, sanitizer report, invariant violation, timeout or out-of-memory.
#
#   scripts/fuzz.sh            20000 runs per target (what CI runs)
#   scripts/fuzz.sh 200000     that many runs per target
#   scripts/fuzz.sh 600s       600 seconds per target
#   FUZZ_TARGETS=config_parser scripts/fuzz.sh 3600s   one target for an hour
#   FUZZ_BUILD_DIR=/tmp/fz scripts/fuzz.sh              another build directory
#
# New inputs libFuzzer finds go to build-fuzz/corpus/<target>/ (kept between
# runs, never into the checked-in seeds); a failing input is saved as
# build-fuzz/artifacts/<target>-crash-<sha1> and reproduced by running the
# target on that file. docs/robustness.md has the details.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="${FUZZ_BUILD_DIR:-$root/build-fuzz}"
budget="${1:-20000}"
read -r -a targets <<<"${FUZZ_TARGETS:-netlink_parser procnet_parser config_parser web_config_parser events_decode}"

case "$budget" in
  *s) limit=(-max_total_time="${budget%s}") ;;
  *[!0-9]* | "") echo "usage: $0 [RUNS | SECONDSs]" >&2; exit 2 ;;
  *) limit=(-runs="$budget") ;;
esac

for tool in clang clang++; do
  command -v "$tool" >/dev/null || { echo "fuzz: $tool not found (apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }
done

CC=clang CXX=clang++ cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSOCKET_EXPORTER_FUZZ=ON -DSOCKET_EXPORTER_TESTS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target fuzz_targets

# Longest input per target: a netlink datagram fits the exporter's 64 KiB
# receive buffer; /proc/net and config seeds are a few KiB, and longer
# inputs mostly slow the search down (hostile_inputs_test covers huge ones).
declare -A max_len=([netlink_parser]=65537 [procnet_parser]=16384 [config_parser]=16384
  [web_config_parser]=16384)

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
mkdir -p "$build/artifacts"
status=0
for target in "${targets[@]}"; do
  binary="$build/tests/fuzz/${target}_fuzz"
  seeds="$root/tests/fuzz/corpus/$target"
  work="$build/corpus/$target"
  mkdir -p "$work"
  log="$build/artifacts/$target.log"
  echo "fuzz: $target ${limit[*]} (seeds: $(find "$seeds" -type f | wc -l), log: $log)"
  start=$SECONDS
  if "$binary" "${limit[@]}" -max_len="${max_len[$target]:-4096}" -timeout=10 \
      -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$build/artifacts/$target-" "$work" "$seeds" >"$log" 2>&1; then
    echo "fuzz: $target ok in $((SECONDS - start)) s: $(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}') runs, $(grep -m1 -oE 'cov: [0-9]+' <(tac "$log") || true)"
  else
    status=1
    echo "fuzz: $target FAILED after $((SECONDS - start)) s; last lines of $log:" >&2
    tail -n 40 "$log" >&2
    echo "fuzz: reproduce with: $binary $build/artifacts/$target-<crash file>" >&2
  fi
done
exit "$status"
