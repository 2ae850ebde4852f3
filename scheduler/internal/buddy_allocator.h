// BuddyAllocator: a binary buddy allocator over token slots, the placement the PagedAttention
// paper gives its Orca baselines. An extent of L tokens takes one block of 2^k >= L slots; a block
// is split in halves ("buddies") until it is the smallest that fits, and a freed block merges
// with its buddy whenever that buddy is free too. The default extent allocator of orca-*.
//
//   BuddyAllocator a(1000);              // regions of 512, 256, 128, 64, 32 and 8 slots
//   std::optional<int64_t> off = a.Allocate(300);   // block [0, 512)
//   a.Free(*off, 300);                                // merges back
#ifndef PAGEDKV_SCHEDULER_INTERNAL_BUDDY_ALLOCATOR_H_
#define PAGEDKV_SCHEDULER_INTERNAL_BUDDY_ALLOCATOR_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <vector>

#include "absl/status/status.h"
#include "internal/extent_allocator.h"

namespace pagedkv::internal {

// The capacity is cut into regions of decreasing powers of two (its binary digits, largest at
// offset 0), so every block of order k starts at a multiple of 2^k and never merges past its
// region. Block lifecycle: free (in free_[k]) -> allocated (Allocate, in no list) -> free (Free,
// merged with free buddies). Invariants: free blocks are aligned to their size, lie inside one
// region, do not overlap, and no free block has a free buddy of the same order inside its region;
// free_tokens_ == sum of free block sizes; bit k of nonempty_ is set exactly when free_[k] is
// non-empty.
class BuddyAllocator final : public ExtentAllocator {
 public:
  static constexpr int kMaxOrder = 62;

  explicit BuddyAllocator(int64_t capacity_tokens);

  ExtentAllocatorKind kind() const override { return ExtentAllocatorKind::kBuddy; }
  // The block size: 2^ceil(log2(length)).
  int64_t FootprintTokens(int64_t length) const override;
  // The lowest-addressed free block of the smallest order that fits, split down to size.
  std::optional<int64_t> Allocate(int64_t length) override;
  bool CanAllocate(int64_t length) const override;
  void Free(int64_t offset, int64_t length) override;
  // Only within the block already held (a buddy block never grows in place past its size).
  bool TryExtend(int64_t offset, int64_t old_length, int64_t new_length) override {
    return CanExtend(offset, old_length, new_length);
  }
  bool CanExtend(int64_t offset, int64_t old_length, int64_t new_length) const override {
    return new_length <= FootprintTokens(old_length);
  }

  int64_t capacity() const override { return capacity_; }
  int64_t free_tokens() const override { return free_tokens_; }
  int64_t largest_free() const override;
  int64_t FreeTokensInHolesSmallerThan(int64_t length) const override;
  // Free blocks of order k (tests).
  int64_t NumFreeBlocks(int order) const {
    return static_cast<int64_t>(free_[static_cast<size_t>(order)].size());
  }

  std::unique_ptr<ExtentAllocator> Clone() const override {
    return std::make_unique<BuddyAllocator>(*this);
  }
  absl::Status CheckInvariants() const override;

  // ceil(log2(length)) for length >= 1.
  static int OrderOf(int64_t length);

 private:
  // The order of the region holding `offset` (the largest block there may be).
  int RegionOrder(int64_t offset) const;
  void Push(int order, int64_t offset);
  void Pop(int order, int64_t offset);

  int64_t capacity_;
  int64_t free_tokens_ = 0;
  std::vector<std::set<int64_t>> free_;           // [order] -> offsets of free blocks of that order
  uint64_t nonempty_ = 0;                         // bit k: free_[k] is non-empty
  std::vector<std::pair<int64_t, int>> regions_;  // (start offset, order), ascending offsets
};

}  // namespace pagedkv::internal

#endif  // PAGEDKV_SCHEDULER_INTERNAL_BUDDY_ALLOCATOR_H_
