// BlockTable: the invariant checker and slot arithmetic, over tables the manager builds (its fields
// are only written by BlockManager).
#include "pagedkv/block_manager/block_table.h"

#include <algorithm>
#include <numeric>
#include <vector>

#include "gtest/gtest.h"
#include "pagedkv/block_manager/block_manager.h"

namespace pagedkv {
namespace {

std::unique_ptr<BlockManager> Make(int32_t bs, std::vector<LayerSpec> layers) {
  ModelSpec spec;
  spec.name = "table";
  spec.num_q_heads = 1;
  spec.num_kv_heads = 1;
  spec.head_dim = 2;
  spec.kv_dtype = DType::kFp16;
  spec.layers = std::move(layers);
  CacheConfig cfg;
  cfg.block_size_tokens = bs;
  cfg.gpu_tier = Tier::kVirtual;
  cfg.gpu_num_blocks = 256;
  cfg.watermark = 0.0;
  auto bm = BlockManager::Create(spec, cfg);
  EXPECT_TRUE(bm.ok()) << bm.status();
  return std::move(*bm);
}

class BlockTableTest : public ::testing::TestWithParam<int32_t> {
 protected:
  int32_t bs() const { return GetParam(); }
};
INSTANTIATE_TEST_SUITE_P(BlockSizes, BlockTableTest, ::testing::Values(1, 3, 16, 17, 128));

TEST_P(BlockTableTest, EmptyTable) {
  const BlockTable t;
  EXPECT_TRUE(t.empty());
  EXPECT_EQ(t.num_tokens(), 0);
  EXPECT_EQ(t.num_pages(), 0);
  EXPECT_EQ(t.num_live_pages(), 0);
  EXPECT_EQ(t.first_live_page(), 0);
  EXPECT_EQ(t.tier(), Tier::kGpu);
  EXPECT_TRUE(t.CheckInvariants(bs(), 1).ok());
  EXPECT_EQ(t.CheckInvariants(0, 1).code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(BlockTableTest, SlotIsBlockTimesBlockSizePlusOffset) {
  auto bm = Make(bs(), {LayerSpec::Full()});
  std::vector<TokenId> prompt(5 * bs() + 2);
  std::iota(prompt.begin(), prompt.end(), 0);
  ASSERT_TRUE(bm->AddSequence(1, prompt).ok());
  const BlockTable* t = *bm->GetBlockTable(1, 0);
  EXPECT_EQ(t->num_pages(), (5 * bs() + 2 + bs() - 1) / bs());
  EXPECT_TRUE(t->CheckInvariants(bs(), 256).ok());
  for (int32_t p = 0; p < t->num_tokens(); ++p) {
    EXPECT_EQ(t->Slot(p, bs()), static_cast<int64_t>(t->blocks()[p / bs()]) * bs() + p % bs());
  }
  // The checker notices block ids outside the pool and a block size that does not fit.
  const BlockId max_block = *std::max_element(t->blocks().begin(), t->blocks().end());
  EXPECT_EQ(t->CheckInvariants(bs(), max_block).code(), absl::StatusCode::kInternal);
  // A table of 5 * bs + 2 tokens read with block size bs + 1 has the wrong page count (except for
  // bs = 1, where 7 pages of 1 token and 4 pages of 2 tokens differ too).
  EXPECT_EQ(t->CheckInvariants(bs() + 1, 256).code(), absl::StatusCode::kInternal);
}

TEST_P(BlockTableTest, SlidingTableHasInvalidLeadingPages) {
  auto bm = Make(bs(), {LayerSpec::Sliding(bs() + 1)});
  ASSERT_TRUE(bm->AddSequence(1, {1}).ok());
  for (int i = 0; i < 6 * bs(); ++i) ASSERT_TRUE(bm->AppendTokens(1, {i}).ok());
  const BlockTable* t = *bm->GetBlockTable(1, 0);
  ASSERT_GT(t->first_live_page(), 0);
  for (int32_t k = 0; k < t->first_live_page(); ++k) EXPECT_EQ(t->blocks()[k], kInvalidBlockId);
  for (int32_t k = t->first_live_page(); k < t->num_pages(); ++k) {
    EXPECT_NE(t->blocks()[k], kInvalidBlockId);
  }
  EXPECT_EQ(t->num_live_pages(), t->num_pages() - t->first_live_page());
  EXPECT_TRUE(t->CheckInvariants(bs(), 256).ok());
}

}  // namespace
}  // namespace pagedkv
