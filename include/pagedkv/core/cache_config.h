// CacheConfig: how much KV memory the block manager may use and how it behaves (block size, tier
// budgets, watermark, prefix caching). Validated once at construction of the manager.
//
//   CacheConfig cfg;
//   cfg.block_size_tokens = 16;
//   cfg.gpu_budget_bytes = 60ull << 30;   // or cfg.gpu_num_blocks = 4096
//   PAGEDKV_RETURN_IF_ERROR(cfg.Validate());
#ifndef PAGEDKV_CORE_CACHE_CONFIG_H_
#define PAGEDKV_CORE_CACHE_CONFIG_H_

#include <cstdint>

#include "absl/status/status.h"
#include "pagedkv/core/remote_config.h"
#include "pagedkv/core/types.h"

namespace pagedkv {

struct CacheConfig {
  // Upper bound on block_size_tokens: keeps slot arithmetic (block_id * block_size) far from
  // overflow; real block sizes are 1..256.
  static constexpr int32_t kMaxBlockSizeTokens = 1 << 20;

  // Tokens per block; any value >= 1. Powers of two take the fast path (shift/mask slot math).
  int32_t block_size_tokens = 16;

  // Tier of the primary pool: kGpu for serving, kVirtual for simulation (metadata only).
  Tier gpu_tier = Tier::kGpu;
  // GPU budget: a block count (when > 0) wins over a byte budget (when > 0); with neither,
  // gpu_memory_fraction of the device's total memory (minus nothing else: callers subtract
  // weights).
  int64_t gpu_num_blocks = 0;
  uint64_t gpu_budget_bytes = 0;
  double gpu_memory_fraction = 0.9;  // (0, 1]
  // Host tier (swap space and second-level prefix cache); 0 and 0 = no host tier.
  int64_t host_num_blocks = 0;
  uint64_t host_budget_bytes = 0;

  // Fraction of GPU blocks kept free when admitting new sequences, so running ones can grow. [0, 1)
  double watermark = 0.01;
  bool enable_prefix_caching = true;
  // When true, a kGpu tier with no usable CUDA device is an error (FailedPrecondition) instead of a
  // fallback to host memory with one log line.
  bool strict_gpu = false;
  // Plain-host pools: ask for transparent huge pages (madvise); ignored where unsupported.
  bool host_huge_pages = false;
  // The host tier's pools in memfd segments other processes can map (MemoryPool kSharedHost),
  // with memory even when the GPU tier is kVirtual: `pagedkv serve` keeps the GPU bytes in pools
  // of its own but lets the manager own the host tier, whose bytes the remote tier reads and
  // writes.
  bool share_host_pools = false;
  // The shared tier below host (a Redis server or cluster): published pages that earned it are
  // written there and later prompts load them instead of recomputing. Needs a host tier with
  // memory (pages are staged through it). Off with an empty url.
  RemoteTierConfig remote;

  // InvalidArgument naming the field, its value and the valid range.
  absl::Status Validate() const;
};

}  // namespace pagedkv

#endif  // PAGEDKV_CORE_CACHE_CONFIG_H_
