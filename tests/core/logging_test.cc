#include "pagedkv/core/logging.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagedkv {
namespace {

using ::testing::HasSubstr;

// Restores the logger's level so that tests do not leak settings into each other.
class LoggingTest : public ::testing::Test {
 protected:
  void SetUp() override { saved_ = Logger().level(); }
  void TearDown() override { Logger().set_level(saved_); }
  spdlog::level::level_enum saved_ = spdlog::level::warn;
};

TEST_F(LoggingTest, LoggerIsNamedPagedkvAndStable) {
  EXPECT_EQ(Logger().name(), "pagedkv");
  EXPECT_EQ(&Logger(), &Logger());
}

TEST_F(LoggingTest, SetLogLevelAcceptsEveryLevel) {
  struct Case {
    const char* name;
    spdlog::level::level_enum level;
  };
  for (const Case& c : {Case{"trace", spdlog::level::trace}, Case{"debug", spdlog::level::debug},
                        Case{"info", spdlog::level::info}, Case{"warn", spdlog::level::warn},
                        Case{"warning", spdlog::level::warn}, Case{"error", spdlog::level::err},
                        Case{"off", spdlog::level::off}, Case{"TRACE", spdlog::level::trace},
                        Case{"Info", spdlog::level::info}}) {
    SCOPED_TRACE(c.name);
    ASSERT_TRUE(SetLogLevel(c.name).ok());
    EXPECT_EQ(Logger().level(), c.level);
  }
}

TEST_F(LoggingTest, SetLogLevelRejectsGarbageAndKeepsLevel) {
  ASSERT_TRUE(SetLogLevel("info").ok());
  for (const char* bad : {"", "verbose", "3", "infoo", " info"}) {
    SCOPED_TRACE(bad);
    absl::Status status = SetLogLevel(bad);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(status.message()), HasSubstr("off|error|warn|info|debug|trace"));
    EXPECT_EQ(Logger().level(), spdlog::level::info);
  }
  EXPECT_THAT(std::string(SetLogLevel("verbose").message()), HasSubstr("'verbose'"));
}

TEST_F(LoggingTest, MacrosLogOnlyAtEnabledLevels) {
  // A macro argument with a side effect shows whether it was evaluated.
  int evaluated = 0;
  auto count = [&evaluated] { return ++evaluated; };
  ASSERT_TRUE(SetLogLevel("off").ok());
  PAGEDKV_LOG_TRACE("never {}", count());
  PAGEDKV_LOG_ERROR("never {}", count());
  EXPECT_EQ(evaluated, 0);
  ASSERT_TRUE(SetLogLevel("error").ok());
  PAGEDKV_LOG_INFO("skipped {}", count());
  EXPECT_EQ(evaluated, 0);
  PAGEDKV_LOG_ERROR("logging_test: expected error line {}", count());
  EXPECT_EQ(evaluated, 1);
}

}  // namespace
}  // namespace pagedkv
