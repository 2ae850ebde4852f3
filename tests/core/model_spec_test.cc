#include "pagedkv/core/model_spec.h"

#include <cstdio>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagedkv {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

ModelSpec MustPreset(std::string_view name) {
  absl::StatusOr<ModelSpec> spec = ModelSpec::Preset(name);
  EXPECT_TRUE(spec.ok()) << spec.status();
  return spec.ok() ? *spec : ModelSpec{};
}

ModelSpec Small(std::vector<LayerSpec> layers) {
  ModelSpec spec;
  spec.name = "small";
  spec.num_q_heads = 4;
  spec.num_kv_heads = 2;
  spec.head_dim = 8;
  spec.layers = std::move(layers);
  return spec;
}

TEST(ModelSpecPresetTest, EveryPresetValidatesAndRoundTripsThroughJson) {
  const std::vector<std::string> names = ModelSpec::PresetNames();
  EXPECT_THAT(names,
              ElementsAre("llama-2-7b", "llama-3-8b", "llama-3-70b", "mistral-7b", "qwen2.5-1.5b",
                          "phi-4-mini", "gemma-hybrid", "whisper-large-v3", "opt-13b", "opt-66b",
                          "llama-3.1-8b", "llama-3.1-70b", "qwen2.5-7b", "gemma-2-9b"));
  for (const std::string& name : names) {
    SCOPED_TRACE(name);
    ModelSpec spec = MustPreset(name);
    EXPECT_EQ(spec.name, name);
    EXPECT_EQ(spec.kv_dtype, DType::kFp16);
    EXPECT_TRUE(spec.Validate().ok()) << spec.Validate();
    absl::StatusOr<ModelSpec> back = ModelSpec::FromJson(spec.ToJson());
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, spec);
  }
}

TEST(ModelSpecPresetTest, ShapesMatchTheDesign) {
  struct Shape {
    const char* name;
    int layers, q, kv, dim, context;
  };
  for (const Shape& s :
       {Shape{"llama-2-7b", 32, 32, 32, 128, 4096}, Shape{"llama-3-8b", 32, 32, 8, 128, 8192},
        Shape{"llama-3-70b", 80, 64, 8, 128, 8192}, Shape{"mistral-7b", 32, 32, 8, 128, 32768},
        Shape{"qwen2.5-1.5b", 28, 12, 2, 128, 32768}, Shape{"phi-4-mini", 32, 24, 8, 128, 131072},
        Shape{"gemma-hybrid", 26, 8, 4, 256, 8192}, Shape{"whisper-large-v3", 64, 20, 20, 64, 448},
        Shape{"opt-13b", 40, 40, 40, 128, 2048}, Shape{"opt-66b", 64, 72, 72, 128, 2048},
        Shape{"llama-3.1-8b", 32, 32, 8, 128, 131072},
        Shape{"llama-3.1-70b", 80, 64, 8, 128, 131072}, Shape{"qwen2.5-7b", 28, 28, 4, 128, 32768},
        Shape{"gemma-2-9b", 42, 16, 8, 256, 8192}}) {
    SCOPED_TRACE(s.name);
    ModelSpec spec = MustPreset(s.name);
    EXPECT_EQ(spec.num_layers(), s.layers);
    EXPECT_EQ(spec.num_q_heads, s.q);
    EXPECT_EQ(spec.num_kv_heads, s.kv);
    EXPECT_EQ(spec.head_dim, s.dim);
    EXPECT_EQ(spec.max_context_tokens, s.context);
  }
  // Gemma-2-9B alternates sliding-window (even) and full (odd) layers: two KV groups of 21.
  const std::vector<KvGroup> gemma = MustPreset("gemma-2-9b").Groups();
  ASSERT_EQ(gemma.size(), 2u);
  EXPECT_EQ(gemma[0].kind, AttentionKind::kSliding);
  EXPECT_EQ(gemma[0].window_tokens, 4096);
  EXPECT_EQ(gemma[0].layers.size(), 21u);
  EXPECT_EQ(gemma[0].layers[1], 2);
  EXPECT_EQ(gemma[1].kind, AttentionKind::kFull);
  EXPECT_EQ(gemma[1].layers.front(), 1);
  // OPT-13B: 800 KiB of fp16 KV per token.
  EXPECT_EQ(MustPreset("opt-13b").BytesPerTokenPerLayer() * 40, 819200u);
  EXPECT_EQ(MustPreset("llama-2-7b").BytesPerTokenPerLayer(), 2u * 32 * 128 * 2);
  EXPECT_EQ(MustPreset("llama-3-8b").BytesPerTokenPerLayer(), 2u * 8 * 128 * 2);
}

