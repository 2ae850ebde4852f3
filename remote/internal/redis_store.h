// The Redis backend of RemoteStore (redis_store.cc), made by OpenRemoteStore for redis:// and
// redis+cluster:// urls. Internal to remote/.
#ifndef PAGEDKV_REMOTE_INTERNAL_REDIS_STORE_H_
#define PAGEDKV_REMOTE_INTERNAL_REDIS_STORE_H_

#include <memory>

#include "pagedkv/remote/remote_store.h"

namespace pagedkv::internal {

std::unique_ptr<RemoteStore> MakeRedisStore(const RemoteUrl& url);

}  // namespace pagedkv::internal

#endif  // PAGEDKV_REMOTE_INTERNAL_REDIS_STORE_H_
