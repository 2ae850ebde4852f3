// Tests of the cluster simulation (cluster.h): routers, per-replica results, the shared remote
// tier and its time cost, and agreement with the one-replica Simulator. The GPU model charges
// every step exactly 1 ms, so times are hand-computable.
#include "pagedkv/scheduler/cluster.h"

#include <algorithm>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "pagedkv/scheduler/metrics.h"
#include "test_util.h"

namespace pagedkv {
namespace {

using ::pagedkv::testing::TinyModel;

SimulatorConfig ReplicaConfig() {
  SimulatorConfig c;
  c.model = TinyModel();
  c.gpu.name = "flat";
  c.gpu.peak_flops_per_s = 1e30;
  c.gpu.hbm_bytes_per_s = 1e30;
  c.gpu.host_link_bytes_per_s = 1e30;
  c.gpu.step_overhead_s = 1e-3;
  c.compute = ModelCompute::FromParams(c.model, 1.0, 2.0);
  c.policy = PolicyKind::kPaged;
  c.block_size_tokens = 16;
  c.kv_budget_bytes = 1024 * 4;  // 1024 tokens of 4 bytes per replica
  c.max_model_len = 512;
  c.watermark = 0.0;
  return c;
}

Request Req(uint64_t id, double arrival_s, int32_t prompt, int32_t output,
            std::vector<uint64_t> hashes = {}) {
  Request r;
  r.request_id = id;
  r.arrival_time_s = arrival_s;
  r.prompt_tokens = prompt;
  r.output_tokens = output;
  r.prefix_block_hashes = std::move(hashes);
  r.hash_block_tokens = r.prefix_block_hashes.empty() ? 0 : 16;
  return r;
}

PolicyRunResult RunCluster(const Workload& w, const ClusterConfig& c) {
  absl::StatusOr<PolicyRunResult> r = SimulateCluster(w, c);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *std::move(r) : PolicyRunResult{};
}

// Two conversations of four turns each, turns one second apart, every turn repeating its
// conversation's 48-token prefix (three 16-token pages).
Workload Conversations() {
  Workload w;
  w.name = "conversations";
  for (uint64_t turn = 0; turn < 4; ++turn) {
    for (uint64_t conv = 0; conv < 2; ++conv) {
      const uint64_t id = turn * 2 + conv;
      const uint64_t base = 100 * (conv + 1);
      w.requests.push_back(Req(id, static_cast<double>(turn), 64, 4, {base, base + 1, base + 2}));
    }
  }
  return w;
}

TEST(RouterKindTest, NamesRoundTrip) {
  EXPECT_EQ(RouterKindNames().size(), 3u);
  for (const std::string& name : RouterKindNames()) {
    absl::StatusOr<RouterKind> k = ParseRouterKind(name);
    ASSERT_TRUE(k.ok()) << name;
    EXPECT_EQ(RouterKindName(*k), name);
  }
  absl::StatusOr<RouterKind> bad = ParseRouterKind("random");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("prefix-aware"), std::string::npos);
}

TEST(ClusterTest, OneReplicaIsTheSimulator) {
  absl::StatusOr<Workload> w =
      LoadWorkload("synthetic:n=80,rate=300,prompt=uniform:10:150,output=uniform:1:40,seed=5");
  ASSERT_TRUE(w.ok()) << w.status();
  ClusterConfig c;
  c.replica = ReplicaConfig();
  absl::StatusOr<PolicyRunResult> a = Simulate(*w, c.replica);
  ASSERT_TRUE(a.ok()) << a.status();
  const PolicyRunResult b = RunCluster(*w, c);
  SimulationInfo info;
  EXPECT_EQ(SummaryJson(info, {*a}), SummaryJson(info, {b}));
  EXPECT_TRUE(b.replicas.empty());
  EXPECT_EQ(b.summary.requests_completed, 80);
}

TEST(ClusterTest, RoundRobinSpreadsRequestsInOrder) {
  ClusterConfig c;
  c.replica = ReplicaConfig();
  c.num_replicas = 3;
  const PolicyRunResult r = RunCluster(Conversations(), c);
  ASSERT_EQ(r.requests.size(), 8u);
  for (size_t i = 0; i < r.requests.size(); ++i) EXPECT_EQ(r.requests[i].replica, i % 3);
  ASSERT_EQ(r.replicas.size(), 3u);
  EXPECT_EQ(r.replicas[0].requests_total, 3);
  EXPECT_EQ(r.replicas[2].requests_total, 2);
  int64_t completed = 0;
  for (const PolicySummary& s : r.replicas) {
    EXPECT_EQ(s.router, "round-robin");
    completed += s.requests_completed;
  }
  EXPECT_EQ(completed, 8);
  EXPECT_EQ(r.summary.requests_completed, 8);
  EXPECT_EQ(r.summary.capacity_tokens, 3 * 1024);
}

// Four requests at once: least-loaded gives each replica one; then a fifth goes to the replica
// whose request finished first (the shortest output).
TEST(ClusterTest, LeastLoadedPicksTheFewestUnfinished) {
  Workload w;
  w.name = "load";
  w.requests = {Req(0, 0, 16, 50), Req(1, 0, 16, 5), Req(2, 0, 16, 50), Req(3, 0, 16, 50),
                Req(4, 0.020, 16, 5)};
  ClusterConfig c;
  c.replica = ReplicaConfig();
  c.num_replicas = 4;
  c.router = RouterKind::kLeastLoaded;
  const PolicyRunResult r = RunCluster(w, c);
  EXPECT_EQ(r.requests[0].replica, 0);
  EXPECT_EQ(r.requests[1].replica, 1);
  EXPECT_EQ(r.requests[2].replica, 2);
  EXPECT_EQ(r.requests[3].replica, 3);
  EXPECT_EQ(r.requests[4].replica, 1);  // request 1 finished at 5 ms
}

// Prefix-aware routing keeps each conversation on the replica that holds its pages: every turn
// after the first hits its 48-token prefix. Round-robin over 3 replicas scatters the turns and
// loses most hits.
TEST(ClusterTest, PrefixAwareFollowsTheCachedPrefix) {
  ClusterConfig c;
  c.replica = ReplicaConfig();
  c.num_replicas = 3;
  c.router = RouterKind::kPrefixAware;
  const PolicyRunResult aware = RunCluster(Conversations(), c);
  for (size_t i = 2; i < 8; ++i) {
    EXPECT_EQ(aware.requests[i].replica, aware.requests[i % 2].replica) << i;
    EXPECT_EQ(aware.requests[i].prefix_cached_tokens, 48) << i;
  }
  // 6 of 8 requests reuse 48 of their 64 prompt tokens.
  EXPECT_NEAR(aware.summary.prefix_reuse_ratio, 6.0 * 48 / (8 * 64), 1e-12);
  c.router = RouterKind::kRoundRobin;
  const PolicyRunResult rr = RunCluster(Conversations(), c);
  EXPECT_LT(rr.summary.prefix_reuse_ratio, aware.summary.prefix_reuse_ratio);
  EXPECT_GT(rr.summary.prompt_tokens_computed, aware.summary.prompt_tokens_computed);
}

// The balance bound: with factor 1 and slack 0 a replica more loaded than the least loaded one is
// skipped even when it holds the prefix.
TEST(ClusterTest, PrefixAwareRespectsTheBalanceBound) {
  Workload w;
  w.name = "hot";
  w.requests.push_back(Req(0, 0, 64, 2, {7, 8, 9}));
  for (uint64_t i = 1; i <= 3; ++i) w.requests.push_back(Req(i, 1.0, 64, 200, {7, 8, 9}));
  ClusterConfig c;
  c.replica = ReplicaConfig();
  c.num_replicas = 2;
  c.router = RouterKind::kPrefixAware;
  c.prefix_balance_factor = 1.0;
  c.prefix_balance_slack = 0;
  const PolicyRunResult r = RunCluster(w, c);
  EXPECT_EQ(r.requests[1].replica, 0);  // holds the prefix, loads equal
  EXPECT_EQ(r.requests[2].replica, 1);  // replica 0 is busier now
  EXPECT_EQ(r.requests[3].replica, 0);
  c.prefix_balance_slack = 16;
  const PolicyRunResult loose = RunCluster(w, c);
  for (size_t i = 1; i < 4; ++i) EXPECT_EQ(loose.requests[i].replica, 0) << i;
}

// A shared remote tier: the second turn of a conversation routed to the other replica finds the
// 48-token prefix remotely, and its prefill step takes latency + bytes / bandwidth longer.
TEST(ClusterTest, RemoteTierServesPrefixesAcrossReplicas) {
  Workload w;
  w.name = "remote";
  w.requests = {Req(0, 0, 64, 2, {5, 6, 7}), Req(1, 1.0, 64, 2, {5, 6, 7})};
  ClusterConfig c;
  c.replica = ReplicaConfig();
  c.num_replicas = 2;  // round-robin: request 1 lands on replica 1
  c.remote.capacity_bytes = 1 << 20;
  c.remote.bandwidth_bytes_per_s = 48 * 4 / 1e-3;  // 48 tokens of 4 bytes in 1 ms
  c.remote.latency_s = 2e-3;
  const PolicyRunResult r = RunCluster(w, c);
  EXPECT_EQ(r.requests[1].replica, 1);
  EXPECT_EQ(r.requests[1].prefix_cached_tokens, 48);
  EXPECT_EQ(r.summary.remote_load_bytes, 48u * 4u);
  EXPECT_NEAR(r.summary.remote_hit_rate, 48.0 / 128.0, 1e-12);
  EXPECT_NEAR(r.requests[0].ttft_s(), 1e-3, 1e-12);
  EXPECT_NEAR(r.requests[1].ttft_s(), 1e-3 + 2e-3 + 1e-3, 1e-12);
  // Without the tier the second turn computes its whole prompt.
  c.remote.capacity_bytes = 0;
  const PolicyRunResult none = RunCluster(w, c);
  EXPECT_EQ(none.requests[1].prefix_cached_tokens, 0);
  EXPECT_EQ(none.summary.remote_load_bytes, 0u);
}

// A remote tier of two pages: request 0 writes its four full pages last-to-first, so the chain's
// head (pages 0 and 1) stays; request 1's single page then evicts the least recently used, page 1;
// request 2 (same prefix as 0, on a third replica) finds page 0 only.
TEST(ClusterTest, RemoteTierCapacityEvictsLeastRecentlyUsed) {
  Workload w;
  w.name = "evict";
  w.requests = {Req(0, 0, 64, 2, {1, 2, 3}), Req(1, 0.5, 17, 2), Req(2, 1.0, 64, 2, {1, 2, 3})};
  ClusterConfig c;
  c.replica = ReplicaConfig();
  c.num_replicas = 3;                    // round-robin: one request per replica
  c.remote.capacity_bytes = 2 * 16 * 4;  // two pages
  const PolicyRunResult r = RunCluster(w, c);
  EXPECT_EQ(r.requests[2].replica, 2);
  EXPECT_EQ(r.requests[2].prefix_cached_tokens, 16);
  EXPECT_EQ(r.summary.remote_load_bytes, 16u * 4u);
  // Without request 1, pages 0 and 1 are found.
  w.requests.erase(w.requests.begin() + 1);
  w.requests[1].request_id = 1;
  c.num_replicas = 2;
  EXPECT_EQ(RunCluster(w, c).requests[1].prefix_cached_tokens, 32);
}

// The vendored Mooncake trace (its first 400 requests, sessions sharing long prefixes) on 8
// replicas: prefix-aware routing hits more prefix pages and computes fewer prefill tokens than
// round-robin, and its median TTFT is lower. The step times are Llama-3.1-8B's on an H100; to keep
// the test quick under the debug build's per-step invariant checks, the KV shape is the tiny
// model's in 128-token pages and outputs are cut to 4 tokens (TTFT is prefill time here).
TEST(ClusterTest, PrefixAwareBeatsRoundRobinOnTheMooncakeTrace) {
  WorkloadOptions options;
  options.max_requests = 400;
  absl::StatusOr<Workload> w = LoadWorkload("mooncake", options);
  ASSERT_TRUE(w.ok()) << w.status();
  for (Request& r : w->requests) r.output_tokens = std::min(r.output_tokens, 4);
  ClusterConfig c;
  c.replica = ReplicaConfig();
  c.replica.gpu = *GpuSpec::Preset("h100");
  c.replica.compute = *ModelCompute::ForModel(*ModelSpec::Preset("llama-3.1-8b"));
  c.replica.block_size_tokens = 128;
  c.replica.kv_budget_bytes = 300'000ull * 4;  // 300k tokens per replica
  c.replica.max_model_len = 131072;
  c.num_replicas = 8;
  c.router = RouterKind::kRoundRobin;
  const PolicyRunResult rr = RunCluster(*w, c);
  c.router = RouterKind::kPrefixAware;
  const PolicyRunResult aware = RunCluster(*w, c);
  EXPECT_EQ(rr.summary.requests_completed + rr.summary.requests_rejected, 400);
  EXPECT_EQ(aware.summary.requests_completed, rr.summary.requests_completed);
  EXPECT_GT(aware.summary.prefix_hit_rate, 2 * rr.summary.prefix_hit_rate);
  EXPECT_LT(aware.summary.prompt_tokens_computed, rr.summary.prompt_tokens_computed);
  EXPECT_LT(aware.summary.ttft_p50_s, rr.summary.ttft_p50_s);
}

TEST(ClusterTest, IsDeterministicAndValidatesItsConfig) {
  absl::StatusOr<Workload> w =
      LoadWorkload("synthetic:n=120,rate=400,prompt=uniform:10:150,output=uniform:1:40,seed=9");
  ASSERT_TRUE(w.ok()) << w.status();
  for (RouterKind router :
       {RouterKind::kRoundRobin, RouterKind::kLeastLoaded, RouterKind::kPrefixAware}) {
    ClusterConfig c;
    c.replica = ReplicaConfig();
    c.num_replicas = 4;
    c.router = router;
    const PolicyRunResult a = RunCluster(*w, c);
    const PolicyRunResult b = RunCluster(*w, c);
    SimulationInfo info;
    EXPECT_EQ(SummaryJson(info, {a}), SummaryJson(info, {b}));
    EXPECT_EQ(a.summary.requests_completed, 120);
    EXPECT_GT(a.summary.kv_utilization_mean, 0.0);
    EXPECT_LE(a.summary.kv_utilization_max, 1.0);
    EXPECT_FALSE(a.timeline.empty());
  }
  ClusterConfig bad;
  bad.replica = ReplicaConfig();
  bad.num_replicas = 0;
  EXPECT_EQ(SimulateCluster(*w, bad).status().code(), absl::StatusCode::kInvalidArgument);
  bad.num_replicas = 2;
  bad.remote.capacity_bytes = 1000;
  bad.remote.bandwidth_bytes_per_s = 0;
  EXPECT_EQ(SimulateCluster(*w, bad).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pagedkv