TEST(ModelSpecJsonTest, ContextLengthIsOptional) {
  absl::StatusOr<ModelSpec> spec = ModelSpec::FromJson(
      R"({"num_q_heads": 4, "num_kv_heads": 2, "head_dim": 8, "num_layers": 2,
          "max_context_tokens": 1024})");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->max_context_tokens, 1024);
  EXPECT_NE(spec->ToJson().find("\"max_context_tokens\":1024"), std::string::npos);
  spec = ModelSpec::FromJson(R"({"num_q_heads": 4, "num_kv_heads": 2, "head_dim": 8,
                                 "num_layers": 2})");
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(spec->max_context_tokens, 0);
  EXPECT_EQ(spec->ToJson().find("max_context_tokens"), std::string::npos);
  spec = ModelSpec::FromJson(R"({"num_q_heads": 4, "num_kv_heads": 2, "head_dim": 8,
                                 "num_layers": 2, "max_context_tokens": -5})");
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(spec.status().message().find("max_context_tokens"), std::string::npos);
}

TEST(ModelSpecPresetTest, PlainModelsHaveOneFullGroup) {
  ModelSpec spec = MustPreset("llama-3-70b");
  std::vector<KvGroup> groups = spec.Groups();
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(groups[0].group_id, 0);
  EXPECT_EQ(groups[0].kind, AttentionKind::kFull);
  EXPECT_EQ(groups[0].layers.size(), 80u);
  EXPECT_EQ(groups[0].layers.front(), 0);
  EXPECT_EQ(groups[0].layers.back(), 79);
}

TEST(ModelSpecPresetTest, MistralIsOneSlidingGroup) {
  std::vector<KvGroup> groups = MustPreset("mistral-7b").Groups();
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(groups[0].kind, AttentionKind::kSliding);
  EXPECT_EQ(groups[0].window_tokens, 4096);
  EXPECT_EQ(groups[0].layers.size(), 32u);
}

TEST(ModelSpecPresetTest, GemmaHybridLayout) {
  ModelSpec spec = MustPreset("gemma-hybrid");
  std::vector<KvGroup> groups = spec.Groups();
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].kind, AttentionKind::kSliding);  // layer 0 comes first
  EXPECT_EQ(groups[0].window_tokens, 4096);
  EXPECT_EQ(groups[0].layers.size(), 17u);
  EXPECT_EQ(groups[1].kind, AttentionKind::kFull);
  EXPECT_THAT(groups[1].layers, ElementsAre(5, 11, 17));
  EXPECT_EQ(spec.NumStorageLayers(), 20);
  for (int32_t i = 20; i < 26; ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(spec.layers[i].kind, AttentionKind::kShares);
    EXPECT_EQ(spec.StorageLayer(i), i == 23 ? 17 : 19);
  }
  EXPECT_EQ(spec.StorageLayer(3), 3);
}

TEST(ModelSpecPresetTest, WhisperHasSelfAndCrossGroups) {
  std::vector<KvGroup> groups = MustPreset("whisper-large-v3").Groups();
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].kind, AttentionKind::kFull);
  EXPECT_EQ(groups[0].layers.size(), 32u);
  EXPECT_EQ(groups[1].kind, AttentionKind::kCross);
  EXPECT_EQ(groups[1].group_id, 1);
  EXPECT_EQ(groups[1].layers.front(), 32);
  EXPECT_EQ(groups[1].layers.size(), 32u);
}

TEST(ModelSpecPresetTest, UnknownPresetIsNotFoundListingNames) {
  absl::StatusOr<ModelSpec> spec = ModelSpec::Preset("llama-9");
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Msg(spec.status()), HasSubstr("llama-9"));
  EXPECT_THAT(Msg(spec.status()), HasSubstr("mistral-7b"));
  EXPECT_TRUE(ModelSpec::Preset("LLaMA-2-7B").ok());
}

