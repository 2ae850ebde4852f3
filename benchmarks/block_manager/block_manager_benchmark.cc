// Micro-benchmarks of BlockManager's per-step paths: a decode step over many sequences, Fork,
// BuildBatch, prefix matching, admission with prefix caching (hit and miss), beam reorder (bytes
// moved vs a dense per-beam cache) and swap.
// Metadata only (kVirtual GPU pool), llama-3-8b shape, block size 16. Per-unit costs are counters
// in seconds (`s_per_seq`, `s_per_fork`, `s_per_page`). docs/block_manager.md explains how to run
// them; build with PAGEDKV_DEBUG_LEVEL=0 for real figures (level 2 runs CheckInvariants after
// every mutation, so this binary shrinks every size 16x there to keep the CTest smoke run fast).
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <numeric>
#include <vector>

#include "benchmark/benchmark.h"
#include "pagedkv/block_manager/block_manager.h"

namespace pagedkv {
namespace {

#if PAGEDKV_DEBUG_LEVEL >= 2
constexpr int64_t kShrink = 16;
#else
constexpr int64_t kShrink = 1;
#endif
constexpr int32_t kBlockSize = 16;

ModelSpec Llama3() {
  absl::StatusOr<ModelSpec> spec = ModelSpec::Preset("llama-3-8b");
  if (!spec.ok()) std::abort();
  return *spec;
}

std::unique_ptr<BlockManager> Make(int64_t gpu_blocks, int64_t host_blocks = 0,
                                   bool prefix_caching = true) {
  CacheConfig cfg;
  cfg.block_size_tokens = kBlockSize;
  cfg.gpu_tier = Tier::kVirtual;
  cfg.gpu_num_blocks = gpu_blocks;
  cfg.host_num_blocks = host_blocks;
  cfg.watermark = 0.0;
  cfg.enable_prefix_caching = prefix_caching;
  absl::StatusOr<std::unique_ptr<BlockManager>> bm = BlockManager::Create(Llama3(), cfg);
  if (!bm.ok()) std::abort();
  return std::move(*bm);
}

std::vector<TokenId> Prompt(int64_t n, TokenId base) {
  std::vector<TokenId> t(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) t[i] = static_cast<TokenId>((base + i * 7919) % 128000);
  return t;
}

void Check(const absl::Status& st) {
  if (!st.ok()) std::abort();
}

benchmark::Counter PerUnit(double units) {
  return benchmark::Counter(
      units, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

// One decode step: AppendTokenBatch of one token to each of N sequences (a new page every 16th
// step), TakeCacheOps, and after the forward pass MarkComputedBatch (prefix caching on, so each
// page that fills is hashed and published). Sequences are rewound to their prompt every 256 steps
// outside the timed region.
void BM_DecodeStep(benchmark::State& state) {
  const int64_t n = state.range(0) / kShrink;
  const int64_t prompt = 512 / kShrink;
  auto bm = Make(n * (prompt + 320) / kBlockSize + 64);
  std::vector<SeqId> seqs(n);
  std::iota(seqs.begin(), seqs.end(), 1);
  for (SeqId id : seqs) Check(bm->AddSequence(id, Prompt(prompt, id * 1000)).status());
  std::vector<int64_t> computed(n, prompt);
  Check(bm->MarkComputedBatch(seqs, computed));
  std::vector<TokenId> tokens(n, 42);
  CacheOps ops;
  int64_t step = 0;
  for (auto _ : state) {
    Check(bm->AppendTokenBatch(seqs, tokens));
    bm->TakeCacheOps(&ops);
    for (int64_t& c : computed) ++c;
    Check(bm->MarkComputedBatch(seqs, computed));
    if (++step % 256 == 0) {
      state.PauseTiming();
      for (SeqId id : seqs) Check(bm->Rewind(id, static_cast<int32_t>(prompt)));
      std::fill(computed.begin(), computed.end(), prompt);
      state.ResumeTiming();
    }
  }
  state.counters["s_per_seq"] = PerUnit(static_cast<double>(n));
  state.counters["seqs"] = static_cast<double>(n);
}
BENCHMARK(BM_DecodeStep)->Arg(1024)->Unit(benchmark::kMicrosecond);

// Fork of a sequence of N tokens (N / 16 pages): the child shares every page. 64 forks per
// iteration; the children are freed outside the timed region.
void BM_Fork(benchmark::State& state) {
  const int64_t n = state.range(0) / kShrink;
  constexpr int kForks = 64;
  auto bm = Make(n / kBlockSize + 8);
  Check(bm->AddSequence(1, Prompt(n, 1)).status());
  for (auto _ : state) {
    for (SeqId c = 0; c < kForks; ++c) Check(bm->Fork(1, 100 + c));
    state.PauseTiming();
    for (SeqId c = 0; c < kForks; ++c) Check(bm->Free(100 + c));
    state.ResumeTiming();
  }
  state.counters["s_per_fork"] = PerUnit(kForks);
  state.counters["pages"] = static_cast<double>((n + kBlockSize - 1) / kBlockSize);
}
BENCHMARK(BM_Fork)->Arg(2048)->Unit(benchmark::kMicrosecond);

// BuildBatch for N decode entries of 2048 tokens each (128 pages): CSR page table + slots,
// into the manager-owned, reused buffer.
void BM_BuildBatch(benchmark::State& state) {
  const int64_t n = state.range(0) / kShrink;
  const int64_t len = 2048 / kShrink;
  auto bm = Make(n * (len / kBlockSize + 1) + 8, 0, /*prefix_caching=*/false);
  std::vector<BatchEntry> entries;
  for (int64_t i = 0; i < n; ++i) {
    Check(bm->AddSequence(i + 1, Prompt(len, i)).status());
    entries.push_back({static_cast<SeqId>(i + 1), 1, -1});
  }
  int64_t pages = 0;
  for (auto _ : state) {
    absl::StatusOr<const BatchLayout*> layout = bm->BuildBatch(entries, 0);
    if (!layout.ok()) std::abort();
    pages = (*layout)->num_pages();
    benchmark::DoNotOptimize(*layout);
  }
  state.counters["pages"] = static_cast<double>(pages);
  state.counters["s_per_page"] = PerUnit(static_cast<double>(pages));
}
BENCHMARK(BM_BuildBatch)->Arg(256)->Unit(benchmark::kMicrosecond);

// Prefix match of an N-token prompt whose pages are all cached: hash chain of every full page,
// hash-index lookup, token-id confirmation (CanAdmit, which takes nothing).
void BM_PrefixMatch(benchmark::State& state) {
  const int64_t n = state.range(0) / kShrink;
  auto bm = Make(n / kBlockSize + 8);
  const std::vector<TokenId> prompt = Prompt(n, 5);
  Check(bm->AddSequence(1, prompt).status());
  Check(bm->MarkComputed(1, n));
  Check(bm->Free(1));  // every full page stays cached
  int64_t hit_pages = 0;
  for (auto _ : state) {
    const AdmitInfo info = bm->CanAdmit(prompt);
    hit_pages = info.num_cached_tokens / kBlockSize;
    benchmark::DoNotOptimize(info);
  }
  if (hit_pages != (n - 1) / kBlockSize) state.SkipWithError("prefix pages did not all hit");
  state.counters["pages"] = static_cast<double>(hit_pages);
  state.counters["s_per_page"] = PerUnit(static_cast<double>(hit_pages));
}
BENCHMARK(BM_PrefixMatch)->Arg(32768)->Unit(benchmark::kMicrosecond);

// Admission of an N-token prompt whose pages are all cached: AddSequence takes every full page
// (lookup, token-id confirmation, ref + 1) and allocates the last one. Free runs untimed.
void BM_AdmitCachedPrompt(benchmark::State& state) {
  const int64_t n = state.range(0) / kShrink;
  auto bm = Make(n / kBlockSize + 8);
  const std::vector<TokenId> prompt = Prompt(n, 5);
  Check(bm->AddSequence(1, prompt).status());
  Check(bm->MarkComputed(1, n));
  Check(bm->Free(1));
  int64_t hit_pages = 0;
  for (auto _ : state) {
    absl::StatusOr<AdmitInfo> info = bm->AddSequence(2, prompt);
    if (!info.ok()) std::abort();
    hit_pages = info->num_cached_tokens / kBlockSize;
    state.PauseTiming();
    Check(bm->Free(2));
    state.ResumeTiming();
  }
  if (hit_pages != (n - 1) / kBlockSize) state.SkipWithError("prefix pages did not all hit");
  state.counters["pages"] = static_cast<double>(hit_pages);
  state.counters["s_per_page"] = PerUnit(static_cast<double>(hit_pages));
}
BENCHMARK(BM_AdmitCachedPrompt)->Arg(32768)->Unit(benchmark::kMicrosecond);

// Admission of an N-token prompt that misses (a new extra key each time): AddSequence looks the
// pages up and allocates them all (evicting cached pages of earlier iterations), and the engine's
// MarkComputed hashes and publishes every full page. Free runs untimed.
void BM_AdmitNewPrompt(benchmark::State& state) {
  const int64_t n = state.range(0) / kShrink;
  auto bm = Make(2 * (n / kBlockSize) + 8);
  const std::vector<TokenId> prompt = Prompt(n, 5);
  uint64_t key = 0;
  for (auto _ : state) {
    SequenceOptions options;
    options.extra_key = ++key;
    absl::StatusOr<AdmitInfo> info = bm->AddSequence(1, prompt, options);
    if (!info.ok() || info->num_cached_tokens != 0) std::abort();
    Check(bm->MarkComputed(1, n));
    state.PauseTiming();
    Check(bm->Free(1));
    state.ResumeTiming();
  }
  state.counters["pages"] = static_cast<double>(n / kBlockSize);
  state.counters["s_per_page"] = PerUnit(static_cast<double>(n / kBlockSize));
}
BENCHMARK(BM_AdmitNewPrompt)->Arg(32768)->Unit(benchmark::kMicrosecond);

// Beam search step with B beams of 2048 tokens: ReorderBeams (beam i continues beam i/2: half
// the beams die, survivors double), one token appended to every beam, TakeCacheOps. Counters:
// bytes the paged cache moves per step (copy-on-write of shared partial pages), pages copied,
// and the bytes a dense per-beam cache would copy (every beam's whole past, re-gathered).
void BM_BeamReorder(benchmark::State& state) {
  const int64_t beams = state.range(0);
  const int64_t len = 2048 / kShrink;
  auto bm = Make(beams * (len / kBlockSize + 24) + 64);
  std::vector<SeqId> ids(beams);
  std::iota(ids.begin(), ids.end(), 1);
  Check(bm->AddSequence(1, Prompt(len, 3)).status());
  Check(bm->MarkComputed(1, len));
  for (int64_t b = 1; b < beams; ++b) Check(bm->Fork(1, ids[b]));
  std::vector<int64_t> computed(beams, len);
  std::vector<int32_t> parents(beams);
  for (int64_t b = 0; b < beams; ++b) parents[b] = static_cast<int32_t>(b / 2);
  std::vector<TokenId> tokens(beams);
  std::iota(tokens.begin(), tokens.end(), 7);
  CacheOps ops;
  uint64_t bytes = 0, pages = 0, dense = 0, steps = 0;
  const uint64_t bytes_per_token = bm->group_info(0).bytes_per_block / kBlockSize;
  for (auto _ : state) {
    Check(bm->ReorderBeams(ids, parents));
    Check(bm->AppendTokenBatch(ids, tokens));
    bm->TakeCacheOps(&ops);
    for (int64_t& c : computed) ++c;
    Check(bm->MarkComputedBatch(ids, computed));
    bytes += ops.total_bytes();
    pages += ops.groups[0].copies.size();
    // A dense [beams, past] cache gathers every beam's whole past by its parent index.
    dense += static_cast<uint64_t>(beams) * static_cast<uint64_t>(*bm->NumTokens(ids[0]) - 1) *
             bytes_per_token;
    if (++steps % 256 == 0) {
      state.PauseTiming();
      for (SeqId id : ids) Check(bm->Rewind(id, static_cast<int32_t>(len)));
      std::fill(computed.begin(), computed.end(), len);
      state.ResumeTiming();
    }
  }
  state.counters["bytes_moved_per_step"] = static_cast<double>(bytes) / steps;
  state.counters["pages_copied_per_step"] = static_cast<double>(pages) / steps;
  state.counters["max_pages_allowed"] = static_cast<double>(beams);
  state.counters["dense_bytes_per_step"] = static_cast<double>(dense) / steps;
}
BENCHMARK(BM_BeamReorder)->Arg(8)->Unit(benchmark::kMicrosecond);

// SwapOut + TakeCacheOps + SwapIn + TakeCacheOps of one 2048-token sequence (128 pages each way;
// metadata only, the byte copies are the engine's).
void BM_SwapOutIn(benchmark::State& state) {
  const int64_t len = state.range(0) / kShrink;
  const int64_t pages = (len + kBlockSize - 1) / kBlockSize;
  auto bm = Make(pages + 8, pages + 8);
  Check(bm->AddSequence(1, Prompt(len, 9)).status());
  Check(bm->MarkComputed(1, len));
  CacheOps ops;
  uint64_t bytes = 0;
  for (auto _ : state) {
    Check(bm->SwapOut(1));
    bm->TakeCacheOps(&ops);
    bytes = ops.total_bytes();
    Check(bm->SwapIn(1));
    bm->TakeCacheOps(&ops);
    bytes += ops.total_bytes();
  }
  state.counters["pages"] = static_cast<double>(pages);
  state.counters["s_per_page"] = PerUnit(static_cast<double>(2 * pages));
  state.counters["bytes_per_round_trip"] = static_cast<double>(bytes);
}
BENCHMARK(BM_SwapOutIn)->Arg(2048)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace pagedkv

BENCHMARK_MAIN();
