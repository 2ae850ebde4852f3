#include "pagedkv/core/cache_config.h"

#include <cmath>
#include <limits>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagedkv {
namespace {

using ::testing::HasSubstr;

TEST(CacheConfigTest, DefaultsAreValid) { EXPECT_TRUE(CacheConfig{}.Validate().ok()); }

class CacheConfigBlockSizeTest : public ::testing::TestWithParam<int32_t> {};

TEST_P(CacheConfigBlockSizeTest, AnyBlockSizeAtLeastOneIsValid) {
  CacheConfig cfg;
  cfg.block_size_tokens = GetParam();
  EXPECT_TRUE(cfg.Validate().ok()) << cfg.Validate();
}

INSTANTIATE_TEST_SUITE_P(BlockSizes, CacheConfigBlockSizeTest,
                         ::testing::Values(1, 3, 16, 17, 128, CacheConfig::kMaxBlockSizeTokens));

struct BadConfigCase {
  const char* label;
  void (*edit)(CacheConfig&);
  const char* expected;
};

class CacheConfigBadTest : public ::testing::TestWithParam<BadConfigCase> {};

TEST_P(CacheConfigBadTest, InvalidArgumentNamingFieldAndValue) {
  CacheConfig cfg;
  GetParam().edit(cfg);
  absl::Status status = cfg.Validate();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr(GetParam().expected));
}

INSTANTIATE_TEST_SUITE_P(
    Bad, CacheConfigBadTest,
    ::testing::Values(
        BadConfigCase{"ZeroBlockSize", [](CacheConfig& c) { c.block_size_tokens = 0; },
                      "block_size_tokens must be >= 1, got 0"},
        BadConfigCase{"NegativeBlockSize", [](CacheConfig& c) { c.block_size_tokens = -16; },
                      "got -16"},
        BadConfigCase{
            "HugeBlockSize",
            [](CacheConfig& c) { c.block_size_tokens = CacheConfig::kMaxBlockSizeTokens + 1; },
            "block_size_tokens must be <="},
        BadConfigCase{"NegativeGpuBlocks", [](CacheConfig& c) { c.gpu_num_blocks = -1; },
                      "gpu_num_blocks must be in [0, 4294967295], got -1"},
        BadConfigCase{"TooManyGpuBlocks", [](CacheConfig& c) { c.gpu_num_blocks = 1ll << 33; },
                      "gpu_num_blocks"},
        BadConfigCase{"NegativeHostBlocks", [](CacheConfig& c) { c.host_num_blocks = -5; },
                      "host_num_blocks must be in [0, 4294967295], got -5"},
        BadConfigCase{"ZeroFraction", [](CacheConfig& c) { c.gpu_memory_fraction = 0.0; },
                      "gpu_memory_fraction must be in (0, 1], got 0"},
        BadConfigCase{"FractionAboveOne", [](CacheConfig& c) { c.gpu_memory_fraction = 1.5; },
                      "got 1.5"},
        BadConfigCase{"NanFraction",
                      [](CacheConfig& c) {
                        c.gpu_memory_fraction = std::numeric_limits<double>::quiet_NaN();
                      },
                      "gpu_memory_fraction"},
        BadConfigCase{"NegativeWatermark", [](CacheConfig& c) { c.watermark = -0.1; },
                      "watermark must be in [0, 1), got -0.1"},
        BadConfigCase{"WatermarkOne", [](CacheConfig& c) { c.watermark = 1.0; },
                      "watermark must be in [0, 1), got 1"},
        BadConfigCase{"UnknownTier", [](CacheConfig& c) { c.gpu_tier = static_cast<Tier>(9); },
                      "gpu_tier has unknown value 9"}),
    [](const ::testing::TestParamInfo<BadConfigCase>& info) { return info.param.label; });

TEST(CacheConfigTest, EdgeValuesAccepted) {
  CacheConfig cfg;
  cfg.gpu_memory_fraction = 1.0;
  cfg.watermark = 0.0;
  cfg.gpu_num_blocks = 0xFFFFFFFFll;
  cfg.host_num_blocks = 1;
  cfg.gpu_tier = Tier::kVirtual;
  EXPECT_TRUE(cfg.Validate().ok()) << cfg.Validate();
}

}  // namespace
}  // namespace pagedkv
