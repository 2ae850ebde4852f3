// Simulator: replays a Workload through the Scheduler on a virtual clock, one KvCachePolicy at a
// time, timing each step with the StepTimeModel, and collects the metrics of metrics.h. The GPU
// pool is metadata only (kVirtual), so an 80 GB GPU simulates on any machine. Deterministic for a
// fixed config (seed included).
//
//   SimulatorConfig cfg;  cfg.model = llama; cfg.gpu = h100; cfg.compute = ...;
//   cfg.policy = PolicyKind::kPaged;
//   PAGEDKV_ASSIGN_OR_RETURN(PolicyRunResult r, Simulate(workload, cfg));
#ifndef PAGEDKV_SCHEDULER_SIMULATOR_H_
#define PAGEDKV_SCHEDULER_SIMULATOR_H_

#include <cstdint>
#include <functional>

#include "absl/status/statusor.h"
#include "pagedkv/core/model_spec.h"
#include "pagedkv/scheduler/metrics.h"
#include "pagedkv/scheduler/policy.h"
#include "pagedkv/scheduler/scheduler.h"
#include "pagedkv/scheduler/step_time_model.h"
#include "pagedkv/scheduler/workload.h"

namespace pagedkv {

struct SimulatorConfig {
  ModelSpec model;
  GpuSpec gpu;
  ModelCompute compute;
  PolicyKind policy = PolicyKind::kPaged;
  int32_t block_size_tokens = 16;
  SchedulerConfig scheduler;

  // KV budget: kv_budget_bytes when > 0, else gpu_memory_bytes (0 = the GPU's) *
  // gpu_memory_fraction - compute.weight_bytes.
  uint64_t kv_budget_bytes = 0;
  uint64_t gpu_memory_bytes = 0;
  double gpu_memory_fraction = 0.9;
  // Host swap space for --preemption swap (paged only). Simulated like the GPU pool (metadata
  // only), so it is not limited by this machine's memory.
  uint64_t swap_space_bytes = 4ull << 30;
  // The longest request (prompt + output) served; longer ones are rejected and counted. 0 = the
  // model's context length (ModelSpec::max_context_tokens), or for a model without one the
  // workload's longest prompt + output. Larger than the model's context: InvalidArgument.
  int32_t max_model_len = 0;
  // The generation cap orca-max reserves for; 0 = the workload's longest output.
  int32_t max_new_tokens = 0;
  // Extent placement of the contiguous policies (kAuto: buddy for orca-*, first-fit otherwise).
  ExtentAllocatorKind extent_allocator = ExtentAllocatorKind::kAuto;
  double watermark = 0.01;
  bool enable_prefix_caching = true;
  uint64_t seed = 1;                 // beam choices
  int64_t max_timeline_rows = 1000;  // timeline.csv keeps between this and twice this
  // Called now and then with the fraction of requests finished (0..1); may be empty.
  std::function<void(double)> progress;
  // Polled every few hundred steps (and routed requests); returning true stops the run with a
  // Cancelled status (Ctrl-C in Python). May be empty.
  std::function<bool()> cancel;
};

// The derived sizes a config gives for a workload (what summary.json's header reports).
struct SimulatorSizing {
  uint64_t kv_budget_bytes = 0;
  uint64_t kv_bytes_per_token = 0;
  int64_t capacity_tokens = 0;
  int32_t max_model_len = 0;
  int32_t max_new_tokens = 0;
};
// InvalidArgument when the weights leave no KV memory (naming the numbers) or max_model_len
// exceeds the model's context length.
absl::StatusOr<SimulatorSizing> ComputeSizing(const Workload& workload,
                                              const SimulatorConfig& config);

// Runs one policy over the whole workload on one replica. Every request either completes or is
// rejected (longer than max_model_len, or larger than the memory). Internal error if the
// scheduler stalls. SimulateCluster (cluster.h) runs several replicas behind a router.
// Replays `workload` (validated first: Workload::Validate's InvalidArgument for NaN, negative or
// unsorted arrivals, bad lengths) with one policy on one GPU.
absl::StatusOr<PolicyRunResult> Simulate(const Workload& workload, const SimulatorConfig& config);

}  // namespace pagedkv

#endif  // PAGEDKV_SCHEDULER_SIMULATOR_H_