TEST(ModelSpecGroupsTest, GroupsByKindAndWindowInOrderOfFirstAppearance) {
  ModelSpec spec =
      Small({LayerSpec::Sliding(128), LayerSpec::Full(), LayerSpec::Sliding(256),
             LayerSpec::Sliding(128), LayerSpec::Shares(1), LayerSpec::Full(), LayerSpec::Cross()});
  ASSERT_TRUE(spec.Validate().ok()) << spec.Validate();
  std::vector<KvGroup> groups = spec.Groups();
  ASSERT_EQ(groups.size(), 4u);
  EXPECT_EQ(groups[0].window_tokens, 128);
  EXPECT_THAT(groups[0].layers, ElementsAre(0, 3));
  EXPECT_THAT(groups[1].layers, ElementsAre(1, 5));  // layer 4 (shares) belongs to no group
  EXPECT_EQ(groups[2].window_tokens, 256);
  EXPECT_THAT(groups[2].layers, ElementsAre(2));
  EXPECT_EQ(groups[3].kind, AttentionKind::kCross);
  for (size_t g = 0; g < groups.size(); ++g) EXPECT_EQ(groups[g].group_id, static_cast<int>(g));
  EXPECT_EQ(spec.StorageLayer(4), 1);
  EXPECT_EQ(spec.NumStorageLayers(), 6);
}

struct BadSpecCase {
  const char* label;
  ModelSpec spec;
  const char* expected;  // substring of the message
};

class ModelSpecValidateTest : public ::testing::TestWithParam<BadSpecCase> {};

TEST_P(ModelSpecValidateTest, RejectsWithMessage) {
  absl::Status status = GetParam().spec.Validate();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(status), HasSubstr(GetParam().expected));
}

ModelSpec With(ModelSpec spec, void (*edit)(ModelSpec&)) {
  edit(spec);
  return spec;
}

INSTANTIATE_TEST_SUITE_P(
    BadSpecs, ModelSpecValidateTest,
    ::testing::Values(
        BadSpecCase{"ZeroQHeads",
                    With(Small({LayerSpec::Full()}), [](ModelSpec& s) { s.num_q_heads = 0; }),
                    "num_q_heads must be in [1, 65536], got 0"},
        BadSpecCase{"NegativeKvHeads",
                    With(Small({LayerSpec::Full()}), [](ModelSpec& s) { s.num_kv_heads = -2; }),
                    "num_kv_heads must be in [1, 65536], got -2"},
        BadSpecCase{"ZeroHeadDim",
                    With(Small({LayerSpec::Full()}), [](ModelSpec& s) { s.head_dim = 0; }),
                    "head_dim must be in [1, 65536], got 0"},
        BadSpecCase{"KvHeadsDoNotDivide",
                    With(Small({LayerSpec::Full()}), [](ModelSpec& s) { s.num_kv_heads = 3; }),
                    "num_kv_heads (3) must divide num_q_heads (4)"},
        BadSpecCase{"NoLayers", Small({}), "at least one layer"},
        BadSpecCase{"ZeroWindow", Small({LayerSpec::Sliding(0)}), "window must be > 0"},
        BadSpecCase{"NegativeWindow", Small({LayerSpec::Full(), LayerSpec::Sliding(-5)}),
                    "layer 1 is sliding with window -5"},
        BadSpecCase{"SharesLaterLayer", Small({LayerSpec::Shares(1), LayerSpec::Full()}),
                    "layer 0 shares layer 1; a shares(j) layer must point to an earlier layer"},
        BadSpecCase{"SharesItself", Small({LayerSpec::Full(), LayerSpec::Shares(1)}),
                    "earlier layer"},
        BadSpecCase{"SharesOutOfRange", Small({LayerSpec::Full(), LayerSpec::Shares(7)}),
                    "out of range"},
        BadSpecCase{"SharesNegative", Small({LayerSpec::Full(), LayerSpec::Shares(-1)}),
                    "out of range"},
        BadSpecCase{"SharesASharesLayer",
                    Small({LayerSpec::Full(), LayerSpec::Shares(0), LayerSpec::Shares(1)}),
                    "which itself shares layer 0"},
        BadSpecCase{"FullWithWindow", Small({LayerSpec{AttentionKind::kFull, 64, -1}}),
                    "must have window_tokens 0"},
        BadSpecCase{"CrossWithSharesLayer", Small({LayerSpec{AttentionKind::kCross, 0, 0}}),
                    "must have shares_layer -1"}),
    [](const ::testing::TestParamInfo<BadSpecCase>& info) { return info.param.label; });

