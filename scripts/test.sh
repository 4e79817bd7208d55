#!/usr/bin/env bash
# Installs dependencies, then runs every CI stage. Integration tests skip with
# a message where they cannot run (no root); CI runs as root.
#
# Stages, in order (SOCKET_EXPORTER_STAGES selects some, comma-separated;
# default: all of them):
#   unit         build-test/ (g++, -Werror), ctest -L unit and -L system (the
#                GoogleTest binaries: fixtures, then the kernel on loopback)
#   integration  build-test/, ctest -L integration except the load test
#   load         build-test/, the load test (test_load.py: 50 scrapers, 60 s)
#   asan         build-asan/ (-DSOCKET_EXPORTER_SANITIZE=ON: ASan + UBSan,
#                g++), every ctest test, leaks and UB fatal
#   tsan         build-tsan/ (-DSOCKET_EXPORTER_SANITIZE_THREAD=ON), the unit
#                tests under ThreadSanitizer, any race fatal (the background
#                netlink walk, the scraper's shared collections, netns threads)
#   fuzz         scripts/fuzz.sh: libFuzzer targets (clang) in build-fuzz/,
#                20000 runs each (SOCKET_EXPORTER_FUZZ_BUDGET to change)
#   deploy       tests/deploy/run.sh: the Dockerfile built and its image run
#                (podman), the .deb's unit under a real systemd (systemd-
#                nspawn), deploy/kubernetes against the Kubernetes schemas
#                (npm ci); installs its own packages (tests/deploy/
#                install-deps.sh); SKIPPED, exit 77, where podman cannot run
# Arguments are passed to every ctest run, e.g. `./scripts/test.sh -R config`.
#
#   SOCKET_EXPORTER_STAGES=unit,integration ./scripts/test.sh    quick
#   SOCKET_EXPORTER_LOAD_SECONDS=10 ./scripts/test.sh             shorter load test
#
# Every selected stage runs even if an earlier one failed; the summary at the
# end gives each stage's result and time, and the exit code is 1 if any
# failed. docs/robustness.md lists the measured stage times.
# shellcheck disable=SC2317  # the stage_* functions are called through run_stage
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
stages="${SOCKET_EXPORTER_STAGES:-unit,integration,load,asan,tsan,fuzz,deploy}"
jobs=$(nproc)

"$root/scripts/install-deps.sh" || exit 1

selected() { [[ ",$stages," == *",$1,"* ]]; }
for stage in ${stages//,/ }; do
  case "$stage" in
    unit | integration | load | asan | tsan | fuzz | deploy) ;;
    *) echo "test.sh: unknown stage '$stage' (unit, integration, load, asan, tsan, fuzz, deploy)" >&2; exit 2 ;;
  esac
done

summary=()
failed=0
# run_stage NAME COMMAND...: runs one stage, records its result and time.
# Exit 77 is a skip (the stage printed why), neither a pass nor a failure.
run_stage() {
  local name=$1 start=$SECONDS rc=0
  shift
  echo "==== stage $name"
  "$@" || rc=$?
  if ((rc == 0)); then
    summary+=("$(printf '%-12s ok      %5d s' "$name" $((SECONDS - start)))")
  elif ((rc == 77)); then
    summary+=("$(printf '%-12s SKIPPED %5d s' "$name" $((SECONDS - start)))")
  else
    summary+=("$(printf '%-12s FAILED  %5d s' "$name" $((SECONDS - start)))")
    failed=1
  fi
}

# build DIR CMAKE_ARGS...: configures and builds DIR, once: every target, or
# only those named by the BUILD_TARGETS variable.
declare -A built=()
build() {
  local dir=$1
  shift
  [[ -n "${built[$dir]:-}" ]] && return "${built[$dir]}"
  local targets=()
  # shellcheck disable=SC2206  # a list of target names, split on purpose
  [[ -n "${BUILD_TARGETS:-}" ]] && targets=(--target ${BUILD_TARGETS})
  cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSOCKET_EXPORTER_WERROR=ON "$@" \
    >/dev/null && cmake --build "$dir" -j"$jobs" "${targets[@]}"
  built[$dir]=$?
  return "${built[$dir]}"
}

normal="$root/build-test"
asan="$root/build-asan"
tsan="$root/build-tsan"
load_test='^integration\.test_load$'

stage_unit() {
  build "$normal" && (cd "$normal" && ctest --output-on-failure --timeout 900 -L '^(unit|system)$' "$@")
}
stage_integration() {
  build "$normal" && (cd "$normal" && ctest --output-on-failure --timeout 900 -L integration \
    -E "$load_test" "$@")
}
stage_load() { build "$normal" && (cd "$normal" && ctest --output-on-failure --timeout 900 -R "$load_test" "$@"); }
stage_asan() {
  build "$asan" -DSOCKET_EXPORTER_SANITIZE=ON || return 1
  # Leaks and undefined behaviour fail the test that hit them. Tests read
  # SOCKET_EXPORTER_SANITIZED to skip what the sanitizers make meaningless
  # (test_load's RSS bound: ASan's quarantine holds freed memory).
  (cd "$asan" && ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=0" \
    UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1" SOCKET_EXPORTER_SANITIZED=1 \
    ctest --output-on-failure --timeout 1800 "$@")
}
stage_tsan() {
  # Unit tests only: the integration tests run the exporter against
  # CivetWeb, OpenSSL and prometheus-cpp as Debian builds them, without
  # ThreadSanitizer's instrumentation, which would report their internals.
  BUILD_TARGETS="unit_tests system_tests" build "$tsan" -DSOCKET_EXPORTER_SANITIZE_THREAD=ON ||
    return 1
  (cd "$tsan" && TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1" \
    ctest --output-on-failure --timeout 900 -L '^(unit|system)$' -E '^(lint|bench)\.' "$@")
}
stage_fuzz() { "$root/scripts/fuzz.sh" "${SOCKET_EXPORTER_FUZZ_BUDGET:-20000}"; }
# No build tree: the image's build stage compiles, and its .deb is what the
# booted systemd installs.
stage_deploy() { "$root/tests/deploy/run.sh"; }

for stage in unit integration load asan tsan fuzz deploy; do
  selected "$stage" && run_stage "$stage" "stage_$stage" "$@"
done

echo "==== summary (stages: $stages)"
printf '%s\n' "${summary[@]}"
exit "$failed"
