// Metrics of one simulated policy run and the files they are written to: the per-policy summary
// (summary.json), the sampled memory timeline (timeline.csv) and per-request latencies
// (requests.csv). Column and key names are the contract with the report writer (report.h).
//
//   MetricsCollector m(/*max_timeline_rows=*/1000);
//   m.AddStep(row, /*step_seconds=*/0.02);  ...  PolicySummary s = m.Summarize(...);
//   PAGEDKV_RETURN_IF_ERROR(WriteSimulationOutputs("results/", info, results));
#ifndef PAGEDKV_SCHEDULER_METRICS_H_
#define PAGEDKV_SCHEDULER_METRICS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "pagedkv/scheduler/scheduler.h"

namespace pagedkv {

// One step's state, sampled into timeline.csv. Token counts are KV slots (all layers).
struct TimelineRow {
  int64_t step = 0;
  double time_s = 0;    // virtual time at the end of the step
  int64_t running = 0;  // sequences in the running batch
  int64_t waiting = 0;  // requests waiting
  int64_t swapped = 0;  // requests swapped out
  int64_t batch_tokens = 0;
  int64_t capacity_tokens = 0;
  int64_t used_tokens = 0;
  int64_t reserved_unused_tokens = 0;
  int64_t internal_frag_tokens = 0;
  int64_t external_frag_tokens = 0;
  int64_t rounding_tokens = 0;  // buddy blocks past their reservation
  int64_t shared_saved_tokens = 0;
  int64_t preemptions_total = 0;
};

// One request's fate. Times are virtual seconds from the workload start; -1 when not reached.
struct RequestRecord {
  uint64_t request_id = 0;
  double arrival_s = 0;
  double first_token_s = -1;
  double finish_s = -1;
  int32_t prompt_tokens = 0;
  int32_t output_tokens = 0;  // per sequence
  int32_t num_seqs = 1;       // n or beam width
  int32_t preemptions = 0;
  // Prompt tokens found cached (prefix cache, then the remote tier) when the request was first
  // admitted; re-admissions after a preemption do not count again. -1 = never admitted.
  int32_t prefix_cached_tokens = -1;
  int32_t replica = 0;             // the replica the router sent it to
  bool rejected = false;           // could never run (too long, or larger than the memory)
  bool rejected_too_long = false;  // of those: prompt + output > max_model_len
  RejectCause reject_cause = RejectCause::kMemory;  // why, when rejected
  bool completed() const { return finish_s >= 0; }
  double ttft_s() const { return first_token_s >= 0 ? first_token_s - arrival_s : -1; }
  // Time per output token after the first; 0 for single-token outputs.
  double tpot_s() const {
    return completed() && output_tokens > 1 ? (finish_s - first_token_s) / (output_tokens - 1) : 0;
  }
};

// summary.json's per-policy object (per run: a policy under one router), and the object of each
// replica of a cluster run. Fractions are of capacity_tokens; *_mean are means over steps
// weighted by step duration (a cluster: over its timeline, summed across replicas).
struct PolicySummary {
  std::string policy;
  std::string router;          // cluster runs: the router; "" for one replica
  int32_t replica = -1;        // per-replica objects: the replica index; -1 for a run's object
  int64_t requests_total = 0;  // requests of the workload (routed to it, for a replica)
  int64_t requests_completed = 0;
  int64_t requests_rejected = 0;               // every rejection
  int64_t requests_rejected_too_long = 0;      // of those: prompt + output > max_model_len
  int64_t requests_rejected_memory = 0;        // larger than the whole KV memory
  int64_t requests_rejected_watermark = 0;     // fit the memory but not above the watermark
  int64_t requests_rejected_token_budget = 0;  // > max_num_batched_tokens (see RejectCause)
  int64_t requests_rejected_max_num_seqs = 0;  // n or beams > max_num_seqs
  double makespan_s = 0;                       // first arrival to last completion
  double throughput_requests_per_s = 0;
  double throughput_tokens_per_s = 0;        // output tokens
  double throughput_total_tokens_per_s = 0;  // prompt + output tokens
  double ttft_p50_s = 0, ttft_p90_s = 0, ttft_p99_s = 0;
  double tpot_p50_s = 0, tpot_p90_s = 0, tpot_p99_s = 0;
  double mean_batch_size = 0;  // sequences per step
  int64_t max_batch_size = 0;
  double kv_utilization_mean = 0;  // used_tokens / capacity
  double kv_utilization_max = 0;
  double internal_fragmentation_mean = 0;
  double reserved_unused_mean = 0;
  double external_fragmentation_mean = 0;
  double rounding_mean = 0;                // buddy blocks past their reservation / capacity
  double pages_saved_by_sharing_mean = 0;  // shared_saved_tokens / capacity
  // Prompt tokens served from the prefix cache (and the remote tier) / prompt tokens looked up,
  // at every admission (a request re-admitted after a preemption is looked up again).
  double prefix_hit_rate = 0;
  // First admissions only: sum of RequestRecord::prefix_cached_tokens / prompt tokens of the
  // requests admitted at least once.
  double prefix_reuse_ratio = 0;
  double remote_hit_rate = 0;          // of the prompt tokens looked up, those found remotely
  uint64_t remote_load_bytes = 0;      // KV bytes loaded from the remote tier
  int64_t prompt_tokens_computed = 0;  // prefill tokens run (recomputation included)
  double busy_s = 0;                   // simulated time spent in steps (summed over replicas)
  int64_t preemptions = 0;
  uint64_t swap_bytes = 0;
  uint64_t copy_bytes = 0;
  int64_t capacity_tokens = 0;
  int64_t num_steps = 0;
  int32_t block_size = 0;  // paged only; 0 for contiguous policies
};

// Accumulates steps: time-weighted means, maxima, and a timeline decimated to at most
// 2 * max_rows rows (every stride-th step, the stride doubling as the run grows).
class MetricsCollector {
 public:
  explicit MetricsCollector(int64_t max_timeline_rows = 1000) : max_rows_(max_timeline_rows) {}
  void AddStep(const TimelineRow& row, int64_t batch_seqs, double step_seconds);
  // Fills the step-derived fields of `s` (means, maxima, num_steps, busy_s).
  void FillSummary(PolicySummary& s) const;
  double total_seconds() const { return total_s_; }
  const std::vector<TimelineRow>& timeline() const { return timeline_; }

