// Tests of the Simulator (simulator.h) on small workloads whose answers are computed by hand:
// a GPU whose every step costs exactly the 1 ms overhead makes time-weighted means plain means
// over steps, and a 4-byte-per-token model makes byte counts small.
#include "pagedkv/scheduler/simulator.h"

#include <cmath>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "pagedkv/scheduler/metrics.h"
#include "pagedkv/scheduler/workload.h"
#include "test_util.h"

namespace pagedkv {
namespace {

using ::pagedkv::testing::TinyModel;

// Every step takes the fixed overhead: compute, memory, copies and swaps are free.
GpuSpec FlatGpu() {
  GpuSpec g;
  g.name = "flat";
  g.peak_flops_per_s = 1e30;
  g.hbm_bytes_per_s = 1e30;
  g.host_link_bytes_per_s = 1e30;
  g.memory_bytes = 0;
  g.step_overhead_s = 1e-3;
  return g;
}

SimulatorConfig Config(PolicyKind policy, int64_t capacity_tokens, int32_t max_model_len) {
  SimulatorConfig c;
  c.model = TinyModel();
  c.gpu = FlatGpu();
  c.compute = ModelCompute::FromParams(c.model, 1.0, 2.0);
  c.policy = policy;
  c.block_size_tokens = 16;
  c.kv_budget_bytes = static_cast<uint64_t>(capacity_tokens) * 4;
  c.max_model_len = max_model_len;
  c.max_new_tokens = 8;
  c.watermark = 0.0;
  c.enable_prefix_caching = false;
  return c;
}

Request Req(uint64_t id, double arrival_s, int32_t prompt, int32_t output) {
  Request r;
  r.request_id = id;
  r.arrival_time_s = arrival_s;
  r.prompt_tokens = prompt;
  r.output_tokens = output;
  return r;
}

Workload OneRequest() {
  Workload w;
  w.name = "one";
  w.requests.push_back(Req(0, 0.0, 8, 5));
  return w;
}

PolicyRunResult RunSim(const Workload& w, const SimulatorConfig& c) {
  absl::StatusOr<PolicyRunResult> r = Simulate(w, c);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *std::move(r) : PolicyRunResult{};
}

// One request, prompt 8, output 5, capacity 64 tokens, max_model_len 32. Five steps (a prefill,
// then four decodes) store 8, 9, 10, 11, 12 tokens: mean 10 of 64.
TEST(SimulatorTest, OneRequestHandComputedPerPolicy) {
  struct Case {
    PolicyKind policy;
    double reserved_mean_tokens;  // reservation - stored, averaged over the 5 steps
    double internal_mean_tokens;  // unfilled page tails (paged)
  };
  const Case cases[] = {
      {PolicyKind::kPaged, 0, 6},              // one 16-token page: 8, 7, 6, 5, 4 empty slots
      {PolicyKind::kContiguousMax, 22, 0},     // 32 reserved: 24, 23, 22, 21, 20
      {PolicyKind::kContiguousRealloc, 0, 0},  // grows exactly
      {PolicyKind::kOrcaMax, 5, 0},            // 8 + 8 - 1 = 15: 7, 6, 5, 4, 3
      {PolicyKind::kOrcaPow2, 6, 0},           // final 12 -> 16: 8, 7, 6, 5, 4
      {PolicyKind::kOrcaOracle, 2, 0},         // final 12: 4, 3, 2, 1, 0
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(PolicyKindName(c.policy)));
    const PolicyRunResult r = RunSim(OneRequest(), Config(c.policy, 64, 32));
    const PolicySummary& s = r.summary;
    EXPECT_EQ(s.requests_completed, 1);
    EXPECT_EQ(s.num_steps, 5);
    EXPECT_EQ(s.capacity_tokens, 64);
    EXPECT_NEAR(s.kv_utilization_mean, 10.0 / 64, 1e-12);
    EXPECT_NEAR(s.kv_utilization_max, 12.0 / 64, 1e-12);
    EXPECT_NEAR(s.reserved_unused_mean, c.reserved_mean_tokens / 64, 1e-12);
    EXPECT_NEAR(s.internal_fragmentation_mean, c.internal_mean_tokens / 64, 1e-12);
    EXPECT_EQ(s.copy_bytes, 0u);  // the realloc extent grows in place (the rest is free)
    EXPECT_NEAR(s.makespan_s, 5e-3, 1e-12);
    EXPECT_NEAR(s.ttft_p50_s, 1e-3, 1e-12);  // the end of the prefill step
    EXPECT_NEAR(s.tpot_p50_s, 1e-3, 1e-12);  // (5 ms - 1 ms) / 4 tokens
    EXPECT_NEAR(s.throughput_tokens_per_s, 5 / 5e-3, 1e-6);
    EXPECT_NEAR(s.mean_batch_size, 1.0, 1e-12);
    ASSERT_EQ(r.timeline.size(), 5u);
    EXPECT_EQ(r.timeline[0].used_tokens, 8);
    EXPECT_EQ(r.timeline[4].used_tokens, 12);
    ASSERT_EQ(r.requests.size(), 1u);
    EXPECT_NEAR(r.requests[0].finish_s, 5e-3, 1e-12);
  }
}

// contiguous-realloc: A and B (prompt 4, output 3) sit side by side at [0,4) and [4,8). Step 1:
// A needs 5 and cannot grow in place (B follows): moved first-fit to [8,13), copying 4 tokens;
// B needs 5, A now follows it and A's old [0,4) is too small: moved to [13,18), copying 4.
// Step 2: A needs 6, B follows it: moved to the hole [0,8), copying 5; B grows in place.
// 13 tokens x 4 bytes.
TEST(SimulatorTest, ContiguousReallocCountsCopyBytes) {
  Workload w;
  w.name = "two";
  w.requests = {Req(0, 0, 4, 3), Req(1, 0, 4, 3)};
  const PolicyRunResult r = RunSim(w, Config(PolicyKind::kContiguousRealloc, 64, 32));
  EXPECT_EQ(r.summary.requests_completed, 2);
  EXPECT_EQ(r.summary.copy_bytes, 13u * 4u);
  // The same workload on pages copies nothing.
  EXPECT_EQ(RunSim(w, Config(PolicyKind::kPaged, 64, 32)).summary.copy_bytes, 0u);
}

// Contiguous-max with 64 tokens and max_model_len 32 holds two requests at a time: of four
// simultaneous requests, two wait a full request's duration.
TEST(SimulatorTest, ContiguousMaxLimitsConcurrency) {
  Workload w;
  w.name = "four";
  for (uint64_t i = 0; i < 4; ++i) w.requests.push_back(Req(i, 0, 8, 5));
  const PolicyRunResult cmax = RunSim(w, Config(PolicyKind::kContiguousMax, 64, 32));
  EXPECT_EQ(cmax.summary.max_batch_size, 2);
  EXPECT_EQ(cmax.summary.num_steps, 10);
  EXPECT_NEAR(cmax.summary.makespan_s, 10e-3, 1e-12);
  // External fragmentation: nothing is free while two extents fill the memory, so 0.
  EXPECT_NEAR(cmax.summary.external_fragmentation_mean, 0.0, 1e-12);
  // Paged: four requests of at most 12 tokens fit in 4 pages of 16: all run together.
  const PolicyRunResult paged = RunSim(w, Config(PolicyKind::kPaged, 64, 32));
  EXPECT_EQ(paged.summary.max_batch_size, 4);
  EXPECT_EQ(paged.summary.num_steps, 5);
  EXPECT_GT(paged.summary.throughput_requests_per_s, cmax.summary.throughput_requests_per_s);
}

// Idle gaps: the clock jumps to the next arrival; TTFT counts from each request's arrival.
TEST(SimulatorTest, ClockJumpsOverIdleTime) {
  Workload w;
  w.name = "gap";
  w.requests = {Req(0, 0, 8, 2), Req(1, 10.0, 8, 2)};
  const PolicyRunResult r = RunSim(w, Config(PolicyKind::kPaged, 64, 32));
  ASSERT_EQ(r.requests.size(), 2u);
  EXPECT_NEAR(r.requests[1].first_token_s, 10.001, 1e-9);
  EXPECT_NEAR(r.requests[1].finish_s, 10.002, 1e-9);
  EXPECT_NEAR(r.summary.makespan_s, 10.002, 1e-9);
  EXPECT_NEAR(r.summary.ttft_p50_s, 1e-3, 1e-9);
}

// Prefix sharing: b arrives after a finished and hits a's two cached 16-token pages.
TEST(SimulatorTest, PrefixHitRateFromSharedHashes) {
  Workload w;
  w.name = "prefix";
  Request a = Req(0, 0, 40, 2);
  a.prefix_block_hashes = {11, 12};
  a.hash_block_tokens = 16;
  Request b = a;
  b.request_id = 1;
  b.arrival_time_s = 1.0;
  w.requests = {a, b};
  SimulatorConfig c = Config(PolicyKind::kPaged, 256, 64);
  c.enable_prefix_caching = true;
  const PolicyRunResult r = RunSim(w, c);
  EXPECT_EQ(r.summary.requests_completed, 2);
  // 32 of the 80 prompt tokens looked up were found.
  EXPECT_NEAR(r.summary.prefix_hit_rate, 32.0 / 80.0, 1e-12);
  // Per request (requests.csv) and at first admission.
  EXPECT_EQ(r.requests[0].prefix_cached_tokens, 0);
  EXPECT_EQ(r.requests[1].prefix_cached_tokens, 32);
  EXPECT_NEAR(r.summary.prefix_reuse_ratio, 32.0 / 80.0, 1e-12);
  EXPECT_EQ(r.summary.prompt_tokens_computed, 80 - 32);
  c.enable_prefix_caching = false;
  EXPECT_EQ(RunSim(w, c).summary.prefix_hit_rate, 0.0);
}

// The first-admission reuse ratio counts a request's prefix hits once. A's prefix pages are cached
// when D (same prefix), C and B (same prefix) arrive together; memory runs short while they
// decode, and the newest, B, is preempted (recompute) and re-admitted while D still holds the
// shared pages: B hits them again. The hit rate counts both of B's lookups, the reuse ratio only
// the first.
TEST(SimulatorTest, PrefixReuseRatioCountsFirstAdmissionsOnly) {
  Workload w;
  w.name = "reuse";
  Request a = Req(0, 0, 40, 2);
  a.prefix_block_hashes = {11, 12};
  a.hash_block_tokens = 16;
  Request d = a;
  d.request_id = 1;
  d.arrival_time_s = 1.0;
  d.output_tokens = 40;
  Request c = Req(2, 1.0, 16, 40);
  Request b = a;
  b.request_id = 3;
  b.arrival_time_s = 1.0;
  b.output_tokens = 20;
  w.requests = {a, d, c, b};
  SimulatorConfig cfg = Config(PolicyKind::kPaged, 128, 128);
  cfg.enable_prefix_caching = true;
  const PolicyRunResult r = RunSim(w, cfg);
  EXPECT_EQ(r.summary.requests_completed, 4);
  EXPECT_GE(r.requests[3].preemptions, 1);
  EXPECT_EQ(r.requests[1].prefix_cached_tokens, 32);
  EXPECT_EQ(r.requests[3].prefix_cached_tokens, 32);
  EXPECT_NEAR(r.summary.prefix_reuse_ratio, 64.0 / 136.0, 1e-12);
  EXPECT_GT(r.summary.prefix_hit_rate, r.summary.prefix_reuse_ratio);
}

// Requests longer than max_model_len are rejected by every policy.
TEST(SimulatorTest, RejectsLongerThanMaxModelLen) {
  Workload w;
  w.name = "long";
  w.requests = {Req(0, 0, 30, 5), Req(1, 0, 8, 2)};  // 34 tokens > 32
  for (PolicyKind kind :
       {PolicyKind::kPaged, PolicyKind::kContiguousMax, PolicyKind::kOrcaOracle}) {
    const PolicyRunResult r = RunSim(w, Config(kind, 256, 32));
    EXPECT_EQ(r.summary.requests_rejected, 1) << PolicyKindName(kind);
    EXPECT_EQ(r.summary.requests_completed, 1) << PolicyKindName(kind);
  }
}

// Requests larger than the whole memory are rejected, the rest complete.
TEST(SimulatorTest, RejectsWhatNeverFits) {
  Workload w;
  w.name = "big";
  w.requests = {Req(0, 0, 100, 2), Req(1, 0, 8, 2)};
  const PolicyRunResult r = RunSim(w, Config(PolicyKind::kPaged, 64, 128));
  EXPECT_EQ(r.summary.requests_completed, 1);
  EXPECT_EQ(r.summary.requests_rejected, 1);
  EXPECT_TRUE(r.requests[0].rejected);
}

TEST(SimulatorTest, SizingFromGpuMemoryAndWeights) {
  absl::StatusOr<ModelSpec> llama = ModelSpec::Preset("llama-2-7b");
  ASSERT_TRUE(llama.ok());
  SimulatorConfig c;
  c.model = *llama;
  c.gpu = *GpuSpec::Preset("h100");
  c.compute = *ModelCompute::ForModel(*llama);
  Workload w = OneRequest();
  absl::StatusOr<SimulatorSizing> s = ComputeSizing(w, c);
  ASSERT_TRUE(s.ok()) << s.status();
  // 0.9 x 80 GiB - 6.738e9 x 2 bytes of weights, at 512 KiB per token.
  EXPECT_EQ(s->kv_bytes_per_token, 524288u);
  EXPECT_NEAR(static_cast<double>(s->kv_budget_bytes), 0.9 * 80 * 1073741824.0 - 2 * 6.738e9, 2.0);
  EXPECT_EQ(s->capacity_tokens, 121752);
  EXPECT_EQ(s->max_model_len, 4096);  // Llama-2's context, not the workload's longest request
  c.max_model_len = 2048;
  EXPECT_EQ(ComputeSizing(w, c)->max_model_len, 2048);
  c.max_model_len = 8192;  // beyond the model's context
  absl::StatusOr<SimulatorSizing> too_long = ComputeSizing(w, c);
  EXPECT_EQ(too_long.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(too_long.status().message().find("4096"), std::string::npos);
  c.max_model_len = 0;
  c.gpu_memory_bytes = 10'000'000'000ull;  // smaller than the weights / 0.9
  EXPECT_EQ(ComputeSizing(w, c).status().code(), absl::StatusCode::kInvalidArgument);
  // A model without a known context falls back to the workload's longest request.
  c.gpu_memory_bytes = 0;
  c.model.max_context_tokens = 0;
  EXPECT_EQ(ComputeSizing(w, c)->max_model_len, 8 + 5);
}

// The PagedAttention paper's setting: OPT-13B on an A100-40GB keeps 12 GiB for KV, about 15.7K
// token slots (the paper's Table 1), with vLLM's 0.9 memory fraction.
TEST(SimulatorTest, SizingOfThePapersSetting) {
  SimulatorConfig c;
  c.model = *ModelSpec::Preset("opt-13b");
  c.gpu = *GpuSpec::Preset("a100-40gb");
  c.compute = *ModelCompute::ForModel(c.model);
  absl::StatusOr<SimulatorSizing> s = ComputeSizing(OneRequest(), c);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->kv_bytes_per_token, 2u * 40 * 5120 * 2);  // 800 KiB
  EXPECT_EQ(s->max_model_len, 2048);
  EXPECT_NEAR(static_cast<double>(s->kv_budget_bytes) / (1u << 30), 12.06, 0.01);
  EXPECT_EQ(s->capacity_tokens, 15806);
}

// With max_model_len 4096, a request of 4000 + 97 tokens is rejected (and counted as too long);
// 4000 + 96 is served.
TEST(SimulatorTest, MaxModelLenAppliesToPromptPlusOutput) {
  Workload w;
  w.name = "edge";
  w.requests = {Req(0, 0, 4000, 97), Req(1, 0, 4000, 96), Req(2, 0, 8, 2)};
  for (PolicyKind kind : {PolicyKind::kPaged, PolicyKind::kContiguousMax, PolicyKind::kOrcaPow2}) {
    SCOPED_TRACE(std::string(PolicyKindName(kind)));
    const PolicyRunResult r = RunSim(w, Config(kind, 20000, 4096));
    EXPECT_EQ(r.summary.requests_rejected, 1);
    EXPECT_EQ(r.summary.requests_rejected_too_long, 1);
    EXPECT_EQ(r.summary.requests_completed, 2);
    ASSERT_EQ(r.requests.size(), 3u);
    EXPECT_TRUE(r.requests[0].rejected_too_long);
    EXPECT_TRUE(r.requests[1].completed());
  }
}

// A model preset's context length bounds requests by default: Llama-2-7B (4096) rejects a
// 14,000-token request and counts it; a memory rejection is not counted as too long.
TEST(SimulatorTest, ModelContextRejectsLongRequests) {
  Workload w;
  w.name = "long";
  w.requests = {Req(0, 0, 14000, 100), Req(1, 0, 100, 10)};
  SimulatorConfig c = Config(PolicyKind::kPaged, 50000, 0);
  c.model = *ModelSpec::Preset("llama-2-7b");
  c.kv_budget_bytes = 50000ull * 524288;
  const PolicyRunResult r = RunSim(w, c);
  EXPECT_EQ(r.summary.requests_rejected_too_long, 1);
  EXPECT_EQ(r.summary.requests_completed, 1);
  c.kv_budget_bytes = 50ull * 524288;  // 50 tokens: the 110-token request never fits
  const PolicyRunResult small = RunSim(w, c);
  EXPECT_EQ(small.summary.requests_rejected, 2);
  EXPECT_EQ(small.summary.requests_rejected_too_long, 1);
}

// A synthetic workload under memory pressure: every policy completes every request, and a
// second run gives the same files byte for byte.
TEST(SimulatorTest, SyntheticWorkloadCompletesAndIsDeterministic) {
  absl::StatusOr<Workload> w =
      LoadWorkload("synthetic:n=120,rate=200,prompt=uniform:10:150,output=uniform:1:60,seed=3");
  ASSERT_TRUE(w.ok()) << w.status();
  for (PolicyKind kind :
       {PolicyKind::kPaged, PolicyKind::kContiguousMax, PolicyKind::kContiguousRealloc,
        PolicyKind::kOrcaMax, PolicyKind::kOrcaPow2, PolicyKind::kOrcaOracle}) {
    SCOPED_TRACE(std::string(PolicyKindName(kind)));
    SimulatorConfig c = Config(kind, 1200, 0);
    c.scheduler.max_num_batched_tokens = 256;
    const PolicyRunResult a = RunSim(*w, c);
    EXPECT_EQ(a.summary.requests_completed, 120);
    EXPECT_GT(a.summary.kv_utilization_mean, 0.0);
    EXPECT_LE(a.summary.kv_utilization_max, 1.0);
    const PolicyRunResult b = RunSim(*w, c);
    SimulationInfo info;
    info.workload_name = w->name;
    EXPECT_EQ(SummaryJson(info, {a}), SummaryJson(info, {b}));
    ASSERT_EQ(a.timeline.size(), b.timeline.size());
    for (size_t i = 0; i < a.timeline.size(); ++i) {
      EXPECT_EQ(a.timeline[i].used_tokens, b.timeline[i].used_tokens);
      EXPECT_EQ(a.timeline[i].time_s, b.timeline[i].time_s);
    }
  }
}

TEST(SimulatorTest, SwapModeCompletesWithSwapBytes) {
  absl::StatusOr<Workload> w =
      LoadWorkload("synthetic:n=60,rate=500,prompt=uniform:10:100,output=uniform:20:80,seed=4");
  ASSERT_TRUE(w.ok()) << w.status();
  SimulatorConfig c = Config(PolicyKind::kPaged, 640, 0);
  c.scheduler.preemption_mode = PreemptionMode::kSwap;
  c.swap_space_bytes = 4096 * 4;
  const PolicyRunResult r = RunSim(*w, c);
  EXPECT_EQ(r.summary.requests_completed, 60);
  EXPECT_GT(r.summary.preemptions, 0);
  EXPECT_GT(r.summary.swap_bytes, 0u);
}

// Swap space is simulated like the GPU pool: 64 GiB of it (more than a CI machine's memory) is
// accepted, and so is 1 TiB, without allocating host memory.
TEST(SimulatorTest, SwapSpaceIsNotLimitedByThisMachinesMemory) {
  absl::StatusOr<Workload> w =
      LoadWorkload("synthetic:n=60,rate=500,prompt=uniform:10:100,output=uniform:20:80,seed=4");
  ASSERT_TRUE(w.ok()) << w.status();
  for (uint64_t swap : {64ull << 30, 1ull << 40}) {
    SimulatorConfig c = Config(PolicyKind::kPaged, 640, 0);
    c.model = *ModelSpec::Preset("llama-2-7b");  // 512 KiB per token: 64 GiB = 8192 pages of 16
    c.kv_budget_bytes = 640ull * 524288;
    c.scheduler.preemption_mode = PreemptionMode::kSwap;
    c.swap_space_bytes = swap;
    const PolicyRunResult r = RunSim(*w, c);
    EXPECT_EQ(r.summary.requests_completed, 60);
    EXPECT_GT(r.summary.swap_bytes, 0u);
  }
}

}  // namespace
}  // namespace pagedkv
