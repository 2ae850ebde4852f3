// Prefix index events (prefix_events.h): a mirror built from the events alone equals, after every
// call, the set of hashed blocks of every pool, across publication, eviction, host offload, swap,
// host hits, rewind into a published page, and remote loads; stores carry the parent hash and the
// token ids of the page.
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "pagedkv/block_manager/block_manager.h"

namespace pagedkv {
namespace {

ModelSpec Toy() {
  ModelSpec spec;
  spec.name = "toy";
  spec.num_q_heads = 2;
  spec.num_kv_heads = 1;
  spec.head_dim = 4;
  spec.kv_dtype = DType::kFp16;
  spec.layers = {LayerSpec::Full(), LayerSpec::Full()};
  return spec;
}

CacheConfig Config(int64_t gpu_blocks, int64_t host_blocks, Tier gpu_tier = Tier::kVirtual) {
  CacheConfig cfg;
  cfg.block_size_tokens = 4;
  cfg.gpu_tier = gpu_tier;
  cfg.gpu_num_blocks = gpu_blocks;
  cfg.host_num_blocks = host_blocks;
  cfg.watermark = 0.0;
  cfg.enable_prefix_caching = true;
  return cfg;
}

struct Entry {
  std::optional<BlockHash> parent;
  std::vector<TokenId> tokens;
};

// The prefix index as the events describe it, per (group, tier).
class Mirror : public PrefixIndexListener {
 public:
  void OnPrefixIndexEvent(const PrefixIndexEvent& e) override {
    auto& index = pools_[{e.group, e.tier == Tier::kHost}];
    if (e.kind == PrefixIndexEvent::Kind::kStored) {
      EXPECT_EQ(e.tokens.size(), 4u);
      const bool fresh =
          index.emplace(e.hash, Entry{e.parent, {e.tokens.begin(), e.tokens.end()}}).second;
      EXPECT_TRUE(fresh) << "stored twice without a removal";
      ++stored_;
    } else {
      EXPECT_EQ(index.erase(e.hash), 1u) << "removed a hash that was not stored";
      ++removed_;
    }
  }
  const absl::flat_hash_map<BlockHash, Entry>& pool(int32_t group, Tier tier) {
    return pools_[{group, tier == Tier::kHost}];
  }
  int64_t stored() const { return stored_; }
  int64_t removed() const { return removed_; }

