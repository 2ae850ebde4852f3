// BlockLedger against a real BlockManager: after random operations (adds with shared prefixes,
// appends, forks, rewinds, swaps, frees) the incremental counts equal a recount from the tables.
#include "service/internal/block_ledger.h"

#include <random>

#include "gtest/gtest.h"
#include "tests/service/test_util.h"

namespace pagedkv::service::internal {
namespace {

TEST(BlockLedgerTest, CountsDistinctBlocksPerTierAndMatchesTheTables) {
  CacheConfig cfg;
  cfg.block_size_tokens = 4;
  cfg.gpu_tier = Tier::kVirtual;
  cfg.gpu_num_blocks = 96;
  cfg.host_num_blocks = 48;
  cfg.watermark = 0;
  auto made = BlockManager::Create(testing::ToySpec(), cfg);
  ASSERT_TRUE(made.ok());
  BlockManager& bm = **made;
  BlockLedger ledger, other;
  std::mt19937 rng(5);
  std::vector<SeqId> live;
  SeqId next = 1;
  for (int i = 0; i < 3000; ++i) {
    const int kind = static_cast<int>(rng() % 7);
    if (kind == 0 || live.empty()) {
      std::vector<TokenId> prompt(1 + rng() % 10);
      for (TokenId& t : prompt) t = static_cast<TokenId>(rng() % 4);
      if (bm.AddSequence(next, prompt).ok()) {
        ledger.Sync(bm, next);
        live.push_back(next);
      }
      ++next;
      continue;
    }
    const SeqId s = live[rng() % live.size()];
    if (kind == 1) {
      if (bm.AppendTokens(s, {static_cast<TokenId>(rng() % 4)}).ok()) ledger.Sync(bm, s);
    } else if (kind == 2) {
      if (bm.Fork(s, next).ok()) {
        ledger.Sync(bm, next);
        live.push_back(next);
      }
      ++next;
    } else if (kind == 3) {
      absl::StatusOr<int32_t> n = bm.NumTokens(s);
      if (n.ok() && bm.Rewind(s, static_cast<int32_t>(rng() % (*n + 1))).ok()) ledger.Sync(bm, s);
    } else if (kind == 4) {
      if (bm.SwapOut(s).ok() || bm.SwapIn(s).ok()) ledger.Sync(bm, s);
    } else if (kind == 5 && live.size() > 1) {
      // Hand one sequence to the other ledger (the quarantine does this).
      ledger.TransferTo(s, other);
      ASSERT_TRUE(other.Tracks(s));
      ASSERT_TRUE(other.CheckAgainst(bm).ok());
      ASSERT_TRUE(bm.Free(s).ok());
      other.Drop(s);
      live.erase(std::find(live.begin(), live.end(), s));
    } else {
      ASSERT_TRUE(bm.Free(s).ok());
      ledger.Drop(s);
      live.erase(std::find(live.begin(), live.end(), s));
    }
    bm.TakeCacheOps();
    ASSERT_TRUE(ledger.CheckAgainst(bm).ok()) << ledger.CheckAgainst(bm) << " at op " << i;
    EXPECT_LE(ledger.used(Tier::kGpu), bm.stats().groups[0].gpu_in_use_blocks);
  }
  EXPECT_EQ(other.used(Tier::kGpu), 0u);
  for (SeqId s : live) {
    ASSERT_TRUE(bm.Free(s).ok());
    ledger.Drop(s);
  }
  EXPECT_EQ(ledger.used(Tier::kGpu), 0u);
  EXPECT_EQ(ledger.used(Tier::kHost), 0u);
  EXPECT_EQ(ledger.num_sequences(), 0);
}

TEST(BlockLedgerTest, AStaleShadowIsReported) {
  CacheConfig cfg;
  cfg.block_size_tokens = 4;
  cfg.gpu_tier = Tier::kVirtual;
  cfg.gpu_num_blocks = 16;
  auto made = BlockManager::Create(testing::ToySpec(), cfg);
  ASSERT_TRUE(made.ok());
  BlockLedger ledger;
  ASSERT_TRUE((*made)->AddSequence(1, {1, 2, 3}).ok());
  ledger.Sync(**made, 1);
  EXPECT_EQ(ledger.used(Tier::kGpu), 1u);
  ASSERT_TRUE((*made)->AppendTokens(1, {4, 5}).ok());  // not synced
  EXPECT_EQ(ledger.CheckAgainst(**made).code(), absl::StatusCode::kInternal);
  ledger.Sync(**made, 1);
  EXPECT_TRUE(ledger.CheckAgainst(**made).ok());
  EXPECT_EQ(ledger.LivePages(1, Tier::kGpu), 2);
  EXPECT_EQ(ledger.LivePages(1, Tier::kHost), 0);
}

}  // namespace
}  // namespace pagedkv::service::internal
