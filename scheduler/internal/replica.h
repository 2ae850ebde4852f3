// Replica: one simulated serving engine (a KvCachePolicy, a Scheduler, the step-time model and a
// MetricsCollector) on its own virtual clock. The Simulator drives one; the cluster driver
// (cluster.cc) drives N behind a router, stepping whichever replica's clock is earliest.
//
//   Replica::Shared shared{&workload, &records, nullptr, {}};
//   PAGEDKV_ASSIGN_OR_RETURN(auto r, Replica::Create(0, config, sizing, shared));
//   PAGEDKV_RETURN_IF_ERROR(r->Enqueue(i));
//   while (r->HasWork()) PAGEDKV_ASSIGN_OR_RETURN(Replica::StepResult s, r->Step(false));
#ifndef PAGEDKV_SCHEDULER_INTERNAL_REPLICA_H_
#define PAGEDKV_SCHEDULER_INTERNAL_REPLICA_H_

#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "internal/remote_tier.h"
#include "pagedkv/scheduler/cluster.h"
#include "pagedkv/scheduler/metrics.h"
#include "pagedkv/scheduler/policy.h"
#include "pagedkv/scheduler/scheduler.h"
#include "pagedkv/scheduler/simulator.h"
#include "pagedkv/scheduler/step_time_model.h"

namespace pagedkv::internal {

// Lifecycle: idle (!HasWork(); its clock waits) -> busy (HasWork(), stepped by the driver) ->
// blocked (HasWork() but nothing schedulable until another request arrives; Enqueue unblocks) ->
// ... The clock only moves forward: Enqueue moves an idle replica's clock to the arrival.
class Replica {
 public:
  // State the driver owns and every replica writes into.
  struct Shared {
    const Workload* workload = nullptr;
    std::vector<RequestRecord>* records = nullptr;  // indexed like workload->requests
    RemotePrefixStore* remote = nullptr;            // may be null
    RemoteTierConfig remote_config;
  };
  enum class StepResult : uint8_t {
    kStepped,  // a step ran; now() advanced
    kNoop,     // only preemptions or rejections happened (the clock did not move)
    kBlocked,  // nothing schedulable until a new request arrives
  };

  static absl::StatusOr<std::unique_ptr<Replica>> Create(int32_t id, const SimulatorConfig& config,
                                                         const SimulatorSizing& sizing,
                                                         Shared shared);

  // Queues the workload's request `record` (its arrival time is the record's). Its prompt
  // (PromptTokenIds) is made only when the scheduler first considers admitting it.
  absl::Status Enqueue(size_t record);
  // Plans, times and completes one step at now(). `more_arrivals`: whether the workload still has
  // requests to route (else an unschedulable replica is a stall: Internal error after 3 tries).
  absl::StatusOr<StepResult> Step(bool more_arrivals);

  bool HasWork() const { return sched_->HasWork(); }
  bool blocked() const { return blocked_; }
  double now() const { return now_; }
  int32_t id() const { return id_; }
  // Requests routed here and not yet finished or rejected.
  int64_t outstanding() const { return outstanding_; }
  // Requests finished or rejected here (progress).
  int64_t done() const { return done_; }
  int32_t CachedPrefixTokens(absl::Span<const TokenId> tokens) const {
    return policy_->CachedPrefixTokens(tokens);
  }
  // The memory state during the last step (zeros but the capacity once the replica is idle).
  const TimelineRow& last_row() const { return last_row_; }
  int64_t last_batch() const { return last_batch_; }

  // This replica's summary over `records` (the requests routed to it); fills the policy-derived
  // fields and the step-derived ones from its own metrics.
  PolicySummary Summarize(absl::Span<const RequestRecord> records) const;
  const std::vector<TimelineRow>& timeline() const { return metrics_.timeline(); }
  // Fills the policy counters of `s` (prefix and remote hits, swap and copy bytes, ...).
  void FillCounters(PolicySummary& s) const;
  const KvPolicyCounters counters() const { return policy_->counters(); }
  int64_t total_preemptions() const { return sched_->total_preemptions(); }
  int64_t capacity_tokens() const { return policy_->MemoryStats(nullptr).capacity_tokens; }
  int64_t prompt_tokens_computed() const { return prompt_tokens_computed_; }
  // After the run: fills the preemption counts of requests that never completed.
  void FinishRecords();

 private:
  Replica(int32_t id, const SimulatorConfig& config, Shared shared,
          std::unique_ptr<KvCachePolicy> policy);

  int32_t id_;
  SimulatorConfig config_;
  Shared shared_;
  std::unique_ptr<KvCachePolicy> policy_;
  std::unique_ptr<Scheduler> sched_;
  StepTimeModel time_model_;
  MetricsCollector metrics_;
  std::mt19937_64 rng_;
  absl::flat_hash_map<uint64_t, size_t> index_;  // request id -> record
  // Requests whose prompt pages go to the remote tier when their prefill ends.
  absl::flat_hash_set<uint64_t> remote_pending_;
  std::vector<uint64_t> routed_;  // request ids, in arrival order
  StepSamples samples_;
  KvPolicyCounters last_counters_;
  TimelineRow last_row_;
  int64_t last_batch_ = 0;
  double now_ = 0;
  bool started_ = false;
  bool blocked_ = false;
  int empty_steps_ = 0;
  int64_t outstanding_ = 0;
  int64_t done_ = 0;
  int64_t prompt_tokens_computed_ = 0;
};

}  // namespace pagedkv::internal

#endif  // PAGEDKV_SCHEDULER_INTERNAL_REPLICA_H_
