// SessionRegistry: the open sessions by id, their secrets, and the session counters. Its lock is
// held only for map operations; it is never taken while holding it a model lock is acquired
// (lock order: a model's mu, then the registry's).
//
//   PAGEDKV_ASSIGN_OR_RETURN(std::shared_ptr<Session> s, registry.Authenticate(request.session()));
#ifndef PAGEDKV_SERVICE_INTERNAL_SESSION_REGISTRY_H_
#define PAGEDKV_SERVICE_INTERNAL_SESSION_REGISTRY_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "pagedkv/v1/kvcache.pb.h"
#include "service/internal/session.h"

namespace pagedkv::service::internal {

struct SessionCounters {
  uint64_t opened = 0;
  uint64_t closed = 0;
  uint64_t expired = 0;
  uint64_t quarantines_released = 0;  // sequences
};

class SessionRegistry {
 public:
  // Assigns the id and a fresh random secret, and registers the session. ResourceExhausted when
  // max_sessions are open.
  absl::StatusOr<std::shared_ptr<Session>> Add(std::shared_ptr<Session> session,
                                               int64_t max_sessions);
  // The open session `ref` names when its secret matches (compared in constant time). NotFound
  // with the same message for an unknown id and a wrong secret: a caller learns nothing about
  // other sessions.
  absl::StatusOr<std::shared_ptr<Session>> Authenticate(const v1::SessionRef& ref) const;
  // Removes a session that was closed or expired (its sequences already released).
  void Remove(uint64_t id, bool expired);
  // Sessions whose deadline is <= now_ns.
  std::vector<std::shared_ptr<Session>> Expired(int64_t now_ns) const;
  std::vector<std::shared_ptr<Session>> All() const;

  void CountQuarantineReleases(int64_t n);
  SessionCounters counters() const;
  int64_t size() const;

 private:
  mutable std::mutex mu_;
  absl::flat_hash_map<uint64_t, std::shared_ptr<Session>> sessions_;  // guarded by mu_
  uint64_t next_id_ = 1;                                              // guarded by mu_
  SessionCounters counters_;                                          // guarded by mu_
};

// Equal-length byte strings compared without an early exit (secrets and bearer tokens).
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace pagedkv::service::internal

#endif  // PAGEDKV_SERVICE_INTERNAL_SESSION_REGISTRY_H_
