// RemoteTier: the block manager's side of the remote KV tier, below GPU and host. Keys are
// content addresses, pagedkv:<model fingerprint>:<kv group>:<page chain hash>; values are checked
// pages (internal/page_codec.h). A lookup is synchronous, one pipelined round trip per node,
// bounded by the timeout; a write is copied into a bounded queue and sent by a background thread,
// and dropped (counted) when the queue is full, so a slow or dead store never blocks a step.
//
//   PAGEDKV_ASSIGN_OR_RETURN(auto tier, RemoteTier::Create(config.remote, spec, block_size));
//   tier->SetGroup(0, bytes_per_block);
//   int32_t n = tier->LookupPrefix(0, chain_hashes, &hits);  // hits[0..n) verified pages
#ifndef PAGEDKV_REMOTE_REMOTE_TIER_H_
#define PAGEDKV_REMOTE_REMOTE_TIER_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "pagedkv/core/block_hash.h"
#include "pagedkv/core/model_spec.h"
#include "pagedkv/core/remote_config.h"
#include "pagedkv/core/types.h"
#include "pagedkv/remote/remote_store.h"

namespace pagedkv {

// Cumulative counters (one tier). A miss has exactly one cause.
struct RemoteTierStats {
  uint64_t lookups = 0;          // round trips made for prompts
  uint64_t lookups_skipped = 0;  // prompts with fewer pages left than min_hit_pages
  uint64_t lookup_pages = 0;     // pages asked for
  uint64_t hit_pages = 0;        // pages found and verified (loaded into the prompt's table)
  uint64_t miss_missing = 0;     // the store has no such page
  uint64_t miss_timeout = 0;     // no answer within timeout_us
  uint64_t miss_error = 0;       // store unreachable or an error reply
  uint64_t miss_corrupt = 0;     // checksum or format failure (truncated, flipped bytes)
  uint64_t miss_foreign = 0;     // a page of another model, group or geometry under the key
  uint64_t bytes_read = 0;       // K/V bytes of the verified pages
  uint64_t writes_queued = 0;    // pages accepted by the write queue
  uint64_t writes_done = 0;      // pages the store acknowledged
  uint64_t writes_dropped = 0;   // pages refused because the queue was full
  uint64_t write_errors = 0;     // pages lost to a failed write (store down, timeout)
  uint64_t bytes_written = 0;    // K/V bytes of the acknowledged pages
  uint64_t queue_bytes = 0;      // bytes waiting in the queue now
};

class RemoteTier {
 public:
  // A verified page of a lookup: pointers into the tier's buffer, valid until the next lookup.
  struct Hit {
    const TokenId* tokens = nullptr;  // block_size token ids (may be unaligned: memcpy them)
    const std::byte* page = nullptr;  // bytes_per_block K/V bytes
  };

  // Opens the store (lazily connected: a store that is down now only makes lookups miss) and
  // starts the writer thread. InvalidArgument for an invalid config.
  static absl::StatusOr<std::unique_ptr<RemoteTier>> Create(const RemoteTierConfig& config,
                                                            const ModelSpec& spec,
                                                            int32_t block_size_tokens);
  // For tests: the same over stores the caller built (one for lookups, one for the writer).
  static absl::StatusOr<std::unique_ptr<RemoteTier>> CreateWithStores(
      const RemoteTierConfig& config, const ModelSpec& spec, int32_t block_size_tokens,
      std::unique_ptr<RemoteStore> lookup_store, std::unique_ptr<RemoteStore> write_store);
  // Stops the writer; pages still queued are dropped (and counted).
  ~RemoteTier();
  RemoteTier(const RemoteTier&) = delete;
  RemoteTier& operator=(const RemoteTier&) = delete;

  // Declares KV group `group` with its page size; groups must be declared before use.
  void SetGroup(int32_t group, uint64_t bytes_per_block);

  // The store key of a page.
  std::string Key(int32_t group, const BlockHash& chain) const;

  // Looks up the pages with these chain hashes (consecutive pages of one prompt, in order) and
  // returns how many leading ones were found and verified; (*hits)[0, n) point at them. The page
  // token ids must still be compared with the prompt by the caller. Counts the outcome of every
  // page asked for; logs the first miss of each cause.
  int32_t LookupPrefix(int32_t group, absl::Span<const BlockHash> chain, std::vector<Hit>* hits);
  // True (and counted) when a lookup of `remaining_pages` pages is worth a round trip.
  bool WorthLookup(int32_t remaining_pages);

  // Copies a page into the write queue; false (counted as dropped) when the queue is full.
  bool Enqueue(int32_t group, const BlockHash& chain, absl::Span<const TokenId> tokens,
               const std::byte* page);
  // Waits until every queued page was written or failed, or until `timeout`; true when empty.
  // Tests and orderly shutdowns use it; steps never wait.
  bool Flush(absl::Duration timeout);

  RemoteTierStats stats() const;
  const RemoteTierConfig& config() const { return config_; }
  std::string Describe() const;
  uint64_t model_fingerprint() const { return fingerprint_; }

 private:
  RemoteTier(const RemoteTierConfig& config, uint64_t fingerprint, int32_t block_size, DType dtype,
             std::unique_ptr<RemoteStore> lookup_store, std::unique_ptr<RemoteStore> write_store);
  void WriterLoop();
  void LogOnce(int cause, const std::string& message);

  struct QueuedPage {
    std::string key;
    std::string value;
  };

  const RemoteTierConfig config_;
  const uint64_t fingerprint_;
  const int32_t block_size_;
  const DType dtype_;
  std::vector<uint64_t> bytes_per_block_;  // [group]
  std::unique_ptr<RemoteStore> lookup_store_;
  std::unique_ptr<RemoteStore> write_store_;  // used by the writer thread only

  // Lookup state (the manager's thread).
  std::vector<std::string> keys_;
  std::vector<RemoteStore::Value> values_;
  RemoteTierStats lookup_stats_;

  // The write queue, shared with the writer thread.
  mutable std::mutex mu_;
  std::condition_variable work_;  // queue not empty, or stopping
  std::condition_variable idle_;  // queue empty and nothing in flight
  std::deque<QueuedPage> queue_;  // guarded by mu_
  uint64_t queue_bytes_ = 0;      // guarded by mu_
  bool in_flight_ = false;        // guarded by mu_
  bool stopping_ = false;         // guarded by mu_
  RemoteTierStats write_stats_;   // guarded by mu_
  std::atomic<uint32_t> logged_causes_{0};
  std::thread writer_;
};

// The fingerprint of a model's K/V for the remote tier: its name and everything that shapes its
// pages (layers and their kinds, KV heads, head dim, dtype) and the block size. Engines serving
// different weights under one name must use different names or extra keys.
uint64_t RemoteModelFingerprint(const ModelSpec& spec, int32_t block_size_tokens);

}  // namespace pagedkv

#endif  // PAGEDKV_REMOTE_REMOTE_TIER_H_
