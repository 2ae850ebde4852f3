#include "pagedkv/scheduler/simulator.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "pagedkv/core/status.h"
#include "pagedkv/scheduler/cluster.h"

namespace pagedkv {

absl::StatusOr<SimulatorSizing> ComputeSizing(const Workload& workload,
                                              const SimulatorConfig& config) {
  SimulatorSizing s;
  s.kv_bytes_per_token =
      config.model.BytesPerTokenPerLayer() * static_cast<uint64_t>(config.model.NumStorageLayers());
  if (s.kv_bytes_per_token == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("model '", config.model.name, "' stores no KV per token"));
  }
  if (config.kv_budget_bytes > 0) {
    s.kv_budget_bytes = config.kv_budget_bytes;
  } else {
    const uint64_t mem =
        config.gpu_memory_bytes > 0 ? config.gpu_memory_bytes : config.gpu.memory_bytes;
    const double usable = static_cast<double>(mem) * config.gpu_memory_fraction;
    const double weights = static_cast<double>(config.compute.weight_bytes);
    if (usable <= weights) {
      return absl::InvalidArgumentError(absl::StrCat(
          "no KV memory: ", config.gpu_memory_fraction, " of ", mem,
          " GPU bytes = ", static_cast<uint64_t>(usable), " <= ", config.compute.weight_bytes,
          " bytes of weights; use a larger GPU (--gpu-mem) or smaller weights (--weights)"));
    }
    s.kv_budget_bytes = static_cast<uint64_t>(usable - weights);
  }
  s.capacity_tokens = static_cast<int64_t>(s.kv_budget_bytes / s.kv_bytes_per_token);
  int64_t longest = 1;
  int64_t longest_out = 1;
  for (const Request& r : workload.requests) {
    longest = std::max<int64_t>(longest, static_cast<int64_t>(r.prompt_tokens) + r.output_tokens);
    longest_out = std::max<int64_t>(longest_out, r.output_tokens);
  }
  const int32_t context = config.model.max_context_tokens;
  if (config.max_model_len > 0 && context > 0 && config.max_model_len > context) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_model_len ", config.max_model_len, " exceeds the context length of model '",
        config.model.name, "' (", context, " tokens); use at most ", context,
        " or a model JSON with a larger max_context_tokens"));
  }
  if (config.max_model_len > 0) {
    s.max_model_len = config.max_model_len;
  } else if (context > 0) {
    s.max_model_len = context;
  } else {
    s.max_model_len = static_cast<int32_t>(std::min<int64_t>(longest, INT32_MAX));
  }
  s.max_new_tokens =
      config.max_new_tokens > 0 ? config.max_new_tokens : static_cast<int32_t>(longest_out);
  return s;
}

absl::StatusOr<PolicyRunResult> Simulate(const Workload& workload, const SimulatorConfig& config) {
  ClusterConfig cluster;
  cluster.replica = config;
  cluster.num_replicas = 1;
  return SimulateCluster(workload, cluster);
}

}  // namespace pagedkv