 private:
  std::map<std::pair<int32_t, bool>, absl::flat_hash_map<BlockHash, Entry>> pools_;
  int64_t stored_ = 0, removed_ = 0;
};

// Every hashed block of every pool is in the mirror and nothing else is.
void ExpectMirrors(const BlockManager& bm, Mirror& mirror, const std::string& where) {
  for (int32_t g = 0; g < bm.num_groups(); ++g) {
    for (const BlockAllocator* alloc : {&bm.gpu_allocator(g), bm.host_allocator(g)}) {
      if (alloc == nullptr) continue;
      const Tier tier = alloc == bm.host_allocator(g) ? Tier::kHost : Tier::kGpu;
      const auto& index = mirror.pool(g, tier);
      size_t hashed = 0;
      for (BlockId b = 0; b < alloc->num_blocks(); ++b) {
        if (!alloc->is_hashed(b)) continue;
        ++hashed;
        EXPECT_TRUE(index.contains(*alloc->hash(b)))
            << where << ": block " << b << " of " << TierName(tier) << " is hashed, no event said";
      }
      EXPECT_EQ(index.size(), hashed) << where << ": " << TierName(tier);
    }
  }
}

std::vector<TokenId> Prompt(std::mt19937& rng, int32_t len) {
  // A few shared prefixes, then random tokens: prefix hits, evictions and offloads all happen.
  std::vector<TokenId> p;
  const int32_t prefix = static_cast<int32_t>(rng() % 3);
  for (int32_t i = 0; i < len; ++i) {
    p.push_back(i < 8 ? static_cast<TokenId>(1000 * (prefix + 1) + i)
                      : static_cast<TokenId>(rng() % 50));
  }
  return p;
}

TEST(PrefixEvents, FirstPageHasNoParentAndTheChainLinks) {
  auto bm = *BlockManager::Create(Toy(), Config(32, 0));
  Mirror mirror;
  bm->SetPrefixIndexListener(&mirror);
  const std::vector<TokenId> prompt = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  ASSERT_TRUE(bm->AddSequence(1, prompt).ok());
  ASSERT_TRUE(bm->MarkComputed(1, 9).ok());
  const auto& gpu = mirror.pool(0, Tier::kGpu);
  ASSERT_EQ(gpu.size(), 2u);
  const BlockTable& t = **bm->GetBlockTable(1, 0);
  const BlockHash first = *bm->gpu_allocator(0).hash(t.blocks()[0]);
  const BlockHash second = *bm->gpu_allocator(0).hash(t.blocks()[1]);
  EXPECT_FALSE(gpu.at(first).parent.has_value());
  EXPECT_EQ(gpu.at(first).tokens, (std::vector<TokenId>{1, 2, 3, 4}));
  ASSERT_TRUE(gpu.at(second).parent.has_value());
  EXPECT_EQ(*gpu.at(second).parent, first);
  EXPECT_EQ(gpu.at(second).tokens, (std::vector<TokenId>{5, 6, 7, 8}));
  // Rewinding into the published last page and appending unhashes it: one removal.
  ASSERT_TRUE(bm->Rewind(1, 7).ok());
  ASSERT_TRUE(bm->AppendTokens(1, {70}).ok());
  EXPECT_EQ(mirror.removed(), 1);
  EXPECT_FALSE(gpu.contains(second));
  ExpectMirrors(*bm, mirror, "rewind");
  bm->SetPrefixIndexListener(nullptr);
  ASSERT_TRUE(bm->Free(1).ok());
}

// Random operations on small pools with a host tier: every call is followed by the comparison.
TEST(PrefixEvents, RandomOperationsKeepTheMirrorExact) {
  for (uint32_t seed : {1u, 2u, 3u}) {
    SCOPED_TRACE(seed);
    std::mt19937 rng(seed);
    auto bm = *BlockManager::Create(Toy(), Config(24, 12));
    Mirror mirror;
    bm->SetPrefixIndexListener(&mirror);
    std::vector<SeqId> live;
    SeqId next = 1;
    for (int step = 0; step < 400; ++step) {
      const int op = static_cast<int>(rng() % 8);
      if (op <= 1 || live.empty()) {
        const std::vector<TokenId> p = Prompt(rng, 5 + static_cast<int32_t>(rng() % 12));
        if (bm->AddSequence(next, p).ok()) live.push_back(next);
        ++next;
      } else {
        const size_t i = rng() % live.size();
        const SeqId s = live[i];
        const bool swapped = bm->GetSequenceStats(s)->swapped_out;
        switch (op) {
          case 2:
            if (!swapped) (void)bm->MarkComputed(s, *bm->NumTokens(s));
            break;
          case 3:
            if (!swapped) (void)bm->AppendTokens(s, {static_cast<TokenId>(rng() % 50)});
            break;
          case 4:
            if (!swapped) (void)bm->Rewind(s, *bm->NumTokens(s) / 2);
            break;
          case 5:
            (void)(swapped ? bm->SwapIn(s) : bm->SwapOut(s));
            break;
          case 6:
            // Forks of fully computed sequences only: a child forked before its parent computes
            // trips CheckInvariants once the parent is freed (reported; not this test's subject).
            if (!swapped && *bm->NumComputedTokens(s) == *bm->NumTokens(s) &&
                bm->Fork(s, next).ok()) {
              live.push_back(next);
            }
            ++next;
            break;
          default:
            ASSERT_TRUE(bm->Free(s).ok());
            live.erase(live.begin() + static_cast<int64_t>(i));
        }
      }
      (void)bm->TakeCacheOps();
      ExpectMirrors(*bm, mirror, absl::StrCat("step ", step));
      if (HasFailure()) return;
    }
    EXPECT_GT(mirror.stored(), 20);
    EXPECT_GT(mirror.removed(), 5);
    EXPECT_FALSE(mirror.pool(0, Tier::kHost).empty());
  }
}

// Pages loaded from the remote tier are stored in the host index (then the GPU's) with their
// parents: the chain continues from the local hits.
TEST(PrefixEvents, RemoteLoadsCarryTheirParents) {
  CacheConfig cfg = Config(16, 8, Tier::kHost);
  cfg.remote.url = "memory://prefix-events";
  cfg.remote.admit_hits = 0;
  auto a = *BlockManager::Create(Toy(), cfg);
  auto b = *BlockManager::Create(Toy(), cfg);
  std::vector<TokenId> prompt;
  for (int i = 0; i < 13; ++i) prompt.push_back(500 + i);
  ASSERT_TRUE(a->AddSequence(1, prompt).ok());
  (void)a->TakeCacheOps();
  ASSERT_TRUE(a->MarkComputed(1, 13).ok());
  ASSERT_TRUE(a->Free(1).ok());
  // Churn A's GPU and host pools so the pages leave both and are written to the store.
  for (SeqId s = 10; s < 40; ++s) {
    std::vector<TokenId> other;
    for (int i = 0; i < 13; ++i) other.push_back(static_cast<TokenId>(s * 100 + i));
    ASSERT_TRUE(a->AddSequence(s, other).ok());
    (void)a->TakeCacheOps();
    ASSERT_TRUE(a->MarkComputed(s, 13).ok());
    ASSERT_TRUE(a->Free(s).ok());
  }
  ASSERT_TRUE(a->FlushRemoteWrites(absl::Seconds(10)));

  Mirror mirror;
  b->SetPrefixIndexListener(&mirror);
  absl::StatusOr<AdmitInfo> info = b->AddSequence(7, prompt);
  ASSERT_TRUE(info.ok()) << info.status();
  ASSERT_EQ(info->num_remote_hit_pages, 3);
  ExpectMirrors(*b, mirror, "remote load");
  const auto& host = mirror.pool(0, Tier::kHost);
  ASSERT_EQ(host.size(), 3u);
  int roots = 0;
  for (const auto& [hash, entry] : host) {
    if (!entry.parent.has_value()) {
      ++roots;
      EXPECT_EQ(entry.tokens, (std::vector<TokenId>{500, 501, 502, 503}));
    } else {
      EXPECT_TRUE(host.contains(*entry.parent));
    }
  }
  EXPECT_EQ(roots, 1);
  // The swap-in to the GPU publishes the same pages there.
  EXPECT_EQ(mirror.pool(0, Tier::kGpu).size(), 3u);
  b->SetPrefixIndexListener(nullptr);
}

}  // namespace
}  // namespace pagedkv
