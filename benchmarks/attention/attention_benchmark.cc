// CPU decode through the page table: a random (non-identity) page table of 16-token pages versus
// the same kernel on one contiguous page per sequence, for batch x context sweeps, in GB/s of KV
// read (counter `kv_GBps`); plus this machine's memory read bandwidth (BM_MemoryRead) to judge
// them by. Shape: 32 query / 8 KV heads, head dim 128, fp16 KV (one layer of a Llama-3-8B).
// BM_CpuTile times the tile kernel alone on one L1-resident tile, per instruction set: the
// arithmetic ceiling of one core, with no memory traffic.
//
// The CPU column is the whole process's CPU time (all worker threads): on a shared machine
// kv bytes / CPU time is the load-independent figure (GB per core-second).
//
// BM_CpuExtend times a chunked-prefill step (512 new tokens at the end of a 512..16k context).
//
//   attention_benchmark                                  # small default sweep (CI smoke run)
//   PAGEDKV_ATTN_BENCH_FULL=1 attention_benchmark        # batch 1..64 x context 512..16k
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <sys/mman.h>

#include "attention/internal/cpu_kernels.h"
#include "benchmark/benchmark.h"
#include "pagedkv/attention/cpu_worker_pool.h"
#include "pagedkv/attention/paged_attention.h"

