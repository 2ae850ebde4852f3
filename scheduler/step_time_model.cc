#include "pagedkv/scheduler/step_time_model.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "pagedkv/core/absl_compat.h"

namespace pagedkv {
namespace {

constexpr uint64_t kGiB = uint64_t{1} << 30;

// Datasheet numbers; docs/simulator.md lists them with their sources. FLOP/s are dense FP16/BF16
// tensor-core rates (datasheets also print twice these "with sparsity"). Memory: the capacity as
// the vendor states it ("80GB"), read in JEDEC gigabytes of 2^30 bytes, the unit DRAM capacities
// are stated in and the one the device reports (an "80GB" part exposes 80 GiB less what the
// driver reserves). Bandwidths are decimal (1 TB/s = 1e12 bytes/s). The host link is the PCIe
// generation's x16 rate per direction.
std::vector<GpuSpec> AllGpus() {
  constexpr double kPcie4 = 32e9;  // PCIe 4.0 x16: 64 GB/s both ways
  constexpr double kPcie5 = 64e9;  // PCIe 5.0 x16: 128 GB/s both ways
  std::vector<GpuSpec> gpus;
  const auto add = [&](const char* name, const char* description, double flops, double hbm,
                       double link, uint64_t memory_gb, const char* stated, const char* source) {
    GpuSpec g;
    g.name = name;
    g.description = description;
    g.peak_flops_per_s = flops;
    g.hbm_bytes_per_s = hbm;
    g.host_link_bytes_per_s = link;
    g.memory_bytes = memory_gb * kGiB;
    g.memory_stated = stated;
    g.source = source;
    gpus.push_back(std::move(g));
  };
  // A100 datasheet: FP16 tensor 312 TFLOPS (624 with sparsity); SXM4 40GB HBM2 at 1,555 GB/s,
  // 80GB HBM2e at 2,039 GB/s; PCIe Gen4.
  add("a100-40gb", "NVIDIA A100 SXM4 40GB", 312e12, 1.555e12, kPcie4, 40, "40GB HBM2",
      "NVIDIA A100 Tensor Core GPU datasheet (SXM4 40GB)");
  add("a100-80gb", "NVIDIA A100 SXM4 80GB", 312e12, 2.039e12, kPcie4, 80, "80GB HBM2e",
      "NVIDIA A100 Tensor Core GPU datasheet (SXM4 80GB)");
  // L4 datasheet: FP16 tensor 242 TFLOPS with sparsity, 24GB GDDR6 at 300 GB/s, PCIe Gen4.
  add("l4", "NVIDIA L4 24GB", 121e12, 300e9, kPcie4, 24, "24GB GDDR6", "NVIDIA L4 datasheet");
  // L40S datasheet: FP16/BF16 tensor 362.05 TFLOPS (733 with sparsity), 48GB GDDR6 at 864 GB/s,
  // PCIe Gen4.
  add("l40s", "NVIDIA L40S 48GB", 362.05e12, 864e9, kPcie4, 48, "48GB GDDR6",
      "NVIDIA L40S datasheet");
  // H100 datasheet: PCIe 80GB HBM2e at 2 TB/s, FP16 tensor 1,513 TFLOPS with sparsity; SXM 80GB
  // HBM3 at 3.35 TB/s, 1,979 TFLOPS with sparsity; PCIe Gen5.
  add("h100-pcie", "NVIDIA H100 PCIe 80GB", 756.5e12, 2.0e12, kPcie5, 80, "80GB HBM2e",
      "NVIDIA H100 Tensor Core GPU datasheet (H100 PCIe)");
  add("h100", "NVIDIA H100 SXM5 80GB", 989.4e12, 3.35e12, kPcie5, 80, "80GB HBM3",
      "NVIDIA H100 Tensor Core GPU datasheet (H100 SXM)");
  // H200 datasheet: SXM 141GB HBM3e at 4.8 TB/s, FP16 tensor 1,979 TFLOPS with sparsity.
  add("h200", "NVIDIA H200 SXM 141GB", 989.4e12, 4.8e12, kPcie5, 141, "141GB HBM3e",
      "NVIDIA H200 Tensor Core GPU datasheet (H200 SXM)");
  // Blackwell datasheet, HGX B200 column, per GPU: 180GB HBM3e at 7.7 TB/s, FP16/BF16 tensor
  // 4.5 PFLOPS with sparsity, PCIe Gen5.
  add("b200", "NVIDIA B200 (HGX) 180GB", 2.25e15, 7.7e12, kPcie5, 180, "180GB HBM3e",
      "NVIDIA Blackwell datasheet (HGX B200, per GPU)");
  // MI300X data sheet: FP16/BF16 matrix 1,307.4 TFLOPS dense (2,614.9 with sparsity), 192GB
  // HBM3 at 5.3 TB/s, PCIe Gen5 x16.
  add("mi300x", "AMD Instinct MI300X 192GB", 1307.4e12, 5.3e12, kPcie5, 192, "192GB HBM3",
      "AMD Instinct MI300X accelerator data sheet");
  return gpus;
}

struct ParamCount {
  const char* model;
  double num_params;
};
// Parameter counts of the models the ModelSpec presets describe. The later ones (opt-13b on) are
// computed from the config.json shapes (embeddings, attention, MLP, norms; an untied output head
// where the model has one) and agree with the published counts.
constexpr ParamCount kParamCounts[] = {
    {"llama-2-7b", 6.738e9},   {"llama-3-8b", 8.030e9},       {"llama-3-70b", 70.55e9},
    {"mistral-7b", 7.242e9},   {"qwen2.5-1.5b", 1.544e9},     {"phi-4-mini", 3.836e9},
    {"gemma-hybrid", 2.614e9}, {"whisper-large-v3", 1.550e9}, {"opt-13b", 12.853e9},
    {"opt-66b", 65.720e9},     {"llama-3.1-8b", 8.030e9},     {"llama-3.1-70b", 70.554e9},
    {"qwen2.5-7b", 7.616e9},   {"gemma-2-9b", 9.242e9},
};

}  // namespace

absl::StatusOr<GpuSpec> GpuSpec::Preset(std::string_view name) {
  std::string lower = absl::AsciiStrToLower(AbslView(name));
  // Common spellings of the same parts.
  if (lower == "a100" || lower == "a100-80g" || lower == "a100-sxm") lower = "a100-80gb";
  if (lower == "a100-40g") lower = "a100-40gb";
  if (lower == "h100-sxm" || lower == "h100-80gb" || lower == "h100-sxm5") lower = "h100";
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
