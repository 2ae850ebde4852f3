// `pagedkv size`: KV-cache bytes per token, block and sequence for a model, and how many blocks,
// tokens and sequences a GPU memory budget holds. The arithmetic lives in core/sizing.cc.
#include <filesystem>
#include <iomanip>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "pagedkv/core/absl_compat.h"
#include "pagedkv/core/cache_config.h"
#include "pagedkv/core/logging.h"
#include "pagedkv/core/model_spec.h"
#include "pagedkv/core/sizing.h"
#include "pagedkv/core/types.h"
#include "tools/internal/command.h"

namespace pagedkv::cli {
namespace {

constexpr std::string_view kCommand = "pagedkv size";

std::string GroupLabel(const GroupSizing& g) {
  if (g.kind == AttentionKind::kSliding) return absl::StrCat("sliding(", g.window_tokens, ")");
  return std::string(AttentionKindName(g.kind));
}

std::string LayoutSummary(const ModelSpec& spec) {
  std::vector<KvGroup> groups = spec.Groups();
  std::string text;
  for (const KvGroup& g : groups) {
    if (!text.empty()) text += " + ";
    absl::StrAppend(&text, g.layers.size(), " ",
                    g.kind == AttentionKind::kSliding
                        ? absl::StrCat("sliding(", g.window_tokens, ")")
                        : std::string(AttentionKindName(g.kind)));
  }
  const int32_t shared = spec.num_layers() - spec.NumStorageLayers();
  if (shared > 0) absl::StrAppend(&text, " + ", shared, " shares");
  return text;
}

nlohmann::ordered_json ResultJson(const ModelSpec& spec, const SizingResult& r) {
  nlohmann::ordered_json groups = nlohmann::ordered_json::array();
  for (const GroupSizing& g : r.groups) {
    groups.push_back({{"group_id", g.group_id},
                      {"kind", std::string(AttentionKindName(g.kind))},
                      {"window_tokens", g.window_tokens},
                      {"num_layers", g.num_layers},
                      {"bytes_per_token", g.bytes_per_token},
                      {"bytes_per_block", g.bytes_per_block},
                      {"tokens_per_sequence", g.tokens_per_sequence},
                      {"blocks_per_sequence", g.blocks_per_sequence},
                      {"bytes_per_sequence", g.bytes_per_sequence}});
  }
  return {{"model", r.model_name},
          {"num_layers", spec.num_layers()},
          {"num_q_heads", spec.num_q_heads},
          {"num_kv_heads", spec.num_kv_heads},
          {"head_dim", spec.head_dim},
          {"dtype", std::string(DTypeName(r.kv_dtype))},
          {"context", r.context_tokens},
          {"block_size", r.block_size_tokens},
          {"encoder_len", r.encoder_tokens},
          {"gpu_mem", r.gpu_memory_bytes},
          {"gpu_mem_fraction", r.gpu_memory_fraction},
          {"weights", r.weights_bytes},
          {"budget", r.budget_bytes},
          {"bytes_per_token", r.bytes_per_token},
          {"bytes_per_block", r.bytes_per_block},
          {"bytes_per_sequence", r.bytes_per_sequence},
          {"num_blocks", r.num_blocks},
          {"max_tokens", r.max_tokens},
          {"max_sequences", r.max_sequences},
          {"groups", std::move(groups)}};
}

std::string BytesCell(uint64_t bytes) {
  return absl::StrFormat("%12s  %16d", FormatBytes(bytes), bytes);
}

void PrintTable(std::ostream& out, const ModelSpec& spec, const SizingResult& r) {
  out << absl::StrFormat(
      "model               %s: %d layers (%s), %d q heads, %d kv heads, "
      "head dim %d\n",
      r.model_name.empty() ? "(unnamed)" : r.model_name, spec.num_layers(), LayoutSummary(spec),
      spec.num_q_heads, spec.num_kv_heads, spec.head_dim);
  out << absl::StrFormat("kv dtype            %s (%d bytes)\n", AbslView(DTypeName(r.kv_dtype)),
                         DTypeSize(r.kv_dtype));
  out << absl::StrFormat("context             %d tokens\n", r.context_tokens);
  if (r.encoder_tokens > 0) {
    out << absl::StrFormat("encoder length      %d tokens (cross-attention layers)\n",
                           r.encoder_tokens);
  }
  out << absl::StrFormat("block size          %d tokens\n", r.block_size_tokens);
  out << absl::StrFormat("KV budget           %s = %s GPU memory x %g - %s weights\n",
                         FormatBytes(r.budget_bytes), FormatBytes(r.gpu_memory_bytes),
                         r.gpu_memory_fraction, FormatBytes(r.weights_bytes));
  out << "\n";
  out << absl::StrFormat("%-20s%12s  %16s\n", "", "", "bytes");
  out << absl::StrFormat("%-20s%s\n", "bytes per token", BytesCell(r.bytes_per_token));
  out << absl::StrFormat("%-20s%s\n", "bytes per block", BytesCell(r.bytes_per_block));
  out << absl::StrFormat("%-20s%s\n", "bytes per sequence", BytesCell(r.bytes_per_sequence));
  out << absl::StrFormat("%-20s%s\n", "KV budget", BytesCell(r.budget_bytes));
  out << "\n";
  out << absl::StrFormat("blocks in budget    %d\n", r.num_blocks);
  out << absl::StrFormat("tokens in budget    %d\n", r.max_tokens);
  out << absl::StrFormat("max sequences       %d at %d tokens each\n", r.max_sequences,
                         r.context_tokens);
  out << "\n";
  out << absl::StrFormat("%-5s %-14s %6s %12s %10s %12s %12s\n", "group", "kind", "layers",
                         "tokens/seq", "blocks/seq", "bytes per block", "per seq");
  for (const GroupSizing& g : r.groups) {
    out << absl::StrFormat("%-5d %-14s %6d %12d %10d %12s %12s\n", g.group_id, GroupLabel(g),
                           g.num_layers, g.tokens_per_sequence, g.blocks_per_sequence,
                           FormatBytes(g.bytes_per_block), FormatBytes(g.bytes_per_sequence));
  }
}

int ListModels(const CommandContext& ctx, bool json) {
  if (json) {
    nlohmann::ordered_json models = nlohmann::ordered_json::array();
    for (const std::string& name : ModelSpec::PresetNames()) {
      models.push_back(nlohmann::ordered_json::parse(ModelSpec::Preset(name)->ToJson()));
    }
    ctx.out << models.dump(2) << "\n";
    return kExitOk;
  }
  ctx.out << absl::StrFormat("%-18s %6s %7s %8s %8s %12s %8s  %s\n", "model", "layers", "q heads",
                             "kv heads", "head dim", "fp16/token", "context", "layers by kind");
  for (const std::string& name : ModelSpec::PresetNames()) {
    const ModelSpec spec = *ModelSpec::Preset(name);
    const uint64_t per_token = spec.BytesPerTokenPerLayer() * spec.NumStorageLayers();
    ctx.out << absl::StrFormat("%-18s %6d %7d %8d %8d %12s %8d  %s\n", name, spec.num_layers(),
                               spec.num_q_heads, spec.num_kv_heads, spec.head_dim,
                               FormatBytes(per_token), spec.max_context_tokens,
                               LayoutSummary(spec));
  }
  return kExitOk;
}

}  // namespace

int RunSizeCommand(const CommandContext& ctx, absl::Span<const std::string> args) {
  std::string model_name;
  int64_t context_tokens = 2048;
  int64_t block_size_tokens = 16;
  std::string dtype_name;
  uint64_t gpu_memory_bytes = 80ull << 30;
  uint64_t weights_bytes = 0;
  double gpu_memory_fraction = 1.0;
  int64_t encoder_tokens = kDefaultEncoderTokens;
  bool json = false;
  bool list_models = false;

  FlagSet flags(std::string(kCommand),
                "KV-cache bytes per token, block and sequence for a model, and the blocks, "
                "tokens and\nconcurrent sequences that a GPU memory budget holds "
                "(budget = gpu-mem x gpu-mem-fraction - weights).");
  flags.AddString("model", "NAME|PATH",
                  "model preset (see --list-models) or path to a model JSON file; required",
                  &model_name, "");
  flags.AddInt("context", "TOKENS", "tokens per sequence (prompt + output)", &context_tokens, 1,
               kMaxSizingContextTokens);
  flags.AddInt("block-size", "TOKENS", "tokens per KV block (any value >= 1)", &block_size_tokens,
               1, CacheConfig::kMaxBlockSizeTokens);
  flags.AddString("dtype", "DTYPE", "KV dtype: fp32|fp16|bf16|fp8_e4m3|int8", &dtype_name,
                  "the model's, fp16 for presets");
  flags.AddBytes("gpu-mem", "BYTES", "GPU memory, e.g. 80GiB, 24GB", &gpu_memory_bytes, "80GiB");
  flags.AddBytes("weights", "BYTES", "memory taken by weights and activations, e.g. 13.5GiB",
                 &weights_bytes, "0");
  flags.AddDouble("gpu-mem-fraction", "F", "fraction of GPU memory pagedkv may use, in (0, 1]",
                  &gpu_memory_fraction, FlagSet::kShowCurrent, NumberRange::PositiveFraction());
  flags.AddInt("encoder-len", "TOKENS", "encoder output tokens held by cross-attention layers",
               &encoder_tokens, 1, kMaxSizingContextTokens);
  flags.AddBool("json", "print one JSON object instead of the table", &json);
  flags.AddBool("list-models", "list the model presets and exit", &list_models);
  AddCommonFlags(flags);
  flags.SetEpilog(
      "Sizes: GB/MB = powers of 1000, GiB/MiB = powers of 1024, or plain bytes.\n"
      "Examples:\n"
      "  pagedkv size --model llama-2-7b --context 2048 --gpu-mem 80GiB --weights 13.5GiB\n"
      "  pagedkv size --model mistral-7b --context 32768 --dtype fp8 --json\n"
      "  pagedkv size --model ./my_model.json --gpu-mem 24GB --weights 4GB\n");

  if (int rc = ParseOrReport(flags, args, ctx); rc != kExitOk) {
    return rc == kHelpShown ? kExitOk : rc;
  }
  if (list_models) return ListModels(ctx, json);
  if (model_name.empty()) {
    return ReportError(ctx, kCommand,
                       absl::InvalidArgumentError(
                           "missing --model NAME|PATH; run 'pagedkv size --list-models' for "
                           "the presets"),
                       kExitUsage);
  }
  absl::StatusOr<ModelSpec> spec = LoadModelArg(model_name);
  if (!spec.ok()) {
    return ReportError(
        ctx, kCommand,
        absl::Status(spec.status().code(),
                     absl::StrCat("--model '", model_name, "': ", spec.status().message())),
        kExitUsage);
  }
  SizingOptions options;
  options.context_tokens = context_tokens;
  options.block_size_tokens = static_cast<int32_t>(block_size_tokens);
  options.gpu_memory_bytes = gpu_memory_bytes;
  options.weights_bytes = weights_bytes;
  options.gpu_memory_fraction = gpu_memory_fraction;
  options.encoder_tokens = encoder_tokens;
  if (!dtype_name.empty()) {
    absl::StatusOr<DType> dtype = ParseDType(dtype_name);
    if (!dtype.ok()) {
      return ReportError(
          ctx, kCommand,
          absl::InvalidArgumentError(absl::StrCat("--dtype: ", dtype.status().message())),
          kExitUsage);
    }
    options.kv_dtype = *dtype;
  }
  absl::StatusOr<SizingResult> result = ComputeSizing(*spec, options);
  if (!result.ok()) return ReportError(ctx, kCommand, result.status(), kExitUsage);
  PAGEDKV_LOG_DEBUG(
      "size: model={} context={} block_size={} dtype={} budget_bytes={} "
      "num_blocks={} max_sequences={}",
      result->model_name, result->context_tokens, result->block_size_tokens,
      DTypeName(result->kv_dtype), result->budget_bytes, result->num_blocks, result->max_sequences);
  if (json) {
    ctx.out << ResultJson(*spec, *result).dump(2) << "\n";
  } else {
    PrintTable(ctx.out, *spec, *result);
  }
  return kExitOk;
}

}  // namespace pagedkv::cli
