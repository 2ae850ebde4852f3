#include "pagedkv/core/model_spec.h"

#include <algorithm>
#include <charconv>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "pagedkv/core/absl_compat.h"
#include "pagedkv/core/check.h"
#include "pagedkv/core/input_limits.h"
#include "pagedkv/core/status.h"

namespace pagedkv {
namespace {

using Json = nlohmann::json;

ModelSpec Uniform(std::string name, int32_t num_layers, int32_t num_q_heads, int32_t num_kv_heads,
                  int32_t head_dim, LayerSpec layer) {
  ModelSpec spec;
  spec.name = std::move(name);
  spec.num_q_heads = num_q_heads;
  spec.num_kv_heads = num_kv_heads;
  spec.head_dim = head_dim;
  spec.kv_dtype = DType::kFp16;
  spec.layers.assign(static_cast<size_t>(num_layers), layer);
  return spec;
}

// Gemma-style hybrid (documented in docs/sizing.md): 26 layers, 8 query heads, 4 KV heads, head
// dim 256. The attention pattern repeats every 6 layers: 5 sliding-window (4096) layers, then one
// full layer (layers 5, 11, 17, 23 are full). Layers 0..19 own their KV; the last 6 layers
// (20..25) reuse the KV of the last earlier layer of the same kind: sliding ones read layer 19,
// the full one (23) reads layer 17. So 17 sliding + 3 full layers have storage.
ModelSpec GemmaHybrid() {
  constexpr int32_t kNumLayers = 26;
  constexpr int32_t kFirstSharedLayer = 20;
  constexpr int32_t kWindowTokens = 4096;
  ModelSpec spec = Uniform("gemma-hybrid", kNumLayers, 8, 4, 256, LayerSpec::Full());
  int32_t last_sliding = -1;
  int32_t last_full = -1;
  for (int32_t i = 0; i < kNumLayers; ++i) {
    const bool full = i % 6 == 5;
    if (i < kFirstSharedLayer) {
      spec.layers[i] = full ? LayerSpec::Full() : LayerSpec::Sliding(kWindowTokens);
      (full ? last_full : last_sliding) = i;
    } else {
      spec.layers[i] = LayerSpec::Shares(full ? last_full : last_sliding);
    }
  }
  return spec;
}

// Whisper-large-v3's decoder: 32 self-attention layers (full, causal over generated tokens), then
// the 32 cross-attention layers that read the encoder output (written once per request).
ModelSpec WhisperLargeV3() {
  ModelSpec spec = Uniform("whisper-large-v3", 32, 20, 20, 64, LayerSpec::Full());
  spec.layers.resize(64, LayerSpec::Cross());
  return spec;
}

// Gemma-2-9B: 42 layers alternating sliding-window (4096, even layers) and full attention (odd
// layers), 16 query heads, 8 KV heads, head dim 256 (Hugging Face google/gemma-2-9b config.json).
ModelSpec Gemma2_9B() {
  ModelSpec spec = Uniform("gemma-2-9b", 42, 16, 8, 256, LayerSpec::Full());
  for (size_t i = 0; i < spec.layers.size(); i += 2) spec.layers[i] = LayerSpec::Sliding(4096);
  return spec;
}

ModelSpec WithContext(ModelSpec spec, int32_t max_context_tokens) {
  spec.max_context_tokens = max_context_tokens;
  return spec;
}

// Shapes and context lengths (max_position_embeddings) from each model's Hugging Face
// config.json; docs/simulator.md lists them with their sources.
std::vector<ModelSpec> AllPresets() {
  std::vector<ModelSpec> presets;
  presets.push_back(WithContext(Uniform("llama-2-7b", 32, 32, 32, 128, LayerSpec::Full()), 4096));
  presets.push_back(WithContext(Uniform("llama-3-8b", 32, 32, 8, 128, LayerSpec::Full()), 8192));
  presets.push_back(WithContext(Uniform("llama-3-70b", 80, 64, 8, 128, LayerSpec::Full()), 8192));
  // Mistral-7B-v0.1: sliding window 4096 on every layer.
  presets.push_back(
      WithContext(Uniform("mistral-7b", 32, 32, 8, 128, LayerSpec::Sliding(4096)), 32768));
  presets.push_back(WithContext(Uniform("qwen2.5-1.5b", 28, 12, 2, 128, LayerSpec::Full()), 32768));
  presets.push_back(WithContext(Uniform("phi-4-mini", 32, 24, 8, 128, LayerSpec::Full()), 131072));
  // The hybrid borrows Gemma-2-2B's shape and context.
  presets.push_back(WithContext(GemmaHybrid(), 8192));
  // Whisper's decoder: max_target_positions.
  presets.push_back(WithContext(WhisperLargeV3(), 448));
  presets.push_back(WithContext(Uniform("opt-13b", 40, 40, 40, 128, LayerSpec::Full()), 2048));
  presets.push_back(WithContext(Uniform("opt-66b", 64, 72, 72, 128, LayerSpec::Full()), 2048));
  presets.push_back(
      WithContext(Uniform("llama-3.1-8b", 32, 32, 8, 128, LayerSpec::Full()), 131072));
  presets.push_back(
      WithContext(Uniform("llama-3.1-70b", 80, 64, 8, 128, LayerSpec::Full()), 131072));
  presets.push_back(WithContext(Uniform("qwen2.5-7b", 28, 28, 4, 128, LayerSpec::Full()), 32768));
  presets.push_back(WithContext(Gemma2_9B(), 8192));
  return presets;
}

// A type and a short excerpt of a JSON value for an error message: never the whole value (an
// array of a million entries, or one nested thousands deep, must not be printed).
std::string JsonExcerpt(const Json& value) {
  switch (value.type()) {
    case Json::value_t::array:
      return absl::StrCat("an array of ", value.size(),
                          value.size() == 1 ? " element" : " elements");
    case Json::value_t::object:
      return absl::StrCat("an object of ", value.size(),
                          value.size() == 1 ? " member" : " members");
    case Json::value_t::string:
      return absl::StrCat("the string \"", Excerpt(value.get_ref<const std::string&>(), 40), "\"");
    default:
      return absl::StrCat(Excerpt(value.dump(), 40), " (", value.type_name(), ")");
  }
}

absl::Status FieldTypeError(std::string_view field, std::string_view expected, const Json& value) {
  return absl::InvalidArgumentError(absl::StrCat("model JSON: field '", AbslView(field),
                                                 "' must be ", AbslView(expected), ", got ",
                                                 JsonExcerpt(value)));
}

absl::StatusOr<int32_t> GetInt32(const Json& object, std::string_view field) {
  const Json& value = object.at(std::string(field));
  if (!value.is_number_integer()) return FieldTypeError(field, "an integer", value);
  const int64_t v = value.get<int64_t>();
  if (v < INT32_MIN || v > INT32_MAX) return FieldTypeError(field, "a 32-bit integer", value);
  return static_cast<int32_t>(v);
}

absl::StatusOr<std::string> GetString(const Json& object, std::string_view field) {
  const Json& value = object.at(std::string(field));
  if (!value.is_string()) return FieldTypeError(field, "a string", value);
  return value.get<std::string>();
}

absl::StatusOr<ModelSpec> SpecFromJsonValue(const Json& root) {
  if (!root.is_object()) return FieldTypeError("<root>", "an object", root);
  static constexpr std::string_view kFields[] = {"name",     "num_q_heads",       "num_kv_heads",
                                                 "head_dim", "kv_dtype",          "num_layers",
                                                 "layers",   "max_context_tokens"};
  for (const auto& [key, unused] : root.items()) {
    if (std::find(std::begin(kFields), std::end(kFields), key) == std::end(kFields)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model JSON: unknown field '", key, "'; known fields: ",
          absl::StrJoin(
              std::begin(kFields), std::end(kFields), ", ",
              [](std::string* out, std::string_view f) { absl::StrAppend(out, AbslView(f)); })));
    }
  }
  for (std::string_view required : {"num_q_heads", "num_kv_heads", "head_dim"}) {
    if (!root.contains(std::string(required))) {
      return absl::InvalidArgumentError(
          absl::StrCat("model JSON: missing required field '", AbslView(required), "'"));
    }
  }
  ModelSpec spec;
  if (root.contains("name")) {
    PAGEDKV_ASSIGN_OR_RETURN(spec.name, GetString(root, "name"));
  }
  PAGEDKV_ASSIGN_OR_RETURN(spec.num_q_heads, GetInt32(root, "num_q_heads"));
  PAGEDKV_ASSIGN_OR_RETURN(spec.num_kv_heads, GetInt32(root, "num_kv_heads"));
  PAGEDKV_ASSIGN_OR_RETURN(spec.head_dim, GetInt32(root, "head_dim"));
  if (root.contains("kv_dtype")) {
    PAGEDKV_ASSIGN_OR_RETURN(const std::string dtype_name, GetString(root, "kv_dtype"));
    absl::StatusOr<DType> dtype = ParseDType(dtype_name);
    if (!dtype.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("model JSON: field 'kv_dtype': ", dtype.status().message()));
    }
    spec.kv_dtype = *dtype;
  }
  int32_t num_layers = -1;
  if (root.contains("num_layers")) {
    PAGEDKV_ASSIGN_OR_RETURN(num_layers, GetInt32(root, "num_layers"));
    if (num_layers <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("model JSON: field 'num_layers' must be > 0, got ", num_layers));
    }
    // Guards the allocation below against absurd inputs.
    if (num_layers > ModelSpec::kMaxLayers) {
      return absl::InvalidArgumentError(
          absl::StrCat("model JSON: field 'num_layers' = ", num_layers, " exceeds the limit of ",
                       ModelSpec::kMaxLayers, " layers"));
    }
  }
  if (root.contains("layers")) {
    const Json& layers = root.at("layers");
    if (!layers.is_array()) return FieldTypeError("layers", "an array of strings", layers);
    if (layers.size() > static_cast<size_t>(ModelSpec::kMaxLayers)) {
      return absl::InvalidArgumentError(absl::StrCat("model JSON: field 'layers' lists ",
                                                     layers.size(),
                                                     " layers, more than the limit "
                                                     "of ",
                                                     ModelSpec::kMaxLayers));
    }
    for (size_t i = 0; i < layers.size(); ++i) {
      const std::string field = absl::StrCat("layers[", i, "]");
      if (!layers[i].is_string()) {
        return FieldTypeError(field, "a string such as \"full\" or \"sliding:4096\"", layers[i]);
      }
      absl::StatusOr<LayerSpec> layer = ParseLayerSpec(layers[i].get<std::string>());
      if (!layer.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("model JSON: field '", field, "': ", layer.status().message()));
      }
      spec.layers.push_back(*layer);
    }
    if (num_layers >= 0 && static_cast<size_t>(num_layers) != layers.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("model JSON: 'num_layers' is ", num_layers, " but 'layers' lists ",
                       layers.size(), " entries; give one entry per layer or omit 'layers'"));
    }
  } else if (num_layers > 0) {
    spec.layers.assign(static_cast<size_t>(num_layers), LayerSpec::Full());
  } else {
    return absl::InvalidArgumentError(
        "model JSON: give 'num_layers' (all layers full attention) or 'layers' (one per layer)");
  }
  if (root.contains("max_context_tokens")) {
    PAGEDKV_ASSIGN_OR_RETURN(spec.max_context_tokens, GetInt32(root, "max_context_tokens"));
  }
  PAGEDKV_RETURN_IF_ERROR(spec.Validate());
  return spec;
}