namespace pagedkv {
namespace {

constexpr int32_t kQHeads = 32, kKvHeads = 8, kHeadDim = 128, kPagedBlockSize = 16;

CpuWorkerPool& Pool() {
  static CpuWorkerPool pool(0);
  return pool;
}

// The pool as the allocator's host tier makes it: 2 MiB aligned with transparent huge pages
// requested, so TLB misses do not dominate the random page order.
struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
std::unique_ptr<uint16_t[], FreeDeleter> AllocPool(size_t elems) {
  constexpr size_t kHuge = size_t(2) << 20;
  const size_t bytes = (elems * sizeof(uint16_t) + kHuge - 1) / kHuge * kHuge;
  void* p = std::aligned_alloc(kHuge, bytes);
  if (p == nullptr) std::abort();
  madvise(p, bytes, MADV_HUGEPAGE);
  return std::unique_ptr<uint16_t[], FreeDeleter>(static_cast<uint16_t*>(p));
}

// Finite fp16 bit patterns in (-2, 2), cheap enough to fill hundreds of MiB.
void FillFp16(uint16_t* v, size_t n, uint64_t seed) {
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  for (size_t i = 0; i < n; ++i) {
    uint16_t& e = v[i];
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    e = static_cast<uint16_t>((x & 0x3bff) | ((x >> 20) & 0x8000));
  }
}

// One layer's KV for `batch` sequences of `context` tokens: 16-token pages in a random order
// (paged) or one page per sequence (contiguous), filled with random fp16 values.
struct KvLayer {
  std::unique_ptr<uint16_t[], FreeDeleter> pool;
  std::vector<int32_t> indptr, indices, last;
  PagedKVView view;
};

void BuildKvLayer(int32_t batch, int32_t context, bool paged, KvLayer* kv) {
  const int32_t block_size = paged ? kPagedBlockSize : context;
  const int32_t pages_per_seq = (context + block_size - 1) / block_size;
  const int32_t num_blocks = batch * pages_per_seq;
  kv->view = PagedKVView::ForLayer(nullptr, DType::kFp16, num_blocks, 1, 0, kKvHeads, kHeadDim,
                                   block_size);
  const size_t pool_elems = size_t(kv->view.block_stride_elems) * num_blocks;
  kv->pool = AllocPool(pool_elems);
  FillFp16(kv->pool.get(), pool_elems, 1);
  kv->indptr.resize(batch + 1);
  kv->indices.resize(num_blocks);
  kv->last.resize(batch);
  std::iota(kv->indices.begin(), kv->indices.end(), 0);
  if (paged) std::shuffle(kv->indices.begin(), kv->indices.end(), std::mt19937_64(7));
  for (int32_t b = 0; b <= batch; ++b) kv->indptr[b] = b * pages_per_seq;
  for (int32_t b = 0; b < batch; ++b) kv->last[b] = context - (pages_per_seq - 1) * block_size;
  kv->view.pool = kv->pool.get();
  kv->view.batch_size = batch;
  kv->view.page_indptr = kv->indptr.data();
  kv->view.page_indices = kv->indices.data();
  kv->view.last_page_len = kv->last.data();
}

// state.range(0) = batch, range(1) = context tokens, range(2) = 1 paged / 0 contiguous.
void BM_CpuDecode(benchmark::State& state) {
  const int32_t batch = static_cast<int32_t>(state.range(0));
  const int32_t context = static_cast<int32_t>(state.range(1));
  const bool paged = state.range(2) != 0;
  KvLayer kv;
  BuildKvLayer(batch, context, paged, &kv);
  const PagedKVView& view = kv.view;

  std::vector<uint16_t> q(size_t(batch) * kQHeads * kHeadDim), out(q.size());
  FillFp16(q.data(), q.size(), 2);
  const QueryBatch qb{q.data(), out.data(), DType::kFp16, kQHeads, batch, nullptr};
  AttentionOptions opts;
  opts.backend = Backend::kCpu;
  opts.cpu_pool = &Pool();
  for (auto _ : state) {
    const absl::Status st = PagedAttentionDecode(view, qb, opts);
    if (!st.ok()) {
      state.SkipWithError(std::string(st.message()).c_str());
      break;
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const double kv_bytes = double(batch) * context * 2 * kKvHeads * kHeadDim * sizeof(uint16_t);
  state.counters["kv_GBps"] =
      benchmark::Counter(kv_bytes / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["kv_MiB"] = kv_bytes / (1 << 20);
  state.counters["threads"] = Pool().num_threads();
  state.SetLabel(paged ? "paged bs16 random" : "contiguous");
}

// Chunked prefill: one sequence of `context` tokens whose last `new_tokens` are the queries (they
// attend causally to the prefix and to each other). Counters: query tokens per second and the
// attention arithmetic rate (2 flops per multiply-add, QK and PV, causal lengths).
// state.range(0) = context tokens, range(1) = new tokens.
void BM_CpuExtend(benchmark::State& state) {
  const int32_t context = static_cast<int32_t>(state.range(0));
  const int32_t new_tokens = static_cast<int32_t>(state.range(1));
  KvLayer kv;
  BuildKvLayer(1, context, /*paged=*/true, &kv);
  std::vector<uint16_t> q(size_t(new_tokens) * kQHeads * kHeadDim), out(q.size());
  FillFp16(q.data(), q.size(), 2);
  const int32_t qo_indptr[2] = {0, new_tokens};
  const QueryBatch qb{q.data(), out.data(), DType::kFp16, kQHeads, new_tokens, qo_indptr};
  AttentionOptions opts;
  opts.backend = Backend::kCpu;
  opts.cpu_pool = &Pool();
  for (auto _ : state) {
    const absl::Status st = PagedAttentionExtend(kv.view, qb, opts);
    if (!st.ok()) {
      state.SkipWithError(std::string(st.message()).c_str());
      break;
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  // Query token i (0-based among the new ones) sees context - new_tokens + i + 1 KV tokens.
  const double kv_per_query = context - new_tokens + (new_tokens + 1) / 2.0;
  const double flops = 2.0 * 2.0 * new_tokens * kv_per_query * kQHeads * kHeadDim;
  state.counters["query_tokens_per_s"] =
      benchmark::Counter(new_tokens, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GFLOPs"] =
      benchmark::Counter(flops / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel("paged bs16 random");
}

// Sums a buffer of `MiB` mebibytes on every core (the same worker pool): the read bandwidth the
// decode kernel could reach at best on this machine.
void BM_MemoryRead(benchmark::State& state) {
  const size_t bytes = size_t(state.range(0)) << 20;
  std::vector<uint64_t> buf(bytes / sizeof(uint64_t));
  std::iota(buf.begin(), buf.end(), 0);
  const int64_t chunks = int64_t{Pool().num_threads()} * 8;
  const size_t per = buf.size() / chunks;
  std::vector<uint64_t> sums(chunks);
  for (auto _ : state) {
    Pool().ParallelFor(chunks, [&](int64_t c) {
      const uint64_t* p = buf.data() + c * per;
      uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (size_t i = 0; i + 4 <= per; i += 4) {
        s0 += p[i];
        s1 += p[i + 1];
        s2 += p[i + 2];
        s3 += p[i + 3];
      }
      sums[c] = s0 + s1 + s2 + s3;
    });
    benchmark::DoNotOptimize(sums.data());
  }
  state.counters["read_GBps"] = benchmark::Counter(double(per * chunks * 8) / 1e9,
                                                   benchmark::Counter::kIsIterationInvariantRate);
}

// One core, one tile of 32 fp16 tokens (head dim 128) in L1, the 4 query rows of a GQA group:
// the time per tile, and the KV rate that makes (`kv_GBps`).
void BM_CpuTile(benchmark::State& state, const attention_internal::CpuKernelTable* table) {
  using attention_internal::kMaxTileTokens;
  constexpr int32_t kRows = kQHeads / kKvHeads;
  std::vector<uint16_t> k(size_t(kMaxTileTokens) * kHeadDim), v(k.size());
  FillFp16(k.data(), k.size(), 3);
  FillFp16(v.data(), v.size(), 4);
  std::vector<float> q(size_t(kRows) * kHeadDim, 0.01f), m(kRows, -INFINITY), l(kRows, 0.0f),
      acc(q.size(), 0.0f), scratch(size_t(attention_internal::TileScratchFloats(kHeadDim)));
  std::vector<const void*> krows(kMaxTileTokens), vrows(kMaxTileTokens);
  for (int32_t j = 0; j < kMaxTileTokens; ++j) {
    krows[j] = k.data() + size_t(j) * kHeadDim;
    vrows[j] = v.data() + size_t(j) * kHeadDim;
  }
  std::vector<attention_internal::RowRange> ranges(kRows, {0, 1 << 30});
  attention_internal::TileArgs args;
  args.q = q.data();
  args.num_rows = kRows;
  args.ranges = ranges.data();
  args.n = kMaxTileTokens;
  args.krows = krows.data();
  args.vrows = vrows.data();
  args.format = attention_internal::KvFormat::kFp16;
  args.head_dim = kHeadDim;
  args.m = m.data();
  args.l = l.data();
  args.acc = acc.data();
  args.scratch = scratch.data();
  int32_t t0 = 0;
  for (auto _ : state) {
    args.t0 = t0;
    table->attend_tile(args);
    t0 = (t0 + kMaxTileTokens) % (1 << 29);
    benchmark::ClobberMemory();
  }
  const double tokens = double(state.iterations()) * kMaxTileTokens;
  state.counters["kv_GBps"] = benchmark::Counter(tokens * 2 * kHeadDim * sizeof(uint16_t) / 1e9,
                                                 benchmark::Counter::kIsRate);
  state.SetLabel(table->name);
}

void RegisterAll() {
  for (const attention_internal::CpuKernelTable* table :
       {&attention_internal::CpuKernelsBaseline(), attention_internal::CpuKernelsAvx2(),
        attention_internal::CpuKernelsAvx512()}) {
    if (table == nullptr) continue;
    benchmark::RegisterBenchmark((std::string("BM_CpuTile/") + table->name).c_str(), BM_CpuTile,
                                 table);
  }
  const bool full = std::getenv("PAGEDKV_ATTN_BENCH_FULL") != nullptr;
  std::vector<int64_t> batches =
      full ? std::vector<int64_t>{1, 4, 16, 64} : std::vector<int64_t>{1, 4};
  std::vector<int64_t> contexts =
      full ? std::vector<int64_t>{512, 2048, 4096, 16384} : std::vector<int64_t>{512, 2048};
  auto* decode = benchmark::RegisterBenchmark("BM_CpuDecode", BM_CpuDecode);
  decode->ArgNames({"batch", "context", "paged"})
      ->Unit(benchmark::kMicrosecond)
      ->UseRealTime()
      ->MeasureProcessCPUTime();
  for (int64_t b : batches) {
    for (int64_t c : contexts) {
      // Bound the pool at 1 GiB of KV (64 x 16k tokens would be 4 GiB in one layer).
      if (b * c * 2 * kKvHeads * kHeadDim * 2 > (int64_t{1} << 30)) continue;
      for (int64_t paged : {1, 0}) decode->Args({b, c, paged});
    }
  }
  auto* extend = benchmark::RegisterBenchmark("BM_CpuExtend", BM_CpuExtend);
  extend->ArgNames({"context", "new"})
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime()
      ->MeasureProcessCPUTime();
  extend->Args({512, 512});
  if (full) extend->Args({4096, 512})->Args({16384, 512});
  benchmark::RegisterBenchmark("BM_MemoryRead", BM_MemoryRead)
      ->Arg(full ? 512 : 16)
      ->Unit(benchmark::kMicrosecond)
      ->UseRealTime();
}

}  // namespace
}  // namespace pagedkv

int main(int argc, char** argv) {
  pagedkv::RegisterAll();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
