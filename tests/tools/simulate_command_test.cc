// Runs the built `pagedkv simulate` (path from CMake: PAGEDKV_CLI_PATH) as a user would: help,
// a synthetic workload over two policies, --json, the vendored trace found from the executable,
// bad flags, and malformed trace lines with and without --skip-bad-lines.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/tools/cli_runner.h"

namespace {

using RunResult = pagedkv::testing::CliResult;
using pagedkv::testing::ReadWholeFile;

using ::testing::HasSubstr;
using ::testing::Not;

std::string TempPath(const std::string& name) {
  return ::testing::TempDir() + "simulate_command_test_" + std::to_string(::getpid()) + "_" + name;
}

// stdout and stderr go to files (not a terminal: no progress bar).
RunResult RunCli(const std::vector<std::string>& args) {
  return pagedkv::testing::RunPagedkv(args);
}

constexpr char kSynthetic[] = "synthetic:n=40,rate=100,prompt=uniform:10:200,output=uniform:1:50";

TEST(SimulateCommandTest, HelpListsTheFlags) {
  const RunResult r = RunCli({"simulate", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  for (const char* flag :
       {"--trace", "--model", "--gpu", "--policy", "--block-size", "--out", "--json",
        "--rate-scale", "--max-requests", "--skip-bad-lines", "--seed"}) {
    EXPECT_THAT(r.out, HasSubstr(flag));
  }
  EXPECT_THAT(RunCli({"--help"}).out, HasSubstr("simulate"));
}

TEST(SimulateCommandTest, SyntheticRunWritesTheFilesAndTable) {
  const std::string out = TempPath("out");
  std::filesystem::remove_all(out);
  const RunResult r = RunCli({"simulate", "--trace", kSynthetic, "--policy", "paged,contiguous-max",
                              "--kv-budget", "1GiB", "--max-model-len", "256", "--out", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("paged"));
  EXPECT_THAT(r.out, HasSubstr("contiguous-max"));
  EXPECT_THAT(r.out, HasSubstr("40/40"));
  EXPECT_THAT(r.err, Not(HasSubstr("\r")));  // no progress bar when not on a terminal
  const nlohmann::json summary = nlohmann::json::parse(ReadWholeFile(out + "/summary.json"));
  ASSERT_EQ(summary["policies"].size(), 2u);
  EXPECT_EQ(summary["policies"][0]["policy"], "paged");
  EXPECT_EQ(summary["policies"][1]["requests_completed"], 40);
  EXPECT_EQ(summary["model"], "llama-2-7b");
  EXPECT_EQ(summary["gpu"], "h100");
  EXPECT_THAT(ReadWholeFile(out + "/timeline.csv"), HasSubstr("\npaged,0,"));
  EXPECT_THAT(ReadWholeFile(out + "/requests.csv"), HasSubstr("\ncontiguous-max,39,"));
  std::filesystem::remove_all(out);
}

TEST(SimulateCommandTest, JsonGoesToStdoutAndIsDeterministic) {
  const std::string out = TempPath("json");
  const std::vector<std::string> args = {"simulate", "--trace",     kSynthetic, "--policy",
                                         "all",      "--no-report", "--json",   "--out",
                                         out,        "--seed",      "3"};
  const RunResult a = RunCli(args);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  const nlohmann::json j = nlohmann::json::parse(a.out);
  EXPECT_EQ(j["policies"].size(), 6u);
  EXPECT_EQ(RunCli(args).out, a.out);
  std::filesystem::remove_all(out);
}

TEST(SimulateCommandTest, VendoredTraceByShortName) {
  const std::string out = TempPath("azure");
  const RunResult r =
      RunCli({"simulate", "--trace", "azure-conv", "--max-requests", "30", "--policy", "paged",
              "--gpu", "a100-80gb", "--no-report", "--out", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // One of the first 30 conversations is longer than Llama-2-7B's 4096-token context.
  EXPECT_THAT(r.out, HasSubstr("29/30"));
  EXPECT_THAT(r.out, HasSubstr("max_model_len 4096 (the model's context)"));
  EXPECT_THAT(r.err, HasSubstr("paged rejected 1 requests: 1 longer than max_model_len 4096"));
  EXPECT_THAT(r.out, HasSubstr("A100"));
  std::filesystem::remove_all(out);
}

TEST(SimulateCommandTest, BadFlagsAreUsageErrors) {
  RunResult r = RunCli({"simulate", "--policy", "buddy", "--trace", kSynthetic});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("unknown policy 'buddy'"));
  r = RunCli({"simulate", "--gpu", "v100", "--trace", kSynthetic});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("v100"));
  r = RunCli({"simulate", "--trace", "/no/such/trace.csv"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("/no/such/trace.csv"));
  r = RunCli({"simulate", "--rate-scale", "0", "--trace", kSynthetic});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--rate-scale"));
}

TEST(SimulateCommandTest, MalformedLinesFailOrAreSkipped) {
  const std::string trace = TempPath("bad.csv");
  {
    std::ofstream f(trace);
    f << "TIMESTAMP,ContextTokens,GeneratedTokens\n"
         "2023-11-16 18:15:46.6805900,374,44\n"
         "2023-11-16 18:15:47.0000000,abc,109\n"
         "2023-11-16 18:15:48.0000000,396,109\n";
  }
  const std::string out = TempPath("bad_out");
  RunResult r = RunCli({"simulate", "--trace", trace, "--policy", "paged", "--out", out});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr(":3:"));  // file and line
  r = RunCli({"simulate", "--trace", trace, "--policy", "paged", "--skip-bad-lines", "--no-report",
              "--out", out});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("skipped 1 malformed line"));
  EXPECT_THAT(r.out, HasSubstr("2/2"));
  std::filesystem::remove(trace);
  std::filesystem::remove_all(out);
}

TEST(SimulateCommandTest, ListGpusShowsPresetsWithSources) {
  const RunResult r = RunCli({"simulate", "--list-gpus"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* name :
       {"a100-40gb", "a100-80gb", "l40s", "h100-pcie", "h100", "h200", "b200", "mi300x"}) {
    EXPECT_THAT(r.out, HasSubstr(name));
  }
  EXPECT_THAT(r.out, HasSubstr("40GB HBM2"));
  EXPECT_THAT(r.out, HasSubstr("42949672960"));  // 40 GiB
  EXPECT_THAT(r.out, HasSubstr("datasheet"));
}

// --gpu-mem, --gpu-bandwidth and --gpu-flops override the preset: the A100-80GB with 40GiB and
// the 40GB part's bandwidth sizes and times exactly like the a100-40gb preset.
TEST(SimulateCommandTest, HardwareOverridesMatchThePreset) {
  const std::string out = TempPath("hw");
  const std::vector<std::string> common = {"simulate",    "--trace", kSynthetic, "--policy",
                                           "paged",       "--model", "opt-13b",  "--json",
                                           "--no-report", "--out",   out};
  std::vector<std::string> preset = common;
  preset.insert(preset.end(), {"--gpu", "a100-40gb"});
  std::vector<std::string> flags = common;
  flags.insert(flags.end(), {"--gpu", "a100-80gb", "--gpu-mem", "40GiB", "--gpu-bandwidth",
                             "1.555TB/s", "--gpu-flops", "312T"});
  const RunResult a = RunCli(preset);
  const RunResult b = RunCli(flags);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  const nlohmann::json ja = nlohmann::json::parse(a.out);
  const nlohmann::json jb = nlohmann::json::parse(b.out);
  EXPECT_EQ(ja["kv_budget_bytes"], jb["kv_budget_bytes"]);
  EXPECT_EQ(ja["max_model_len"], 2048);
  EXPECT_EQ(ja["policies"][0]["capacity_tokens"], 15792);  // 15806 tokens in whole pages
  EXPECT_EQ(ja["policies"][0]["makespan_s"], jb["policies"][0]["makespan_s"]);
  std::filesystem::remove_all(out);
}

TEST(SimulateCommandTest, ReplicasAndRouters) {
  const std::string out = TempPath("cluster");
  const RunResult r =
      RunCli({"simulate", "--trace", kSynthetic, "--policy", "paged", "--replicas", "4", "--router",
              "round-robin,prefix-aware", "--kv-budget", "1GiB", "--out", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("paged/round-robin"));
  EXPECT_THAT(r.out, HasSubstr("paged/prefix-aware"));
  EXPECT_THAT(r.out, HasSubstr("replicas of paged/prefix-aware:"));
  const nlohmann::json summary = nlohmann::json::parse(ReadWholeFile(out + "/summary.json"));
  EXPECT_EQ(summary["num_replicas"], 4);
  ASSERT_EQ(summary["policies"].size(), 2u);
  EXPECT_EQ(summary["policies"][1]["router"], "prefix-aware");
  ASSERT_EQ(summary["policies"][1]["replicas"].size(), 4u);
  int64_t routed = 0;
  for (const nlohmann::json& rep : summary["policies"][1]["replicas"]) {
    routed += rep["requests_total"].get<int64_t>();
  }
  EXPECT_EQ(routed, 40);
  EXPECT_THAT(ReadWholeFile(out + "/requests.csv"), HasSubstr("policy,router,replica,"));
  EXPECT_THAT(ReadWholeFile(out + "/report.html"), HasSubstr("id=\"cluster-chart\""));
  std::filesystem::remove_all(out);
}

// Simulated swap space is not host memory: 64 GiB runs on a machine with less.
TEST(SimulateCommandTest, SwapSpaceLargerThanThisMachine) {
  const std::string out = TempPath("swap");
  const RunResult r = RunCli({"simulate", "--trace", kSynthetic, "--policy", "paged",
                              "--preemption", "swap", "--swap-space", "64GiB", "--kv-budget",
                              "256MiB", "--json", "--no-report", "--out", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["policies"][0]["requests_completed"], 40);
  EXPECT_GT(j["policies"][0]["swap_bytes"].get<uint64_t>(), 0u);  // 512 tokens: memory is short
  std::filesystem::remove_all(out);
}

TEST(SimulateCommandTest, ClusterAndLimitFlagsAreChecked) {
  struct Case {
    std::vector<std::string> args;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {{"--router", "prefix-aware"}, "--router: routes between replicas; add --replicas N"},
      {{"--replicas", "2", "--router", "random"}, "unknown router 'random'"},
      {{"--replicas", "0"}, "--replicas '0' must be in [1, 4096]"},
      {{"--max-model-len", "8192"},
       "--max-model-len: max_model_len 8192 exceeds the context length"},
      {{"--extent-allocator", "slab"}, "--extent-allocator 'slab' is not one of auto, first-fit"},
      {{"--remote-bandwidth", "25"}, "--remote-bandwidth '25' has no unit"},
      {{"--policy", "paged,paged"}, "--policy: 'paged' is listed twice"},
      {{"--replicas", "2", "--remote-latency", "-1"}, "--remote-latency '-1' must be >= 0"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.expected);
    std::vector<std::string> args = {"simulate", "--trace", kSynthetic, "--no-report"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const RunResult r = RunCli(args);
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_THAT(r.err, HasSubstr(c.expected));
  }
}

}  // namespace
