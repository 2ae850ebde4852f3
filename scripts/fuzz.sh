#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (+ASan/UBSan) in build/fuzz and fuzzes each for a
# bounded time: the block manager, the model JSON loader, the trace loaders, the synthetic-spec
# parser, the data readers of `pagedkv report` and the Python bindings' argument checks.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
#   SECONDS  per target (default 20; the block manager, whose state space is largest, gets twice)
#   TARGET   block_manager model_json traces synthetic_spec report_data python_args (default: all)
#
# Seeds: the vendored traces (their first 8 KB), tests/scheduler/testdata, fuzz/seeds/<target> and
# the kept crash inputs of fuzz/regressions/<target>. Corpora grow in build/fuzz/corpus/<target>
# across runs. A crash or broken property leaves its input in build/fuzz/artifacts/<target>/:
# copy it to fuzz/regressions/<target>/ (tests/fuzz replays it in every build), then fix the bug.
# Exits nonzero when any target failed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${1:-20}"
shift || true
all=(block_manager model_json traces synthetic_spec report_data python_args)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")
build="$root/build/fuzz"

fuzzers=()
for t in "${targets[@]}"; do fuzzers+=("${t}_fuzzer"); done
CC=clang CXX=clang++ bash "$root/scripts/configure_build.sh" "$build" "${fuzzers[@]}" -- \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPAGEDKV_DEBUG_LEVEL=2 -DPAGEDKV_CUDA=OFF \
  -DPAGEDKV_SANITIZE=address,undefined -DPAGEDKV_BUILD_FUZZERS=ON -DPAGEDKV_BUILD_TESTS=OFF \
  -DPAGEDKV_BUILD_BENCHMARKS=OFF -DPAGEDKV_BUILD_PYTHON=OFF \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  "-DCMAKE_CXX_FLAGS=-fsanitize=fuzzer-no-link"

# Seed corpora (read-only inputs; rebuilt on every run).
seeds="$build/seeds"
rm -rf "$seeds"
mkdir -p "$seeds"/{block_manager,model_json,traces,synthetic_spec,report_data,python_args}
for f in "$root"/data/traces/*/*.csv "$root"/data/traces/*/*.jsonl; do
  head -c 8192 "$f" > "$seeds/traces/$(basename "$f")"
done
cp "$root"/tests/scheduler/testdata/*.csv "$root"/tests/scheduler/testdata/*.jsonl "$seeds/traces/"
for d in "$root"/tests/scheduler/testdata/report_*/; do
  for f in "$d"*; do cp "$f" "$seeds/report_data/$(basename "$d")_$(basename "$f")"; done
done
for t in model_json synthetic_spec python_args; do
  cp "$root/fuzz/seeds/$t/"* "$seeds/$t/"
done
for t in "${all[@]}"; do
  if [ -d "$root/fuzz/regressions/$t" ]; then
    # open/: known, unfixed findings (fuzz/regressions/README.md); not fed back as seeds.
    find "$root/fuzz/regressions/$t" -type f ! -name README.md ! -path "*/open/*" \
      -exec cp {} "$seeds/$t/" \;
  fi
done

max_len() {
  case "$1" in
    synthetic_spec|python_args) echo 512 ;;
    traces|report_data) echo 8192 ;;
    *) echo 4096 ;;
  esac
}

export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
failed=()
for t in "${targets[@]}"; do
  fuzzer="$(find "$build" -name "${t}_fuzzer" -type f -perm -u+x | head -1)"
  time_s="$seconds"
  [ "$t" = block_manager ] && time_s=$((seconds * 2))
  mkdir -p "$build/corpus/$t" "$build/artifacts/$t"
  echo "=== fuzzing $t for ${time_s}s ($fuzzer)"
  if ! "$fuzzer" -max_total_time="$time_s" -max_len="$(max_len "$t")" -len_control=20 \
      -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$build/artifacts/$t/" "$build/corpus/$t" "$seeds/$t"; then
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}; inputs in $build/artifacts/<target>/ (keep them in" \
       "fuzz/regressions/<target>/)" >&2
  exit 1
fi
echo "fuzz: ${targets[*]}: no crash and no broken property"