TEST(ModelSpecValidateTest, MessageNamesTheModel) {
  ModelSpec spec = Small({LayerSpec::Full()});
  spec.head_dim = -1;
  EXPECT_THAT(Msg(spec.Validate()), HasSubstr("model 'small'"));
}

TEST(LayerSpecTest, NamesRoundTrip) {
  for (const LayerSpec& layer :
       {LayerSpec::Full(), LayerSpec::Sliding(4096), LayerSpec::Cross(), LayerSpec::Shares(3)}) {
    absl::StatusOr<LayerSpec> back = ParseLayerSpec(LayerSpecName(layer));
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, layer);
  }
  EXPECT_EQ(LayerSpecName(LayerSpec::Sliding(4096)), "sliding:4096");
  EXPECT_EQ(*ParseLayerSpec("SLIDING:7"), LayerSpec::Sliding(7));
}

// The form `pagedkv size` prints and the docs use is accepted too.
TEST(LayerSpecTest, AcceptsTheParenthesizedFormToolsPrint) {
  EXPECT_EQ(*ParseLayerSpec("sliding(4096)"), LayerSpec::Sliding(4096));
  EXPECT_EQ(*ParseLayerSpec("shares(1)"), LayerSpec::Shares(1));
  absl::StatusOr<ModelSpec> spec = ModelSpec::FromJson(
      R"json({"name": "my-model", "num_q_heads": 32, "num_kv_heads": 8, "head_dim": 128,
          "kv_dtype": "bf16", "layers": ["full", "sliding(4096)", "shares(1)", "full"]})json");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_THAT(spec->layers, ElementsAre(LayerSpec::Full(), LayerSpec::Sliding(4096),
                                        LayerSpec::Shares(1), LayerSpec::Full()));
}

TEST(LayerSpecTest, RejectsGarbage) {
  for (const char* text : {"", "fullish", "sliding", "sliding:", "sliding:abc", "sliding:12x",
                           "shares:", "full:3", "cross:1", "sliding:99999999999", "sliding(",
                           "sliding(12", "sliding()", "shares(1)x", "full()", "sliding(4)(5)"}) {
    SCOPED_TRACE(text);
    absl::StatusOr<LayerSpec> layer = ParseLayerSpec(text);
    EXPECT_EQ(layer.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Msg(layer.status()), HasSubstr("expected full, sliding:<window tokens>"));
  }
}

TEST(ModelSpecJsonTest, ParsesCustomShape) {
  absl::StatusOr<ModelSpec> spec = ModelSpec::FromJson(R"({
    "name": "tiny", "num_q_heads": 8, "num_kv_heads": 2, "head_dim": 64, "kv_dtype": "fp8",
    "layers": ["full", "sliding:512", "shares:0", "cross"]})");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->name, "tiny");
  EXPECT_EQ(spec->kv_dtype, DType::kFp8E4m3);
  EXPECT_THAT(spec->layers, ElementsAre(LayerSpec::Full(), LayerSpec::Sliding(512),
                                        LayerSpec::Shares(0), LayerSpec::Cross()));
}

TEST(ModelSpecJsonTest, OmittedLayersMeansAllFullAndDefaultDtypeIsFp16) {
  absl::StatusOr<ModelSpec> spec = ModelSpec::FromJson(
      R"({"num_q_heads": 32, "num_kv_heads": 8, "head_dim": 128, "num_layers": 4})");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->num_layers(), 4);
  EXPECT_EQ(spec->kv_dtype, DType::kFp16);
  for (const LayerSpec& layer : spec->layers) EXPECT_EQ(layer, LayerSpec::Full());
}

struct BadJsonCase {
  const char* label;
  const char* json;
  const char* expected;
};

class ModelSpecBadJsonTest : public ::testing::TestWithParam<BadJsonCase> {};

