#include "pagedkv/core/sizing.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagedkv {
namespace {

using ::testing::HasSubstr;

constexpr uint64_t kKiB = 1ull << 10;
constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kGiB = 1ull << 30;

ModelSpec MustPreset(std::string_view name) {
  absl::StatusOr<ModelSpec> spec = ModelSpec::Preset(name);
  EXPECT_TRUE(spec.ok()) << spec.status();
  return spec.ok() ? *spec : ModelSpec{};
}

SizingResult MustSize(const ModelSpec& spec, const SizingOptions& options) {
  absl::StatusOr<SizingResult> r = ComputeSizing(spec, options);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : SizingResult{};
}

SizingOptions Opts(int64_t context_tokens, int32_t block_size_tokens = 16,
                   uint64_t gpu_memory_bytes = 80 * kGiB, uint64_t weights_bytes = 0) {
  SizingOptions o;
  o.context_tokens = context_tokens;
  o.block_size_tokens = block_size_tokens;
  o.gpu_memory_bytes = gpu_memory_bytes;
  o.weights_bytes = weights_bytes;
  return o;
}

TEST(SizingTest, Llama2At2048TokensIsExactlyOneGiBPerSequence) {
  SizingResult r = MustSize(MustPreset("llama-2-7b"), Opts(2048));
  EXPECT_EQ(r.bytes_per_token, 512 * kKiB);  // 2 * 32 layers * 32 heads * 128 * 2 bytes
  EXPECT_EQ(r.bytes_per_block, 8 * kMiB);
  EXPECT_EQ(r.bytes_per_sequence, kGiB);
  EXPECT_EQ(r.kv_dtype, DType::kFp16);
  EXPECT_EQ(r.model_name, "llama-2-7b");
  ASSERT_EQ(r.groups.size(), 1u);
  EXPECT_EQ(r.groups[0].blocks_per_sequence, 128);
  EXPECT_EQ(r.groups[0].tokens_per_sequence, 2048);
}

TEST(SizingTest, IssueExampleOn80GiBWith13_5GiBWeights) {
  SizingResult r = MustSize(MustPreset("llama-2-7b"), Opts(2048, 16, 80 * kGiB, 27 * kGiB / 2));
  EXPECT_EQ(r.budget_bytes, 66 * kGiB + kGiB / 2);
  EXPECT_EQ(r.num_blocks, 8512u);  // 66.5 GiB / 8 MiB
  EXPECT_EQ(r.max_tokens, 8512u * 16);
  EXPECT_EQ(r.max_sequences, 66u);
}

TEST(SizingTest, ContextTableDoublesFrom512MiBTo16GiB) {
  const ModelSpec spec = MustPreset("llama-2-7b");
  uint64_t expected = 512 * kMiB;
  for (int64_t context = 1024; context <= 32768; context *= 2) {
    SCOPED_TRACE(context);
    EXPECT_EQ(MustSize(spec, Opts(context)).bytes_per_sequence, expected);
    expected *= 2;
  }
  EXPECT_EQ(expected / 2, 16 * kGiB);
}

TEST(SizingTest, A24GBGpuWith4GBWeightsHolds16To20Sequences) {
  SizingResult r =
      MustSize(MustPreset("llama-2-7b"), Opts(2048, 16, 24'000'000'000ull, 4'000'000'000ull));
  EXPECT_GE(r.max_sequences, 16u);
  EXPECT_LE(r.max_sequences, 20u);
  EXPECT_EQ(r.max_sequences, 18u);  // 20e9 bytes / 1 GiB
}

TEST(SizingTest, GqaWithEightKvHeadsUsesAQuarterOfFullHeads) {
  const ModelSpec llama2 = MustPreset("llama-2-7b");
  const ModelSpec llama3 = MustPreset("llama-3-8b");  // same shape with 8 KV heads
  SizingResult full = MustSize(llama2, Opts(4096));
  SizingResult gqa = MustSize(llama3, Opts(4096));
  EXPECT_EQ(gqa.bytes_per_token * 4, full.bytes_per_token);
  EXPECT_EQ(gqa.bytes_per_block * 4, full.bytes_per_block);
  EXPECT_EQ(gqa.bytes_per_sequence * 4, full.bytes_per_sequence);
  EXPECT_EQ(gqa.num_blocks, full.num_blocks * 4);
}

class SizingBlockSizeTest : public ::testing::TestWithParam<int32_t> {};

TEST_P(SizingBlockSizeTest, SlidingLayersCapAtWindowPlusOneBlock) {
  const int32_t block = GetParam();
  const ModelSpec mistral = MustPreset("mistral-7b");  // every layer sliding(4096)
  ModelSpec full = mistral;
  for (LayerSpec& layer : full.layers) layer = LayerSpec::Full();
  const uint64_t per_block = 32ull * 2 * 8 * 128 * 2 * block;
  const int64_t cap_blocks = (4096 + block - 1) / block + 1;

  for (int64_t context : {int64_t{1}, int64_t{1000}, int64_t{4096}, int64_t{4097},
                          int64_t{4096} + block, int64_t{8192}, int64_t{32768}, int64_t{1} << 20}) {
    SCOPED_TRACE(context);
    SizingResult s = MustSize(mistral, Opts(context, block));
    SizingResult f = MustSize(full, Opts(context, block));
    const int64_t context_blocks = (context + block - 1) / block;
    EXPECT_EQ(f.bytes_per_sequence, per_block * context_blocks);
    EXPECT_EQ(s.bytes_per_sequence, per_block * std::min(context_blocks, cap_blocks));
    EXPECT_EQ(s.bytes_per_token, f.bytes_per_token);  // per-token cost is the same
    EXPECT_LE(s.groups[0].tokens_per_sequence, 4096 + block);
  }
  // Far past the window the cap is exactly window + one block.
  SizingResult s = MustSize(mistral, Opts(100000, block));
  EXPECT_EQ(s.groups[0].tokens_per_sequence, 4096 + block);
}

TEST_P(SizingBlockSizeTest, PartialBlocksRoundUpToWholeBlocks) {
  const int32_t block = GetParam();
  const ModelSpec spec = MustPreset("qwen2.5-1.5b");
  const uint64_t per_token = 28ull * 2 * 2 * 128 * 2;
  for (int64_t context : {1, 2, 17, 100, 2049}) {
    SCOPED_TRACE(context);
    SizingResult r = MustSize(spec, Opts(context, block));
    EXPECT_EQ(r.bytes_per_sequence, per_token * block * ((context + block - 1) / block));
    EXPECT_EQ(r.bytes_per_block, per_token * block);
    EXPECT_EQ(r.max_tokens, r.num_blocks * block);
    EXPECT_EQ(r.max_sequences, r.budget_bytes / r.bytes_per_sequence);
  }
}

INSTANTIATE_TEST_SUITE_P(BlockSizes, SizingBlockSizeTest, ::testing::Values(1, 3, 16, 17, 128));

TEST(SizingTest, SharesLayersAddNothing) {
  ModelSpec base;
  base.name = "base";
  base.num_q_heads = 8;
  base.num_kv_heads = 4;
  base.head_dim = 64;
  base.layers = {LayerSpec::Full(), LayerSpec::Full(), LayerSpec::Sliding(256)};
  ModelSpec shared = base;
  shared.layers.push_back(LayerSpec::Shares(0));
  shared.layers.push_back(LayerSpec::Shares(2));
  SizingResult a = MustSize(base, Opts(3000));
  SizingResult b = MustSize(shared, Opts(3000));
  EXPECT_EQ(a.bytes_per_token, b.bytes_per_token);
  EXPECT_EQ(a.bytes_per_block, b.bytes_per_block);
  EXPECT_EQ(a.bytes_per_sequence, b.bytes_per_sequence);
  EXPECT_EQ(a.max_sequences, b.max_sequences);
}

TEST(SizingTest, GemmaHybridPerGroupBreakdown) {
  SizingResult r = MustSize(MustPreset("gemma-hybrid"), Opts(32768));
  const uint64_t per_layer_token = 2ull * 4 * 256 * 2;
  ASSERT_EQ(r.groups.size(), 2u);
  EXPECT_EQ(r.groups[0].kind, AttentionKind::kSliding);
  EXPECT_EQ(r.groups[0].num_layers, 17);
  EXPECT_EQ(r.groups[0].blocks_per_sequence, 4096 / 16 + 1);
  EXPECT_EQ(r.groups[1].num_layers, 3);
  EXPECT_EQ(r.groups[1].blocks_per_sequence, 32768 / 16);
  EXPECT_EQ(r.bytes_per_token, 20 * per_layer_token);  // the 6 sharing layers add nothing
  EXPECT_EQ(r.bytes_per_sequence,
            per_layer_token * 16 * (17ull * (4096 / 16 + 1) + 3ull * (32768 / 16)));
}

TEST(SizingTest, CrossLayersHoldTheEncoderOutput) {
  const ModelSpec whisper = MustPreset("whisper-large-v3");
  const uint64_t per_layer_token = 2ull * 20 * 64 * 2;
  SizingResult r = MustSize(whisper, Opts(448));
  EXPECT_EQ(r.encoder_tokens, kDefaultEncoderTokens);
  ASSERT_EQ(r.groups.size(), 2u);
  EXPECT_EQ(r.groups[1].kind, AttentionKind::kCross);
  EXPECT_EQ(r.groups[1].tokens_per_sequence, 1500);
  EXPECT_EQ(r.groups[1].blocks_per_sequence, 94);  // ceil(1500 / 16)
  EXPECT_EQ(r.bytes_per_sequence, per_layer_token * 32 * 16 * (448 / 16 + 94));

  SizingOptions o = Opts(448);
  o.encoder_tokens = 16;
  EXPECT_EQ(MustSize(whisper, o).bytes_per_sequence, per_layer_token * 32 * 16 * (448 / 16 + 1));
  EXPECT_EQ(MustSize(MustPreset("llama-3-8b"), o).encoder_tokens, 0);
}

TEST(SizingTest, Fp8HalvesFp16AndFp32Doubles) {
  const ModelSpec spec = MustPreset("llama-3-70b");
  SizingOptions o = Opts(8192);
  SizingResult fp16 = MustSize(spec, o);
  o.kv_dtype = DType::kFp8E4m3;
  SizingResult fp8 = MustSize(spec, o);
  o.kv_dtype = DType::kFp32;
  SizingResult fp32 = MustSize(spec, o);
  EXPECT_EQ(fp8.kv_dtype, DType::kFp8E4m3);
  EXPECT_EQ(fp8.bytes_per_token * 2, fp16.bytes_per_token);
  EXPECT_EQ(fp8.bytes_per_sequence * 2, fp16.bytes_per_sequence);
  EXPECT_EQ(fp16.bytes_per_sequence * 2, fp32.bytes_per_sequence);
  EXPECT_EQ(fp8.num_blocks, fp16.num_blocks * 2);
}

TEST(SizingTest, MemoryFractionScalesTheBudgetBeforeWeights) {
  SizingOptions o = Opts(2048, 16, 80 * kGiB, 8 * kGiB);
  o.gpu_memory_fraction = 0.9;
  SizingResult r = MustSize(MustPreset("llama-2-7b"), o);
  EXPECT_EQ(r.budget_bytes, 72 * kGiB - 8 * kGiB);
  EXPECT_EQ(r.max_sequences, 64u);
}

TEST(SizingTest, WeightsFillingTheGpuLeaveZeroBlocks) {
  SizingResult r = MustSize(MustPreset("llama-2-7b"), Opts(2048, 16, 16 * kGiB, 16 * kGiB));
  EXPECT_EQ(r.budget_bytes, 0u);
  EXPECT_EQ(r.num_blocks, 0u);
  EXPECT_EQ(r.max_sequences, 0u);
}

TEST(SizingTest, BadOptionsAreInvalidArgumentNamingTheValue) {
  const ModelSpec spec = MustPreset("llama-2-7b");
  struct Case {
    SizingOptions options;
    const char* expected;
  };
  SizingOptions weights = Opts(2048, 16, 24 * kGiB, 25 * kGiB);
  SizingOptions fraction = Opts(2048);
  fraction.gpu_memory_fraction = 1.2;
  SizingOptions encoder = Opts(2048);
  encoder.encoder_tokens = 0;
  for (const Case& c : {Case{Opts(0), "context must be in [1, "}, Case{Opts(-5), "got -5"},
                        Case{Opts(2048, 0), "block size must be >= 1 token, got 0"},
                        Case{Opts(2048, 16, 0), "GPU memory must be > 0"},
                        Case{weights, "weights (25.00 GiB = 26843545600 bytes) do not fit"},
                        Case{fraction, "fraction must be in (0, 1], got 1.2"},
                        Case{encoder, "encoder length must be in [1, "}}) {
    SCOPED_TRACE(c.expected);
    absl::StatusOr<SizingResult> r = ComputeSizing(spec, c.options);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(c.expected));
  }
  ModelSpec broken = spec;
  broken.num_kv_heads = 3;
  EXPECT_EQ(ComputeSizing(broken, Opts(2048)).status().code(), absl::StatusCode::kInvalidArgument);
}

