// RemotePrefixStore: the shared remote KV tier of a simulated cluster, modelled by its capacity
// (pages, least recently used dropped first). Pages are content-addressed by a 64-bit chain hash of
// their tokens and every token before them; no K/V bytes are kept (a simulation moves none). The
// time a load takes is charged by the replica (bandwidth and latency, cluster.h).
//
//   RemotePrefixStore store(/*capacity_pages=*/1000, /*block_size_tokens=*/16);
//   store.Insert(prompt);                       // its full pages, after the prefill
//   int32_t pages = store.MatchPages(prompt, 2);  // consecutive pages held from page 2 on
#ifndef PAGEDKV_SCHEDULER_INTERNAL_REMOTE_TIER_H_
#define PAGEDKV_SCHEDULER_INTERNAL_REMOTE_TIER_H_

#include <cstdint>
#include <list>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/types/span.h"
#include "pagedkv/core/types.h"
#include "pagedkv/scheduler/policy.h"

namespace pagedkv::internal {

// Page lifecycle: absent -> held (Insert; most recently used) -> absent (evicted as the least
// recently used when a new page needs room). MatchPages refreshes what it finds. Invariant:
// index_ and lru_ hold the same keys, at most capacity_pages of them.
class RemotePrefixStore final : public SharedPrefixStore {
 public:
  RemotePrefixStore(int64_t capacity_pages, int32_t block_size_tokens);

  int32_t MatchPages(absl::Span<const TokenId> tokens, int32_t first_page) override;
  // Stores the full pages of `tokens` (those already held are refreshed).
  void Insert(absl::Span<const TokenId> tokens);

  int64_t num_pages() const { return static_cast<int64_t>(lru_.size()); }
  int64_t capacity_pages() const { return capacity_pages_; }
  int64_t evicted_pages() const { return evicted_pages_; }
  bool CheckInvariants() const;

 private:
  // Chain keys of the first `num_pages` full pages.
  std::vector<uint64_t> PageKeys(absl::Span<const TokenId> tokens, int64_t num_pages) const;
  void Touch(uint64_t key);

  int64_t capacity_pages_;
  int32_t block_size_;
  std::list<uint64_t> lru_;  // front = most recently used
  absl::flat_hash_map<uint64_t, std::list<uint64_t>::iterator> index_;
  int64_t evicted_pages_ = 0;
};

}  // namespace pagedkv::internal

#endif  // PAGEDKV_SCHEDULER_INTERNAL_REMOTE_TIER_H_
