// CacheOps: every memory movement the next engine step must execute before the model runs, per KV
// group, as (src, dst) block-id pairs. Produced by BlockManager::TakeCacheOps(); executed by the
// cache-op kernels (one batched launch or memcpy batch per kind).
//
//   CacheOps ops;
//   manager->TakeCacheOps(&ops);  // reuses ops' buffers
//   for (const GroupCacheOps& g : ops.groups) { SwapBlocks(g.swap_out); SwapBlocks(g.swap_in);
//   Copy(g.copies); }
//
// Execution order within one step: all swap_out, then all swap_in, then all copies. The manager
// guarantees the result equals executing each operation at the time it was recorded: every block
// named by a pending operation (source or destination) is pinned (one extra reference) until
// TakeCacheOps(), so it cannot be reused within the step, and a chained source (a page that is the
// destination of an earlier pending copy) is rewritten to the original source.
#ifndef PAGEDKV_BLOCK_MANAGER_CACHE_OPS_H_
#define PAGEDKV_BLOCK_MANAGER_CACHE_OPS_H_

#include <cstdint>
#include <vector>

#include "pagedkv/core/types.h"

namespace pagedkv {

// One whole-block movement: the `bytes_per_block` bytes of block `src` are copied to block `dst`.
struct BlockPair {
  BlockId src = kInvalidBlockId;
  BlockId dst = kInvalidBlockId;
  friend bool operator==(const BlockPair&, const BlockPair&) = default;
};

// The movements of one KV group (its pools are independent of every other group's).
struct GroupCacheOps {
  int32_t group = 0;
  uint64_t bytes_per_block = 0;  // of this group's pools (GPU and host blocks have the same size)
  // GPU block -> host block: preemption by swap (SwapOut) and offload of evicted prefix-cache
  // pages to the host tier (second cache level).
  std::vector<BlockPair> swap_out;
  // Host block -> GPU block: SwapIn, and prefix-cache hits served from the host tier.
  std::vector<BlockPair> swap_in;
  // GPU block -> GPU block: copy-on-write of a shared last page before a write.
  std::vector<BlockPair> copies;

  bool empty() const { return swap_out.empty() && swap_in.empty() && copies.empty(); }
  uint64_t swap_out_bytes() const { return swap_out.size() * bytes_per_block; }
  uint64_t swap_in_bytes() const { return swap_in.size() * bytes_per_block; }
  uint64_t copy_bytes() const { return copies.size() * bytes_per_block; }
  void clear() {
    swap_out.clear();
    swap_in.clear();
    copies.clear();
  }
};

// All movements of one step, one entry per KV group (index = group id), always num_groups long.
struct CacheOps {
  std::vector<GroupCacheOps> groups;

  bool empty() const {
    for (const GroupCacheOps& g : groups) {
      if (!g.empty()) return false;
    }
    return true;
  }
  uint64_t swap_out_bytes() const {
    uint64_t bytes = 0;
    for (const GroupCacheOps& g : groups) bytes += g.swap_out_bytes();
    return bytes;
  }
  uint64_t swap_in_bytes() const {
    uint64_t bytes = 0;
    for (const GroupCacheOps& g : groups) bytes += g.swap_in_bytes();
    return bytes;
  }
  uint64_t copy_bytes() const {
    uint64_t bytes = 0;
    for (const GroupCacheOps& g : groups) bytes += g.copy_bytes();
    return bytes;
  }
  uint64_t total_bytes() const { return swap_out_bytes() + swap_in_bytes() + copy_bytes(); }
};

}  // namespace pagedkv

#endif  // PAGEDKV_BLOCK_MANAGER_CACHE_OPS_H_
