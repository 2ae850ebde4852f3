// Tests of StagedOutput (tools/internal/staged_output.h): files appear in the output directory
// only on Commit, all of them or none, and the staging directory never stays behind.
#include "tools/internal/staged_output.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagedkv::cli {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string Dir(const std::string& name) {
  const std::string dir =
      ::testing::TempDir() + "staged_output_test_" + std::to_string(::getpid()) + "_" + name;
  fs::remove_all(dir);
  return dir;
}

void Write(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

size_t Entries(const std::string& dir) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++n;
  return n;
}

TEST(StagedOutputTest, CommitMovesEveryFileAndRemovesTheStaging) {
  const std::string dir = Dir("commit");
  {
    absl::StatusOr<StagedOutput> out = StagedOutput::Create(dir, {"a.txt", "b.txt"});
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(Entries(dir), 1u);  // only the staging directory
    Write(out->StagingPath("a.txt"), "A");
    Write(out->StagingPath("b.txt"), "B");
    ASSERT_TRUE(out->Commit().ok());
  }
  EXPECT_TRUE(fs::exists(dir + "/a.txt"));
  EXPECT_TRUE(fs::exists(dir + "/b.txt"));
  EXPECT_EQ(Entries(dir), 2u);
}

TEST(StagedOutputTest, AMissingFileOrABlockedTargetMovesNothing) {
  const std::string dir = Dir("partial");
  {
    absl::StatusOr<StagedOutput> out = StagedOutput::Create(dir, {"a.txt", "b.txt"});
    ASSERT_TRUE(out.ok());
    Write(out->StagingPath("a.txt"), "A");  // b.txt never written: a failed run
    absl::Status st = out->Commit();
    EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(std::string(st.message()), HasSubstr("b.txt was not written"));
  }
  EXPECT_EQ(Entries(dir), 0u);  // no a.txt, no staging
  {
    absl::StatusOr<StagedOutput> out = StagedOutput::Create(dir, {"a.txt", "b.txt"});
    ASSERT_TRUE(out.ok());
    Write(out->StagingPath("a.txt"), "A");
    Write(out->StagingPath("b.txt"), "B");
    fs::create_directories(dir + "/b.txt");  // appeared while the run was going
    absl::Status st = out->Commit();
    EXPECT_THAT(std::string(st.message()), HasSubstr("exists and is a directory"));
  }
  EXPECT_FALSE(fs::exists(dir + "/a.txt"));
}

TEST(StagedOutputTest, CreateRefusesUnusableDirectories) {
  const std::string file = Dir("file");
  Write(file, "x");
  EXPECT_FALSE(StagedOutput::Create(file, {"a.txt"}).ok());
  const std::string dir = Dir("blocked");
  fs::create_directories(dir + "/a.txt");
  absl::StatusOr<StagedOutput> out = StagedOutput::Create(dir, {"a.txt"});
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(out.status().message()), HasSubstr("a.txt' exists and is a directory"));
}

}  // namespace
}  // namespace pagedkv::cli