std::string SpecLabel(const ModelSpec& spec) {
  return spec.name.empty() ? std::string("model") : absl::StrCat("model '", spec.name, "'");
}

}  // namespace

std::string_view AttentionKindName(AttentionKind kind) {
  switch (kind) {
    case AttentionKind::kFull:
      return "full";
    case AttentionKind::kSliding:
      return "sliding";
    case AttentionKind::kCross:
      return "cross";
    case AttentionKind::kShares:
      return "shares";
  }
  return "unknown";
}

std::string LayerSpecName(const LayerSpec& layer) {
  switch (layer.kind) {
    case AttentionKind::kSliding:
      return absl::StrCat("sliding:", layer.window_tokens);
    case AttentionKind::kShares:
      return absl::StrCat("shares:", layer.shares_layer);
    case AttentionKind::kFull:
    case AttentionKind::kCross:
      break;
  }
  return std::string(AttentionKindName(layer.kind));
}

absl::StatusOr<LayerSpec> ParseLayerSpec(std::string_view text) {
  // Two spellings of an argument: "sliding:4096" (the JSON form) and "sliding(4096)" (what
  // `pagedkv size` and the docs print).
  const std::string lower = absl::AsciiStrToLower(AbslView(text));
  const auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad layer '", Excerpt(text, 40), "': ", AbslView(why),
                     "; expected full, sliding:<window tokens>, cross or shares:<layer index> (or "
                     "sliding(<window tokens>), shares(<layer index>))"));
  };
  const size_t open = lower.find_first_of(":(");
  const std::string kind = lower.substr(0, open);
  if (kind == "full" || kind == "cross") {
    if (open != std::string::npos) return bad("takes no argument");
    return kind == "full" ? LayerSpec::Full() : LayerSpec::Cross();
  }
  if (kind != "sliding" && kind != "shares") return bad("unknown attention kind");
  if (open == std::string::npos) return bad("needs a number, as in sliding:4096 or shares(1)");
  std::string number = lower.substr(open + 1);
  if (lower[open] == '(') {
    if (number.empty() || number.back() != ')') return bad("a '(' needs its closing ')'");
    number.pop_back();
  }
  int32_t value = 0;
  const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (number.empty() || ec != std::errc() || end != number.data() + number.size()) {
    return bad("the argument is not a 32-bit integer");
  }
  return kind == "sliding" ? LayerSpec::Sliding(value) : LayerSpec::Shares(value);
}

