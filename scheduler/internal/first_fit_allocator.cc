#include "internal/first_fit_allocator.h"

#include "absl/strings/str_cat.h"
#include "pagedkv/core/check.h"

namespace pagedkv::internal {

FirstFitAllocator::FirstFitAllocator(int64_t capacity_tokens)
    : capacity_(capacity_tokens), free_tokens_(0) {
  if (capacity_tokens > 0) Insert(0, capacity_tokens);
}

void FirstFitAllocator::Insert(int64_t offset, int64_t length) {
  free_.emplace(offset, length);
  lengths_.insert(length);
  free_tokens_ += length;
}

void FirstFitAllocator::Erase(std::map<int64_t, int64_t>::iterator it) {
  lengths_.erase(lengths_.find(it->second));
  free_tokens_ -= it->second;
  free_.erase(it);
}

std::optional<int64_t> FirstFitAllocator::Allocate(int64_t length) {
  PAGEDKV_DCHECK(length > 0);
  if (largest_free() < length) return std::nullopt;
  for (auto it = free_.begin(); it != free_.end(); ++it) {
    if (it->second < length) continue;
    const int64_t offset = it->first;
    const int64_t rest = it->second - length;
    Erase(it);
    if (rest > 0) Insert(offset + length, rest);
    return offset;
  }
  return std::nullopt;
}

void FirstFitAllocator::Free(int64_t offset, int64_t length) {
  PAGEDKV_DCHECK(length > 0 && offset >= 0 && offset + length <= capacity_);
  int64_t start = offset;
  int64_t end = offset + length;
  auto next = free_.lower_bound(offset);
  if (next != free_.end() && next->first == end) {
    end += next->second;
    auto after = std::next(next);
    Erase(next);
    next = after;
  }
  if (next != free_.begin()) {
    auto prev = std::prev(next);
    PAGEDKV_DCHECK(prev->first + prev->second <= start);
    if (prev->first + prev->second == start) {
      start = prev->first;
      Erase(prev);
    }
  }
  Insert(start, end - start);
}

bool FirstFitAllocator::TryExtend(int64_t offset, int64_t old_length, int64_t new_length) {
  if (new_length <= old_length) return true;
  auto it = free_.find(offset + old_length);
  const int64_t grow = new_length - old_length;
  if (it == free_.end() || it->second < grow) return false;
  const int64_t rest = it->second - grow;
  Erase(it);
  if (rest > 0) Insert(offset + new_length, rest);
  return true;
}

bool FirstFitAllocator::CanExtend(int64_t offset, int64_t old_length, int64_t new_length) const {
  if (new_length <= old_length) return true;
  auto it = free_.find(offset + old_length);
  return it != free_.end() && it->second >= new_length - old_length;
}

int64_t FirstFitAllocator::FreeTokensInHolesSmallerThan(int64_t length) const {
  int64_t total = 0;
  for (const auto& [offset, len] : free_) {
    if (len < length) total += len;
  }
  return total;
}

absl::Status FirstFitAllocator::CheckInvariants() const {
  int64_t sum = 0;
  int64_t prev_end = -1;
  for (const auto& [offset, len] : free_) {
    if (len <= 0 || offset < 0 || offset + len > capacity_) {
      return absl::InternalError(
          absl::StrCat("free extent [", offset, ", +", len, ") outside [0, ", capacity_, ")"));
    }
    if (offset <= prev_end) {
      return absl::InternalError(absl::StrCat(
          "free extent at ", offset, " overlaps or touches the previous one ending at ", prev_end));
    }
    prev_end = offset + len;
    sum += len;
  }
  if (sum != free_tokens_ || static_cast<size_t>(lengths_.size()) != free_.size()) {
    return absl::InternalError(absl::StrCat("free token count ", free_tokens_, " != sum ", sum));
  }
  return absl::OkStatus();
}

}  // namespace pagedkv::internal
