// ExtentAllocator: first-fit allocation of contiguous token ranges [offset, offset + length) out of
// a fixed capacity, with coalescing of free neighbours. Models the contiguous KV policies (one
// extent per sequence) so that their external fragmentation can be measured.
//
//   ExtentAllocator a(1000);
//   std::optional<int64_t> off = a.Allocate(300);   // 0
//   bool grew = a.TryExtend(*off, 300, 350);         // in place when the next 50 are free
#ifndef PAGEDKV_SCHEDULER_INTERNAL_EXTENT_ALLOCATOR_H_
#define PAGEDKV_SCHEDULER_INTERNAL_EXTENT_ALLOCATOR_H_

#include <cstdint>
#include <map>
#include <optional>
#include <set>

#include "absl/status/status.h"

namespace pagedkv::internal {

// Invariants: free extents are disjoint, non-adjacent (coalesced) and lie inside [0, capacity);
// free_tokens == sum of their lengths; largest_ holds exactly their lengths.
class ExtentAllocator {
 public:
  explicit ExtentAllocator(int64_t capacity_tokens);

  // Lowest-offset free extent of at least `length` tokens, or nullopt.
  std::optional<int64_t> Allocate(int64_t length);
  bool CanAllocate(int64_t length) const { return largest_free() >= length; }
  // Returns [offset, offset + length) to the free set.
  void Free(int64_t offset, int64_t length);
  // Grows the extent at `offset` from old_length to new_length in place when the tokens right
  // after it are free. False (no change) otherwise.
  bool TryExtend(int64_t offset, int64_t old_length, int64_t new_length);
  // Whether TryExtend would succeed.
  bool CanExtend(int64_t offset, int64_t old_length, int64_t new_length) const;

  int64_t capacity() const { return capacity_; }
  int64_t free_tokens() const { return free_tokens_; }
  int64_t largest_free() const { return lengths_.empty() ? 0 : *lengths_.rbegin(); }
  int64_t num_free_extents() const { return static_cast<int64_t>(free_.size()); }
  // Free tokens lying in holes shorter than `length`.
  int64_t FreeTokensInHolesSmallerThan(int64_t length) const;

  absl::Status CheckInvariants() const;

 private:
  void Insert(int64_t offset, int64_t length);
  void Erase(std::map<int64_t, int64_t>::iterator it);

  int64_t capacity_;
  int64_t free_tokens_;
  std::map<int64_t, int64_t> free_;  // offset -> length
  std::multiset<int64_t> lengths_;
};

}  // namespace pagedkv::internal

#endif  // PAGEDKV_SCHEDULER_INTERNAL_EXTENT_ALLOCATOR_H_