absl::StatusOr<ModelSpec> ModelSpec::Preset(std::string_view name) {
  const std::string lower = absl::AsciiStrToLower(AbslView(name));
  for (ModelSpec& spec : AllPresets()) {
    if (spec.name == lower) return std::move(spec);
  }
  return absl::NotFoundError(absl::StrCat("unknown model preset '", Excerpt(name, 60),
                                          "'; presets: ", absl::StrJoin(PresetNames(), ", "),
                                          " (or give a path to a model JSON file)"));
}

std::vector<std::string> ModelSpec::PresetNames() {
  std::vector<std::string> names;
  for (const ModelSpec& spec : AllPresets()) names.push_back(spec.name);
  return names;
}

absl::StatusOr<ModelSpec> ModelSpec::FromJson(std::string_view json_text) {
  if (json_text.size() > kMaxModelFileBytes) {
    return absl::InvalidArgumentError(absl::StrCat("model JSON: ", json_text.size(),
                                                   " bytes, more than the limit of ",
                                                   kMaxModelFileBytes, " bytes"));
  }
  // Bounded before parsing: the parser and the printer of error values recurse per level.
  if (absl::Status st = CheckJsonNesting(json_text, kMaxJsonDepth); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("model JSON: ", st.message()));
  }
  // nlohmann::json reports errors by exception; they are caught here and never cross the API.
  Json root;
  try {
    root = Json::parse(json_text.begin(), json_text.end());
  } catch (const Json::parse_error& e) {
    // The parser's message quotes the last token read, which may be a long string: cut it.
    return absl::InvalidArgumentError(
        absl::StrCat("model JSON: syntax error at byte ", e.byte, ": ", Excerpt(e.what(), 160)));
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("model JSON: ", Excerpt(e.what(), 160)));
  }
  return SpecFromJsonValue(root);
}

