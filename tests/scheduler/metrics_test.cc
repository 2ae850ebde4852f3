// Tests of metrics.h: percentiles, time-weighted means, timeline decimation, and the exact file
// formats (summary.json keys, timeline.csv and requests.csv headers) the report reads.
#include "pagedkv/scheduler/metrics.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace pagedkv {
namespace {

TEST(MetricsTest, PercentileInterpolates) {
  EXPECT_EQ(Percentile({}, 50), 0);
  EXPECT_DOUBLE_EQ(Percentile({3, 1, 2, 4}, 50), 2.5);
  EXPECT_DOUBLE_EQ(Percentile({3, 1, 2, 4}, 0), 1);
  EXPECT_DOUBLE_EQ(Percentile({3, 1, 2, 4}, 100), 4);
  EXPECT_DOUBLE_EQ(Percentile({10}, 99), 10);
}

TEST(MetricsTest, MeansAreWeightedByStepTime) {
  MetricsCollector m;
  TimelineRow row;
  row.capacity_tokens = 100;
  row.used_tokens = 10;
  m.AddStep(row, 1, 1.0);
  row.used_tokens = 50;
  row.reserved_unused_tokens = 20;
  m.AddStep(row, 3, 3.0);
  PolicySummary s;
  m.FillSummary(s);
  EXPECT_DOUBLE_EQ(s.kv_utilization_mean, (0.1 * 1 + 0.5 * 3) / 4);
  EXPECT_DOUBLE_EQ(s.kv_utilization_max, 0.5);
  EXPECT_DOUBLE_EQ(s.reserved_unused_mean, 0.2 * 3 / 4);
  EXPECT_DOUBLE_EQ(s.mean_batch_size, (1.0 + 9.0) / 4);
  EXPECT_EQ(s.max_batch_size, 3);
  EXPECT_EQ(s.num_steps, 2);
}

TEST(MetricsTest, TimelineIsDecimatedButKeepsItsEnds) {
  MetricsCollector m(/*max_timeline_rows=*/10);
  for (int64_t i = 0; i < 1000; ++i) {
    TimelineRow row;
    row.step = i;
    row.capacity_tokens = 1;
    m.AddStep(row, 1, 1.0);
  }
  const auto& t = m.timeline();
  EXPECT_LE(t.size(), 20u);
  EXPECT_GE(t.size(), 10u);
  EXPECT_EQ(t.front().step, 0);
  for (size_t i = 1; i < t.size(); ++i) EXPECT_GT(t[i].step, t[i - 1].step);
}

TEST(MetricsTest, SummarizeRequestsLatenciesAndThroughput) {
  std::vector<RequestRecord> r(3);
  r[0] = {.request_id = 0, .arrival_s = 0, .first_token_s = 1, .finish_s = 3, .output_tokens = 3};
  r[1] = {.request_id = 1, .arrival_s = 1, .first_token_s = 1.5, .finish_s = 4, .output_tokens = 6};
  r[2] = {.request_id = 2, .arrival_s = 2, .rejected = true};
  PolicySummary s;
  SummarizeRequests(r, s);
  EXPECT_EQ(s.requests_completed, 2);
  EXPECT_EQ(s.requests_rejected, 1);
  EXPECT_DOUBLE_EQ(s.makespan_s, 4);
  EXPECT_DOUBLE_EQ(s.throughput_tokens_per_s, 9.0 / 4);
  EXPECT_DOUBLE_EQ(s.ttft_p50_s, 0.75);  // 1 and 0.5
  EXPECT_DOUBLE_EQ(s.tpot_p50_s, 0.75);  // 2/2 and 2.5/5
}

std::string FirstLine(const std::filesystem::path& p) {
  std::ifstream f(p);
  std::string line;
  std::getline(f, line);
  return line;
}

TEST(MetricsTest, WritesTheContractFiles) {
  PolicyRunResult r;
  r.summary.policy = "paged";
  r.summary.requests_completed = 1;
  TimelineRow row;
  row.capacity_tokens = 64;
  r.timeline = {row, row};
  r.requests.push_back({.request_id = 7,
                        .arrival_s = 0,
                        .first_token_s = 0.5,
                        .finish_s = 1,
                        .prompt_tokens = 3,
                        .output_tokens = 2});
  SimulationInfo info;
  info.workload_name = "w";
  info.model = "llama-2-7b";
  info.gpu = "h100";
  const std::string dir = std::string(PAGEDKV_TEST_OUTPUT_DIR) + "/metrics_test_out";
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(WriteSimulationOutputs(dir, info, {r}).ok());
  EXPECT_EQ(FirstLine(dir + "/timeline.csv"),
            "policy,step,time_s,running,waiting,swapped,batch_tokens,capacity_tokens,used_tokens,"
            "reserved_unused_tokens,internal_frag_tokens,external_frag_tokens,rounding_tokens,"
            "shared_saved_tokens,preemptions_total");
  EXPECT_EQ(FirstLine(dir + "/requests.csv"),
            "policy,request_id,arrival_s,first_token_s,finish_s,ttft_s,tpot_s,prompt_tokens,"
            "output_tokens,preemptions,prefix_cached_tokens");
  std::ifstream f(dir + "/summary.json");
  const nlohmann::json j = nlohmann::json::parse(f);
  EXPECT_EQ(j["workload"]["name"], "w");
  EXPECT_EQ(j["model"], "llama-2-7b");
  EXPECT_EQ(j["gpu"], "h100");
  ASSERT_EQ(j["policies"].size(), 1u);
  for (const char* key : {"policy",
                          "requests_completed",
                          "throughput_requests_per_s",
                          "throughput_tokens_per_s",
                          "kv_utilization_mean",
                          "internal_fragmentation_mean",
                          "reserved_unused_mean",
                          "external_fragmentation_mean",
                          "pages_saved_by_sharing_mean",
                          "preemptions",
                          "swap_bytes",
                          "copy_bytes",
                          "ttft_p50_s",
                          "ttft_p90_s",
                          "ttft_p99_s",
                          "tpot_p50_s",
                          "tpot_p90_s",
                          "tpot_p99_s",
                          "mean_batch_size",
                          "max_batch_size",
                          "prefix_hit_rate",
                          "capacity_tokens",
                          "makespan_s",
                          "requests_rejected_too_long",
                          "rounding_mean",
                          "prefix_reuse_ratio",
                          "remote_hit_rate",
                          "prompt_tokens_computed",
                          "busy_s"}) {
    EXPECT_TRUE(j["policies"][0].contains(key)) << key;
  }
  std::ifstream req(dir + "/requests.csv");
  std::string header, line;
  std::getline(req, header);
  std::getline(req, line);
  EXPECT_EQ(line.substr(0, 8), "paged,7,");
  EXPECT_NE(WriteSimulationOutputs("/proc/no/such/dir", info, {r}).code(), absl::StatusCode::kOk);
}

// A cluster run: the router and replica columns, and one object per replica in summary.json.
TEST(MetricsTest, ClusterRunsNameTheirRouterAndReplicas) {
  PolicyRunResult r;
  r.summary.policy = "paged";
  r.summary.router = "prefix-aware";
  r.timeline = {TimelineRow{.capacity_tokens = 128}};
  r.requests.push_back({.request_id = 3, .prefix_cached_tokens = 16, .replica = 1});
  for (int32_t i = 0; i < 2; ++i) {
    PolicySummary rep;
    rep.policy = "paged";
    rep.router = "prefix-aware";
    rep.replica = i;
    rep.requests_total = i + 1;
    r.replicas.push_back(rep);
  }
  SimulationInfo info;
  info.num_replicas = 2;
  const std::string dir = std::string(PAGEDKV_TEST_OUTPUT_DIR) + "/metrics_test_cluster";
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(WriteSimulationOutputs(dir, info, {r}).ok());
  EXPECT_EQ(FirstLine(dir + "/timeline.csv").substr(0, 19), "policy,router,step,");
  EXPECT_EQ(FirstLine(dir + "/requests.csv").substr(0, 33), "policy,router,replica,request_id,");
  std::ifstream req(dir + "/requests.csv");
  std::string header, line;
  std::getline(req, header);
  std::getline(req, line);
  EXPECT_EQ(line.substr(0, 23), "paged,prefix-aware,1,3,");
  EXPECT_EQ(line.substr(line.size() - 3), ",16");
  std::ifstream f(dir + "/summary.json");
  const nlohmann::json j = nlohmann::json::parse(f);
  EXPECT_EQ(j["num_replicas"], 2);
  EXPECT_EQ(j["policies"][0]["router"], "prefix-aware");
  ASSERT_EQ(j["policies"][0]["replicas"].size(), 2u);
  EXPECT_EQ(j["policies"][0]["replicas"][1]["replica"], 1);
  EXPECT_EQ(j["policies"][0]["replicas"][1]["requests_total"], 2);
}

}  // namespace
}  // namespace pagedkv
