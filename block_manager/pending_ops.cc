// The CacheOps of the current step: TakeCacheOps hands them out and drops the pins that kept every
// block named by a pending movement alive (the recording helpers are inline in manager_state.h).
#include <cstring>
#include <utility>

#include "block_manager/internal/manager_state.h"
#include "pagedkv/core/logging.h"

namespace pagedkv {

using internal::PoolState;

void BlockManager::Impl::PinDeferred() {
  for (const auto& [pg, b] : deferred_pins) Pin(groups[pg].gpu, b);
  deferred_pins.clear();
}

void BlockManager::Impl::ReleaseTable(GroupState& G, BlockTable& t, EvictionPriority priority) {
  PoolState& pool = t.tier_ == Tier::kHost ? G.host : G.gpu;
  for (int32_t k = t.first_live_page_; k < t.num_pages(); ++k)
    Release(pool, t.blocks_[k], priority);
  t.blocks_.clear();
  t.num_tokens_ = 0;
  t.first_live_page_ = 0;
}

void BlockManager::TakeCacheOps(CacheOps* ops) {
  Impl& s = *impl_;
  ++s.ops_taken_gen;  // the ops handed out now are this generation
  ops->groups.resize(s.num_groups());
  for (int32_t g = 0; g < s.num_groups(); ++g) {
    Impl::GroupState& G = s.groups[g];
    for (const BlockPair& c : G.ops.copies) G.gpu.copy_src[c.dst] = kInvalidBlockId;
    for (const BlockPair& c : G.ops.swap_in) G.gpu.swap_in_dst[c.dst] = 0;
    GroupCacheOps& out = ops->groups[g];
    out.clear();
    std::swap(out, G.ops);
    out.group = g;
    out.bytes_per_block = G.info.bytes_per_block;
    G.ops.group = g;
    G.ops.bytes_per_block = G.info.bytes_per_block;
    for (PoolState* pool : {&G.gpu, &G.host}) {
      if (!pool->valid()) continue;
      for (BlockId b : pool->pinned) {
        --pool->pins[b];
        s.Release(*pool, b, EvictionPriority::kNormal);
      }
      pool->pinned.clear();
    }
    if (!out.empty()) {
      PAGEDKV_LOG_TRACE("cache_ops group={} swap_out={} swap_in={} copies={}", g,
                        out.swap_out.size(), out.swap_in.size(), out.copies.size());
    }
  }
}

CacheOps BlockManager::TakeCacheOps() {
  CacheOps ops;
  TakeCacheOps(&ops);
  return ops;
}

}  // namespace pagedkv
