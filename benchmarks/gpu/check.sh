#!/usr/bin/env bash
# On a machine with a CUDA device: builds the attention CUDA tests and runs them, then once more
# under compute-sanitizer memcheck (when it is installed). Without a device the tests skip.
#   bash benchmarks/gpu/check.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${BUILD_DIR:-$root/build/gpu-check}"
bash "$root/scripts/configure_build.sh" "$build" attention_cuda_test attention_paged_attention_test \
  attention_cache_ops_test -- -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPAGEDKV_CUDA=ON
(cd "$build" && ctest -L attention --output-on-failure)
sanitizer="$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)"
if [ -x "$sanitizer" ]; then
  "$sanitizer" --tool memcheck --leak-check full --error-exitcode 1 \
    "$build/tests/attention/attention_cuda_test"
else
  echo "compute-sanitizer not found: memcheck skipped"
fi