absl::StatusOr<ModelSpec> ModelSpec::FromJsonFile(const std::string& path) {
  absl::StatusOr<std::string> text = ReadTextFile(path, kMaxModelFileBytes, "model JSON file");
  if (!text.ok()) {
    if (!absl::IsNotFound(text.status())) return text.status();
    return absl::NotFoundError(absl::StrCat(
        text.status().message(), " (or use a preset: ", absl::StrJoin(PresetNames(), ", "), ")"));
  }
  absl::StatusOr<ModelSpec> spec = FromJson(*text);
  if (!spec.ok()) {
    return absl::Status(spec.status().code(), absl::StrCat(path, ": ", spec.status().message()));
  }
  return spec;
}

std::string ModelSpec::ToJson() const {
  // Insertion order keeps the file readable: shape first, then the per-layer list.
  nlohmann::ordered_json root = nlohmann::ordered_json::object();
  root["name"] = name;
  root["num_q_heads"] = num_q_heads;
  root["num_kv_heads"] = num_kv_heads;
  root["head_dim"] = head_dim;
  root["kv_dtype"] = std::string(DTypeName(kv_dtype));
  root["num_layers"] = num_layers();
  nlohmann::ordered_json layer_names = nlohmann::ordered_json::array();
  for (const LayerSpec& layer : layers) layer_names.push_back(LayerSpecName(layer));
  root["layers"] = std::move(layer_names);
  if (max_context_tokens > 0) root["max_context_tokens"] = max_context_tokens;
  return root.dump();
}

