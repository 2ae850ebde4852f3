// Bindings of core/: Tier, DType, AttentionKind, LayerSpec, KvGroup, ModelSpec, CacheConfig and
// the sizing calculator. Enums also accept their string spelling ("fp16", "gpu", "sliding") where
// a Python API takes them.
#include <pybind11/operators.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "common.h"
#include "pagedkv/core/absl_compat.h"
#include "pagedkv/core/cache_config.h"
#include "pagedkv/core/logging.h"
#include "pagedkv/core/model_spec.h"
#include "pagedkv/core/sizing.h"
#include "pagedkv/core/types.h"

namespace pagedkv::python {
namespace {

// A layer given as a LayerSpec or as its spelling ("full", "sliding:4096", "cross", "shares:3").
LayerSpec ToLayerSpec(const py::handle& h) {
  if (py::isinstance<py::str>(h)) return ValueOrThrow(ParseLayerSpec(h.cast<std::string>()));
  return h.cast<LayerSpec>();
}

std::vector<LayerSpec> ToLayers(const py::object& layers, int32_t num_layers) {
  // The cap of ModelSpec::Validate, checked before anything is allocated for the layers.
  if (num_layers > ModelSpec::kMaxLayers) {
    throw py::value_error("num_layers=" + std::to_string(num_layers) + " exceeds the limit of " +
                          std::to_string(ModelSpec::kMaxLayers) + " layers");
  }
  std::vector<LayerSpec> out;
  if (!layers.is_none()) {
    if (py::hasattr(layers, "__len__") && py::len(layers) > ModelSpec::kMaxLayers) {
      throw py::value_error(std::to_string(py::len(layers)) + " layers exceed the limit of " +
                            std::to_string(ModelSpec::kMaxLayers));
    }
    for (const py::handle& h : layers) {
      if (out.size() >= static_cast<size_t>(ModelSpec::kMaxLayers)) {
        throw py::value_error("more layers than the limit of " +
                              std::to_string(ModelSpec::kMaxLayers));
      }
      out.push_back(ToLayerSpec(h));
    }
    if (num_layers >= 0 && static_cast<int32_t>(out.size()) != num_layers) {
      throw py::value_error("num_layers=" + std::to_string(num_layers) + " but " +
                            std::to_string(out.size()) +
                            " layers were listed; give one or both "
                            "consistently");
    }
  } else if (num_layers > 0) {
    out.assign(num_layers, LayerSpec::Full());
  }
  return out;
}

std::string ModelSpecRepr(const ModelSpec& s) {
  return "ModelSpec(name='" + s.name + "', num_layers=" + std::to_string(s.num_layers()) +
         ", num_q_heads=" + std::to_string(s.num_q_heads) +
         ", num_kv_heads=" + std::to_string(s.num_kv_heads) +
         ", head_dim=" + std::to_string(s.head_dim) + ", kv_dtype='" +
         std::string(DTypeName(s.kv_dtype)) + "')";
}

}  // namespace

void BindCore(py::module_& m) {
  // ---- Enums (constructible from their names, so APIs accept "fp16" where they take a DType) --
  py::enum_<Tier> tier(m, "Tier",
                       "Where a pool lives: GPU, HOST (swap space) or VIRTUAL "
                       "(metadata only, for simulation).");
  tier.value("GPU", Tier::kGpu).value("HOST", Tier::kHost).value("VIRTUAL", Tier::kVirtual);
  tier.def(py::init([](const std::string& name) { return ValueOrThrow(ParseTier(name)); }),
           py::arg("name"), "Parses 'gpu', 'host' or 'virtual'.");
  tier.def_property_readonly(
      "label", [](Tier t) { return std::string(TierName(t)); },
      "The lower-case spelling: 'gpu', 'host', 'virtual'.");
  py::implicitly_convertible<py::str, Tier>();

  py::enum_<DType> dtype(m, "DType", "Element type of the stored K/V.");
  dtype.value("FP32", DType::kFp32)
      .value("FP16", DType::kFp16)
      .value("BF16", DType::kBf16)
      .value("FP8_E4M3", DType::kFp8E4m3)
      .value("INT8", DType::kInt8);
  dtype.def(py::init([](const std::string& name) { return ValueOrThrow(ParseDType(name)); }),
            py::arg("name"),
            "Parses 'fp32', 'fp16', 'bf16', 'fp8_e4m3', 'int8' (and 'float32', 'float16', 'half', "
            "'bfloat16', 'fp8').");
  dtype.def_property_readonly(
      "label", [](DType d) { return std::string(DTypeName(d)); },
      "The spelling used in JSON: 'fp16', ...");
  dtype.def_property_readonly(
      "itemsize", [](DType d) { return DTypeSize(d); }, "Bytes per element.");
  py::implicitly_convertible<py::str, DType>();
  m.def(
      "dtype_size", [](DType d) { return DTypeSize(d); }, py::arg("dtype"),
      "Bytes per element of a KV dtype (4, 2, 2, 1, 1).");

  py::enum_<AttentionKind> kind(m, "AttentionKind", "Attention kind of one layer.");
  kind.value("FULL", AttentionKind::kFull)
      .value("SLIDING", AttentionKind::kSliding)
      .value("CROSS", AttentionKind::kCross)
      .value("SHARES", AttentionKind::kShares);
  kind.def_property_readonly(
      "label", [](AttentionKind k) { return std::string(AttentionKindName(k)); },
      "'full', 'sliding', 'cross' or 'shares'.");

  // ---- LayerSpec / KvGroup ----------------------------------------------------------------------
  py::class_<LayerSpec>(m, "LayerSpec",
                        "One layer's attention kind. Spelled 'full', 'sliding:<window>', 'cross' "
                        "or 'shares:<layer>' wherever a list of layers is accepted.")
      .def(py::init([](const std::string& text) { return ValueOrThrow(ParseLayerSpec(text)); }),
           py::arg("text"), "Parses 'full', 'sliding:4096', 'cross' or 'shares:3'.")
      .def_static("full", &LayerSpec::Full)
      .def_static("sliding", &LayerSpec::Sliding, py::arg("window_tokens"))
      .def_static("cross", &LayerSpec::Cross)
      .def_static("shares", &LayerSpec::Shares, py::arg("layer"))
      .def_readwrite("kind", &LayerSpec::kind)
      .def_readwrite("window_tokens", &LayerSpec::window_tokens, "> 0 for sliding layers")
      .def_readwrite("shares_layer", &LayerSpec::shares_layer,
                     "for shares layers: the earlier layer whose KV this one reads")
      .def(py::self == py::self)
      .def("__str__", [](const LayerSpec& l) { return LayerSpecName(l); })
      .def("__repr__", [](const LayerSpec& l) { return "LayerSpec('" + LayerSpecName(l) + "')"; });
  py::implicitly_convertible<py::str, LayerSpec>();

  py::class_<KvGroup>(m, "KvGroup",
                      "Layers with the same attention kind and window; one pool and one block "
                      "table per sequence each.")
      .def_readonly("group_id", &KvGroup::group_id)
      .def_readonly("kind", &KvGroup::kind)
      .def_readonly("window_tokens", &KvGroup::window_tokens)
      .def_readonly("layers", &KvGroup::layers, "model layers with storage in this group")
      .def("__repr__", [](const KvGroup& g) {
        return "KvGroup(group_id=" + std::to_string(g.group_id) + ", kind='" +
               std::string(AttentionKindName(g.kind)) +
               "', window_tokens=" + std::to_string(g.window_tokens) +
               ", num_layers=" + std::to_string(g.layers.size()) + ")";
      });

  // ---- ModelSpec
  // ----------------------------------------------------------------------------------
  py::class_<ModelSpec>(
      m, "ModelSpec",
      "Shape of a model's KV cache: layers, KV heads, head dim, dtype and each "
      "layer's attention kind.\n\n"
      "    spec = pagedkv.ModelSpec.preset('llama-3-8b')\n"
      "    spec = pagedkv.ModelSpec(name='toy', num_layers=2, num_q_heads=4,\n"
      "                             num_kv_heads=2, head_dim=16, kv_dtype='fp32')\n"
      "    spec = pagedkv.ModelSpec.from_json(text)")
      .def(
          py::init([](std::string name, int32_t num_q_heads, int32_t num_kv_heads, int32_t head_dim,
                      DType kv_dtype, int32_t num_layers, py::object layers, bool validate) {
            ModelSpec s;
            s.name = std::move(name);
            s.num_q_heads = num_q_heads;
            s.num_kv_heads = num_kv_heads;
            s.head_dim = head_dim;
            s.kv_dtype = kv_dtype;
            s.layers = ToLayers(layers, num_layers);
            if (validate) ThrowIfError(s.Validate());
            return s;
          }),
          py::kw_only(), py::arg("name") = "custom", py::arg("num_q_heads"),
          py::arg("num_kv_heads"), py::arg("head_dim"), py::arg("kv_dtype") = DType::kFp16,
          py::arg("num_layers") = -1, py::arg("layers") = py::none(), py::arg("validate") = true,
          "Builds a spec. `layers` lists one LayerSpec or spelling per layer; without it "
          "`num_layers` full-attention layers. ValueError when the result is invalid (unless "
          "validate=False).")
      .def_static(
          "preset", [](const std::string& name) { return ValueOrThrow(ModelSpec::Preset(name)); },
          py::arg("name"), "A named preset (see preset_names()); KeyError for an unknown name.")
      .def_static("preset_names", &ModelSpec::PresetNames)
      .def_static(
          "from_json",
          [](const std::string& text) { return ValueOrThrow(ModelSpec::FromJson(text)); },
          py::arg("json_text"),
          "Parses {\"name\", \"num_q_heads\", \"num_kv_heads\", \"head_dim\", \"kv_dtype\", "
          "\"num_layers\", \"layers\": [\"full\", \"sliding:4096\", ...]}; ValueError when "
          "malformed or invalid.")
      .def_static(
          "from_json_file",
          [](const std::string& path) { return ValueOrThrow(ModelSpec::FromJsonFile(path)); },
          py::arg("path"))
      .def("to_json", &ModelSpec::ToJson)
      .def(
          "validate", [](const ModelSpec& s) { ThrowIfError(s.Validate()); },
          "Raises ValueError naming the bad field.")
      .def("groups", &ModelSpec::Groups, "KV groups in order of first appearance.")
      .def("storage_layer", &ModelSpec::StorageLayer, py::arg("layer"),
           "The layer whose storage `layer` reads (itself unless it is a shares layer).")
      .def("bytes_per_token_per_layer", &ModelSpec::BytesPerTokenPerLayer)
      .def("num_storage_layers", &ModelSpec::NumStorageLayers)
      .def_property_readonly("num_layers", &ModelSpec::num_layers)
      .def_readwrite("name", &ModelSpec::name)
      .def_readwrite("num_q_heads", &ModelSpec::num_q_heads)
      .def_readwrite("num_kv_heads", &ModelSpec::num_kv_heads)
      .def_readwrite("head_dim", &ModelSpec::head_dim)
      .def_readwrite("kv_dtype", &ModelSpec::kv_dtype)
      .def_property(
          "layers", [](const ModelSpec& s) { return s.layers; },
          [](ModelSpec& s, const py::object& layers) { s.layers = ToLayers(layers, -1); },
          "One LayerSpec per layer (assign a list of LayerSpecs or spellings).")
      .def(py::self == py::self)
      .def("__repr__", &ModelSpecRepr);

  // ---- RemoteTierConfig
  // -----------------------------------------------------------------------------
  py::class_<RemoteTierConfig>(
      m, "RemoteTierConfig",
      "The shared KV tier below host (CacheConfig.remote): a Redis server or cluster.\n\n"
      "    cfg.remote.url = 'redis+cluster://10.0.0.5:7000,10.0.0.6:7000'")
      .def(py::init<>())
      .def_readwrite(
          "url", &RemoteTierConfig::url,
          "redis://HOST:PORT, redis+cluster://HOST:PORT[,...] or memory://NAME; '' = off")
      .def_readwrite("timeout_us", &RemoteTierConfig::timeout_us,
                     "deadline of one lookup round trip and one write batch, microseconds")
      .def_readwrite("ttl_seconds", &RemoteTierConfig::ttl_seconds, "expiry; 0 = never")
      .def_readwrite("admit_hits", &RemoteTierConfig::admit_hits,
                     "prefix hits a page needs before it is written (0 = every page)")
      .def_readwrite("queue_bytes", &RemoteTierConfig::queue_bytes,
                     "write queue size; pages beyond it are dropped, never waited for")
      .def_readwrite("min_hit_pages", &RemoteTierConfig::min_hit_pages,
                     "pages left after the local hits below which no lookup is made")
      .def("validate", [](const RemoteTierConfig& c) { ThrowIfError(c.Validate()); })
      .def("__repr__", [](const RemoteTierConfig& c) {
        return "RemoteTierConfig(url='" + c.url + "', timeout_us=" + std::to_string(c.timeout_us) +
               ", ttl_seconds=" + std::to_string(c.ttl_seconds) +
               ", admit_hits=" + std::to_string(c.admit_hits) + ")";
      });

  // ---- CacheConfig
  // ----------------------------------------------------------------------------------
  py::class_<CacheConfig>(
      m, "CacheConfig",
      "How much KV memory the block manager may use and how it behaves.\n\n"
      "    cfg = pagedkv.CacheConfig(block_size_tokens=16, gpu_num_blocks=1024,\n"
      "                              host_num_blocks=256)")
      .def(py::init([](const py::kwargs& kwargs) {
             CacheConfig c;
             py::object self = py::cast(c);
             for (const auto& item : kwargs) {
               const std::string key = item.first.cast<std::string>();
               if (!py::hasattr(self, key.c_str())) {
                 throw py::type_error("CacheConfig has no field '" + key + "'");
               }
               self.attr(key.c_str()) = item.second;
             }
             return self.cast<CacheConfig>();
           }),
           "Keyword arguments set the fields of the same name; the rest keep their defaults.")
      .def_readwrite("block_size_tokens", &CacheConfig::block_size_tokens)
      .def_readwrite("gpu_tier", &CacheConfig::gpu_tier,
                     "Tier of the primary pool: GPU for serving, VIRTUAL for simulation.")
      .def_readwrite("gpu_num_blocks", &CacheConfig::gpu_num_blocks,
                     "Blocks per group (> 0 wins over gpu_budget_bytes).")
      .def_readwrite("gpu_budget_bytes", &CacheConfig::gpu_budget_bytes)
      .def_readwrite("gpu_memory_fraction", &CacheConfig::gpu_memory_fraction)
      .def_readwrite("host_num_blocks", &CacheConfig::host_num_blocks,
                     "Host (swap / second-level cache) blocks; 0 and 0 bytes = no host tier.")
      .def_readwrite("host_budget_bytes", &CacheConfig::host_budget_bytes)
      .def_readwrite("watermark", &CacheConfig::watermark,
                     "Fraction of GPU blocks kept free when admitting.")
      .def_readwrite("enable_prefix_caching", &CacheConfig::enable_prefix_caching)
      .def_readwrite("strict_gpu", &CacheConfig::strict_gpu)
      .def_readwrite("host_huge_pages", &CacheConfig::host_huge_pages)
      .def_readwrite("remote", &CacheConfig::remote,
                     "The remote tier (RemoteTierConfig); its url is empty when there is none.")
      .def_readonly_static("MAX_BLOCK_SIZE_TOKENS", &CacheConfig::kMaxBlockSizeTokens)
      .def(
          "validate", [](const CacheConfig& c) { ThrowIfError(c.Validate()); },
          "Raises ValueError naming the field, its value and the valid range.")
      .def("__repr__", [](const CacheConfig& c) {
        return "CacheConfig(block_size_tokens=" + std::to_string(c.block_size_tokens) +
               ", gpu_tier='" + std::string(TierName(c.gpu_tier)) +
               "', gpu_num_blocks=" + std::to_string(c.gpu_num_blocks) +
               ", gpu_budget_bytes=" + std::to_string(c.gpu_budget_bytes) +
               ", host_num_blocks=" + std::to_string(c.host_num_blocks) +
               ", watermark=" + std::to_string(c.watermark) +
               ", enable_prefix_caching=" + (c.enable_prefix_caching ? "True" : "False") + ")";
      });

  // ---- Sizing
  // -----------------------------------------------------------------------------------------
  py::class_<GroupSizing>(m, "GroupSizing", "One KV group's share of a SizingResult.")
      .def_readonly("group_id", &GroupSizing::group_id)
      .def_readonly("kind", &GroupSizing::kind)
      .def_readonly("window_tokens", &GroupSizing::window_tokens)
      .def_readonly("num_layers", &GroupSizing::num_layers)
      .def_readonly("bytes_per_token", &GroupSizing::bytes_per_token)
      .def_readonly("bytes_per_block", &GroupSizing::bytes_per_block)
      .def_readonly("tokens_per_sequence", &GroupSizing::tokens_per_sequence)
      .def_readonly("blocks_per_sequence", &GroupSizing::blocks_per_sequence)
      .def_readonly("bytes_per_sequence", &GroupSizing::bytes_per_sequence);
  py::class_<SizingResult>(m, "SizingResult", "What compute_sizing() found (see docs/sizing.md).")
      .def_readonly("model_name", &SizingResult::model_name)
      .def_readonly("kv_dtype", &SizingResult::kv_dtype)
      .def_readonly("context_tokens", &SizingResult::context_tokens)
      .def_readonly("block_size_tokens", &SizingResult::block_size_tokens)
      .def_readonly("encoder_tokens", &SizingResult::encoder_tokens)
      .def_readonly("bytes_per_token", &SizingResult::bytes_per_token)
      .def_readonly("bytes_per_block", &SizingResult::bytes_per_block)
      .def_readonly("bytes_per_sequence", &SizingResult::bytes_per_sequence)
      .def_readonly("gpu_memory_bytes", &SizingResult::gpu_memory_bytes)
      .def_readonly("weights_bytes", &SizingResult::weights_bytes)
      .def_readonly("gpu_memory_fraction", &SizingResult::gpu_memory_fraction)
      .def_readonly("budget_bytes", &SizingResult::budget_bytes)
      .def_readonly("num_blocks", &SizingResult::num_blocks)
      .def_readonly("max_tokens", &SizingResult::max_tokens)
      .def_readonly("max_sequences", &SizingResult::max_sequences)
      .def_readonly("groups", &SizingResult::groups);
  m.def(
      "compute_sizing",
      [](const ModelSpec& model, uint64_t gpu_memory_bytes, int64_t context_tokens,
         int32_t block_size_tokens, std::optional<DType> kv_dtype, uint64_t weights_bytes,
         double gpu_memory_fraction, std::optional<int64_t> encoder_tokens) {
        SizingOptions o;
        o.context_tokens = context_tokens;
        o.block_size_tokens = block_size_tokens;
        o.kv_dtype = kv_dtype;
        o.gpu_memory_bytes = gpu_memory_bytes;
        o.weights_bytes = weights_bytes;
        o.gpu_memory_fraction = gpu_memory_fraction;
        o.encoder_tokens = encoder_tokens;
        return ValueOrThrow(ComputeSizing(model, o));
      },
      py::arg("model"), py::kw_only(), py::arg("gpu_memory_bytes"),
      py::arg("context_tokens") = 2048, py::arg("block_size_tokens") = 16,
      py::arg("kv_dtype") = py::none(), py::arg("weights_bytes") = 0,
      py::arg("gpu_memory_fraction") = 1.0, py::arg("encoder_tokens") = py::none(),
      "KV bytes per token, block and sequence, and how many blocks, tokens and sequences the "
      "budget floor(gpu_memory_bytes * fraction) - weights_bytes holds. ValueError for bad "
      "options.");
  m.def(
      "parse_byte_size", [](const std::string& text) { return ValueOrThrow(ParseByteSize(text)); },
      py::arg("text"),
      "'80GiB' -> 85899345920, '24GB' -> 24000000000 (GB/MB powers of 1000, GiB/MiB of 1024).");
  m.def("format_bytes", &FormatBytes, py::arg("num_bytes"), "1073741824 -> '1.00 GiB'.");
  m.def(
      "set_log_level", [](const std::string& level) { ThrowIfError(SetLogLevel(level)); },
      py::arg("level"), "Level of the library's stderr log: off, error, warn, info, debug, trace.");
}

}  // namespace pagedkv::python