 private:
  int64_t max_rows_;
  int64_t stride_ = 1;
  int64_t steps_ = 0;
  double total_s_ = 0;
  double w_util_ = 0, w_internal_ = 0, w_reserved_ = 0, w_external_ = 0, w_shared_ = 0;
  double w_rounding_ = 0;
  double w_batch_ = 0;
  double max_util_ = 0;
  int64_t max_batch_ = 0;
  std::vector<TimelineRow> timeline_;
};

// Percentile by linear interpolation between closest ranks (p in [0, 100]); 0 for no values.
double Percentile(std::vector<double> values, double p);
// Fills latency and throughput fields of `s` from the request records.
void SummarizeRequests(absl::Span<const RequestRecord> records, PolicySummary& s);

// Everything one policy run produced.
struct PolicyRunResult {
  PolicySummary summary;
  std::vector<TimelineRow> timeline;  // a cluster: sums over the replicas
  std::vector<RequestRecord> requests;
  std::vector<PolicySummary> replicas;  // one per replica of a cluster run; empty for one
};

// The run's context written at the top of summary.json.
struct SimulationInfo {
  std::string workload_name;
  std::string workload_source;
  int64_t num_requests = 0;
  std::string model;
  std::string gpu;
  int32_t block_size = 16;
  std::string preemption_mode;
  int32_t max_num_seqs = 0;
  int32_t max_num_batched_tokens = 0;
  uint64_t kv_budget_bytes = 0;
  int32_t max_model_len = 0;
  uint64_t seed = 0;
  std::string extent_allocator;        // "auto", "first-fit", "buddy"
  int32_t num_replicas = 1;            // > 1: a cluster (the runs name their router)
  uint64_t remote_capacity_bytes = 0;  // a shared remote tier when > 0
  double remote_bandwidth_bytes_per_s = 0;
  double remote_latency_s = 0;
};

// summary.json as a string (pretty-printed, stable key order).
std::string SummaryJson(const SimulationInfo& info, absl::Span<const PolicyRunResult> results);
// Writes summary.json, timeline.csv and requests.csv into `dir` (created if missing).
// Internal error naming the file when a write fails.
absl::Status WriteSimulationOutputs(const std::string& dir, const SimulationInfo& info,
                                    absl::Span<const PolicyRunResult> results);

}  // namespace pagedkv

#endif  // PAGEDKV_SCHEDULER_METRICS_H_
