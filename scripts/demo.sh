#!/usr/bin/env bash
# Builds the pagedkv CLI (Release) and runs the main job.
# Usage: scripts/demo.sh [pagedkv arguments...]   (default: size Llama-2-7B at 2k context on an 80 GiB GPU)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/install_deps.sh"
build_dir="$root/build/release"
"$root/scripts/configure_build.sh" "$build_dir" pagedkv -- -DCMAKE_BUILD_TYPE=Release -DPAGEDKV_DEBUG_LEVEL=0
if [ $# -eq 0 ]; then
  set -- size --model llama-2-7b --context 2048 --dtype fp16 --gpu-mem 80GiB --weights 13.5GiB --block-size 16
fi
echo "+ build/release/tools/pagedkv $*"
exec "$build_dir/tools/pagedkv" "$@"