// Shapes beyond ModelSpec's limits are refused before any arithmetic; within them, products too
// large for 64 bits are reported, never wrapped.
TEST(SizingTest, HugeShapesAreRefusedInsteadOfWrapping) {
  ModelSpec spec;
  spec.name = "huge";
  spec.num_q_heads = 1 << 30;
  spec.num_kv_heads = 1 << 30;
  spec.head_dim = 1 << 30;
  spec.kv_dtype = DType::kFp32;
  spec.layers.assign(4, LayerSpec::Full());
  absl::StatusOr<SizingResult> r = ComputeSizing(spec, Opts(1 << 20, 128));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("num_q_heads must be in [1, 65536]"));
  spec.num_q_heads = spec.num_kv_heads = spec.head_dim = 1 << 16;
  spec.layers.assign(ModelSpec::kMaxLayers, LayerSpec::Full());
  ASSERT_TRUE(spec.Validate().ok());
  r = ComputeSizing(spec, Opts(1 << 20, 128));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("overflows 64 bits"));
}

TEST(ParseByteSizeTest, UnitsAndFractions) {
  struct Case {
    const char* text;
    uint64_t bytes;
  };
  for (const Case& c :
       {Case{"80GiB", 80 * kGiB}, Case{"13.5GiB", 27 * kGiB / 2}, Case{"24GB", 24'000'000'000ull},
        Case{"512MiB", 512 * kMiB}, Case{"4096", 4096}, Case{"100B", 100},
        Case{"1.5 TB", 1'500'000'000'000ull}, Case{"80gib", 80 * kGiB}, Case{"80Gi", 80 * kGiB},
        Case{"2KiB", 2048}, Case{"2kb", 2000}, Case{" 1MB ", 1'000'000}, Case{".5GiB", kGiB / 2},
        Case{"0", 0}, Case{"1.", 1}, Case{"1TiB", 1ull << 40},
        Case{"18446744073709551615", 18446744073709551615ull}}) {
    SCOPED_TRACE(c.text);
    absl::StatusOr<uint64_t> bytes = ParseByteSize(c.text);
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    EXPECT_EQ(*bytes, c.bytes);
  }
}

TEST(ParseByteSizeTest, RejectsGarbage) {
  for (const char* text : {"", "GiB", "abc", "-1GiB", "1.2.3GB", "80 GiBs", "80XB", "1e9",
                           "99999999999999999999", "20000000TiB", "0x10", "1,000"}) {
    SCOPED_TRACE(text);
    absl::StatusOr<uint64_t> bytes = ParseByteSize(text);
    EXPECT_EQ(bytes.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(bytes.status().message()), HasSubstr("bad byte size"));
  }
  EXPECT_THAT(std::string(ParseByteSize("80G").status().message()), HasSubstr("ambiguous"));
}

TEST(FormatBytesTest, BinaryUnitsWithTwoDecimals) {
  EXPECT_EQ(FormatBytes(0), "0 B");
  EXPECT_EQ(FormatBytes(512), "512 B");
  EXPECT_EQ(FormatBytes(1024), "1.00 KiB");
  EXPECT_EQ(FormatBytes(512 * kKiB), "512.00 KiB");
  EXPECT_EQ(FormatBytes(kGiB), "1.00 GiB");
  EXPECT_EQ(FormatBytes(27 * kGiB / 2), "13.50 GiB");
  EXPECT_EQ(FormatBytes(24'000'000'000ull), "22.35 GiB");
  EXPECT_EQ(FormatBytes(3ull << 40), "3.00 TiB");
}

}  // namespace
}  // namespace pagedkv
