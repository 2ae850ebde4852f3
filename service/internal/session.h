// Session: one engine's view of a model on the server: its own sequence ids, its quota use, its
// lease. Created by OpenSession, owned by the SessionRegistry (shared with in-flight calls).
//
// Lifecycle (predicates; the calls that move between them):
//   open       open == true, in the registry        Step / KeepAlive renew the lease
//   closed     open == false, not in the registry   CloseSession: every sequence freed at once
//   expired    open == false, not in the registry   the reaper, once now >= deadline_ns: the
//              sequences its last Step named move to the model's quarantine, the rest are freed
// A call that found the session before it left the registry sees open == false under the model
// lock and answers NOT_FOUND, like any unknown session.
#ifndef PAGEDKV_SERVICE_INTERNAL_SESSION_H_
#define PAGEDKV_SERVICE_INTERNAL_SESSION_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "pagedkv/core/types.h"
#include "service/internal/block_ledger.h"

namespace pagedkv::service::internal {

class ModelHost;

inline constexpr size_t kSecretBytes = 16;
using Secret = std::array<uint8_t, kSecretBytes>;

struct Session {
  // ---- Immutable after OpenSession ----
  uint64_t id = 0;
  Secret secret{};
  std::string client_name;
  ModelHost* model = nullptr;
  // Mixed into every sequence's extra_key: the prefix-cache namespace (equal for sessions that
  // named the same namespace, unique otherwise).
  uint64_t cache_salt = 0;
  uint32_t gpu_quota = 0;  // blocks; the pool size when the request said 0
  uint32_t host_quota = 0;
  int64_t lease_ns = 0;

  // ---- Any thread ----
  // now + lease at the last authenticated call; the reaper expires the session after it.
  std::atomic<int64_t> deadline_ns{0};

  // ---- Guarded by model->mu() ----
  bool open = true;
  // Client sequence id -> the manager's SeqId.
  absl::flat_hash_map<uint64_t, SeqId> seqs;
  // Distinct blocks its sequences hold (quota use).
  BlockLedger ledger;
  // Manager ids named by the last Step (ops and batch): what a dead client may still write.
  std::vector<SeqId> last_step_seqs;
  uint64_t steps = 0;
};

}  // namespace pagedkv::service::internal

#endif  // PAGEDKV_SERVICE_INTERNAL_SESSION_H_
