// ModelHost: one served model: its BlockManager (metadata only: the service never touches K/V
// bytes), the pools the engines share (one per KV group and tier, memfd-backed host memory), the
// quarantine of expired sessions' sequences, and the lock that makes each Step atomic.
//
//   std::unique_lock lock(host.mu(), std::defer_lock);
//   if (!lock.try_lock_until(deadline)) return DeadlineExceeded;
//   host.bm().AppendTokenBatch(...);
//
// Quarantine entries (predicates): held: the sequence is still in the manager, tracked by
// quarantine_ledger(), release_ns in the future -> ReleaseDue(now >= release_ns) frees it.
#ifndef PAGEDKV_SERVICE_INTERNAL_MODEL_HOST_H_
#define PAGEDKV_SERVICE_INTERNAL_MODEL_HOST_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "pagedkv/allocator/memory_pool.h"
#include "pagedkv/block_manager/block_manager.h"
#include "pagedkv/service/server.h"
#include "pagedkv/v1/kvcache.pb.h"
#include "service/internal/block_ledger.h"

namespace pagedkv::service::internal {

struct Session;

// Manager SeqIds start here, far from any count a message could contain, so that a status
// message's ids can be rewritten into the session's own ids without touching other numbers.
inline constexpr SeqId kFirstManagerSeqId = SeqId{1} << 40;

struct ModelCounters {
  uint64_t steps = 0;
  uint64_t ops = 0;
  uint64_t failed_ops = 0;
  uint64_t quarantined_total = 0;  // sequences ever quarantined
  uint64_t executed_cache_op_bytes = 0;
};

class ModelHost {
 public:
  static absl::StatusOr<std::unique_ptr<ModelHost>> Create(const ModelOptions& options);

  // ---- Immutable after Create (any thread) ----
  const std::string& name() const { return name_; }
  const v1::ModelDescription& description() const { return description_; }
  int32_t block_size() const { return block_size_; }
  int32_t num_groups() const { return num_groups_; }
  uint32_t gpu_blocks() const { return gpu_blocks_; }
  uint32_t host_blocks() const { return host_blocks_; }
  // The handle message of the pool socket and the descriptors it indexes (owned by the pools).
  void FillPoolHandles(v1::PoolHandles* out, std::vector<int>* fds) const;
  // Whether the server runs each step's CacheOps itself: every pool is host memory it can
  // reach. Moves between pools shared by several engines must be ordered with every session's
  // later steps: once TakeCacheOps returns, the manager may hand a source page to another
  // session, so an engine running the move later could copy someone else's data.
  bool executes_cache_ops() const { return executes_cache_ops_; }

  // ---- The lock and what it guards ----
  std::timed_mutex& mu() { return mu_; }
  BlockManager& bm() { return *bm_; }
  const BlockManager& bm() const { return *bm_; }
  SeqId NewSeqId() { return next_seq_++; }
  ModelCounters& counters() { return counters_; }
  int64_t open_sessions = 0;

  // Runs `ops` on the pools (all swap_out, then swap_in, then copies). Requires
  // executes_cache_ops(); an error is a bug (the manager names valid, distinct blocks).
  absl::Status ExecuteCacheOps(const CacheOps& ops);

  // Moves `seq` (tracked by `from`) into the quarantine until release_ns.
  void Quarantine(SeqId seq, BlockLedger& from, int64_t release_ns);
  // Frees every quarantined sequence due at now_ns; returns how many.
  int64_t ReleaseDue(int64_t now_ns);
  const BlockLedger& quarantine_ledger() const { return quarantine_ledger_; }
  int64_t num_quarantined() const { return static_cast<int64_t>(quarantine_.size()); }

  void FillStats(v1::ModelStats* out) const;
  // The manager's invariants; every session's ledger against the manager; the quarantine's; and
  // that the manager holds exactly the sessions' and the quarantine's sequences (no orphan).
  absl::Status CheckInvariants(const std::vector<const Session*>& sessions) const;

 private:
  ModelHost() = default;

  std::string name_;
  v1::ModelDescription description_;
  int32_t block_size_ = 0;
  int32_t num_groups_ = 0;
  uint32_t gpu_blocks_ = 0;
  uint32_t host_blocks_ = 0;
  bool executes_cache_ops_ = false;
  std::vector<std::unique_ptr<MemoryPool>> gpu_pools_;   // [group]
  std::vector<std::unique_ptr<MemoryPool>> host_pools_;  // [group]; empty without a host tier

  std::timed_mutex mu_;
  std::unique_ptr<BlockManager> bm_;
  SeqId next_seq_ = kFirstManagerSeqId;
  ModelCounters counters_;
  struct Held {
    SeqId seq;
    int64_t release_ns;
  };
  std::deque<Held> quarantine_;  // release_ns non-decreasing
  BlockLedger quarantine_ledger_;
};

}  // namespace pagedkv::service::internal

#endif  // PAGEDKV_SERVICE_INTERNAL_MODEL_HOST_H_
