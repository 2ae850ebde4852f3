#include "internal/buddy_allocator.h"

#include <algorithm>
#include <bit>

#include "absl/strings/str_cat.h"
#include "pagedkv/core/check.h"

namespace pagedkv::internal {

int BuddyAllocator::OrderOf(int64_t length) {
  PAGEDKV_DCHECK(length >= 1);
  return length <= 1 ? 0 : 64 - std::countl_zero(static_cast<uint64_t>(length - 1));
}

BuddyAllocator::BuddyAllocator(int64_t capacity_tokens)
    : capacity_(std::max<int64_t>(capacity_tokens, 0)), free_(kMaxOrder + 1) {
  int64_t offset = 0;
  for (int k = kMaxOrder; k >= 0; --k) {
    if ((capacity_ >> k) & 1) {
      regions_.emplace_back(offset, k);
      Push(k, offset);
      offset += int64_t{1} << k;
    }
  }
}

int64_t BuddyAllocator::FootprintTokens(int64_t length) const {
  return int64_t{1} << OrderOf(std::max<int64_t>(length, 1));
}

void BuddyAllocator::Push(int order, int64_t offset) {
  free_[static_cast<size_t>(order)].insert(offset);
  nonempty_ |= uint64_t{1} << order;
  free_tokens_ += int64_t{1} << order;
}

void BuddyAllocator::Pop(int order, int64_t offset) {
  std::set<int64_t>& list = free_[static_cast<size_t>(order)];
  list.erase(offset);
  if (list.empty()) nonempty_ &= ~(uint64_t{1} << order);
  free_tokens_ -= int64_t{1} << order;
}

int BuddyAllocator::RegionOrder(int64_t offset) const {
  auto it = std::upper_bound(
      regions_.begin(), regions_.end(), offset,
      [](int64_t off, const std::pair<int64_t, int>& region) { return off < region.first; });
  PAGEDKV_DCHECK(it != regions_.begin());
  return std::prev(it)->second;
}

bool BuddyAllocator::CanAllocate(int64_t length) const {
  const int k = OrderOf(std::max<int64_t>(length, 1));
  return k <= kMaxOrder && (nonempty_ >> k) != 0;
}

std::optional<int64_t> BuddyAllocator::Allocate(int64_t length) {
  PAGEDKV_DCHECK(length > 0);
  if (!CanAllocate(length)) return std::nullopt;
  const int want = OrderOf(length);
  // The smallest order at or above `want` that has a free block.
  int k = want + std::countr_zero(nonempty_ >> want);
  const int64_t offset = *free_[static_cast<size_t>(k)].begin();
  Pop(k, offset);
  // Split: keep the lower half, free the upper one, until the block is 2^want.
  while (k > want) {
    --k;
    Push(k, offset + (int64_t{1} << k));
  }
  return offset;
}

void BuddyAllocator::Free(int64_t offset, int64_t length) {
  int k = OrderOf(std::max<int64_t>(length, 1));
  PAGEDKV_DCHECK(offset >= 0 && offset + (int64_t{1} << k) <= capacity_);
  PAGEDKV_DCHECK(offset % (int64_t{1} << k) == 0);
  const int top = RegionOrder(offset);
  while (k < top) {
    const int64_t buddy = offset ^ (int64_t{1} << k);
    if (!free_[static_cast<size_t>(k)].contains(buddy)) break;
    Pop(k, buddy);
    offset = std::min(offset, buddy);
    ++k;
  }
  Push(k, offset);
}

int64_t BuddyAllocator::largest_free() const {
  return nonempty_ == 0 ? 0 : int64_t{1} << (63 - std::countl_zero(nonempty_));
}

int64_t BuddyAllocator::FreeTokensInHolesSmallerThan(int64_t length) const {
  const int want = OrderOf(std::max<int64_t>(length, 1));
  int64_t total = 0;
  for (int k = 0; k < want && k <= kMaxOrder; ++k) {
    total += static_cast<int64_t>(free_[static_cast<size_t>(k)].size()) << k;
  }
  return total;
}

absl::Status BuddyAllocator::CheckInvariants() const {
  int64_t sum = 0;
  // Every free block as (offset, order), to check overlaps in address order.
  std::vector<std::pair<int64_t, int>> blocks;
  for (int k = 0; k <= kMaxOrder; ++k) {
    const std::set<int64_t>& list = free_[static_cast<size_t>(k)];
    if (list.empty() != (((nonempty_ >> k) & 1) == 0)) {
      return absl::InternalError(absl::StrCat("buddy: non-empty bit of order ", k, " is wrong"));
    }
    const int64_t size = int64_t{1} << k;
    for (int64_t off : list) {
      if (off < 0 || off + size > capacity_ || off % size != 0) {
        return absl::InternalError(absl::StrCat("buddy: free block [", off, ", +", size,
                                                ") is misaligned or outside [0, ", capacity_, ")"));
      }
      if (k > RegionOrder(off)) {
        return absl::InternalError(absl::StrCat("buddy: free block at ", off, " of order ", k,
                                                " is larger than its region"));
      }
      if (k < RegionOrder(off) && list.contains(off ^ size)) {
        return absl::InternalError(absl::StrCat("buddy: free blocks at ", off, " and ", off ^ size,
                                                " of order ", k, " were not merged"));
      }
      blocks.emplace_back(off, k);
      sum += size;
    }
  }
  std::sort(blocks.begin(), blocks.end());
  for (size_t i = 1; i < blocks.size(); ++i) {
    if (blocks[i - 1].first + (int64_t{1} << blocks[i - 1].second) > blocks[i].first) {
      return absl::InternalError(absl::StrCat("buddy: free blocks at ", blocks[i - 1].first,
                                              " and ", blocks[i].first, " overlap"));
    }
  }
  if (sum != free_tokens_) {
    return absl::InternalError(
        absl::StrCat("buddy: free token count ", free_tokens_, " != sum of free blocks ", sum));
  }
  return absl::OkStatus();
}

}  // namespace pagedkv::internal
