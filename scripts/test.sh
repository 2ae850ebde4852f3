#!/usr/bin/env bash
# Builds pagedkv and runs every test (C++ GoogleTest suites and the Python tests, through CTest).
# Usage: scripts/test.sh [--sanitize address,undefined|thread] [ctest args...]
#   default:      build/test   (RelWithDebInfo, expensive debug checks on, CUDA sources compiled if nvcc is found)
#   --sanitize S: build/<S>    (Debug-ish build under the sanitizer, CUDA off)
#   -L LABEL:     runs the tests of one label; when the build defines a target tests_<LABEL> (e.g.
#                 tests_service), only that target is built instead of everything
# Installs missing Debian packages first; a second run rebuilds only what changed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
sanitize=none
if [ "${1:-}" = "--sanitize" ]; then sanitize="$2"; shift 2; fi

"$root/scripts/install_deps.sh"

if [ "$sanitize" = none ]; then
  build_dir="$root/build/test"
  opts=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DPAGEDKV_DEBUG_LEVEL=2 -DPAGEDKV_CUDA=AUTO)
else
  build_dir="$root/build/sanitize-${sanitize//,/-}"
  opts=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DPAGEDKV_DEBUG_LEVEL=2 -DPAGEDKV_CUDA=OFF
        "-DPAGEDKV_SANITIZE=$sanitize")
fi
# -L LABEL with a tests_<LABEL> target: build just what that label runs.
label=""
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  if [ "${args[$i]}" = "-L" ] && [ $((i + 1)) -lt ${#args[@]} ]; then label="${args[$((i + 1))]}"; fi
done
targets=()
if [ -n "$label" ]; then
  "$root/scripts/configure_build.sh" "$build_dir" pagedkv_core -- "${opts[@]}"
  if ninja -C "$build_dir" -t targets all 2>/dev/null | grep "^tests_${label}:" >/dev/null; then
    targets=("tests_${label}")
  fi
fi
"$root/scripts/configure_build.sh" "$build_dir" "${targets[@]}" -- "${opts[@]}"

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
# gRPC, protobuf and Abseil are not built with TSan: see the suppression file for what it hides.
export TSAN_OPTIONS="${TSAN_OPTIONS:-suppressions=$root/tests/service/tsan.supp:ignore_noninstrumented_modules=1:second_deadlock_stack=1}"
cd "$build_dir"
ctest --output-on-failure --parallel "${PAGEDKV_JOBS:-$(nproc)}" "$@"
