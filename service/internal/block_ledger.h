// BlockLedger: the distinct blocks a set of sequences holds, per tier, kept incrementally. The
// service keeps one per session (its quota use) and one per model for quarantined sequences.
//
//   ledger.Sync(bm, seq);          // after any call that may have changed seq's tables
//   ledger.Drop(seq);              // after Free(seq)
//   if (ledger.used(Tier::kGpu) + need > quota) ...
//
// Each tracked sequence has a shadow copy of its tables; Sync compares the shadow with the
// manager's tables and touches the per-block counts only where an entry changed, so a decode step
// costs one comparison per page and one hash update per new page.
// Invariant: refs_[(tier, group, block)] == number of shadow entries naming that block, and
// used_[tier] == number of keys of that tier (CheckAgainst recomputes both from the manager).
#ifndef PAGEDKV_SERVICE_INTERNAL_BLOCK_LEDGER_H_
#define PAGEDKV_SERVICE_INTERNAL_BLOCK_LEDGER_H_

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "pagedkv/block_manager/block_manager.h"
#include "pagedkv/core/types.h"

namespace pagedkv::service::internal {

class BlockLedger {
 public:
  BlockLedger() = default;

  // Re-reads `seq`'s tables from `bm` and updates the counts; starts tracking an unknown `seq`.
  // `seq` must be known to `bm`.
  void Sync(const BlockManager& bm, SeqId seq);
  // Stops tracking `seq` (after the manager freed it) and releases its counts. No-op if unknown.
  void Drop(SeqId seq);
  // Moves `seq`'s shadow and counts into `other` (no manager call).
  void TransferTo(SeqId seq, BlockLedger& other);

  // Distinct blocks of `tier` (kGpu or kHost) named by the tracked sequences.
  uint32_t used(Tier tier) const { return used_[TierIndex(tier)]; }
  // Live pages of `seq` over all groups whose table is on `tier` (0 when unknown): an upper bound
  // of the blocks of that tier it holds (what a swap of it would need on the other tier).
  int64_t LivePages(SeqId seq, Tier tier) const;
  int64_t num_sequences() const { return static_cast<int64_t>(shadows_.size()); }
  bool Tracks(SeqId seq) const { return shadows_.contains(seq); }

  // Recomputes the counts from `bm`'s tables of the tracked sequences and compares: Internal
  // error naming the first difference (a stale shadow, a count off, a sequence bm forgot).
  absl::Status CheckAgainst(const BlockManager& bm) const;

 private:
  struct GroupShadow {
    Tier tier = Tier::kGpu;
    std::vector<BlockId> blocks;  // kInvalidBlockId for released sliding-window pages
  };
  using Shadow = absl::InlinedVector<GroupShadow, 2>;

  static int TierIndex(Tier tier) { return tier == Tier::kHost ? 1 : 0; }
  static uint64_t Key(Tier tier, int32_t group, BlockId block) {
    return (uint64_t{tier == Tier::kHost ? 1u : 0u} << 62) |
           (static_cast<uint64_t>(static_cast<uint32_t>(group)) << 32) | block;
  }
  void Ref(Tier tier, int32_t group, BlockId block);
  void Unref(Tier tier, int32_t group, BlockId block);

  absl::flat_hash_map<SeqId, Shadow> shadows_;
  absl::flat_hash_map<uint64_t, uint32_t> refs_;
  uint32_t used_[2] = {0, 0};
};

}  // namespace pagedkv::service::internal

#endif  // PAGEDKV_SERVICE_INTERNAL_BLOCK_LEDGER_H_
