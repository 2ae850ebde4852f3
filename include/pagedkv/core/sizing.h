// Sizing: how much KV memory a model needs per token, block and sequence, and how many blocks,
// tokens and concurrent sequences a GPU memory budget holds. A pure calculator behind
// `pagedkv size`; the formula is written out in docs/sizing.md.
//
//   SizingOptions opts{.context_tokens = 2048, .gpu_memory_bytes = 80ull << 30};
//   PAGEDKV_ASSIGN_OR_RETURN(SizingResult r, ComputeSizing(spec, opts));  // r.max_sequences
#ifndef PAGEDKV_CORE_SIZING_H_
#define PAGEDKV_CORE_SIZING_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "pagedkv/core/model_spec.h"
#include "pagedkv/core/types.h"

namespace pagedkv {

// Encoder output length assumed for cross-attention layers when none is given: 1500 frames, the
// length of a 30 s audio window in the whisper-style preset.
inline constexpr int64_t kDefaultEncoderTokens = 1500;

// Longest context (and encoder length) ComputeSizing accepts: keeps every byte count of a
// sequence far from 64-bit overflow.
inline constexpr int64_t kMaxSizingContextTokens = int64_t{1} << 40;

struct SizingOptions {
  int64_t context_tokens = 2048;   // tokens of one sequence (prompt + output), >= 1
  int32_t block_size_tokens = 16;  // >= 1
  std::optional<DType> kv_dtype;   // overrides the model's kv_dtype when set
  // Budget = floor(gpu_memory_bytes * gpu_memory_fraction) - weights_bytes.
  uint64_t gpu_memory_bytes = 0;  // > 0
  uint64_t weights_bytes = 0;
  double gpu_memory_fraction = 1.0;  // (0, 1]
  // Tokens of encoder output held by cross-attention layers; unset = kDefaultEncoderTokens.
  // Ignored for models without cross layers.
  std::optional<int64_t> encoder_tokens;
};

// One KV group's share of the totals.
struct GroupSizing {
  int32_t group_id = 0;
  AttentionKind kind = AttentionKind::kFull;
  int32_t window_tokens = 0;        // kSliding only
  int32_t num_layers = 0;           // layers with storage in the group
  uint64_t bytes_per_token = 0;     // num_layers * BytesPerTokenPerLayer()
  uint64_t bytes_per_block = 0;     // bytes_per_token * block_size_tokens
  int64_t tokens_per_sequence = 0;  // tokens this group keeps for one sequence at the context
  int64_t blocks_per_sequence = 0;  // ceil(tokens_per_sequence / block_size), see docs
  uint64_t bytes_per_sequence = 0;  // blocks_per_sequence * bytes_per_block
};

struct SizingResult {
  std::string model_name;
  DType kv_dtype = DType::kFp16;  // after the override
  int64_t context_tokens = 0;
  int32_t block_size_tokens = 0;
  int64_t encoder_tokens = 0;  // 0 when the model has no cross layers

  uint64_t bytes_per_token = 0;     // every group, as if each kept every token
  uint64_t bytes_per_block = 0;     // one block in every group = bytes_per_token * block_size
  uint64_t bytes_per_sequence = 0;  // whole blocks of every group at context_tokens

  uint64_t gpu_memory_bytes = 0;
  uint64_t weights_bytes = 0;
  double gpu_memory_fraction = 1.0;
  uint64_t budget_bytes = 0;        // KV budget: floor(gpu_memory * fraction) - weights
  uint64_t num_blocks = 0;          // budget_bytes / bytes_per_block
  uint64_t max_tokens = 0;          // num_blocks * block_size_tokens
  uint64_t max_sequences = 0;       // budget_bytes / bytes_per_sequence
  std::vector<GroupSizing> groups;  // in ModelSpec::Groups() order
};

// InvalidArgument (naming the option and value) for a context or block size < 1, a zero GPU
// memory, a fraction outside (0, 1], weights that do not fit, or an invalid model.
absl::StatusOr<SizingResult> ComputeSizing(const ModelSpec& model, const SizingOptions& options);

// "80GiB", "13.5GiB", "24GB", "512MiB", "4096", "1.5 TB", "100B": GB/MB/KB/TB are powers of 1000,
// GiB/MiB/KiB/TiB powers of 1024 (case-insensitive; a trailing "B" is optional for binary units:
// "80Gi"). Fractions are rounded down to whole bytes. InvalidArgument for anything else.
absl::StatusOr<uint64_t> ParseByteSize(std::string_view text);

// Human-readable binary units with two decimals: "1.00 GiB", "512.00 MiB", "32.00 KiB", "512 B".
std::string FormatBytes(uint64_t bytes);

}  // namespace pagedkv

#endif  // PAGEDKV_CORE_SIZING_H_
