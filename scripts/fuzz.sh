#!/usr/bin/env bash
# Builds the block-manager libFuzzer target with clang (+ASan/UBSan) in build/fuzz and fuzzes it.
# Usage: scripts/fuzz.sh [SECONDS]   (default 60). Exits nonzero on a crash or property violation;
# crash inputs land in build/fuzz/artifacts/, the corpus in build/fuzz/corpus/ (kept across runs).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${1:-60}"
build="$root/build/fuzz"
CC=clang CXX=clang++ bash "$root/scripts/configure_build.sh" "$build" block_manager_fuzzer -- \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPAGEDKV_DEBUG_LEVEL=2 -DPAGEDKV_CUDA=OFF \
  -DPAGEDKV_SANITIZE=address,undefined -DPAGEDKV_BUILD_FUZZERS=ON -DPAGEDKV_BUILD_TESTS=OFF \
  -DPAGEDKV_BUILD_BENCHMARKS=OFF -DPAGEDKV_BUILD_PYTHON=OFF \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  "-DCMAKE_CXX_FLAGS=-fsanitize=fuzzer-no-link"
mkdir -p "$build/corpus" "$build/artifacts"
fuzzer="$(find "$build" -name block_manager_fuzzer -type f -perm -u+x | head -1)"
echo "fuzzing $fuzzer for ${seconds}s"
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  "$fuzzer" -max_total_time="$seconds" -max_len=4096 -len_control=20 -timeout=30 -print_final_stats=1 \
  -artifact_prefix="$build/artifacts/" "$build/corpus"
