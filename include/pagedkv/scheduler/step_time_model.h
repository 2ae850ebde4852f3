// StepTimeModel: a roofline estimate of how long one serving step takes on a given GPU, used by the
// Simulator's virtual clock. Step time = max(FLOPs / peak FLOP/s, bytes / HBM bytes/s) + a fixed
// per-step overhead, plus copy and swap time. Numbers and sources are in docs/simulator.md.
//
//   PAGEDKV_ASSIGN_OR_RETURN(GpuSpec gpu, GpuSpec::Preset("h100"));
//   PAGEDKV_ASSIGN_OR_RETURN(ModelCompute mc, ModelCompute::ForModel(spec));
//   StepTimeModel model(gpu, mc);
//   double s = model.StepSeconds({{.query_tokens = 1, .context_tokens = 900}}, {});
#ifndef PAGEDKV_SCHEDULER_STEP_TIME_MODEL_H_
#define PAGEDKV_SCHEDULER_STEP_TIME_MODEL_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "pagedkv/core/model_spec.h"

namespace pagedkv {

// Datasheet figures of one accelerator (dense FP16/BF16 tensor-core rate, no sparsity). Memory
// capacity is kept as the vendor states it ("80 GB") together with the byte count that statement
// means: DRAM capacities are stated in JEDEC gigabytes of 2^30 bytes, which is also what the
// device reports (docs/simulator.md gives each preset's source).
struct GpuSpec {
  std::string name;                  // "h100"
  std::string description;           // "NVIDIA H100 SXM5 80GB"
  double peak_flops_per_s = 0;       // FP16/BF16 dense tensor FLOP/s
  double hbm_bytes_per_s = 0;        // device memory bandwidth
  double host_link_bytes_per_s = 0;  // PCIe bandwidth per direction (swap)
  uint64_t memory_bytes = 0;         // device memory
  double step_overhead_s = 1.0e-3;   // fixed cost of one step (launches, scheduling, sampling)
  std::string memory_stated;         // the vendor's words: "80 GB HBM3"
  std::string source;                // where the figures come from

  // Presets (case-insensitive): a100-40gb, a100-80gb (alias a100), l4, l40s, h100-pcie, h100
  // (alias h100-sxm), h200, b200, mi300x. NotFound listing the names for another one.
  static absl::StatusOr<GpuSpec> Preset(std::string_view name);
  static std::vector<std::string> PresetNames();
};

// What the model costs besides its KV cache: parameter count (weights are read once per step and
// each token costs 2 FLOPs per parameter) and attention width.
struct ModelCompute {
  double num_params = 0;             // e.g. 6.74e9 for llama-2-7b
  uint64_t weight_bytes = 0;         // num_params * bytes per weight (fp16: 2)
  int32_t num_attention_layers = 0;  // layers that run attention over the KV
  int32_t q_width = 0;               // num_q_heads * head_dim
  uint64_t kv_bytes_per_token = 0;   // all layers with storage

  // Parameter counts of the ModelSpec presets (computed from each model's config, documented in
  // docs/simulator.md); for another model name, InvalidArgument asking for
  // ModelCompute::FromParams (the CLI's --params).
  static absl::StatusOr<ModelCompute> ForModel(const ModelSpec& spec);
  static ModelCompute FromParams(const ModelSpec& spec, double num_params, double bytes_per_param);
};

// One sequence's share of a step: `query_tokens` new tokens (a prefill chunk or one decode token)
// attending over `context_tokens` tokens already in the cache.
struct StepSeqWork {
  int64_t query_tokens = 0;
  int64_t context_tokens = 0;
};

// Extra memory traffic of a step.
struct StepMemoryOps {
  uint64_t copy_bytes = 0;  // device-to-device copies (copy-on-write, reallocation, beam reorder)
  uint64_t swap_bytes = 0;  // host <-> device (swap in + swap out)
};

struct StepCost {
  double flops = 0;
  double bytes = 0;
  double compute_s = 0;
  double memory_s = 0;
  double total_s = 0;
};

class StepTimeModel {
 public:
  StepTimeModel(GpuSpec gpu, ModelCompute model) : gpu_(std::move(gpu)), model_(model) {}

  // Full breakdown; StepSeconds returns its total_s. An empty step costs only the overhead.
  StepCost Cost(absl::Span<const StepSeqWork> seqs, StepMemoryOps ops) const;
  double StepSeconds(absl::Span<const StepSeqWork> seqs, StepMemoryOps ops) const {
    return Cost(seqs, ops).total_s;
  }
  // Same from running totals (what the simulator accumulates without building a vector):
  // tokens = sum of query_tokens, attn_pairs = sum of query_tokens * (context + (query+1)/2),
  // kv_tokens_touched = sum of (context_tokens + query_tokens).
  StepCost CostFromTotals(double tokens, double attn_pairs, double kv_tokens_touched,
                          StepMemoryOps ops) const;

  const GpuSpec& gpu() const { return gpu_; }
  const ModelCompute& model() const { return model_; }

 private:
  GpuSpec gpu_;
  ModelCompute model_;
};

}  // namespace pagedkv

#endif  // PAGEDKV_SCHEDULER_STEP_TIME_MODEL_H_
