// Blocks and the CacheOps of the current step: allocation and release on behalf of tables, the
// pins that keep every block named by a pending movement alive until TakeCacheOps, and the
// recording of copies and swaps.
#include <cstring>
#include <utility>

#include "block_manager/internal/manager_state.h"
#include "pagedkv/core/logging.h"

namespace pagedkv {

using internal::PoolState;

void BlockManager::Impl::TrySetHash(PoolState& pool, BlockId b, const BlockHash& hash) {
  // Peek first: a failed SetHash builds an error message, far too slow for the decode path where
  // identical pages are common.
  if (pool.alloc->Peek(hash).has_value()) return;
  absl::Status s = pool.alloc->SetHash(b, hash);
  PAGEDKV_DCHECK_MSG(s.ok(), "SetHash of an in-use unhashed block failed");
}

void BlockManager::Impl::Pin(PoolState& pool, BlockId b) {
  absl::Status s = pool.alloc->AddRef(b);
  PAGEDKV_CHECK_MSG(s.ok(), "pin of a free block");
  ++pool.pins[b];
  pool.pinned.push_back(b);
}

void BlockManager::Impl::AllocateGpu(int32_t g, absl::Span<BlockId> out) {
  if (out.empty()) return;
  absl::Status s = groups[g].gpu.alloc->Allocate(out);
  PAGEDKV_CHECK_MSG(s.ok(), "GPU allocation failed after its check");
  for (const auto& [pg, b] : deferred_pins) Pin(groups[pg].gpu, b);
  deferred_pins.clear();
}

void BlockManager::Impl::Release(PoolState& pool, BlockId b, EvictionPriority priority) {
  absl::Status s = pool.alloc->Release(b, priority);
  PAGEDKV_CHECK_MSG(s.ok(), "release of a block the table does not hold");
}

void BlockManager::Impl::ReleaseTable(GroupState& G, BlockTable& t, EvictionPriority priority) {
  PoolState& pool = t.tier_ == Tier::kHost ? G.host : G.gpu;
  for (int32_t k = t.first_live_page_; k < t.num_pages(); ++k)
    Release(pool, t.blocks_[k], priority);
  t.blocks_.clear();
  t.num_tokens_ = 0;
  t.first_live_page_ = 0;
}

void BlockManager::Impl::RecordCopy(int32_t g, BlockId src, BlockId dst) {
  GroupState& G = groups[g];
  src = ResolveGpuSource(G, src);
  G.ops.copies.push_back({src, dst});
  G.gpu.copy_src[dst] = src;
  Pin(G.gpu, src);
  Pin(G.gpu, dst);
  copy_bytes += G.info.bytes_per_block;
  ++cow_copies;
}

void BlockManager::Impl::RecordSwapOut(int32_t g, BlockId gpu_block, BlockId host_block) {
  GroupState& G = groups[g];
  const BlockId src = ResolveGpuSource(G, gpu_block);
  G.ops.swap_out.push_back({src, host_block});
  Pin(G.gpu, src);
  Pin(G.host, host_block);
  swap_out_bytes += G.info.bytes_per_block;
}

void BlockManager::Impl::RecordSwapIn(int32_t g, BlockId host_block, BlockId gpu_block) {
  GroupState& G = groups[g];
  G.ops.swap_in.push_back({host_block, gpu_block});
  G.gpu.swap_in_dst[gpu_block] = 1;
  Pin(G.host, host_block);
  Pin(G.gpu, gpu_block);
  swap_in_bytes += G.info.bytes_per_block;
}

void BlockManager::Impl::CopyMeta(const GroupState& G, const PoolState& from, BlockId fb,
                                  PoolState& to, BlockId tb) {
  if (!G.hashed) return;
  to.hashes[tb] = from.hashes[fb];
  std::memcpy(&to.tokens[static_cast<size_t>(tb) * bs], &from.tokens[static_cast<size_t>(fb) * bs],
              sizeof(TokenId) * bs);
}

void BlockManager::TakeCacheOps(CacheOps* ops) {
  Impl& s = *impl_;
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
