#include "internal/remote_tier.h"

#include <algorithm>

namespace pagedkv::internal {
namespace {

uint64_t Mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 31;
  return x;
}

}  // namespace

RemotePrefixStore::RemotePrefixStore(int64_t capacity_pages, int32_t block_size_tokens)
    : capacity_pages_(std::max<int64_t>(capacity_pages, 0)),
      block_size_(std::max(block_size_tokens, 1)) {}

std::vector<uint64_t> RemotePrefixStore::PageKeys(absl::Span<const TokenId> tokens,
                                                  int64_t num_pages) const {
  std::vector<uint64_t> keys(static_cast<size_t>(num_pages));
  uint64_t chain = 0x9E3779B97F4A7C15ull;
  for (int64_t p = 0; p < num_pages; ++p) {
    uint64_t h = chain;
    for (int32_t i = 0; i < block_size_; ++i) {
      h = Mix(h ^ static_cast<uint64_t>(tokens[static_cast<size_t>(p * block_size_ + i)]));
    }
    keys[static_cast<size_t>(p)] = chain = h;
  }
  return keys;
}

void RemotePrefixStore::Touch(uint64_t key) {
  auto it = index_.find(key);
  if (it != index_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  if (capacity_pages_ == 0) return;
  if (static_cast<int64_t>(lru_.size()) >= capacity_pages_) {
    index_.erase(lru_.back());
    lru_.pop_back();
    ++evicted_pages_;
  }
  lru_.push_front(key);
  index_.emplace(key, lru_.begin());
}

int32_t RemotePrefixStore::MatchPages(absl::Span<const TokenId> tokens, int32_t first_page) {
  const int64_t full = static_cast<int64_t>(tokens.size()) / block_size_;
  if (first_page < 0 || first_page >= full || lru_.empty()) return 0;
  const std::vector<uint64_t> keys = PageKeys(tokens, full);
  int64_t end = first_page;
  while (end < full && index_.contains(keys[static_cast<size_t>(end)])) ++end;
  // Refreshed last page first, so a chain's head stays the most recently used (an evicted head
  // would make every page after it unreachable).
  for (int64_t p = end - 1; p >= first_page; --p) Touch(keys[static_cast<size_t>(p)]);
  return static_cast<int32_t>(end - first_page);
}

void RemotePrefixStore::Insert(absl::Span<const TokenId> tokens) {
  const int64_t full = static_cast<int64_t>(tokens.size()) / block_size_;
  if (full == 0 || capacity_pages_ == 0) return;
  const std::vector<uint64_t> keys = PageKeys(tokens, full);
  for (auto it = keys.rbegin(); it != keys.rend(); ++it) Touch(*it);
}

bool RemotePrefixStore::CheckInvariants() const {
  if (lru_.size() != index_.size()) return false;
  if (static_cast<int64_t>(lru_.size()) > capacity_pages_) return false;
  for (uint64_t key : lru_) {
    if (!index_.contains(key)) return false;
  }
  return true;
}

}  // namespace pagedkv::internal
