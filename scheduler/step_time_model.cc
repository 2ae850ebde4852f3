#include "pagedkv/scheduler/step_time_model.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "pagedkv/core/absl_compat.h"

namespace pagedkv {
namespace {

// Datasheet numbers (docs/simulator.md lists the sources). FLOP/s are dense FP16/BF16 tensor-core
// rates; memory sizes are the marketed decimal gigabytes.
std::vector<GpuSpec> AllGpus() {
  std::vector<GpuSpec> gpus;
  gpus.push_back({"h100", "NVIDIA H100 SXM5 80GB", 989.4e12, 3.35e12, 64e9, 80'000'000'000ull});
  gpus.push_back({"a100-80gb", "NVIDIA A100 SXM4 80GB", 312e12, 2.039e12, 32e9, 80'000'000'000ull});
  gpus.push_back({"l4", "NVIDIA L4 24GB", 121e12, 300e9, 32e9, 24'000'000'000ull});
  return gpus;
}

struct ParamCount {
  const char* model;
  double num_params;
};
// Published parameter counts of the models the ModelSpec presets describe.
constexpr ParamCount kParamCounts[] = {
    {"llama-2-7b", 6.738e9},   {"llama-3-8b", 8.030e9},       {"llama-3-70b", 70.55e9},
    {"mistral-7b", 7.242e9},   {"qwen2.5-1.5b", 1.544e9},     {"phi-4-mini", 3.836e9},
    {"gemma-hybrid", 2.614e9}, {"whisper-large-v3", 1.550e9},
};

}  // namespace

absl::StatusOr<GpuSpec> GpuSpec::Preset(std::string_view name) {
  std::string lower = absl::AsciiStrToLower(AbslView(name));
  // Common spellings of the same parts.
  if (lower == "a100" || lower == "a100-80g" || lower == "a100-sxm") lower = "a100-80gb";
  if (lower == "h100-sxm" || lower == "h100-80gb") lower = "h100";
  for (GpuSpec& gpu : AllGpus()) {
    if (gpu.name == lower) return std::move(gpu);
  }
  return absl::NotFoundError(absl::StrCat("unknown GPU '", AbslView(name),
                                          "'; presets: ", absl::StrJoin(PresetNames(), ", ")));
}

std::vector<std::string> GpuSpec::PresetNames() {
  std::vector<std::string> names;
  for (const GpuSpec& gpu : AllGpus()) names.push_back(gpu.name);
  return names;
}

ModelCompute ModelCompute::FromParams(const ModelSpec& spec, double num_params,
                                      double bytes_per_param) {
  ModelCompute mc;
  mc.num_params = num_params;
  mc.weight_bytes = static_cast<uint64_t>(num_params * bytes_per_param);
  mc.num_attention_layers = spec.num_layers();
  mc.q_width = spec.num_q_heads * spec.head_dim;
  // Every layer reads K and V of every context token, a kShares layer reading its target's.
  mc.kv_bytes_per_token = spec.BytesPerTokenPerLayer() * static_cast<uint64_t>(spec.num_layers());
  return mc;
}

absl::StatusOr<ModelCompute> ModelCompute::ForModel(const ModelSpec& spec) {
  for (const ParamCount& p : kParamCounts) {
    if (spec.name == p.model) return FromParams(spec, p.num_params, 2.0);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("no parameter count known for model '", spec.name,
                   "'; pass the parameter count (e.g. --params 7e9) for the step-time model"));
}

StepCost StepTimeModel::CostFromTotals(double tokens, double attn_pairs, double kv_tokens_touched,
                                       StepMemoryOps ops) const {
  StepCost cost;
  // A device copy reads and writes each byte; swaps cross the host link. Both are serialized with
  // the step, which is what an engine that issues them before the forward pass sees.
  const double copy_s = 2.0 * static_cast<double>(ops.copy_bytes) / gpu_.hbm_bytes_per_s;
  const double swap_s = static_cast<double>(ops.swap_bytes) / gpu_.host_link_bytes_per_s;
  if (tokens <= 0) {
    cost.total_s = gpu_.step_overhead_s + copy_s + swap_s;
    return cost;
  }
  // Linear layers: 2 FLOPs per parameter per token. Attention: QK^T and PV, each 2 FLOPs per
  // (query, key) pair per query channel, in every layer.
  cost.flops = 2.0 * model_.num_params * tokens +
               4.0 * attn_pairs * model_.q_width * model_.num_attention_layers;
  // Weights once per step; K/V of the context read and of the new tokens written.
  cost.bytes = static_cast<double>(model_.weight_bytes) +
               kv_tokens_touched * static_cast<double>(model_.kv_bytes_per_token);
  cost.compute_s = cost.flops / gpu_.peak_flops_per_s;
  cost.memory_s = cost.bytes / gpu_.hbm_bytes_per_s;
  cost.total_s = std::max(cost.compute_s, cost.memory_s) + gpu_.step_overhead_s + copy_s + swap_s;
  return cost;
}

StepCost StepTimeModel::Cost(absl::Span<const StepSeqWork> seqs, StepMemoryOps ops) const {
  double tokens = 0;
  double pairs = 0;
  double touched = 0;
  for (const StepSeqWork& w : seqs) {
    const double q = static_cast<double>(w.query_tokens);
    const double c = static_cast<double>(w.context_tokens);
    tokens += q;
    // Causal: the i-th new token (1-based) sees the context plus i new tokens.
    pairs += q * c + q * (q + 1) / 2.0;
    touched += c + q;
  }
  return CostFromTotals(tokens, pairs, touched, ops);
}

}  // namespace pagedkv
