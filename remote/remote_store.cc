// OpenRemoteStore: the one place that picks a RemoteStore backend for a url.
#include "pagedkv/remote/remote_store.h"

#include <memory>

#include "pagedkv/remote/memory_store.h"
#include "remote/internal/redis_store.h"

namespace pagedkv {

absl::StatusOr<std::unique_ptr<RemoteStore>> OpenRemoteStore(const RemoteUrl& url) {
  switch (url.kind) {
    case RemoteUrl::Kind::kMemory:
      return std::unique_ptr<RemoteStore>(std::make_unique<MemoryStore>(url.memory_name));
    case RemoteUrl::Kind::kRedis:
    case RemoteUrl::Kind::kRedisCluster:
      return internal::MakeRedisStore(url);
  }
  return absl::InvalidArgumentError("remote url of an unknown kind");
}

}  // namespace pagedkv
