#!/usr/bin/env bash
# Builds the pagedkv CLI (Release) and runs the main job: replay the whole Azure LLM inference
# 2023 conversation trace (19,366 requests, 2.5x its recorded rate so that KV memory is the
# bottleneck) for Llama-2-7B on an 80 GB H100 under three KV allocation policies, print the
# comparison table and write results/demo/report.html. Takes a few seconds once built.
# Usage: scripts/demo.sh [pagedkv arguments...]   (any arguments replace the default job)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/install_deps.sh"
build_dir="$root/build/release"
"$root/scripts/configure_build.sh" "$build_dir" pagedkv -- -DCMAKE_BUILD_TYPE=Release -DPAGEDKV_DEBUG_LEVEL=0
if [ $# -eq 0 ]; then
  out_dir="$root/results/demo"
  set -- simulate --trace azure-conv --rate-scale 2.5 --model llama-2-7b --gpu h100 \
    --policy paged,contiguous-max,orca-oracle --block-size 16 --out "$out_dir"
  echo "+ build/release/tools/pagedkv $*"
  "$build_dir/tools/pagedkv" "$@"
  echo
  if [ -f "$out_dir/report.html" ]; then
    echo "Report: $out_dir/report.html (open it in a browser; it needs no network)"
  fi
  echo "Data:   $out_dir/summary.json, timeline.csv, requests.csv"
  echo "More:   scripts/demo.sh simulate --help    scripts/demo.sh size --model llama-2-7b"
  exit 0
fi
echo "+ build/release/tools/pagedkv $*"
exec "$build_dir/tools/pagedkv" "$@"