TEST_P(ModelSpecBadJsonTest, InvalidArgumentWithMessage) {
  absl::StatusOr<ModelSpec> spec = ModelSpec::FromJson(GetParam().json);
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(spec.status()), HasSubstr(GetParam().expected));
}

INSTANTIATE_TEST_SUITE_P(
    BadJson, ModelSpecBadJsonTest,
    ::testing::Values(
        BadJsonCase{"Syntax", R"({"num_q_heads": 8,, })", "syntax error at byte 19"},
        BadJsonCase{"Empty", "", "syntax error"},
        BadJsonCase{"NotAnObject", "[1, 2]", "'<root>' must be an object"},
        BadJsonCase{"UnknownField",
                    R"({"num_q_heads": 8, "num_kv_heads": 8, "head_dim": 8, "num_layers": 1,
                        "rope_theta": 1})",
                    "unknown field 'rope_theta'"},
        BadJsonCase{"WrongType",
                    R"({"num_q_heads": "8", "num_kv_heads": 8, "head_dim": 8, "num_layers": 1})",
                    "field 'num_q_heads' must be an integer"},
        BadJsonCase{"FloatHeads",
                    R"({"num_q_heads": 8.5, "num_kv_heads": 8, "head_dim": 8, "num_layers": 1})",
                    "field 'num_q_heads' must be an integer"},
        BadJsonCase{"MissingField", R"({"num_q_heads": 8, "head_dim": 8, "num_layers": 1})",
                    "missing required field 'num_kv_heads'"},
        BadJsonCase{"NoLayers", R"({"num_q_heads": 8, "num_kv_heads": 8, "head_dim": 8})",
                    "give 'num_layers'"},
        BadJsonCase{"LayerCountMismatch",
                    R"({"num_q_heads": 8, "num_kv_heads": 8, "head_dim": 8, "num_layers": 3,
                        "layers": ["full"]})",
                    "'num_layers' is 3 but 'layers' lists 1"},
        BadJsonCase{"LayerNotString",
                    R"({"num_q_heads": 8, "num_kv_heads": 8, "head_dim": 8, "layers": [1]})",
                    "field 'layers[0]' must be a string"},
        BadJsonCase{"BadLayer",
                    R"({"num_q_heads": 8, "num_kv_heads": 8, "head_dim": 8,
                        "layers": ["full", "slide:4"]})",
                    "field 'layers[1]': bad layer 'slide:4'"},
        BadJsonCase{"BadDtype",
                    R"({"num_q_heads": 8, "num_kv_heads": 8, "head_dim": 8, "num_layers": 1,
                        "kv_dtype": "fp12"})",
                    "field 'kv_dtype': unknown dtype 'fp12'"},
        BadJsonCase{"ValidationRunsOnLoad",
                    R"({"num_q_heads": 8, "num_kv_heads": 3, "head_dim": 8, "num_layers": 1})",
                    "num_kv_heads (3) must divide num_q_heads (8)"},
        BadJsonCase{"SharesForward",
                    R"({"num_q_heads": 8, "num_kv_heads": 8, "head_dim": 8,
                        "layers": ["shares:1", "full"]})",
                    "must point to an earlier layer"}),
    [](const ::testing::TestParamInfo<BadJsonCase>& info) { return info.param.label; });

TEST(ModelSpecJsonTest, FileNotFoundNamesThePath) {
  absl::StatusOr<ModelSpec> spec = ModelSpec::FromJsonFile("/nonexistent/dir/model.json");
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Msg(spec.status()), HasSubstr("/nonexistent/dir/model.json"));
}

TEST(ModelSpecJsonTest, FileRoundTripAndErrorsNameThePath) {
  const std::string path = ::testing::TempDir() + "model_spec_test_custom.json";
  ModelSpec spec = MustPreset("gemma-hybrid");
  {
    std::ofstream out(path);
    out << spec.ToJson();
  }
  absl::StatusOr<ModelSpec> back = ModelSpec::FromJsonFile(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, spec);
  {
    std::ofstream out(path);
    out << "{\"num_q_heads\": 8";
  }
  back = ModelSpec::FromJsonFile(path);
  EXPECT_EQ(back.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(back.status()), HasSubstr(path));
  EXPECT_THAT(Msg(back.status()), HasSubstr("syntax error"));
  std::remove(path.c_str());
}

}  // namespace
}  // namespace pagedkv
