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
                              "--kv-budget", "1GiB", "--out", out});
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
  EXPECT_THAT(r.out, HasSubstr("30/30"));
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

}  // namespace
