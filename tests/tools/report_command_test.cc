// Runs the built `pagedkv report` (path from CMake: PAGEDKV_CLI_PATH) on the report fixtures of
// tests/scheduler/testdata and checks exit codes, messages and the HTML written.
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
#include "tests/tools/cli_runner.h"

namespace {

using RunResult = pagedkv::testing::CliResult;
using pagedkv::testing::ReadWholeFile;

using ::testing::HasSubstr;
using ::testing::StartsWith;

RunResult RunCli(const std::vector<std::string>& args) {
  return pagedkv::testing::RunPagedkv(args);
}

std::string Fixture(const std::string& name) {
  return std::string(PAGEDKV_REPORT_TESTDATA_DIR) + "/" + name;
}

std::string OutDir(const std::string& name) {
  const std::string dir =
      ::testing::TempDir() + "report_command_test_" + std::to_string(::getpid()) + "/" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

TEST(ReportCommandTest, HelpDescribesTheCommand) {
  RunResult r = RunCli({"report", "--help"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Usage: pagedkv report [OPTIONS] DIR\n"));
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr("COMMAND")));
  EXPECT_THAT(r.out, HasSubstr("--out"));
  EXPECT_THAT(r.out, HasSubstr("--title"));
  EXPECT_THAT(r.out, HasSubstr("summary.json"));
  // The top-level help lists it.
  r = RunCli({"--help"});
  EXPECT_THAT(r.out, HasSubstr("report"));
}

TEST(ReportCommandTest, WritesTheReportToOut) {
  const std::string path = OutDir("out") + "/r.html";
  RunResult r = RunCli({"report", Fixture("report_basic"), "--out", path});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "wrote " + path + "\n");
  const std::string html = ReadWholeFile(path);
  EXPECT_THAT(html, StartsWith("<!DOCTYPE html>"));
  EXPECT_THAT(html, HasSubstr("id=\"utilization-chart\""));
  EXPECT_THAT(html, HasSubstr("id=\"waste-chart\""));
  EXPECT_THAT(html, HasSubstr("id=\"ttft-chart\""));
}

TEST(ReportCommandTest, FlagsMayComeBeforeDirAndSetTheTitle) {
  const std::string path = OutDir("before") + "/nested/r.html";
  RunResult r = RunCli({"report", "--title", "Run <7>", "--out=" + path, Fixture("report_basic")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(ReadWholeFile(path), HasSubstr("<h1>Run &lt;7&gt;</h1>"));
}

TEST(ReportCommandTest, DefaultOutputIsDirReportHtml) {
  const std::string dir = OutDir("default");
  for (const char* name : {"summary.json", "timeline.csv", "requests.csv"}) {
    std::filesystem::copy_file(Fixture("report_escape") + "/" + name, dir + "/" + name);
  }
  RunResult r = RunCli({"report", dir});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("report.html"));
  EXPECT_TRUE(std::filesystem::exists(dir + "/report.html"));
}

TEST(ReportCommandTest, UsageErrorsExitWithTwo) {
  RunResult r = RunCli({"report"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("pagedkv report: error: missing DIR"));
  r = RunCli({"report", "a", "b"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("expected one DIR, got 2"));
  r = RunCli({"report", Fixture("report_basic"), "--bogus"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("bogus"));
}

TEST(ReportCommandTest, MissingOrMalformedDataNamesTheFile) {
  const std::string out = OutDir("bad") + "/r.html";
  RunResult r = RunCli({"report", Fixture("no_such_dir"), "--out", out});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("no summary.json in"));
  r = RunCli({"report", Fixture("report_bad_timeline"), "--out", out});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("timeline.csv:3:"));
  EXPECT_FALSE(std::filesystem::exists(out));
}

}  // namespace
