// ModelSpec: the shape of a model's KV cache (layers, heads, head dim, dtype, per-layer attention
// kind). Used by sizing, the block manager (one pool per KV group) and the simulator.
//
//   PAGEDKV_ASSIGN_OR_RETURN(ModelSpec spec, ModelSpec::Preset("llama-3-8b"));
//   for (const KvGroup& g : spec.Groups()) { ... g.layers.size() ... }
#ifndef PAGEDKV_CORE_MODEL_SPEC_H_
#define PAGEDKV_CORE_MODEL_SPEC_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "pagedkv/core/types.h"

namespace pagedkv {

enum class AttentionKind : uint8_t {
  kFull = 0,     // causal self-attention over every past token
  kSliding = 1,  // causal self-attention over the last `window_tokens` tokens
  kCross = 2,    // attention over the encoder output (written once per request)
  kShares = 3,   // reads the KV of an earlier layer (`shares_layer`); stores nothing itself
};
std::string_view AttentionKindName(AttentionKind kind);  // "full", "sliding", "cross", "shares"

struct LayerSpec {
  AttentionKind kind = AttentionKind::kFull;
  int32_t window_tokens = 0;  // > 0 for kSliding, 0 otherwise
  int32_t shares_layer = -1;  // for kShares: index of an earlier layer that has storage

  static LayerSpec Full() { return {}; }
  static LayerSpec Sliding(int32_t window_tokens) {
    return {AttentionKind::kSliding, window_tokens, -1};
  }
  static LayerSpec Cross() { return {AttentionKind::kCross, 0, -1}; }
  static LayerSpec Shares(int32_t layer) { return {AttentionKind::kShares, 0, layer}; }
  bool operator==(const LayerSpec&) const = default;
};
// The JSON / CLI spelling of a layer: "full", "sliding:4096", "cross", "shares:3".
std::string LayerSpecName(const LayerSpec& layer);
// Parses the spelling above (case-insensitive kind). InvalidArgument for anything else; the range
// of the number is checked by ModelSpec::Validate().
absl::StatusOr<LayerSpec> ParseLayerSpec(std::string_view text);

// Layers with the same attention kind and window. Each group has its own pool and block tables.
struct KvGroup {
  int32_t group_id = 0;
  AttentionKind kind = AttentionKind::kFull;  // never kShares
  int32_t window_tokens = 0;                  // kSliding only
  // Layers with storage in this group, ascending. A block of this group holds, for each of them,
  // K and V: [layer_in_group][K/V][kv_head][slot_in_block][head_dim].
  std::vector<int32_t> layers;
};

struct ModelSpec {
  // Limits Validate() enforces (they keep byte arithmetic far from 64-bit overflow and a bad input
  // from allocating gigabytes before it is refused).
  static constexpr int32_t kMaxLayers = 100'000;
  static constexpr int32_t kMaxHeads = 1 << 16;    // num_q_heads and num_kv_heads
  static constexpr int32_t kMaxHeadDim = 1 << 16;  // elements

  std::string name;
  int32_t num_q_heads = 0;
  int32_t num_kv_heads = 0;  // divides num_q_heads (GQA / MQA when smaller)
  int32_t head_dim = 0;
  DType kv_dtype = DType::kFp16;
  std::vector<LayerSpec> layers;  // one per layer (decoder layers, then cross layers if any)
  // The longest sequence (prompt + output tokens) the model serves: its config's
  // max_position_embeddings, as engines derive their default max_model_len. 0 = not known.
  int32_t max_context_tokens = 0;

  int32_t num_layers() const { return static_cast<int32_t>(layers.size()); }
  bool operator==(const ModelSpec&) const = default;

  // Named presets: llama-2-7b, llama-3-8b, llama-3-70b, mistral-7b, qwen2.5-1.5b, phi-4-mini,
  // gemma-hybrid, whisper-large-v3, opt-13b, opt-66b, llama-3.1-8b, llama-3.1-70b, qwen2.5-7b,
  // gemma-2-9b (shapes and context lengths with their sources in docs/simulator.md). NotFound
  // listing the names for an unknown one.
  static absl::StatusOr<ModelSpec> Preset(std::string_view name);
  static std::vector<std::string> PresetNames();

  // JSON: {"name": "...", "num_q_heads": 32, "num_kv_heads": 8, "head_dim": 128, "kv_dtype":
  // "fp16",
  //        "num_layers": 32, "layers": ["full", "sliding:4096", "shares:0", "cross", ...],
  //        "max_context_tokens": 4096}
  // "layers" may be omitted (all full) or list one entry per layer; "max_context_tokens" is
  // optional. The result is validated. The text may be at most kMaxModelFileBytes long and nest
  // at most kMaxJsonDepth levels (input_limits.h); errors quote a type and a short excerpt.
  static absl::StatusOr<ModelSpec> FromJson(std::string_view json_text);
  // FromJson of a file read with ReadTextFile: a regular file of at most kMaxModelFileBytes.
  static absl::StatusOr<ModelSpec> FromJsonFile(const std::string& path);
  std::string ToJson() const;

  // InvalidArgument naming the field and value: heads/dims > 0 and within the limits above,
  // num_kv_heads divides num_q_heads, 1..kMaxLayers layers, window > 0 for sliding layers,
  // shares(j) points to an earlier layer that has storage, ...
  absl::Status Validate() const;

  // KV groups in order of first appearance; kShares layers belong to no group.
  std::vector<KvGroup> Groups() const;
  // The layer whose storage `layer` reads: itself, or the target of a shares(j) layer.
  int32_t StorageLayer(int32_t layer) const;

  // Bytes of K and V of one token in one layer: 2 * num_kv_heads * head_dim * sizeof(dtype).
  uint64_t BytesPerTokenPerLayer() const;
  // Layers that own KV storage (every layer except kShares ones).
  int32_t NumStorageLayers() const;
};

}  // namespace pagedkv

#endif  // PAGEDKV_CORE_MODEL_SPEC_H_
