// FirstFitAllocator: first-fit allocation of contiguous token ranges [offset, offset + length) out
// of a fixed capacity, with coalescing of free neighbours. The extent allocator of the
// contiguous-* policies (and of orca-* with --extent-allocator first-fit).
//
//   FirstFitAllocator a(1000);
//   std::optional<int64_t> off = a.Allocate(300);   // 0
//   bool grew = a.TryExtend(*off, 300, 350);         // in place when the next 50 are free
#ifndef PAGEDKV_SCHEDULER_INTERNAL_FIRST_FIT_ALLOCATOR_H_
#define PAGEDKV_SCHEDULER_INTERNAL_FIRST_FIT_ALLOCATOR_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "absl/status/status.h"
#include "internal/extent_allocator.h"

namespace pagedkv::internal {

// Invariants: free extents are disjoint, non-adjacent (coalesced) and lie inside [0, capacity);
// free_tokens == sum of their lengths; lengths_ holds exactly their lengths.
class FirstFitAllocator final : public ExtentAllocator {
 public:
  explicit FirstFitAllocator(int64_t capacity_tokens);

  ExtentAllocatorKind kind() const override { return ExtentAllocatorKind::kFirstFit; }
  int64_t FootprintTokens(int64_t length) const override { return length; }
  // Lowest-offset free extent of at least `length` tokens, or nullopt.
  std::optional<int64_t> Allocate(int64_t length) override;
  bool CanAllocate(int64_t length) const override { return largest_free() >= length; }
  void Free(int64_t offset, int64_t length) override;
  bool TryExtend(int64_t offset, int64_t old_length, int64_t new_length) override;
  bool CanExtend(int64_t offset, int64_t old_length, int64_t new_length) const override;

  int64_t capacity() const override { return capacity_; }
  int64_t free_tokens() const override { return free_tokens_; }
  int64_t largest_free() const override { return lengths_.empty() ? 0 : *lengths_.rbegin(); }
  int64_t num_free_extents() const { return static_cast<int64_t>(free_.size()); }
  int64_t FreeTokensInHolesSmallerThan(int64_t length) const override;

  std::unique_ptr<ExtentAllocator> Clone() const override {
    return std::make_unique<FirstFitAllocator>(*this);
  }
  absl::Status CheckInvariants() const override;

 private:
  void Insert(int64_t offset, int64_t length);
  void Erase(std::map<int64_t, int64_t>::iterator it);

  int64_t capacity_;
  int64_t free_tokens_;
  std::map<int64_t, int64_t> free_;  // offset -> length
  std::multiset<int64_t> lengths_;
};

}  // namespace pagedkv::internal

#endif  // PAGEDKV_SCHEDULER_INTERNAL_FIRST_FIT_ALLOCATOR_H_
