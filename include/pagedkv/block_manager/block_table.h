// BlockTable: the pages holding one sequence's tokens in one KV group, in token order. Owned by the
// BlockManager (one per sequence and group); read-only for everyone else.
//
//   PAGEDKV_ASSIGN_OR_RETURN(const BlockTable* t, manager->GetBlockTable(seq, /*group=*/0));
//   int64_t slot = t->Slot(t->num_tokens() - 1, manager->block_size());  // newest token's K/V
//
// States (predicates), moved by the BlockManager:
//   empty       num_tokens == 0 && blocks empty
//   resident    tier == kGpu: every live entry names a block of the group's GPU pool
//   swapped     tier == kHost: every live entry names a block of the group's host pool (SwapOut)
// Invariants: num_pages() == ceil(num_tokens / block_size); entries [0, first_live_page) are
// kInvalidBlockId (pages a sliding-window group released) and all later entries are valid.
#ifndef PAGEDKV_BLOCK_MANAGER_BLOCK_TABLE_H_
#define PAGEDKV_BLOCK_MANAGER_BLOCK_TABLE_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "pagedkv/core/types.h"

namespace pagedkv {

class BlockManager;

class BlockTable {
 public:
  BlockTable() = default;

  // Page index -> block id; kInvalidBlockId for released leading pages (sliding window).
  absl::Span<const BlockId> blocks() const { return blocks_; }
  // Tokens the table covers (the sequence's tokens; the encoder tokens for a cross group).
  int32_t num_tokens() const { return num_tokens_; }
  int32_t num_pages() const { return static_cast<int32_t>(blocks_.size()); }
  // The held pages: blocks()[first_live_page() ..].
  absl::Span<const BlockId> live_blocks() const {
    return absl::MakeConstSpan(blocks_).subspan(static_cast<size_t>(first_live_page_));
  }
  // Index of the first page still held; 0 except for sliding-window groups.
  int32_t first_live_page() const { return first_live_page_; }
  int32_t num_live_pages() const { return num_pages() - first_live_page_; }
  // The pool the ids refer to: kGpu (resident) or kHost (swapped out).
  Tier tier() const { return tier_; }
  bool empty() const { return blocks_.empty(); }

  // Slot of token `token_index` (in [first_live_page * block_size, num_tokens)):
  // block_id * block_size + offset. The caller passes the manager's block size.
  int64_t Slot(int32_t token_index, int32_t block_size) const {
    const BlockId b = blocks_[token_index / block_size];
    return static_cast<int64_t>(b) * block_size + token_index % block_size;
  }

  // The invariants above, for a table of a pool with `num_blocks` blocks of `block_size` tokens.
  absl::Status CheckInvariants(int32_t block_size, uint32_t num_blocks) const;

 private:
  friend class BlockManager;

  std::vector<BlockId> blocks_;
  int32_t num_tokens_ = 0;
  int32_t first_live_page_ = 0;
  Tier tier_ = Tier::kGpu;
};

}  // namespace pagedkv

#endif  // PAGEDKV_BLOCK_MANAGER_BLOCK_TABLE_H_
