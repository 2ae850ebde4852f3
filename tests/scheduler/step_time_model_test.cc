// Tests of the roofline StepTimeModel (step_time_model.h): presets, a memory-bound decode and a
// compute-bound prefill computed by hand, and the cost of copies and swaps.
#include "pagedkv/scheduler/step_time_model.h"

#include "gtest/gtest.h"

namespace pagedkv {
namespace {

ModelSpec TinyModel() {
  ModelSpec m;
  m.name = "tiny";
  m.num_q_heads = 2;
  m.num_kv_heads = 1;
  m.head_dim = 4;
  m.kv_dtype = DType::kFp16;
  m.layers = {LayerSpec::Full(), LayerSpec::Full()};
  return m;
}

GpuSpec Gpu() {
  GpuSpec g;
  g.name = "test";
  g.peak_flops_per_s = 1e15;
  g.hbm_bytes_per_s = 1e12;
  g.host_link_bytes_per_s = 1e10;
  g.step_overhead_s = 1e-3;
  return g;
}

TEST(GpuSpecTest, PresetsAndAliases) {
  for (const std::string& name : GpuSpec::PresetNames()) {
    absl::StatusOr<GpuSpec> g = GpuSpec::Preset(name);
    ASSERT_TRUE(g.ok()) << name << ": " << g.status();
    EXPECT_GT(g->peak_flops_per_s, 0) << name;
    EXPECT_GT(g->hbm_bytes_per_s, 0) << name;
    EXPECT_GT(g->host_link_bytes_per_s, 0) << name;
    EXPECT_GT(g->memory_bytes, 0u) << name;
    EXPECT_FALSE(g->memory_stated.empty()) << name;
    EXPECT_FALSE(g->source.empty()) << name;
  }
  EXPECT_EQ(GpuSpec::PresetNames(),
            (std::vector<std::string>{"a100-40gb", "a100-80gb", "l4", "l40s", "h100-pcie", "h100",
                                      "h200", "b200", "mi300x"}));
  EXPECT_EQ(GpuSpec::Preset("a100")->name, "a100-80gb");
  EXPECT_EQ(GpuSpec::Preset("H100")->name, "h100");
  EXPECT_EQ(GpuSpec::Preset("h100-sxm")->name, "h100");
  // The vendor's "80GB" of HBM is 80 GiB: 10% more KV than 80e9 bytes would give.
  constexpr uint64_t kGiB = uint64_t{1} << 30;
  EXPECT_EQ(GpuSpec::Preset("h100")->memory_bytes, 80 * kGiB);
  EXPECT_EQ(GpuSpec::Preset("h100")->memory_stated, "80GB HBM3");
  EXPECT_EQ(GpuSpec::Preset("a100-40gb")->memory_bytes, 40 * kGiB);
  EXPECT_EQ(GpuSpec::Preset("h200")->memory_bytes, 141 * kGiB);
  EXPECT_EQ(GpuSpec::Preset("mi300x")->memory_bytes, 192 * kGiB);
  EXPECT_DOUBLE_EQ(GpuSpec::Preset("a100-40gb")->hbm_bytes_per_s, 1.555e12);
  EXPECT_DOUBLE_EQ(GpuSpec::Preset("a100-80gb")->hbm_bytes_per_s, 2.039e12);
  EXPECT_DOUBLE_EQ(GpuSpec::Preset("h100")->peak_flops_per_s, 989.4e12);
  EXPECT_EQ(GpuSpec::Preset("v100").status().code(), absl::StatusCode::kNotFound);
}

TEST(ModelComputeTest, KnownPresetsAndCustomParams) {
  absl::StatusOr<ModelCompute> mc = ModelCompute::ForModel(*ModelSpec::Preset("llama-2-7b"));
  ASSERT_TRUE(mc.ok()) << mc.status();
  EXPECT_EQ(mc->weight_bytes, static_cast<uint64_t>(6.738e9 * 2));
  EXPECT_EQ(mc->kv_bytes_per_token, 524288u);  // 32 layers x 2 x 32 heads x 128 x 2 bytes
  EXPECT_EQ(mc->q_width, 4096);
  for (const std::string& name : ModelSpec::PresetNames()) {
    EXPECT_TRUE(ModelCompute::ForModel(*ModelSpec::Preset(name)).ok()) << name;
  }
  EXPECT_EQ(ModelCompute::ForModel(TinyModel()).status().code(),
            absl::StatusCode::kInvalidArgument);
  const ModelCompute tiny = ModelCompute::FromParams(TinyModel(), 1e9, 2.0);
  EXPECT_EQ(tiny.weight_bytes, 2'000'000'000u);
  EXPECT_EQ(tiny.kv_bytes_per_token, 2u * 2 * 1 * 4 * 2);  // layers x K,V x heads x dim x fp16
  EXPECT_EQ(tiny.q_width, 8);
}

TEST(StepTimeModelTest, DecodeIsMemoryBound) {
  const StepTimeModel m(Gpu(), ModelCompute::FromParams(TinyModel(), 1e9, 2.0));
  // One token over 99 cached: FLOPs 2e9 + 4 x 100 pairs x 8 x 2 layers; bytes 2e9 + 100 x 32.
  const StepCost c = m.Cost({{.query_tokens = 1, .context_tokens = 99}}, {});
  EXPECT_DOUBLE_EQ(c.flops, 2e9 + 4.0 * 100 * 8 * 2);
  EXPECT_DOUBLE_EQ(c.bytes, 2e9 + 100.0 * 32);
  EXPECT_DOUBLE_EQ(c.memory_s, c.bytes / 1e12);
  EXPECT_DOUBLE_EQ(c.total_s, c.memory_s + 1e-3);
  EXPECT_GT(c.memory_s, c.compute_s);
}

TEST(StepTimeModelTest, LongPrefillIsComputeBound) {
  const StepTimeModel m(Gpu(), ModelCompute::FromParams(TinyModel(), 1e9, 2.0));
  // 4096 new tokens: causal pairs 4096 x 4097 / 2.
  const StepCost c = m.Cost({{.query_tokens = 4096, .context_tokens = 0}}, {});
  const double pairs = 4096.0 * 4097.0 / 2.0;
  EXPECT_DOUBLE_EQ(c.flops, 2e9 * 4096 + 4.0 * pairs * 8 * 2);
  EXPECT_DOUBLE_EQ(c.total_s, c.flops / 1e15 + 1e-3);
  EXPECT_GT(c.compute_s, c.memory_s);
  // The totals form gives the same answer.
  EXPECT_DOUBLE_EQ(m.CostFromTotals(4096, pairs, 4096, {}).total_s, c.total_s);
}

TEST(StepTimeModelTest, CopiesAndSwapsAddTime) {
  const StepTimeModel m(Gpu(), ModelCompute::FromParams(TinyModel(), 1e9, 2.0));
  const double base = m.StepSeconds({{.query_tokens = 1, .context_tokens = 0}}, {});
  // A device copy reads and writes: 2 x 1e9 bytes at 1e12 B/s; a swap crosses the 1e10 B/s link.
  EXPECT_DOUBLE_EQ(m.StepSeconds({{.query_tokens = 1}}, {.copy_bytes = 1'000'000'000}),
                   base + 2e-3);
  EXPECT_DOUBLE_EQ(m.StepSeconds({{.query_tokens = 1}}, {.swap_bytes = 1'000'000'000}), base + 0.1);
  EXPECT_DOUBLE_EQ(m.StepSeconds({}, {}), 1e-3);  // an empty step costs the overhead
}

}  // namespace
}  // namespace pagedkv
