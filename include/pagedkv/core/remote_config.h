// RemoteTierConfig: the shared KV tier below GPU and host (a Redis server or cluster, or an
// in-process store for tests), as CacheConfig::remote. Empty url = no remote tier.
//
//   CacheConfig cfg;
//   cfg.remote.url = "redis+cluster://10.0.0.5:7000,10.0.0.6:7000";
//   cfg.remote.admit_hits = 2;  // write a page once it was reused twice
#ifndef PAGEDKV_CORE_REMOTE_CONFIG_H_
#define PAGEDKV_CORE_REMOTE_CONFIG_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace pagedkv {

struct RemoteTierConfig {
  // redis://HOST:PORT (one server), redis+cluster://HOST:PORT[,HOST:PORT...] (seed nodes of a
  // Redis Cluster; the slot map is read from them), or memory://NAME (an in-process store shared
  // by the managers of one process that name it; tests and demos). Empty: no remote tier.
  std::string url;
  // Deadline of one lookup round trip (all nodes) and of one write batch, microseconds. A lookup
  // that misses it is a miss: the engine recomputes those tokens.
  int64_t timeout_us = 20000;
  // Expiry of written pages, seconds; 0 = never.
  int64_t ttl_seconds = 3600;
  // A published page leaving the host tier is written when it was reused (taken as a prefix hit)
  // at least this many times; 0 = every published page.
  int32_t admit_hits = 1;
  // Bytes of pages waiting to be written; a page that does not fit is dropped (and counted), so a
  // slow store never blocks a step.
  uint64_t queue_bytes = 256ull << 20;
  // A lookup is made only when at least this many pages of the prompt remain after the local hits
  // (a round trip for one page rarely pays off).
  int32_t min_hit_pages = 1;

  bool enabled() const { return !url.empty(); }
  // InvalidArgument naming the field, its value and the valid range (the url is parsed).
  absl::Status Validate() const;
};

// A parsed remote url.
struct RemoteEndpoint {
  std::string host;
  int32_t port = 0;
};
struct RemoteUrl {
  enum class Kind : uint8_t { kRedis, kRedisCluster, kMemory };
  Kind kind = Kind::kRedis;
  std::vector<RemoteEndpoint> endpoints;  // redis: one; redis+cluster: the seeds
  std::string memory_name;                // memory://NAME
};
// InvalidArgument with the accepted forms for anything else.
absl::StatusOr<RemoteUrl> ParseRemoteUrl(std::string_view url);

}  // namespace pagedkv

#endif  // PAGEDKV_CORE_REMOTE_CONFIG_H_
