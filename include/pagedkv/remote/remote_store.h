// RemoteStore: a content-addressed byte store that several engines share (the remote KV tier:
// one Redis server, a Redis Cluster, or an in-process store). Batched by design: one MultiGet or
// MultiSet carries many pages in one pipelined round trip per node, never one per page.
//
//   PAGEDKV_ASSIGN_OR_RETURN(auto store,
//   OpenRemoteStore(*ParseRemoteUrl("redis://127.0.0.1:6379"))); std::vector<RemoteStore::Value>
//   got; store->MultiGet(keys, absl::Milliseconds(20), &got);   // got[i].outcome == kHit:
//   got[i].bytes
#ifndef PAGEDKV_REMOTE_REMOTE_STORE_H_
#define PAGEDKV_REMOTE_REMOTE_STORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "pagedkv/core/remote_config.h"

namespace pagedkv {

class RemoteStore {
 public:
  // What one key's lookup found. Anything but kHit is a miss with its cause.
  enum class Outcome : uint8_t {
    kHit = 0,
    kMissing = 1,  // the store answered: no such key
    kTimeout = 2,  // no answer before the deadline
    kError = 3,    // unreachable node, protocol error, redirect that could not be followed
  };
  struct Value {
    Outcome outcome = Outcome::kMissing;
    std::string bytes;  // kHit only
  };
  struct Item {
    std::string key;
    std::string bytes;
  };

  virtual ~RemoteStore() = default;

  // Looks up every key; (*out)[i] answers keys[i]. Never fails as a whole: a node that cannot be
  // reached, or does not answer within `timeout` (for the whole call), turns its keys into
  // kError or kTimeout. Thread-compatible: one caller at a time.
  virtual void MultiGet(absl::Span<const std::string> keys, absl::Duration timeout,
                        std::vector<Value>* out) = 0;
  // Stores every item with an expiry (ttl_seconds > 0) in one pipelined round trip per node.
  // Unavailable (node down), DeadlineExceeded (timeout) or Internal (an error reply) for the
  // first failure; items before it may be stored. Thread-compatible.
  virtual absl::Status MultiSet(absl::Span<const Item> items, int64_t ttl_seconds,
                                absl::Duration timeout) = 0;
  // "redis://127.0.0.1:6379", "redis+cluster (3 masters)", ...
  virtual std::string Describe() const = 0;
};

// The store a url names (RemoteUrl from ParseRemoteUrl). Connecting is lazy: a store that is down
// now is not an error here (its lookups miss until it comes up). InvalidArgument for a url the
// build cannot serve (redis:// without hiredis).
absl::StatusOr<std::unique_ptr<RemoteStore>> OpenRemoteStore(const RemoteUrl& url);

}  // namespace pagedkv

#endif  // PAGEDKV_REMOTE_REMOTE_STORE_H_
