// Unit tests of BlockManager: every operation, every bad input (right code, state unchanged),
// prefix caching, host second-level cache, sliding windows, shares(j), cross attention, CacheOps
// and BuildBatch layouts. Parameterized over block sizes 1, 3, 16, 17, 128 where it matters.
#include "pagedkv/block_manager/block_manager.h"

#include <numeric>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/block_manager/test_util.h"

namespace pagedkv {
namespace {

using ::absl::StatusCode;
using ::pagedkv::testing::Config;
using ::pagedkv::testing::ExpectFailsUnchanged;
using ::pagedkv::testing::Make;
using ::pagedkv::testing::Spec;
using ::pagedkv::testing::Tokens;

int32_t Pages(int32_t tokens, int32_t bs) { return (tokens + bs - 1) / bs; }

class BlockSizeTest : public ::testing::TestWithParam<int32_t> {
 protected:
  int32_t bs() const { return GetParam(); }
};

INSTANTIATE_TEST_SUITE_P(BlockSizes, BlockSizeTest, ::testing::Values(1, 3, 16, 17, 128));

TEST(BlockManagerCreateTest, RejectsBadConfigAndSpec) {
  EXPECT_EQ(BlockManager::Create(Spec({LayerSpec::Full()}), Config(0, 8)).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(BlockManager::Create(Spec({LayerSpec::Full()}), Config(16, 0)).status().code(),
            StatusCode::kInvalidArgument);  // no pool size
  ModelSpec bad = Spec({LayerSpec::Full()});
  bad.num_kv_heads = 0;
  EXPECT_EQ(BlockManager::Create(bad, Config(16, 8)).status().code(), StatusCode::kInvalidArgument);
  CacheConfig tiny = Config(16, 0);
  tiny.gpu_budget_bytes = 1;  // holds no block
  EXPECT_EQ(BlockManager::Create(Spec({LayerSpec::Full()}), tiny).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(BlockManagerCreateTest, GroupsSharesAndBudget) {
  // full, sliding(64), shares(0), full, cross: groups full{0,3}, sliding{1}, cross{4}.
  const ModelSpec spec = Spec({LayerSpec::Full(), LayerSpec::Sliding(64), LayerSpec::Shares(0),
                               LayerSpec::Full(), LayerSpec::Cross()});
  CacheConfig cfg = Config(16, 0);
  const uint64_t per_token_layer = spec.BytesPerTokenPerLayer();
  const uint64_t all_groups = 4 * per_token_layer * 16;  // 4 storage layers, one block each
  cfg.gpu_budget_bytes = all_groups * 10 + 5;
  auto bm = Make(spec, cfg);
  ASSERT_NE(bm, nullptr);
  ASSERT_EQ(bm->num_groups(), 3);
  EXPECT_EQ(bm->group_info(0).bytes_per_block, 2 * per_token_layer * 16);
  EXPECT_EQ(bm->group_info(0).gpu_num_blocks, 10u);
  EXPECT_EQ(bm->group_info(1).group.kind, AttentionKind::kSliding);
  EXPECT_EQ(bm->group_info(2).group.kind, AttentionKind::kCross);
  EXPECT_FALSE(bm->prefix_caching_enabled());  // a sliding group disables prefix caching
  EXPECT_FALSE(bm->has_host_tier());
  // shares(0) owns nothing and resolves to layer 0's storage.
  const LayerLocation l0 = *bm->LocateLayer(0);
  const LayerLocation l2 = *bm->LocateLayer(2);
  const LayerLocation l3 = *bm->LocateLayer(3);
  EXPECT_EQ(l2.group, l0.group);
  EXPECT_EQ(l2.layer_in_group, l0.layer_in_group);
  EXPECT_EQ(l3.group, 0);
  EXPECT_EQ(l3.layer_in_group, 1);
  EXPECT_EQ(bm->LocateLayer(5).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bm->LocateLayer(-1).status().code(), StatusCode::kInvalidArgument);
}

TEST_P(BlockSizeTest, AddSequenceAllocatesCeilPages) {
  auto bm = Make(Spec({LayerSpec::Full()}), Config(bs(), 64, 0, /*prefix=*/false));
  for (int32_t n : {0, 1, bs() - 1, bs(), bs() + 1, 3 * bs() + 2}) {
    if (n < 0) continue;
    const SeqId id = 10 + n;
    if (bm->Contains(id)) continue;
    auto info = bm->AddSequence(id, Tokens(n));
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info->num_new_blocks, Pages(n, bs()));
    const BlockTable* t = *bm->GetBlockTable(id, 0);
    EXPECT_EQ(t->num_tokens(), n);
    EXPECT_EQ(t->num_pages(), Pages(n, bs()));
    EXPECT_EQ(t->tier(), Tier::kGpu);
    EXPECT_TRUE(t->CheckInvariants(bs(), 64).ok());
    EXPECT_EQ(*bm->NumTokens(id), n);
  }
  EXPECT_TRUE(bm->CheckInvariants().ok());
}

TEST_P(BlockSizeTest, AddSequenceBadInputsLeaveStateUnchanged) {
  auto bm = Make(Spec({LayerSpec::Full()}), Config(bs(), 8, 0, false));
  ASSERT_TRUE(bm->AddSequence(1, Tokens(bs() + 1)).ok());
  ExpectFailsUnchanged(*bm, StatusCode::kAlreadyExists,
                       [&] { return bm->AddSequence(1, Tokens(3)).status(); });
  ExpectFailsUnchanged(*bm, StatusCode::kResourceExhausted,
                       [&] { return bm->AddSequence(2, Tokens(7 * bs())).status(); });
  EXPECT_FALSE(bm->Contains(2));
  EXPECT_FALSE(bm->CanAdmit(Tokens(7 * bs())).can_admit);
  EXPECT_TRUE(bm->CanAdmit(Tokens(6 * bs())).can_admit);
  // Larger than the whole pool: the message says it can never fit (not "wait").
  ExpectFailsUnchanged(*bm, StatusCode::kResourceExhausted,
                       [&] { return bm->AddSequence(3, Tokens(8 * bs() + 1)).status(); });
  EXPECT_THAT(std::string(bm->AddSequence(3, Tokens(8 * bs() + 1)).status().message()),
              ::testing::HasSubstr("can never fit"));
  EXPECT_THAT(std::string(bm->AddSequence(3, Tokens(7 * bs())).status().message()),
              ::testing::HasSubstr("or wait"));
}

TEST(BlockManagerAdmitTest, WatermarkAppliesToCanAdmitOnly) {
  CacheConfig cfg = Config(4, 100, 0, false);
  cfg.watermark = 0.1;  // 10 blocks
  auto bm = Make(Spec({LayerSpec::Full()}), cfg);
  EXPECT_TRUE(bm->CanAdmit(Tokens(90 * 4)).can_admit);
  EXPECT_FALSE(bm->CanAdmit(Tokens(91 * 4)).can_admit);
  EXPECT_TRUE(bm->AddSequence(1, Tokens(95 * 4)).ok());  // AddSequence ignores the watermark
}

TEST_P(BlockSizeTest, AppendFillsLastPageThenAllocates) {
  auto bm = Make(Spec({LayerSpec::Full()}), Config(bs(), 64, 0, false));
  ASSERT_TRUE(bm->AddSequence(1, Tokens(1)).ok());
  for (int32_t len = 1; len < 3 * bs() + 2; ++len) {
    EXPECT_EQ(*bm->BlocksToAppend(1, 1), len % bs() == 0 ? 1 : 0);
    ASSERT_TRUE(bm->AppendTokens(1, {static_cast<TokenId>(len)}).ok());
    EXPECT_EQ((*bm->GetBlockTable(1, 0))->num_pages(), Pages(len + 1, bs()));
  }
  ASSERT_TRUE(bm->AppendTokens(1, Tokens(2 * bs() + 1)).ok());
  EXPECT_EQ(*bm->NumTokens(1), 5 * bs() + 3);
  EXPECT_TRUE(bm->AppendTokens(1, {}).ok());
  EXPECT_TRUE(bm->TakeCacheOps().empty());  // no sharing, no copies
  EXPECT_TRUE(bm->CheckInvariants().ok());
}

TEST_P(BlockSizeTest, AppendBadInputsLeaveStateUnchanged) {
  auto bm = Make(Spec({LayerSpec::Full()}), Config(bs(), 4, 4, false));
  ASSERT_TRUE(bm->AddSequence(1, Tokens(bs())).ok());
  ASSERT_TRUE(bm->AddSequence(2, Tokens(bs())).ok());
  ExpectFailsUnchanged(*bm, StatusCode::kNotFound, [&] { return bm->AppendTokens(9, Tokens(1)); });
  ExpectFailsUnchanged(*bm, StatusCode::kResourceExhausted,
                       [&] { return bm->AppendTokens(1, Tokens(2 * bs() + 1)); });
  EXPECT_FALSE(bm->CanAppend(1, 2 * bs() + 1));
  EXPECT_TRUE(bm->CanAppend(1, 2 * bs()));
  ASSERT_TRUE(bm->SwapOut(2).ok());
  ExpectFailsUnchanged(*bm, StatusCode::kFailedPrecondition,
                       [&] { return bm->AppendTokens(2, Tokens(1)); });
  EXPECT_FALSE(bm->CanAppend(2, 1));
  EXPECT_EQ(bm->BlocksToAppend(2, 1).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(bm->BlocksToAppend(9, 1).status().code(), StatusCode::kNotFound);
  // Batch forms.
  const SeqId two[2] = {1, 1};
  const TokenId toks[2] = {5, 6};
  ExpectFailsUnchanged(*bm, StatusCode::kInvalidArgument,
                       [&] { return bm->AppendTokenBatch(two, toks); });
  const SeqId one[1] = {1};
  ExpectFailsUnchanged(*bm, StatusCode::kInvalidArgument,
                       [&] { return bm->AppendTokenBatch(one, toks); });
  const SeqId with_swapped[2] = {1, 2};
  ExpectFailsUnchanged(*bm, StatusCode::kFailedPrecondition,
                       [&] { return bm->AppendTokenBatch(with_swapped, toks); });
  const SeqId with_unknown[2] = {1, 77};
  ExpectFailsUnchanged(*bm, StatusCode::kNotFound,
                       [&] { return bm->AppendTokenBatch(with_unknown, toks); });
}

TEST_P(BlockSizeTest, ForkSharesEveryPageAndCopiesOnWrite) {
  const ModelSpec spec = Spec({LayerSpec::Full()});
  auto bm = Make(spec, Config(bs(), 64, 0, false));
  const int32_t n = 2 * bs() + (bs() > 1 ? 1 : 0);  // a partial last page when bs > 1
  ASSERT_TRUE(bm->AddSequence(1, Tokens(n)).ok());
  ASSERT_TRUE(bm->Fork(1, 2).ok());
  const BlockTable* p = *bm->GetBlockTable(1, 0);
  const BlockTable* c = *bm->GetBlockTable(2, 0);
  ASSERT_EQ(std::vector<BlockId>(p->blocks().begin(), p->blocks().end()),
            std::vector<BlockId>(c->blocks().begin(), c->blocks().end()));
  for (BlockId b : c->blocks()) EXPECT_EQ(bm->gpu_allocator(0).ref_count(b), 2u);
  EXPECT_EQ(bm->stats().pages_saved_by_sharing, Pages(n, bs()));
  EXPECT_EQ(bm->GetSequenceStats(2)->num_shared_pages, Pages(n, bs()));
  EXPECT_TRUE(bm->TakeCacheOps().empty());  // a fork moves no data
  const std::vector<BlockId> parent_before(p->blocks().begin(), p->blocks().end());
  ASSERT_TRUE(bm->AppendTokens(2, {7}).ok());
  CacheOps ops = bm->TakeCacheOps();
  ASSERT_EQ(ops.groups.size(), 1u);
  if (bs() > 1) {
    // The shared partial last page is copied once, into the child's private page.
    ASSERT_EQ(ops.groups[0].copies.size(), 1u);
    EXPECT_EQ(ops.groups[0].copies[0].src, parent_before.back());
    EXPECT_EQ(ops.groups[0].copies[0].dst, (*bm->GetBlockTable(2, 0))->blocks().back());
    EXPECT_EQ(ops.copy_bytes(), bm->group_info(0).bytes_per_block);
    EXPECT_EQ(ops.total_bytes(), bm->group_info(0).bytes_per_block);
    EXPECT_EQ(bm->stats().cow_copies, 1u);
  } else {
    EXPECT_TRUE(ops.empty());  // a full last page is never written again
  }
  p = *bm->GetBlockTable(1, 0);
  EXPECT_EQ(std::vector<BlockId>(p->blocks().begin(), p->blocks().end()), parent_before);
  EXPECT_TRUE(bm->CheckInvariants().ok());
  // The parent's own append now writes its page in place (ref 1 after the copy).
  ASSERT_TRUE(bm->AppendTokens(1, {8}).ok());
  EXPECT_TRUE(bm->TakeCacheOps().empty());
}

TEST_P(BlockSizeTest, ForkBadInputsLeaveStateUnchanged) {
  auto bm = Make(Spec({LayerSpec::Full()}), Config(bs(), 16, 16, false));
  ASSERT_TRUE(bm->AddSequence(1, Tokens(bs() + 1)).ok());
  ASSERT_TRUE(bm->AddSequence(2, Tokens(1)).ok());
  ExpectFailsUnchanged(*bm, StatusCode::kNotFound, [&] { return bm->Fork(9, 10); });
  ExpectFailsUnchanged(*bm, StatusCode::kAlreadyExists, [&] { return bm->Fork(1, 2); });
  ExpectFailsUnchanged(*bm, StatusCode::kInvalidArgument, [&] { return bm->Fork(1, 1); });
  ASSERT_TRUE(bm->SwapOut(1).ok());
  ExpectFailsUnchanged(*bm, StatusCode::kFailedPrecondition, [&] { return bm->Fork(1, 3); });
}

TEST_P(BlockSizeTest, ReorderBeamsSharesWithoutCopying) {
  auto bm = Make(Spec({LayerSpec::Full()}), Config(bs(), 256, 0, false));
  const int32_t n = 4 * bs() + (bs() > 1 ? 2 : 0);
  ASSERT_TRUE(bm->AddSequence(1, Tokens(n)).ok());
  for (SeqId b = 2; b <= 4; ++b) ASSERT_TRUE(bm->Fork(1, b).ok());
  // Diverge every beam by one token so each has a private last page.
  const SeqId beams[4] = {1, 2, 3, 4};
  const TokenId next[4] = {11, 12, 13, 14};
  ASSERT_TRUE(bm->AppendTokenBatch(beams, next).ok());
  (void)bm->TakeCacheOps();
  std::vector<std::vector<BlockId>> before;
  for (SeqId b : beams) {
    const BlockTable* t = *bm->GetBlockTable(b, 0);
    before.emplace_back(t->blocks().begin(), t->blocks().end());
  }
  const int32_t parents[4] = {0, 0, 3, 1};  // beam 2 dies, beam 0 doubles
  ASSERT_TRUE(bm->ReorderBeams(beams, parents).ok());
  EXPECT_TRUE(bm->TakeCacheOps().empty());  // reorder itself never moves data
  for (int i = 0; i < 4; ++i) {
    const BlockTable* t = *bm->GetBlockTable(beams[i], 0);
    EXPECT_EQ(std::vector<BlockId>(t->blocks().begin(), t->blocks().end()), before[parents[i]])
        << "beam " << i;
  }
  EXPECT_TRUE(bm->CheckInvariants().ok());
  // The next decode step copies at most one partial page per beam.
  const TokenId step[4] = {21, 22, 23, 24};
  ASSERT_TRUE(bm->AppendTokenBatch(beams, step).ok());
  const CacheOps ops = bm->TakeCacheOps();
  EXPECT_LE(ops.groups[0].copies.size(), 4u);
  EXPECT_LE(ops.copy_bytes(), 4 * bm->group_info(0).bytes_per_block);
  // Only beams 0 and 1 share a last page (old beam 0's), and only when it is partial.
  EXPECT_EQ(ops.groups[0].copies.size(), (n + 1) % bs() != 0 ? 1u : 0u);
  EXPECT_TRUE(bm->CheckInvariants().ok());
}

TEST_P(BlockSizeTest, ReorderBeamsBadInputsLeaveStateUnchanged) {
  auto bm = Make(Spec({LayerSpec::Full()}), Config(bs(), 64, 64, false));
  ASSERT_TRUE(bm->AddSequence(1, Tokens(bs() + 1)).ok());
  ASSERT_TRUE(bm->Fork(1, 2).ok());
  ASSERT_TRUE(bm->Fork(1, 3).ok());
  const SeqId beams[2] = {1, 2};
  const int32_t out_of_range[2] = {0, 2};
  ExpectFailsUnchanged(*bm, StatusCode::kInvalidArgument,
                       [&] { return bm->ReorderBeams(beams, out_of_range); });
  const int32_t negative[2] = {-1, 0};
  ExpectFailsUnchanged(*bm, StatusCode::kInvalidArgument,
                       [&] { return bm->ReorderBeams(beams, negative); });
  const int32_t one[1] = {0};
  ExpectFailsUnchanged(*bm, StatusCode::kInvalidArgument,
                       [&] { return bm->ReorderBeams(beams, one); });
  const SeqId dup[2] = {1, 1};
  const int32_t ok_parents[2] = {1, 0};
  ExpectFailsUnchanged(*bm, StatusCode::kInvalidArgument,
                       [&] { return bm->ReorderBeams(dup, ok_parents); });
  const SeqId unknown[2] = {1, 42};
  ExpectFailsUnchanged(*bm, StatusCode::kNotFound,
                       [&] { return bm->ReorderBeams(unknown, ok_parents); });
  ASSERT_TRUE(bm->SwapOut(3).ok());
  const SeqId with_swapped[2] = {1, 3};
  ExpectFailsUnchanged(*bm, StatusCode::kFailedPrecondition,
                       [&] { return bm->ReorderBeams(with_swapped, ok_parents); });
}

TEST_P(BlockSizeTest, RewindReleasesWholePagesAndKeepsSharedPagesIntact) {
  auto bm = Make(Spec({LayerSpec::Full()}), Config(bs(), 64, 8, false));
  ASSERT_TRUE(bm->AddSequence(1, Tokens(3 * bs())).ok());
  const uint32_t in_use = bm->gpu_allocator(0).num_in_use();
  ASSERT_TRUE(bm->Rewind(1, bs() + 1).ok());
  EXPECT_EQ(*bm->NumTokens(1), bs() + 1);
  EXPECT_EQ((*bm->GetBlockTable(1, 0))->num_pages(), Pages(bs() + 1, bs()));
  EXPECT_EQ(bm->gpu_allocator(0).num_in_use(), in_use - (3 - Pages(bs() + 1, bs())));
  ASSERT_TRUE(bm->Rewind(1, bs() + 1).ok());  // no-op
  // Shared last page: rewinding the child into it does not modify it; the next append copies it.
  ASSERT_TRUE(bm->Fork(1, 2).ok());
  if (bs() > 1) {
    ASSERT_TRUE(bm->Rewind(2, bs() + 1 - 1).ok());
    const BlockId shared = (*bm->GetBlockTable(1, 0))->blocks().back();
    if (bs() + 1 - 1 > bs()) {
      EXPECT_EQ((*bm->GetBlockTable(2, 0))->blocks().back(), shared);
    }
  }
  ASSERT_TRUE(bm->Rewind(2, 1).ok());
  ASSERT_TRUE(bm->AppendTokens(2, {5}).ok());
  const CacheOps ops = bm->TakeCacheOps();
  if (bs() > 1) {
    EXPECT_EQ(ops.groups[0].copies.size(), 1u);  // page 0 is shared with the parent
  }
  EXPECT_EQ(*bm->NumTokens(1), bs() + 1);
  ASSERT_TRUE(bm->Rewind(2, 0).ok());
  EXPECT_EQ((*bm->GetBlockTable(2, 0))->num_pages(), 0);
  EXPECT_TRUE(bm->CheckInvariants().ok());
  // Bad inputs.
  ExpectFailsUnchanged(*bm, StatusCode::kInvalidArgument, [&] { return bm->Rewind(1, bs() + 2); });
  ExpectFailsUnchanged(*bm, StatusCode::kInvalidArgument, [&] { return bm->Rewind(1, -1); });
  ExpectFailsUnchanged(*bm, StatusCode::kNotFound, [&] { return bm->Rewind(99, 0); });
  ASSERT_TRUE(bm->SwapOut(1).ok());
  ExpectFailsUnchanged(*bm, StatusCode::kFailedPrecondition, [&] { return bm->Rewind(1, 0); });
}

TEST_P(BlockSizeTest, FreeReleasesEverythingAndNothingLeaks) {
  auto bm = Make(Spec({LayerSpec::Full(), LayerSpec::Cross()}), Config(bs(), 64, 64, true));
  SequenceOptions audio;
  audio.encoder_key = 11;
  ASSERT_TRUE(bm->AddSequence(1, Tokens(2 * bs() + 1), audio).ok());
  ASSERT_TRUE(bm->MarkComputed(1, 2 * bs() + 1).ok());
  ASSERT_TRUE(bm->SetCrossAttention(1, bs() + 2).ok());
  ASSERT_TRUE(bm->Fork(1, 2).ok());
  ASSERT_TRUE(bm->AppendTokens(2, Tokens(3)).ok());
  ASSERT_TRUE(bm->AddSequence(3, Tokens(bs()), audio).ok());
  ASSERT_TRUE(bm->SwapOut(3).ok());
  ExpectFailsUnchanged(*bm, StatusCode::kNotFound, [&] { return bm->Free(4); });
  for (SeqId id : {1, 2, 3}) ASSERT_TRUE(bm->Free(id).ok());
  EXPECT_EQ(bm->num_sequences(), 0);
  (void)bm->TakeCacheOps();  // drops the pins of the pending copies and swaps
  for (int32_t g = 0; g < bm->num_groups(); ++g) {
    EXPECT_EQ(bm->gpu_allocator(g).num_in_use(), 0u) << "group " << g;
    EXPECT_EQ(bm->host_allocator(g)->num_in_use(), 0u) << "group " << g;
  }
  EXPECT_TRUE(bm->CheckInvariants().ok());
}

TEST_P(BlockSizeTest, SwapMovesSharedPagesOnce) {
  auto bm = Make(Spec({LayerSpec::Full()}), Config(bs(), 64, 64, false));
  const int32_t n = 3 * bs() + (bs() > 1 ? 1 : 0);
  ASSERT_TRUE(bm->AddSequence(1, Tokens(n)).ok());
  ASSERT_TRUE(bm->Fork(1, 2).ok());
  ASSERT_TRUE(bm->AppendTokens(2, {1}).ok());
  (void)bm->TakeCacheOps();
  const int32_t parent_pages = Pages(n, bs());
  const int32_t child_private = bs() > 1 ? 1 : 1;  // the child's last page is its own
  const int32_t distinct = parent_pages + child_private;
  const SeqId both[2] = {1, 2};
  ASSERT_TRUE(bm->SwapOut(both).ok());
  CacheOps ops = bm->TakeCacheOps();
  EXPECT_EQ(static_cast<int32_t>(ops.groups[0].swap_out.size()), distinct);
  EXPECT_EQ(ops.swap_out_bytes(), distinct * bm->group_info(0).bytes_per_block);
  EXPECT_EQ(bm->stats().swap_out_bytes, ops.swap_out_bytes());
  EXPECT_EQ(bm->stats().num_swapped_sequences, 2);
  EXPECT_EQ(bm->gpu_allocator(0).num_in_use(), 0u);
  EXPECT_EQ((*bm->GetBlockTable(1, 0))->tier(), Tier::kHost);
  EXPECT_TRUE(bm->GetSequenceStats(1)->swapped_out);
  EXPECT_EQ(static_cast<int32_t>(bm->host_allocator(0)->num_in_use()), distinct);
  // Sharing survives the host tier.
  EXPECT_EQ((*bm->GetBlockTable(1, 0))->blocks()[0], (*bm->GetBlockTable(2, 0))->blocks()[0]);
  EXPECT_TRUE(bm->CanSwapIn(both));
  ASSERT_TRUE(bm->SwapIn(both).ok());
  ops = bm->TakeCacheOps();
  EXPECT_EQ(static_cast<int32_t>(ops.groups[0].swap_in.size()), distinct);
  EXPECT_EQ(bm->stats().swap_in_bytes, ops.swap_in_bytes());
  EXPECT_EQ((*bm->GetBlockTable(1, 0))->blocks()[0], (*bm->GetBlockTable(2, 0))->blocks()[0]);
  EXPECT_EQ(*bm->NumTokens(2), n + 1);
  EXPECT_TRUE(bm->CheckInvariants().ok());
}

TEST_P(BlockSizeTest, SwapBadInputsLeaveStateUnchanged) {
  auto no_host = Make(Spec({LayerSpec::Full()}), Config(bs(), 16, 0, false));
  ASSERT_TRUE(no_host->AddSequence(1, Tokens(bs())).ok());
  ExpectFailsUnchanged(*no_host, StatusCode::kFailedPrecondition,
                       [&] { return no_host->SwapOut(1); });
  auto bm = Make(Spec({LayerSpec::Full()}), Config(bs(), 16, 2, false));
  ASSERT_TRUE(bm->AddSequence(1, Tokens(bs())).ok());
  ASSERT_TRUE(bm->AddSequence(2, Tokens(3 * bs())).ok());
  ExpectFailsUnchanged(*bm, StatusCode::kNotFound, [&] { return bm->SwapOut(5); });
  ExpectFailsUnchanged(*bm, StatusCode::kFailedPrecondition, [&] { return bm->SwapIn(1); });
  ExpectFailsUnchanged(*bm, StatusCode::kNotFound, [&] { return bm->SwapIn(5); });
  ExpectFailsUnchanged(*bm, StatusCode::kResourceExhausted, [&] { return bm->SwapOut(2); });
  const SeqId dup[2] = {1, 1};
  ExpectFailsUnchanged(*bm, StatusCode::kInvalidArgument, [&] { return bm->SwapOut(dup); });
  ASSERT_TRUE(bm->SwapOut(1).ok());
  ExpectFailsUnchanged(*bm, StatusCode::kFailedPrecondition, [&] { return bm->SwapOut(1); });
  EXPECT_FALSE(bm->CanSwapIn(dup));
  // Swap-in with no room on the GPU.
  (void)bm->TakeCacheOps();  // unpins the swapped-out page
  ASSERT_TRUE(bm->AddSequence(3, Tokens(16 * bs() - 3 * bs())).ok());
  EXPECT_FALSE(bm->CanSwapIn(absl::MakeConstSpan(std::vector<SeqId>{1})));
  ExpectFailsUnchanged(*bm, StatusCode::kResourceExhausted, [&] { return bm->SwapIn(1); });
  // A page still waiting for its swap-in cannot be swapped out in the same step.
  ASSERT_TRUE(bm->Free(3).ok());
  ASSERT_TRUE(bm->SwapIn(1).ok());
  ExpectFailsUnchanged(*bm, StatusCode::kFailedPrecondition, [&] { return bm->SwapOut(1); });
  (void)bm->TakeCacheOps();
  EXPECT_TRUE(bm->SwapOut(1).ok());
}

TEST_P(BlockSizeTest, SwapOutRefusesACopyWhoseSourceAwaitsSwapIn) {
  // swap_out runs before swap_in within a step: a page copied (CoW) from a block that is still
  // waiting for its swap-in would be read before it is filled, so SwapOut must refuse it.
  if (bs() == 1) GTEST_SKIP() << "block size 1 has no partial pages to copy";
  auto bm = Make(Spec({LayerSpec::Full()}), Config(bs(), 16, 16, false));
  ASSERT_TRUE(bm->AddSequence(1, Tokens(bs() + 1)).ok());
  ASSERT_TRUE(bm->SwapOut(1).ok());
  (void)bm->TakeCacheOps();
  ASSERT_TRUE(bm->SwapIn(1).ok());  // pending: host -> GPU
  ASSERT_TRUE(bm->Fork(1, 2).ok());
  ASSERT_TRUE(bm->AppendTokens(2, {9}).ok());  // pending copy whose source awaits the swap-in
  ExpectFailsUnchanged(*bm, StatusCode::kFailedPrecondition, [&] { return bm->SwapOut(2); });
  const CacheOps ops = bm->TakeCacheOps();
  ASSERT_EQ(ops.groups[0].copies.size(), 1u);
  EXPECT_EQ(ops.groups[0].copies[0].src, ops.groups[0].swap_in.back().dst);
  EXPECT_TRUE(bm->SwapOut(2).ok());  // fine once the ops were taken
  EXPECT_TRUE(bm->CheckInvariants().ok());
}

TEST_P(BlockSizeTest, BuildBatchFillsCsrAndSlotMapping) {
  auto bm = Make(Spec({LayerSpec::Full()}), Config(bs(), 256, 0, false));
  const int32_t lens[3] = {2 * bs() + 1, 1, 3 * bs()};
  for (SeqId i = 0; i < 3; ++i) ASSERT_TRUE(bm->AddSequence(i + 1, Tokens(lens[i])).ok());
  ASSERT_TRUE(bm->AddSequence(4, {}).ok());
  const BatchEntry entries[4] = {{1, 1, -1}, {2, 1, -1}, {3, lens[2], -1}, {4, 0, -1}};
  BatchLayout layout;
  ASSERT_TRUE(bm->BuildBatch(entries, 0, &layout).ok());
  EXPECT_EQ(layout.batch_size(), 4);
  EXPECT_EQ(layout.block_size, bs());
  ASSERT_EQ(layout.page_indptr.size(), 5u);
  EXPECT_EQ(layout.page_indptr[0], 0);
  int32_t new_tokens = 0;
  for (int b = 0; b < 3; ++b) {
    const BlockTable* t = *bm->GetBlockTable(b + 1, 0);
    EXPECT_EQ(layout.page_indptr[b + 1] - layout.page_indptr[b], t->num_pages());
    for (int32_t k = 0; k < t->num_pages(); ++k) {
      EXPECT_EQ(static_cast<BlockId>(layout.page_indices[layout.page_indptr[b] + k]),
                t->blocks()[k]);
    }
    EXPECT_EQ(layout.last_page_len[b], lens[b] - (Pages(lens[b], bs()) - 1) * bs());
    EXPECT_GE(layout.last_page_len[b], 1);
    EXPECT_LE(layout.last_page_len[b], bs());
    EXPECT_EQ(layout.first_page_token[b], 0);
    EXPECT_EQ(layout.query_indptr[b], new_tokens);
    for (int32_t i = 0; i < entries[b].num_new_tokens; ++i) {
      const int32_t pos = lens[b] - entries[b].num_new_tokens + i;
      EXPECT_EQ(layout.slot_mapping[new_tokens + i], t->Slot(pos, bs()));
      EXPECT_EQ(layout.slot_mapping[new_tokens + i],
                static_cast<int64_t>(t->blocks()[pos / bs()]) * bs() + pos % bs());
    }
    new_tokens += entries[b].num_new_tokens;
  }
  EXPECT_EQ(layout.page_indptr[4], layout.page_indptr[3]);  // empty entry: no pages
  EXPECT_EQ(layout.last_page_len[3], 0);
  EXPECT_EQ(layout.num_new_tokens(), new_tokens);
  EXPECT_EQ(layout.query_indptr[4], new_tokens);
  // Chunked prefill: context ends at 1 page + 1 token, the chunk is its last bs() + 1 tokens.
  const BatchEntry chunk = {3, 1, bs() + 1};
  ASSERT_TRUE(bm->BuildBatch(absl::MakeConstSpan(&chunk, 1), 0, &layout).ok());
  EXPECT_EQ(layout.num_pages(), Pages(bs() + 1, bs()));
  EXPECT_EQ(layout.last_page_len[0], bs() + 1 - (Pages(bs() + 1, bs()) - 1) * bs());
  EXPECT_EQ(layout.slot_mapping[0], (*bm->GetBlockTable(3, 0))->Slot(bs(), bs()));
}

TEST_P(BlockSizeTest, BuildBatchBadInputs) {
  auto bm = Make(Spec({LayerSpec::Full()}), Config(bs(), 64, 64, false));
  ASSERT_TRUE(bm->AddSequence(1, Tokens(bs() + 1)).ok());
  ASSERT_TRUE(bm->AddSequence(2, Tokens(2)).ok());
  BatchLayout layout;
  const BlockManagerStats before = bm->stats();
  const BatchEntry e1 = {1, 1, -1};
  EXPECT_EQ(bm->BuildBatch(absl::MakeConstSpan(&e1, 1), 1, &layout).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(bm->BuildBatch(absl::MakeConstSpan(&e1, 1), -1).status().code(),
            StatusCode::kInvalidArgument);
  const BatchEntry unknown = {9, 1, -1};
  EXPECT_EQ(bm->BuildBatch(absl::MakeConstSpan(&unknown, 1), 0, &layout).code(),
            StatusCode::kNotFound);
  const BatchEntry too_many = {1, bs() + 2, -1};
  EXPECT_EQ(bm->BuildBatch(absl::MakeConstSpan(&too_many, 1), 0, &layout).code(),
            StatusCode::kInvalidArgument);
  const BatchEntry ctx_too_long = {1, 1, bs() + 2};
  EXPECT_EQ(bm->BuildBatch(absl::MakeConstSpan(&ctx_too_long, 1), 0, &layout).code(),
            StatusCode::kInvalidArgument);
  const BatchEntry negative = {1, -1, -1};
  EXPECT_EQ(bm->BuildBatch(absl::MakeConstSpan(&negative, 1), 0, &layout).code(),
            StatusCode::kInvalidArgument);
  ASSERT_TRUE(bm->SwapOut(2).ok());
  const BatchEntry swapped = {2, 1, -1};
  EXPECT_EQ(bm->BuildBatch(absl::MakeConstSpan(&swapped, 1), 0, &layout).code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(bm->GetBlockTable(1, 3).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bm->GetBlockTable(8, 0).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(bm->GetSequenceStats(8).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(bm->NumTokens(8).status().code(), StatusCode::kNotFound);
  (void)before;
}

TEST_P(BlockSizeTest, BuildBatchDoesNotReallocateInSteadyState) {
  auto bm = Make(Spec({LayerSpec::Full()}), Config(bs(), 4096, 0, false));
  std::vector<SeqId> seqs;
  std::vector<BatchEntry> entries;
  for (SeqId i = 1; i <= 32; ++i) {
    ASSERT_TRUE(bm->AddSequence(i, Tokens(4 * bs() + 1)).ok());
    seqs.push_back(i);
    entries.push_back({i, 1, -1});
  }
  std::vector<TokenId> tokens(seqs.size(), 3);
  // Warm up with a layout of the final size (pages only grow by one per bs() steps).
  for (int i = 0; i < 2 * bs(); ++i) ASSERT_TRUE(bm->AppendTokenBatch(seqs, tokens).ok());
  auto first = bm->BuildBatch(entries, 0);
  ASSERT_TRUE(first.ok());
  const BatchLayout* layout = *first;
  const int32_t* indptr = layout->page_indptr.data();
  const int32_t* indices = layout->page_indices.data();
  const int64_t* slots = layout->slot_mapping.data();
  const size_t cap = layout->page_indices.capacity();
  for (int step = 0; step < 2 * bs(); ++step) {
    if (bm->BlocksToAppend(1, 1).value() > 0) break;  // stay within the warmed page count
    ASSERT_TRUE(bm->AppendTokenBatch(seqs, tokens).ok());
    auto again = bm->BuildBatch(entries, 0);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(*again, layout);  // the manager-owned buffer
    EXPECT_EQ(layout->page_indptr.data(), indptr);
    EXPECT_EQ(layout->page_indices.data(), indices);
    EXPECT_EQ(layout->slot_mapping.data(), slots);
    EXPECT_EQ(layout->page_indices.capacity(), cap);
  }
  // A caller-owned layout keeps its capacity too.
  BatchLayout mine;
  ASSERT_TRUE(bm->BuildBatch(entries, 0, &mine).ok());
  const int32_t* mine_indices = mine.page_indices.data();
  ASSERT_TRUE(bm->BuildBatch(entries, 0, &mine).ok());
  EXPECT_EQ(mine.page_indices.data(), mine_indices);
}

class PrefixCacheTest : public BlockSizeTest {};
INSTANTIATE_TEST_SUITE_P(BlockSizes, PrefixCacheTest, ::testing::Values(1, 3, 16, 17, 128));

TEST_P(PrefixCacheTest, HitsFullPagesExceptTheLastTokensPage) {
  auto bm = Make(Spec({LayerSpec::Full()}), Config(bs(), 64, 0, true));
  ASSERT_TRUE(bm->prefix_caching_enabled());
  const std::vector<TokenId> prompt = Tokens(3 * bs() + 1);
  ASSERT_TRUE(bm->AddSequence(1, prompt).ok());
  EXPECT_EQ(bm->CanAdmit(prompt).num_cached_tokens, 0);  // nothing computed yet
  ASSERT_TRUE(bm->MarkComputed(1, static_cast<int64_t>(prompt.size())).ok());
  const int32_t full_pages = 3;  // (prompt_len - 1) / bs
  const AdmitInfo predicted = bm->CanAdmit(prompt);
  EXPECT_EQ(predicted.num_cached_tokens, full_pages * bs());
  const BlockManagerStats before = bm->stats();
  EXPECT_EQ(bm->stats(), before);  // CanAdmit changes nothing
  auto info = bm->AddSequence(2, prompt);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->num_cached_tokens, full_pages * bs());
  EXPECT_EQ(info->num_new_blocks, 1);
  for (int k = 0; k < full_pages; ++k) {
    EXPECT_EQ((*bm->GetBlockTable(1, 0))->blocks()[k], (*bm->GetBlockTable(2, 0))->blocks()[k]);
  }
  EXPECT_EQ(bm->stats().prefix_hit_pages, static_cast<uint64_t>(full_pages));
  EXPECT_EQ(bm->stats().prefix_query_pages, static_cast<uint64_t>(2 * full_pages));
  EXPECT_DOUBLE_EQ(bm->stats().prefix_hit_rate, 0.5);
  // The whole prompt as full pages: the page of the last token is still computed.
  const std::vector<TokenId> exact = Tokens(3 * bs());
  EXPECT_EQ(bm->CanAdmit(exact).num_cached_tokens, 2 * bs());
  // Another extra key (LoRA) never shares.
  SequenceOptions lora;
  lora.extra_key = 5;
  EXPECT_EQ(bm->CanAdmit(prompt, lora).num_cached_tokens, 0);
  // A token changed in page 1: only page 0 hits.
  std::vector<TokenId> changed = prompt;
  changed[bs() + bs() / 2] = 99999;
  EXPECT_EQ(bm->CanAdmit(changed).num_cached_tokens, bs());
  // After both are freed the pages stay cached and still hit.
  ASSERT_TRUE(bm->Free(1).ok());
  ASSERT_TRUE(bm->Free(2).ok());
  // Every full page is cached, the last one too when the prompt ends on a page boundary.
  EXPECT_EQ(bm->stats().groups[0].gpu_cached_blocks, static_cast<uint32_t>(prompt.size() / bs()));
  EXPECT_EQ(bm->TouchPrefix(prompt), full_pages);
  info = bm->AddSequence(3, prompt);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->num_cached_tokens, full_pages * bs());
  EXPECT_TRUE(bm->CheckInvariants().ok());
}

TEST_P(PrefixCacheTest, OffByDefaultWhenDisabled) {
  auto bm = Make(Spec({LayerSpec::Full()}), Config(bs(), 64, 0, false));
  EXPECT_FALSE(bm->prefix_caching_enabled());
  const std::vector<TokenId> prompt = Tokens(3 * bs() + 1);
  ASSERT_TRUE(bm->AddSequence(1, prompt).ok());
  auto info = bm->AddSequence(2, prompt);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->num_cached_tokens, 0);
  EXPECT_EQ(bm->stats().prefix_hit_pages, 0u);
}

TEST_P(PrefixCacheTest, HostTierKeepsEvictedPagesAsSecondLevel) {
  // GPU pool of 4 pages; the host tier keeps what the GPU evicts.
  auto bm = Make(Spec({LayerSpec::Full()}), Config(bs(), 4, 8, true));
  const std::vector<TokenId> prompt = Tokens(3 * bs() + 1, 1000);
  ASSERT_TRUE(bm->AddSequence(1, prompt).ok());
  ASSERT_TRUE(bm->MarkComputed(1, static_cast<int64_t>(prompt.size())).ok());
  ASSERT_TRUE(bm->Free(1).ok());  // 3 published pages cached on the GPU
  (void)bm->TakeCacheOps();
  ASSERT_TRUE(bm->AddSequence(2, Tokens(4 * bs(), 5000)).ok());  // evicts all of them
  CacheOps ops = bm->TakeCacheOps();
  const size_t hashed = prompt.size() / bs();  // 4 with block size 1, else 3
  EXPECT_EQ(ops.groups[0].swap_out.size(), hashed);
  EXPECT_EQ(bm->stats().host_offloads, hashed);
  EXPECT_EQ(bm->stats().groups[0].host_cached_blocks, hashed);
  ASSERT_TRUE(bm->Free(2).ok());
  const AdmitInfo predicted = bm->CanAdmit(prompt);
  EXPECT_EQ(predicted.num_host_hit_pages, 3);
  EXPECT_EQ(predicted.num_cached_tokens, 3 * bs());
  auto info = bm->AddSequence(3, prompt);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->num_host_hit_pages, 3);
  ops = bm->TakeCacheOps();
  ASSERT_EQ(ops.groups[0].swap_in.size(), 3u);
  for (int k = 0; k < 3; ++k) {
    EXPECT_EQ(ops.groups[0].swap_in[k].dst, (*bm->GetBlockTable(3, 0))->blocks()[k]);
  }
  EXPECT_EQ(ops.swap_in_bytes(), 3 * bm->group_info(0).bytes_per_block);
  EXPECT_EQ(bm->stats().prefix_host_hit_pages, 3u);
  // Back on the GPU, the pages are hashed again and hit there.
  EXPECT_EQ(bm->CanAdmit(prompt).num_host_hit_pages, 0);
  EXPECT_TRUE(bm->CheckInvariants().ok());
}

TEST_P(BlockSizeTest, SlidingWindowReleasesPagesOutsideTheWindow) {
  const int32_t window = 2 * bs() + 1;
  auto bm = Make(Spec({LayerSpec::Sliding(window)}), Config(bs(), 64, 0, true));
  EXPECT_FALSE(bm->prefix_caching_enabled());
  ASSERT_TRUE(bm->AddSequence(1, Tokens(1)).ok());
  for (int32_t len = 1; len < 10 * bs(); ++len) {
    ASSERT_TRUE(bm->AppendTokens(1, {static_cast<TokenId>(len)}).ok());
    const BlockTable* t = *bm->GetBlockTable(1, 0);
    // Memory bounded by the window plus one page (plus the page being filled).
    EXPECT_LE(t->num_live_pages(), Pages(window, bs()) + 2) << "len " << len;
    EXPECT_TRUE(t->CheckInvariants(bs(), 64).ok());
  }
  const BlockTable* t = *bm->GetBlockTable(1, 0);
  EXPECT_GT(t->first_live_page(), 0);
  BatchLayout layout;
  const BatchEntry e = {1, 1, -1};
  ASSERT_TRUE(bm->BuildBatch(absl::MakeConstSpan(&e, 1), 0, &layout).ok());
  EXPECT_EQ(layout.first_page_token[0], t->first_live_page() * bs());
  EXPECT_EQ(layout.num_pages(), t->num_live_pages());
  // Rewinding far back needs released pages.
  ExpectFailsUnchanged(*bm, StatusCode::kFailedPrecondition, [&] { return bm->Rewind(1, 2); });
  EXPECT_TRUE(bm->Rewind(1, *bm->NumTokens(1) - 1).ok());
  EXPECT_TRUE(bm->Rewind(1, 0).ok());
  EXPECT_TRUE(bm->CheckInvariants().ok());
}

TEST_P(BlockSizeTest, CrossAttentionPagesWrittenOnceSharedByForks) {
  auto bm = Make(Spec({LayerSpec::Full(), LayerSpec::Cross(), LayerSpec::Shares(1)}),
                 Config(bs(), 64, 64, true));
  ASSERT_EQ(bm->num_groups(), 2);
  EXPECT_EQ(bm->LocateLayer(2)->group, 1);
  SequenceOptions audio;
  audio.encoder_key = 3;
  ASSERT_TRUE(bm->AddSequence(1, Tokens(2), audio).ok());
  const int32_t enc = 2 * bs() + 1;
  ASSERT_TRUE(bm->SetCrossAttention(1, enc).ok());
  const BlockTable* cross = *bm->GetBlockTable(1, 1);
  EXPECT_EQ(cross->num_tokens(), enc);
  EXPECT_EQ(cross->num_pages(), Pages(enc, bs()));
  EXPECT_EQ(bm->GetSequenceStats(1)->num_encoder_tokens, enc);
  const BatchEntry e = {1, enc, -1};
  BatchLayout layout;
  ASSERT_TRUE(bm->BuildBatch(absl::MakeConstSpan(&e, 1), 1, &layout).ok());
  EXPECT_EQ(layout.num_new_tokens(), enc);
  EXPECT_EQ(layout.slot_mapping.back(), cross->Slot(enc - 1, bs()));
  // Appends do not touch the cross table.
  ASSERT_TRUE(bm->AppendTokens(1, Tokens(bs())).ok());
  EXPECT_EQ((*bm->GetBlockTable(1, 1))->num_tokens(), enc);
  ASSERT_TRUE(bm->Fork(1, 2).ok());
  EXPECT_EQ((*bm->GetBlockTable(2, 1))->blocks()[0], (*bm->GetBlockTable(1, 1))->blocks()[0]);
  ExpectFailsUnchanged(*bm, StatusCode::kFailedPrecondition,
                       [&] { return bm->SetCrossAttention(1, 3); });
  ExpectFailsUnchanged(*bm, StatusCode::kNotFound, [&] { return bm->SetCrossAttention(7, 3); });
  ASSERT_TRUE(bm->AddSequence(3, Tokens(1), audio).ok());
  ExpectFailsUnchanged(*bm, StatusCode::kInvalidArgument,
                       [&] { return bm->SetCrossAttention(3, -1); });
  ExpectFailsUnchanged(*bm, StatusCode::kResourceExhausted,
                       [&] { return bm->SetCrossAttention(3, 100 * bs()); });
  ASSERT_TRUE(bm->SwapOut(3).ok());
  ExpectFailsUnchanged(*bm, StatusCode::kFailedPrecondition,
                       [&] { return bm->SetCrossAttention(3, 1); });
  auto plain = Make(Spec({LayerSpec::Full()}), Config(bs(), 8));
  ASSERT_TRUE(plain->AddSequence(1, Tokens(1)).ok());
  ExpectFailsUnchanged(*plain, StatusCode::kFailedPrecondition,
                       [&] { return plain->SetCrossAttention(1, 4); });
}

TEST_P(BlockSizeTest, StatsCountTokensSlotsAndFragmentation) {
  auto bm = Make(Spec({LayerSpec::Full()}), Config(bs(), 64, 0, false));
  const int32_t n = 2 * bs() + (bs() > 1 ? 1 : 0);
  ASSERT_TRUE(bm->AddSequence(1, Tokens(n)).ok());
  BlockManagerStats s = bm->stats();
  EXPECT_EQ(s.num_sequences, 1);
  EXPECT_EQ(s.tokens_stored, n);
  EXPECT_EQ(s.slots_allocated, Pages(n, bs()) * bs());
  EXPECT_EQ(s.internal_fragmentation_slots, Pages(n, bs()) * bs() - n);
  EXPECT_EQ(s.pages_saved_by_sharing, 0);
  ASSERT_TRUE(bm->Fork(1, 2).ok());
  s = bm->stats();
  EXPECT_EQ(s.tokens_stored, 2 * n);
  EXPECT_EQ(s.slots_allocated, Pages(n, bs()) * bs());
  EXPECT_EQ(s.pages_saved_by_sharing, Pages(n, bs()));
  const SequenceStats ss = *bm->GetSequenceStats(2);
  EXPECT_EQ(ss.num_tokens, n);
  EXPECT_EQ(ss.num_pages, Pages(n, bs()));
  EXPECT_EQ(ss.num_shared_pages, Pages(n, bs()));
  ASSERT_EQ(s.groups.size(), 1u);
  EXPECT_EQ(s.groups[0].gpu_in_use_blocks, static_cast<uint32_t>(Pages(n, bs())));
  EXPECT_EQ(s.groups[0].gpu_free_blocks, 64u - Pages(n, bs()));
}

TEST(BlockManagerEvictionTest, LowPriorityPagesAreEvictedFirst) {
  auto bm = Make(Spec({LayerSpec::Full()}), Config(4, 4, 0, true));
  SequenceOptions low;
  low.priority = EvictionPriority::kLow;
  ASSERT_TRUE(bm->AddSequence(1, Tokens(8, 100)).ok());       // 2 full pages, normal
  ASSERT_TRUE(bm->AddSequence(2, Tokens(4, 500), low).ok());  // 1 full page, low
  ASSERT_TRUE(bm->MarkComputed(1, 8).ok());
  ASSERT_TRUE(bm->MarkComputed(2, 4).ok());
  ASSERT_TRUE(bm->Free(1).ok());
  ASSERT_TRUE(bm->Free(2).ok());
  EXPECT_EQ(bm->stats().groups[0].gpu_cached_blocks, 3u);
  ASSERT_TRUE(bm->AddSequence(3, Tokens(2, 900)).ok());  // takes the free block
  ASSERT_TRUE(bm->AddSequence(4, Tokens(2, 901)).ok());  // evicts the low-priority page
  EXPECT_EQ(bm->CanAdmit(Tokens(9, 100)).num_cached_tokens, 8);
  EXPECT_EQ(bm->CanAdmit(Tokens(5, 500)).num_cached_tokens, 0);
  EXPECT_EQ(bm->SetEvictionPriority(77, EvictionPriority::kLow).code(), StatusCode::kNotFound);
  EXPECT_TRUE(bm->SetEvictionPriority(3, EvictionPriority::kLow).ok());
}

// share_host_pools: the host tier has memory in a memfd (another process can map it) even under a
// virtual GPU tier, so a remote tier can stage pages through it; without it the host tier of a
// virtual GPU is virtual too.
TEST(BlockManagerTest, SharedHostPoolsHaveMemoryUnderAVirtualGpuTier) {
  CacheConfig cfg = Config(4, 16, 8);
  cfg.gpu_tier = Tier::kVirtual;
  auto plain = Make(Spec({LayerSpec::Full()}), cfg);
  ASSERT_NE(plain, nullptr);
  EXPECT_FALSE(plain->host_pool(0)->has_memory());
  cfg.share_host_pools = true;
  cfg.remote.url = "memory://shared-host-pools";
  auto shared = Make(Spec({LayerSpec::Full()}), cfg);
  ASSERT_NE(shared, nullptr);
  EXPECT_FALSE(shared->gpu_pool(0).has_memory());
  EXPECT_EQ(shared->host_pool(0)->backend(), MemoryBackend::kSharedHost);
  EXPECT_GE(shared->host_pool(0)->shared_memory_fd(), 0);
  EXPECT_TRUE(shared->has_remote_tier());
}

}  // namespace
}  // namespace pagedkv
