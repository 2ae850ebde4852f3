// BlockLedger: shadow tables and per-block counts of a set of sequences.
#include "service/internal/block_ledger.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "pagedkv/core/absl_compat.h"
#include "pagedkv/core/check.h"

namespace pagedkv::service::internal {

void BlockLedger::Ref(Tier tier, int32_t group, BlockId block) {
  if (block == kInvalidBlockId) return;
  uint32_t& refs = refs_[Key(tier, group, block)];
  if (refs++ == 0) ++used_[TierIndex(tier)];
}

void BlockLedger::Unref(Tier tier, int32_t group, BlockId block) {
  if (block == kInvalidBlockId) return;
  auto it = refs_.find(Key(tier, group, block));
  PAGEDKV_CHECK_MSG(it != refs_.end() && it->second > 0, "ledger: unref of an untracked block");
  if (--it->second == 0) {
    refs_.erase(it);
    --used_[TierIndex(tier)];
  }
}

void BlockLedger::Sync(const BlockManager& bm, SeqId seq) {
  Shadow& shadow = shadows_[seq];
  const int32_t num_groups = bm.num_groups();
  shadow.resize(num_groups);
  for (int32_t g = 0; g < num_groups; ++g) {
    absl::StatusOr<const BlockTable*> table = bm.GetBlockTable(seq, g);
    PAGEDKV_CHECK_MSG(table.ok(), "ledger: sync of a sequence the manager does not know");
    const absl::Span<const BlockId> now = (*table)->blocks();
    GroupShadow& old = shadow[g];
    const Tier tier = (*table)->tier();
    if (tier != old.tier) {
      for (BlockId b : old.blocks) Unref(old.tier, g, b);
      for (BlockId b : now) Ref(tier, g, b);
    } else {
      const size_t common = std::min(old.blocks.size(), now.size());
      for (size_t i = 0; i < common; ++i) {
        if (old.blocks[i] != now[i]) {
          Ref(tier, g, now[i]);
          Unref(tier, g, old.blocks[i]);
        }
      }
      for (size_t i = common; i < now.size(); ++i) Ref(tier, g, now[i]);
      for (size_t i = common; i < old.blocks.size(); ++i) Unref(tier, g, old.blocks[i]);
    }
    old.tier = tier;
    old.blocks.assign(now.begin(), now.end());
  }
}

void BlockLedger::Drop(SeqId seq) {
  auto it = shadows_.find(seq);
  if (it == shadows_.end()) return;
  for (size_t g = 0; g < it->second.size(); ++g) {
    for (BlockId b : it->second[g].blocks) Unref(it->second[g].tier, static_cast<int32_t>(g), b);
  }
  shadows_.erase(it);
}

void BlockLedger::TransferTo(SeqId seq, BlockLedger& other) {
  auto it = shadows_.find(seq);
  if (it == shadows_.end()) return;
  PAGEDKV_CHECK_MSG(!other.shadows_.contains(seq), "ledger: transfer onto a tracked sequence");
  Shadow shadow = std::move(it->second);
  shadows_.erase(it);
  for (size_t g = 0; g < shadow.size(); ++g) {
    const auto group = static_cast<int32_t>(g);
    for (BlockId b : shadow[g].blocks) {
      Unref(shadow[g].tier, group, b);
      other.Ref(shadow[g].tier, group, b);
    }
  }
  other.shadows_.emplace(seq, std::move(shadow));
}

int64_t BlockLedger::LivePages(SeqId seq, Tier tier) const {
  auto it = shadows_.find(seq);
  if (it == shadows_.end()) return 0;
  int64_t pages = 0;
  for (const GroupShadow& g : it->second) {
    if (g.tier != tier) continue;
    for (BlockId b : g.blocks) pages += b != kInvalidBlockId;
  }
  return pages;
}

absl::Status BlockLedger::CheckAgainst(const BlockManager& bm) const {
  absl::flat_hash_map<uint64_t, uint32_t> refs;
  for (const auto& [seq, shadow] : shadows_) {
    if (static_cast<int32_t>(shadow.size()) != bm.num_groups()) {
      return absl::InternalError(absl::StrCat("ledger: sequence ", seq, " has ", shadow.size(),
                                              " group shadows, the model ", bm.num_groups()));
    }
    for (int32_t g = 0; g < bm.num_groups(); ++g) {
      absl::StatusOr<const BlockTable*> table = bm.GetBlockTable(seq, g);
      if (!table.ok()) {
        return absl::InternalError(
            absl::StrCat("ledger: tracked sequence ", seq,
                         " is unknown to the block manager: ", table.status().message()));
      }
      const GroupShadow& sh = shadow[g];
      const absl::Span<const BlockId> now = (*table)->blocks();
      if (sh.tier != (*table)->tier() || sh.blocks.size() != now.size() ||
          !std::equal(now.begin(), now.end(), sh.blocks.begin())) {
        return absl::InternalError(absl::StrCat("ledger: shadow of sequence ", seq, " group ", g,
                                                " is stale (", sh.blocks.size(), " vs ", now.size(),
                                                " pages)"));
      }
      for (BlockId b : now) {
        if (b != kInvalidBlockId) ++refs[Key(sh.tier, g, b)];
      }
    }
  }
  if (refs != refs_) {
    return absl::InternalError(absl::StrCat("ledger: per-block counts differ from the tables (",
                                            refs.size(), " blocks named, ", refs_.size(),
                                            " counted)"));
  }
  uint32_t used[2] = {0, 0};
  for (const auto& [key, n] : refs) ++used[(key >> 62) & 1];
  if (used[0] != used_[0] || used[1] != used_[1]) {
    return absl::InternalError(absl::StrCat("ledger: used gpu/host ", used_[0], "/", used_[1],
                                            " but the tables name ", used[0], "/", used[1]));
  }
  return absl::OkStatus();
}

}  // namespace pagedkv::service::internal