absl::Status ModelSpec::Validate() const {
  const std::string who = SpecLabel(*this);
  const auto invalid = [&](auto&&... parts) {
    return absl::InvalidArgumentError(absl::StrCat(who, ": ", parts...));
  };
  if (num_q_heads <= 0 || num_q_heads > kMaxHeads) {
    return invalid("num_q_heads must be in [1, ", kMaxHeads, "], got ", num_q_heads);
  }
  if (num_kv_heads <= 0 || num_kv_heads > kMaxHeads) {
    return invalid("num_kv_heads must be in [1, ", kMaxHeads, "], got ", num_kv_heads);
  }
  if (head_dim <= 0 || head_dim > kMaxHeadDim) {
    return invalid("head_dim must be in [1, ", kMaxHeadDim, "], got ", head_dim);
  }
  if (num_q_heads % num_kv_heads != 0) {
    return invalid("num_kv_heads (", num_kv_heads, ") must divide num_q_heads (", num_q_heads, ")");
  }
  if (DTypeSize(kv_dtype) == 0) {
    return invalid("kv_dtype has unknown value ", static_cast<int>(kv_dtype));
  }
  if (layers.empty()) return invalid("needs at least one layer, got 0");
  if (layers.size() > static_cast<size_t>(kMaxLayers)) {
    return invalid("has ", layers.size(), " layers, more than the limit of ", kMaxLayers);
  }
  if (max_context_tokens < 0) {
    return invalid("max_context_tokens must be >= 0 (0 = unknown), got ", max_context_tokens);
  }
  int32_t num_storage_layers = 0;
  for (int32_t i = 0; i < num_layers(); ++i) {
    const LayerSpec& layer = layers[i];
    switch (layer.kind) {
      case AttentionKind::kFull:
      case AttentionKind::kCross:
        if (layer.window_tokens != 0) {
          return invalid("layer ", i, " (", AbslView(AttentionKindName(layer.kind)),
                         ") must have window_tokens 0, got ", layer.window_tokens);
        }
        ++num_storage_layers;
        break;
      case AttentionKind::kSliding:
        if (layer.window_tokens <= 0) {
          return invalid("layer ", i, " is sliding with window ", layer.window_tokens,
                         "; the window must be > 0 tokens");
        }
        ++num_storage_layers;
        break;
      case AttentionKind::kShares: {
        const int32_t j = layer.shares_layer;
        if (j < 0 || j >= num_layers()) {
          return invalid("layer ", i, " shares layer ", j, ", which is out of range [0, ",
                         num_layers(), ")");
        }
        if (j >= i) {
          return invalid("layer ", i, " shares layer ", j,
                         "; a shares(j) layer must point to an earlier layer (j < ", i, ")");
        }
        if (layers[j].kind == AttentionKind::kShares) {
          return invalid("layer ", i, " shares layer ", j, ", which itself shares layer ",
                         layers[j].shares_layer, "; point to a layer that has storage");
        }
        break;
      }
      default:
        return invalid("layer ", i, " has unknown attention kind ", static_cast<int>(layer.kind));
    }
    if (layer.kind != AttentionKind::kShares && layer.shares_layer != -1) {
      return invalid("layer ", i, " (", AbslView(AttentionKindName(layer.kind)),
                     ") must have shares_layer -1, got ", layer.shares_layer);
    }
  }
  if (num_storage_layers == 0) {
    return invalid("every layer shares another; at least one layer must have storage");
  }
  return absl::OkStatus();
}

std::vector<KvGroup> ModelSpec::Groups() const {
  std::vector<KvGroup> groups;
  for (int32_t i = 0; i < num_layers(); ++i) {
    const LayerSpec& layer = layers[i];
    if (layer.kind == AttentionKind::kShares) continue;
    auto it = std::find_if(groups.begin(), groups.end(), [&](const KvGroup& g) {
      return g.kind == layer.kind && g.window_tokens == layer.window_tokens;
    });
    if (it == groups.end()) {
      KvGroup group;
      group.group_id = static_cast<int32_t>(groups.size());
      group.kind = layer.kind;
      group.window_tokens = layer.window_tokens;
      groups.push_back(std::move(group));
      it = groups.end() - 1;
    }
    it->layers.push_back(i);
  }
  return groups;
}

int32_t ModelSpec::StorageLayer(int32_t layer) const {
  PAGEDKV_DCHECK_MSG(layer >= 0 && layer < num_layers(), "layer index out of range");
  const LayerSpec& spec = layers[static_cast<size_t>(layer)];
  return spec.kind == AttentionKind::kShares ? spec.shares_layer : layer;
}

uint64_t ModelSpec::BytesPerTokenPerLayer() const {
  return 2ull * static_cast<uint64_t>(num_kv_heads) * static_cast<uint64_t>(head_dim) *
         DTypeSize(kv_dtype);
}

int32_t ModelSpec::NumStorageLayers() const {
  return static_cast<int32_t>(std::count_if(layers.begin(), layers.end(), [](const LayerSpec& l) {
    return l.kind != AttentionKind::kShares;
  }));
}

}  // namespace pagedkv
