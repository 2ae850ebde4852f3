// Swap: preemption by moving a sequence's pages between the GPU and host tiers (a page shared by
// several of the moved sequences moves once), and the host second level of the prefix cache
// (evicted GPU prefix pages are offloaded to host blocks instead of being dropped).
#include <utility>
#include <vector>

#include "block_manager/internal/manager_state.h"
#include "pagedkv/core/logging.h"
#include "pagedkv/core/status.h"

namespace pagedkv {

using internal::SeqRecord;

void BlockManager::Impl::CollectDistinct(const PoolState& pool, int32_t g,
                                         absl::Span<SeqRecord* const> recs,
                                         std::vector<BlockId>* distinct) const {
  distinct->clear();
  for (const SeqRecord* rec : recs) {
    const BlockTable& t = rec->tables[g];
    for (int32_t k = t.first_live_page_; k < t.num_pages(); ++k) {
      BlockId& slot = pool.move_index[t.blocks_[k]];
      if (slot != kInvalidBlockId) continue;
      slot = static_cast<BlockId>(distinct->size());
      distinct->push_back(t.blocks_[k]);
    }
  }
}

void BlockManager::Impl::ClearMoveIndex(const PoolState& pool, absl::Span<const BlockId> distinct) {
  for (BlockId b : distinct) pool.move_index[b] = kInvalidBlockId;
}

// Allocates one `to` block per distinct page (`distinct`, in first-seen order, numbered in the
// `from` pool's move_index), records the copy, carries metadata and hash over, and repoints every
// table, so a page shared by several tables moves once and keeps its sharing. Space in `to` was
// checked by the caller. Returns the number of pages moved.
int64_t BlockManager::Impl::MovePages(int32_t g, absl::Span<SeqRecord* const> recs, bool to_host,
                                      absl::Span<const BlockId> distinct, Tier new_tier) {
  GroupState& G = groups[g];
  PoolState& from = to_host ? G.gpu : G.host;
  PoolState& to = to_host ? G.host : G.gpu;
  std::vector<BlockId>& dst = scratch_blocks;
  dst.resize(distinct.size());
  if (to_host) {
    if (!dst.empty()) {
      absl::Status st = to.alloc->Allocate(absl::MakeSpan(dst));
      PAGEDKV_CHECK_MSG(st.ok(), "host allocation failed after its check");
    }
  } else {
    AllocateGpu(g, absl::MakeSpan(dst));
  }
  for (size_t i = 0; i < dst.size(); ++i) {
    const BlockId src = distinct[i];
    if (to_host) {
      RecordSwapOut(g, src, dst[i]);
    } else {
      RecordSwapIn(g, src, dst[i]);
    }
    CopyMeta(G, from, src, to, dst[i]);
    if (G.hashed && from.alloc->is_hashed(src)) {
      Publish(g, to_host ? Tier::kHost : Tier::kGpu, to, dst[i], from.hashes[src]);
    }
  }
  std::vector<uint8_t> taken(dst.size(), 0);  // the first table takes Allocate's reference
  for (SeqRecord* rec : recs) {
    BlockTable& t = rec->tables[g];
    for (int32_t k = t.first_live_page_; k < t.num_pages(); ++k) {
      const BlockId i = from.move_index[t.blocks_[k]];
      if (taken[i]) {
        absl::Status st = to.alloc->AddRef(dst[i]);
        PAGEDKV_CHECK_MSG(st.ok(), "a just-allocated block vanished");
      }
      taken[i] = 1;
      Release(from, t.blocks_[k], rec->priority);
      t.blocks_[k] = dst[i];
    }
    t.tier_ = new_tier;
  }
  return static_cast<int64_t>(dst.size());
}

void BlockManager::Impl::OnGpuEvict(int32_t g, BlockId block, const BlockHash& hash) {
  // Best effort: never fails the calling operation.
  GroupState& G = groups[g];
  if (!G.host.valid() || !G.hashed) return;
  if (G.host.alloc->Peek(hash).has_value()) return;  // already kept
  if (G.host.alloc->num_available() == 0) return;
  absl::StatusOr<BlockId> h = G.host.alloc->AllocateOne();
  if (!h.ok()) return;
  CopyMeta(G, G.gpu, block, G.host, *h);
  if (!Publish(g, Tier::kHost, G.host, *h, hash)) {
    Release(G.host, *h, EvictionPriority::kNormal);
    return;
  }
  // The allocation's reference is the host pin; the GPU block is pinned after Allocate returns.
  G.ops.swap_out.push_back({block, *h});
  ++G.host.pins[*h];
  G.host.pinned.push_back(*h);
  deferred_pins.emplace_back(g, block);
  swap_out_bytes += G.info.bytes_per_block;
  ++host_offloads;
  PAGEDKV_LOG_TRACE("offload group={} gpu_block={} host_block={}", g, block, *h);
}

// Validates a swap request: known, distinct, in the expected residency.
absl::Status BlockManager::Impl::ValidateSwapSet(absl::Span<const SeqId> ids, bool want_swapped,
                                                 const char* op,
                                                 std::vector<SeqRecord*>* out) const {
  out->clear();
  const uint64_t mark = ++stamp;
  for (SeqId id : ids) {
    SeqRecord* rec = Find(id);
    if (rec == nullptr) {
      return absl::NotFoundError(absl::StrCat(op, ": sequence ", id, " is not known"));
    }
    if (rec->stamp == mark) {
      return absl::InvalidArgumentError(
          absl::StrCat(op, ": sequence ", id, " is listed twice; list each once"));
    }
    rec->stamp = mark;
    if (rec->swapped != want_swapped) {
      return absl::FailedPreconditionError(absl::StrCat(
          op, ": sequence ", id,
          want_swapped ? " is not swapped out (it has no host pages); nothing to swap in"
                       : " is already swapped out"));
    }
    out->push_back(rec);
  }
  return absl::OkStatus();
}

absl::Status BlockManager::SwapOut(absl::Span<const SeqId> seqs) {
  Impl& s = *impl_;
  std::vector<SeqRecord*> recs;
  PAGEDKV_RETURN_IF_ERROR(s.ValidateSwapSet(seqs, /*want_swapped=*/false, "SwapOut", &recs));
  if (!s.host_tier) {
    return absl::FailedPreconditionError(
        "SwapOut: no host tier is configured (host_num_blocks / host_budget_bytes); preempt by "
        "recompute (Free) instead");
  }
  // Distinct GPU pages per group, in first-seen order.
  std::vector<std::vector<BlockId>> distinct(s.num_groups());
  absl::Status st;
  for (int32_t g = 0; g < s.num_groups() && st.ok(); ++g) {
    Impl::GroupState& G = s.groups[g];
    s.CollectDistinct(G.gpu, g, recs, &distinct[g]);
    // swap_out runs before swap_in within a step, so neither a page nor the original source of a
    // pending copy into it may still be waiting for its swap-in.
    for (BlockId b : distinct[g]) {
      if (G.gpu.swap_in_dst[b] || G.gpu.swap_in_dst[s.ResolveGpuSource(G, b)]) {
        st = absl::FailedPreconditionError(absl::StrCat(
            "SwapOut: block ", b, " of group ", g, " (a page of sequence(s) starting with ",
            seqs[0],
            ") is still being swapped in by the pending CacheOps; call TakeCacheOps and "
            "execute them first"));
        break;
      }
    }
    const uint32_t avail = G.host.alloc->num_available();
    if (st.ok() && distinct[g].size() > avail) {
      st = absl::ResourceExhaustedError(
          absl::StrCat("SwapOut: ", seqs.size(), " sequence(s) starting with ", seqs[0], " need ",
                       distinct[g].size(), " host blocks in group ", g, ", ", avail,
                       " available; free swapped sequences or preempt by recompute"));
    }
  }
  int64_t moved = 0;
  for (int32_t g = 0; g < s.num_groups(); ++g) {
    if (st.ok()) moved += s.MovePages(g, recs, /*to_host=*/true, distinct[g], Tier::kHost);
    s.ClearMoveIndex(s.groups[g].gpu, distinct[g]);
  }
  PAGEDKV_RETURN_IF_ERROR(st);
  for (SeqRecord* rec : recs) rec->swapped = true;
  s.num_swapped += static_cast<int64_t>(recs.size());
  PAGEDKV_LOG_TRACE("swap_out seqs={} first={} pages_moved={}", seqs.size(),
                    seqs.empty() ? 0 : seqs[0], moved);
  PAGEDKV_DCHECK_OK_EXPENSIVE(CheckInvariants());
  return absl::OkStatus();
}

absl::Status BlockManager::SwapIn(absl::Span<const SeqId> seqs) {
  Impl& s = *impl_;
  std::vector<SeqRecord*> recs;
  PAGEDKV_RETURN_IF_ERROR(s.ValidateSwapSet(seqs, /*want_swapped=*/true, "SwapIn", &recs));
  std::vector<std::vector<BlockId>> distinct(s.num_groups());
  absl::Status st;
  for (int32_t g = 0; g < s.num_groups() && st.ok(); ++g) {
    Impl::GroupState& G = s.groups[g];
    s.CollectDistinct(G.host, g, recs, &distinct[g]);
    const uint32_t avail = G.gpu.alloc->num_available();
    if (distinct[g].size() > avail) {
      st = absl::ResourceExhaustedError(
          absl::StrCat("SwapIn: ", seqs.size(), " sequence(s) starting with ", seqs[0], " need ",
                       distinct[g].size(), " GPU blocks in group ", g, ", ", avail,
                       " free + cached available; wait for running sequences to finish"));
    }
  }
  int64_t moved = 0;
  for (int32_t g = 0; g < s.num_groups(); ++g) {
    if (st.ok()) moved += s.MovePages(g, recs, /*to_host=*/false, distinct[g], Tier::kGpu);
    s.ClearMoveIndex(s.groups[g].host, distinct[g]);
  }
  PAGEDKV_RETURN_IF_ERROR(st);
  for (SeqRecord* rec : recs) rec->swapped = false;
  s.num_swapped -= static_cast<int64_t>(recs.size());
  PAGEDKV_LOG_TRACE("swap_in seqs={} first={} pages_moved={}", seqs.size(),
                    seqs.empty() ? 0 : seqs[0], moved);
  PAGEDKV_DCHECK_OK_EXPENSIVE(CheckInvariants());
  return absl::OkStatus();
}

bool BlockManager::CanSwapIn(absl::Span<const SeqId> seqs) const {
  const Impl& s = *impl_;
  std::vector<SeqRecord*> recs;
  if (!s.ValidateSwapSet(seqs, true, "CanSwapIn", &recs).ok()) return false;
  std::vector<BlockId> distinct;
  bool fits = true;
  for (int32_t g = 0; g < s.num_groups() && fits; ++g) {
    s.CollectDistinct(s.groups[g].host, g, recs, &distinct);
    fits = distinct.size() <= s.groups[g].gpu.alloc->num_available();
    s.ClearMoveIndex(s.groups[g].host, distinct);
  }
  return fits;
}

}  // namespace pagedkv
