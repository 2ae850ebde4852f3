// BuildBatch refuses what the other batch calls refuse (issue 19): a sequence listed twice (its
// slots would be written twice in one step) and num_context_tokens below -1, with
// InvalidArgument, a message naming the sequence, and the manager unchanged.
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pagedkv/block_manager/batch_layout.h"
#include "pagedkv/block_manager/block_manager.h"
#include "tests/block_manager/test_util.h"

namespace pagedkv {
namespace {

using ::pagedkv::testing::Config;
using ::pagedkv::testing::ExpectFailsUnchanged;
using ::pagedkv::testing::Make;
using ::pagedkv::testing::Spec;
using ::pagedkv::testing::Tokens;
using ::testing::HasSubstr;

TEST(BuildBatchGuardTest, DuplicateIdsAndContextBelowMinusOneAreRefused) {
  for (int32_t bs : {1, 3, 16}) {
    auto bm = Make(Spec(), Config(bs, 64));
    ASSERT_NE(bm, nullptr);
    ASSERT_TRUE(bm->AddSequence(1, Tokens(5)).ok());
    ASSERT_TRUE(bm->AddSequence(2, Tokens(7)).ok());
    BatchLayout layout;
    const std::vector<BatchEntry> twice = {{1, 1, -1}, {2, 1, -1}, {1, 1, -1}};
    ExpectFailsUnchanged(*bm, absl::StatusCode::kInvalidArgument,
                         [&] { return bm->BuildBatch(twice, 0, &layout); });
    EXPECT_THAT(std::string(bm->BuildBatch(twice, 0, &layout).message()),
                HasSubstr("sequence 1 is listed twice"));
    const std::vector<BatchEntry> below = {{2, 0, -2}};
    ExpectFailsUnchanged(*bm, absl::StatusCode::kInvalidArgument,
                         [&] { return bm->BuildBatch(below, 0, &layout); });
    // The manager-owned buffer overload checks the same.
    EXPECT_EQ(bm->BuildBatch(twice, 0).status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(bm->BuildBatch(below, 0).status().code(), absl::StatusCode::kInvalidArgument);
    // Each entry once, and -1 (all tokens), is fine.
    const std::vector<BatchEntry> ok = {{1, 1, -1}, {2, 0, -1}};
    EXPECT_TRUE(bm->BuildBatch(ok, 0, &layout).ok());
  }
}

}  // namespace
}  // namespace pagedkv
