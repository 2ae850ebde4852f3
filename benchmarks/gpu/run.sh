#!/usr/bin/env bash
# Builds gpu_decode_benchmark (CUDA, Release), runs the decode sweep, then compare_sdpa.py, and
# writes the markdown table to benchmarks/gpu/results.md (or $OUT_DIR/results.md).
# Needs a CUDA device; python3 with torch (>= 2.5, for enable_gqa) for the SDPA columns.
#   bash benchmarks/gpu/run.sh                       # full sweep
#   bash benchmarks/gpu/run.sh --batches 16 --contexts 8192 --iters 10   # one shape
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${BUILD_DIR:-$root/build/gpu-bench}"
out_dir="${OUT_DIR:-$here}"
python="${PYTHON:-python3}"
mkdir -p "$out_dir"

bash "$root/scripts/configure_build.sh" "$build" gpu_decode_benchmark -- \
  -DCMAKE_BUILD_TYPE=Release -DPAGEDKV_CUDA=ON -DPAGEDKV_BUILD_TESTS=OFF
nvidia-smi --query-gpu=name,driver_version,clocks.max.memory --format=csv,noheader || true
"$build/benchmarks/gpu/gpu_decode_benchmark" --csv "$out_dir/pagedkv_decode.csv" "$@"
iters=20
for ((i = 1; i <= $#; i++)); do
  if [ "${!i}" = "--iters" ]; then j=$((i + 1)); iters="${!j}"; fi
done
"$python" "$here/compare_sdpa.py" --pagedkv-csv "$out_dir/pagedkv_decode.csv" \
  --out "$out_dir/results.md" --iters "$iters"
echo "wrote $out_dir/results.md ($(date -u +%Y-%m-%dT%H:%MZ))"
