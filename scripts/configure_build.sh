#!/usr/bin/env bash
# Configures (once) and builds one build tree. Shared by scripts/test.sh and scripts/demo.sh.
# Usage: scripts/configure_build.sh BUILD_DIR [TARGET...] -- [extra cmake -D options]
# A second run is incremental: CMake is re-run only when the options change.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="$1"; shift
targets=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do targets+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
cmake_args=("$@")

stamp="$build_dir/.pagedkv-configure-args"
if [ ! -f "$build_dir/CMakeCache.txt" ] || [ "$(cat "$stamp" 2>/dev/null)" != "${cmake_args[*]}" ]; then
  cmake -S "$root" -B "$build_dir" -G Ninja "${cmake_args[@]}"
  echo "${cmake_args[*]}" > "$stamp"
fi
jobs="${PAGEDKV_JOBS:-$(nproc)}"
if [ ${#targets[@]} -gt 0 ]; then
  cmake --build "$build_dir" --parallel "$jobs" --target "${targets[@]}"
else
  cmake --build "$build_dir" --parallel "$jobs"
fi
