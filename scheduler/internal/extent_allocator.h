// ExtentAllocator: where the contiguous KV policies place each sequence's extent of consecutive
// token slots. Two implementations behind one interface, chosen by PolicyConfig::extent_allocator:
//   first-fit  lowest-address hole that fits, coalescing free neighbours (FirstFitAllocator)
//   buddy      power-of-two blocks split and merged with their buddy (BuddyAllocator), as the
//              Orca baselines of the PagedAttention paper allocate
//
//   std::unique_ptr<ExtentAllocator> a = MakeExtentAllocator(ExtentAllocatorKind::kBuddy, 1000);
//   std::optional<int64_t> off = a->Allocate(300);   // a 512-token block at 0
//   a->Free(*off, 300);
#ifndef PAGEDKV_SCHEDULER_INTERNAL_EXTENT_ALLOCATOR_H_
#define PAGEDKV_SCHEDULER_INTERNAL_EXTENT_ALLOCATOR_H_

#include <cstdint>
#include <memory>
#include <optional>

#include "absl/status/status.h"
#include "pagedkv/scheduler/policy.h"

namespace pagedkv::internal {

// An extent is named by the offset Allocate returned and the length it was asked for (or grown to
// by TryExtend); it occupies FootprintTokens(length) slots.
class ExtentAllocator {
 public:
  virtual ~ExtentAllocator() = default;
  virtual ExtentAllocatorKind kind() const = 0;

  // Slots an extent of `length` tokens occupies: `length` for first-fit, the next power of two
  // for buddy.
  virtual int64_t FootprintTokens(int64_t length) const = 0;
  // Offset of a new extent of `length` (> 0) tokens, or nullopt when no free hole can hold it.
  virtual std::optional<int64_t> Allocate(int64_t length) = 0;
  virtual bool CanAllocate(int64_t length) const = 0;
  // Returns the extent [offset, offset + FootprintTokens(length)) to the free set.
  virtual void Free(int64_t offset, int64_t length) = 0;
  // Grows the extent at `offset` from old_length to new_length in place; false (no change) when
  // the slots after it are not free.
  virtual bool TryExtend(int64_t offset, int64_t old_length, int64_t new_length) = 0;
  virtual bool CanExtend(int64_t offset, int64_t old_length, int64_t new_length) const = 0;

  virtual int64_t capacity() const = 0;
  virtual int64_t free_tokens() const = 0;
  // The longest extent Allocate could place now.
  virtual int64_t largest_free() const = 0;
  // Free slots lying in holes that cannot hold an extent of `length` tokens.
  virtual int64_t FreeTokensInHolesSmallerThan(int64_t length) const = 0;

  // A copy, for trial allocations (a group of n sequences reserving n extents).
  virtual std::unique_ptr<ExtentAllocator> Clone() const = 0;
  virtual absl::Status CheckInvariants() const = 0;
};

// kAuto is resolved by the caller (ResolveExtentAllocator); here it means first-fit.
std::unique_ptr<ExtentAllocator> MakeExtentAllocator(ExtentAllocatorKind kind,
                                                     int64_t capacity_tokens);

}  // namespace pagedkv::internal

#endif  // PAGEDKV_SCHEDULER_INTERNAL_EXTENT_ALLOCATOR_H_
