// Micro-benchmarks of BlockAllocator's hot paths (allocate, release, add-ref, hash lookup,
// eviction). Per-block and per-operation costs are reported as counters in seconds
// (`s_per_block`, `s_per_op`), so ns figures read straight off them. docs/allocator.md explains
// how to run and read them.
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "absl/types/span.h"
#include "benchmark/benchmark.h"
#include "pagedkv/allocator/block_allocator.h"

namespace pagedkv {
namespace {

constexpr uint32_t kNumBlocks = 4096;

std::unique_ptr<BlockAllocator> MakeAllocator(uint32_t num_blocks) {
  absl::StatusOr<std::unique_ptr<BlockAllocator>> a = BlockAllocator::CreateVirtual(num_blocks);
  if (!a.ok()) std::abort();
  return std::move(*a);
}

// Distinct pseudo-random hashes, as a real prefix cache would produce.
std::vector<BlockHash> MakeHashes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<BlockHash> out(n);
  for (BlockHash& h : out) h = BlockHash{rng(), rng()};
  return out;
}

// Seconds per unit of work, with `units` units in every iteration.
benchmark::Counter PerUnit(double units) {
  return benchmark::Counter(
      units, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

// One block allocated and released again: the cost of a sequence gaining and dropping a page.
void BM_AllocateReleaseSingle(benchmark::State& state) {
  auto a = MakeAllocator(kNumBlocks);
  for (auto _ : state) {
    absl::StatusOr<BlockId> id = a->AllocateOne();
    benchmark::DoNotOptimize(id);
    benchmark::DoNotOptimize(a->Release(*id));
  }
  state.counters["s_per_op"] = PerUnit(1);
}
BENCHMARK(BM_AllocateReleaseSingle);

// n blocks in one all-or-nothing call, then released as one span: a prefill's worth of pages.
void BM_AllocateReleaseBulk(benchmark::State& state) {
  const auto n = static_cast<size_t>(state.range(0));
  auto a = MakeAllocator(kNumBlocks);
  std::vector<BlockId> ids(n);
  for (auto _ : state) {
    benchmark::DoNotOptimize(a->Allocate(absl::MakeSpan(ids)));
    benchmark::DoNotOptimize(a->Release(absl::MakeConstSpan(ids)));
    benchmark::ClobberMemory();
  }
  state.counters["s_per_block"] = PerUnit(static_cast<double>(n));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * n));
}
BENCHMARK(BM_AllocateReleaseBulk)->Arg(1)->Arg(8)->Arg(64)->Arg(512);

// One more reference to an in-use block (a fork sharing a page).
void BM_AddRef(benchmark::State& state) {
  auto a = MakeAllocator(kNumBlocks);
  const BlockId id = *a->AllocateOne();
  for (auto _ : state) {
    benchmark::DoNotOptimize(a->AddRef(id));
  }
  state.counters["s_per_op"] = PerUnit(1);
}
BENCHMARK(BM_AddRef);

// A full allocator whose every block is registered under a hash; `cached` releases them all so
// they sit on the LRU.
std::unique_ptr<BlockAllocator> MakeHashed(const std::vector<BlockHash>& hashes, bool cached) {
  auto a = MakeAllocator(static_cast<uint32_t>(hashes.size()));
  std::vector<BlockId> ids(hashes.size());
  if (!a->Allocate(absl::MakeSpan(ids)).ok()) std::abort();
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!a->SetHash(ids[i], hashes[i]).ok()) std::abort();
  }
  if (cached && !a->Release(absl::MakeConstSpan(ids)).ok()) std::abort();
  return a;
}

// Prefix-cache probe that finds its block; the probes visit the hashes in a shuffled order.
void BM_HashLookupHit(benchmark::State& state) {
  std::vector<BlockHash> hashes = MakeHashes(kNumBlocks, 1);
  auto a = MakeHashed(hashes, /*cached=*/true);
  std::shuffle(hashes.begin(), hashes.end(), std::mt19937_64(2));
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(a->Lookup(hashes[i]));
    i = (i + 1) & (kNumBlocks - 1);
  }
  state.counters["s_per_op"] = PerUnit(1);
}
BENCHMARK(BM_HashLookupHit);

// Prefix-cache probe for content nobody holds.
void BM_HashLookupMiss(benchmark::State& state) {
  auto a = MakeHashed(MakeHashes(kNumBlocks, 1), /*cached=*/true);
  const std::vector<BlockHash> absent = MakeHashes(kNumBlocks, 3);
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(a->Lookup(absent[i]));
    i = (i + 1) & (kNumBlocks - 1);
  }
  state.counters["s_per_op"] = PerUnit(1);
}
BENCHMARK(BM_HashLookupMiss);

// Steady state of a full prefix cache: every allocation evicts the LRU head (dropping its hash),
// the new block is registered under a fresh hash and released to the LRU tail.
void BM_EvictUnderPressure(benchmark::State& state) {
  auto a = MakeAllocator(kNumBlocks);
  {
    const std::vector<BlockHash> initial = MakeHashes(kNumBlocks, 4);
    std::vector<BlockId> ids(kNumBlocks);
    if (!a->Allocate(absl::MakeSpan(ids)).ok()) std::abort();
    for (uint32_t i = 0; i < kNumBlocks; ++i) {
      if (!a->SetHash(ids[i], initial[i]).ok()) std::abort();
    }
    if (!a->Release(absl::MakeConstSpan(ids)).ok()) std::abort();
  }
  // Fresh hashes never collide with live ones: the high word differs from every initial one
  // with overwhelming probability, and the low word counts up.
  uint64_t next = 0;
  for (auto _ : state) {
    const BlockId id = *a->AllocateOne();
    benchmark::DoNotOptimize(a->SetHash(id, BlockHash{next++, 0x5eed5eed5eed5eedull}));
    benchmark::DoNotOptimize(a->Release(id));
  }
  state.counters["s_per_op"] = PerUnit(1);
  state.counters["evictions"] = static_cast<double>(a->stats().evictions);
}
BENCHMARK(BM_EvictUnderPressure);

}  // namespace
}  // namespace pagedkv

BENCHMARK_MAIN();
