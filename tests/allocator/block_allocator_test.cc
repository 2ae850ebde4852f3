#include "pagedkv/allocator/block_allocator.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "log_capture.h"
#include "pagedkv/core/logging.h"

namespace pagedkv {
namespace {

using ::pagedkv::testing::LogCapture;

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr uint64_t kBytesPerToken = 40;

BlockHash H(uint64_t k) { return BlockHash{k, k * 0x9e3779b97f4a7c15ull + 1}; }

std::unique_ptr<BlockAllocator> MakeVirtual(uint32_t num_blocks, double watermark = 0.0) {
  absl::StatusOr<std::unique_ptr<BlockAllocator>> a =
      BlockAllocator::CreateVirtual(num_blocks, BlockAllocator::Options{.watermark = watermark});
  EXPECT_TRUE(a.ok()) << a.status();
  return a.ok() ? std::move(*a) : nullptr;
}

std::vector<BlockId> AllocateN(BlockAllocator& a, size_t n) {
  std::vector<BlockId> ids(n, kInvalidBlockId);
  const absl::Status s = a.Allocate(absl::MakeSpan(ids));
  EXPECT_TRUE(s.ok()) << s;
  return ids;
}

// Everything observable about an allocator, to show that a failed call changed nothing.
struct Snapshot {
  std::vector<uint64_t> stats;
  std::vector<uint32_t> refs;
  std::vector<std::optional<BlockHash>> hashes;
  bool operator==(const Snapshot&) const = default;
};

Snapshot Snap(const BlockAllocator& a) {
  Snapshot s;
  const BlockAllocatorStats st = a.stats();
  s.stats = {st.num_blocks,  st.num_free, st.num_cached, st.num_in_use, st.peak_in_use,
             st.allocations, st.releases, st.evictions,  st.cache_hits, st.cache_misses};
  for (BlockId id = 0; id < a.num_blocks(); ++id) {
    s.refs.push_back(a.ref_count(id));
    s.hashes.push_back(a.hash(id));
  }
  return s;
}

#define EXPECT_INVARIANTS_OK(a)                            \
  do {                                                     \
    const absl::Status inv_status = (a).CheckInvariants(); \
    EXPECT_TRUE(inv_status.ok()) << inv_status;            \
  } while (0)

class RecordingListener : public EvictionListener {
 public:
  void OnEvict(BlockId block, const BlockHash& hash) override { evicted.emplace_back(block, hash); }
  std::vector<std::pair<BlockId, BlockHash>> evicted;
};

// ---- Across tiers and block sizes ---------------------------------------------------------------

class BlockAllocatorTierTest : public ::testing::TestWithParam<std::tuple<Tier, int>> {
 protected:
  std::unique_ptr<BlockAllocator> Make(uint32_t num_blocks) {
    PoolOptions o;
    o.tier = std::get<0>(GetParam());
    o.bytes_per_block = std::get<1>(GetParam()) * kBytesPerToken;
    o.num_blocks = num_blocks;
    o.name = "alloc-test";
    absl::StatusOr<std::unique_ptr<MemoryPool>> pool = MemoryPool::Create(o);
    EXPECT_TRUE(pool.ok()) << pool.status();
    if (!pool.ok()) return nullptr;
    absl::StatusOr<std::unique_ptr<BlockAllocator>> a =
        BlockAllocator::Create(std::move(*pool), BlockAllocator::Options{});
    EXPECT_TRUE(a.ok()) << a.status();
    return a.ok() ? std::move(*a) : nullptr;
  }
};

TEST_P(BlockAllocatorTierTest, AllocateAllWriteEachBlockExhaustReleaseAll) {
  constexpr uint32_t kNumBlocks = 24;
  std::unique_ptr<BlockAllocator> a = Make(kNumBlocks);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->num_free(), kNumBlocks);
  std::vector<BlockId> ids = AllocateN(*a, kNumBlocks);
  EXPECT_EQ(std::set<BlockId>(ids.begin(), ids.end()).size(), kNumBlocks) << "ids not distinct";
  EXPECT_EQ(a->num_in_use(), kNumBlocks);
  EXPECT_INVARIANTS_OK(*a);

  MemoryPool& pool = a->pool();
  const bool host_bytes = pool.has_memory() && !pool.is_device_memory();
  if (host_bytes) {
    for (BlockId id : ids) {
      std::memset(pool.BlockData(id), static_cast<int>(id * 7 + 1), pool.bytes_per_block());
    }
    for (BlockId id : ids) {
      const auto* p = reinterpret_cast<const unsigned char*>(pool.BlockData(id));
      for (uint64_t i = 0; i < pool.bytes_per_block(); ++i) {
        ASSERT_EQ(p[i], static_cast<unsigned char>(id * 7 + 1)) << "block " << id << " byte " << i;
      }
    }
  }

  const Snapshot before = Snap(*a);
  BlockId extra = kInvalidBlockId;
  const absl::Status s = a->Allocate(absl::MakeSpan(&extra, 1));
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_EQ(extra, kInvalidBlockId) << "a failed Allocate wrote an id";
  EXPECT_EQ(Snap(*a), before);
  EXPECT_INVARIANTS_OK(*a);

  ASSERT_TRUE(a->Release(absl::MakeConstSpan(ids)).ok());
  EXPECT_EQ(a->num_free(), kNumBlocks);
  EXPECT_EQ(a->num_in_use(), 0u);
  EXPECT_EQ(a->stats().peak_in_use, kNumBlocks);
  EXPECT_INVARIANTS_OK(*a);
}

TEST_P(BlockAllocatorTierTest, CachedBlocksAreReusedAfterFreeOnes) {
  std::unique_ptr<BlockAllocator> a = Make(6);
  ASSERT_NE(a, nullptr);
  std::vector<BlockId> ids = AllocateN(*a, 6);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(a->SetHash(ids[i], H(i)).ok());
  ASSERT_TRUE(a->Release(absl::MakeConstSpan(ids)).ok());
  EXPECT_EQ(a->num_cached(), 3u);
  EXPECT_EQ(a->num_free(), 3u);
  // The three free ones come first, then the cached ones in LRU order.
  std::vector<BlockId> again = AllocateN(*a, 4);
  EXPECT_EQ(a->stats().evictions, 1u);
  EXPECT_EQ(again[3], ids[0]);
  EXPECT_FALSE(a->Peek(H(0)).has_value());
  EXPECT_TRUE(a->Peek(H(1)).has_value());
  EXPECT_INVARIANTS_OK(*a);
}

INSTANTIATE_TEST_SUITE_P(TiersAndBlockSizes, BlockAllocatorTierTest,
                         ::testing::Combine(::testing::Values(Tier::kHost, Tier::kVirtual,
                                                              Tier::kGpu),
                                            ::testing::Values(1, 3, 16, 17, 128)),
                         [](const ::testing::TestParamInfo<std::tuple<Tier, int>>& info) {
                           return std::string(TierName(std::get<0>(info.param))) + "_block" +
                                  std::to_string(std::get<1>(info.param));
                         });

// ---- Creation -----------------------------------------------------------------------------------

TEST(BlockAllocatorCreateTest, FreshAllocatorHandsOutAscendingIds) {
  auto a = MakeVirtual(5);
  ASSERT_NE(a, nullptr);
  EXPECT_THAT(AllocateN(*a, 3), ElementsAre(0, 1, 2));
  absl::StatusOr<BlockId> one = a->AllocateOne();
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(*one, 3u);
  EXPECT_EQ(a->ref_count(3), 1u);
  EXPECT_INVARIANTS_OK(*a);
}

TEST(BlockAllocatorCreateTest, ZeroBlocksIsInvalidArgument) {
  absl::StatusOr<std::unique_ptr<BlockAllocator>> a = BlockAllocator::CreateVirtual(0);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(BlockAllocatorCreateTest, NullPoolIsInvalidArgument) {
  absl::StatusOr<std::unique_ptr<BlockAllocator>> a =
      BlockAllocator::Create(nullptr, BlockAllocator::Options{});
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(BlockAllocatorCreateTest, WatermarkOutsideZeroToOneIsInvalidArgument) {
  for (double w : {-0.01, 1.0, 1.5, std::nan(""), std::numeric_limits<double>::infinity()}) {
    absl::StatusOr<std::unique_ptr<BlockAllocator>> a =
        BlockAllocator::CreateVirtual(10, BlockAllocator::Options{.watermark = w});
    ASSERT_FALSE(a.ok()) << "watermark " << w;
    EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(a.status().message()), HasSubstr("watermark"));
  }
}

TEST(BlockAllocatorCreateTest, WatermarkBlocksIsTheCeilingOfTheFraction) {
  EXPECT_EQ(MakeVirtual(100, 0.0)->watermark_blocks(), 0u);
  EXPECT_EQ(MakeVirtual(100, 0.015)->watermark_blocks(), 2u);
  EXPECT_EQ(MakeVirtual(100, 0.07)->watermark_blocks(), 7u);  // not 8 from rounding noise
  EXPECT_EQ(MakeVirtual(1000, 0.01)->watermark_blocks(), 10u);
  EXPECT_EQ(MakeVirtual(3, 0.01)->watermark_blocks(), 1u);
  EXPECT_EQ(MakeVirtual(7, 0.999)->watermark_blocks(), 7u);
}

// ---- Allocate / CanAllocate ---------------------------------------------------------------------

TEST(BlockAllocatorAllocateTest, ExhaustionReportsTheNumbersAndChangesNothing) {
  auto a = MakeVirtual(8);
  std::vector<BlockId> ids = AllocateN(*a, 8);
  ASSERT_TRUE(a->SetHash(ids[0], H(10)).ok());
  ASSERT_TRUE(a->SetHash(ids[1], H(11)).ok());
  ASSERT_TRUE(a->Release(absl::MakeConstSpan(ids.data(), 3)).ok());  // 2 cached, 1 free
  const Snapshot before = Snap(*a);
  std::vector<BlockId> out(4, kInvalidBlockId);
  const absl::Status s = a->Allocate(absl::MakeSpan(out));
  ASSERT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  const std::string msg(s.message());
  EXPECT_THAT(msg, HasSubstr("need 4 blocks, 1 free + 2 cached available of 8"));
  EXPECT_THAT(msg, HasSubstr("5 in use"));
  EXPECT_THAT(msg, HasSubstr("release"));
  EXPECT_THAT(out, ElementsAre(kInvalidBlockId, kInvalidBlockId, kInvalidBlockId, kInvalidBlockId));
  EXPECT_EQ(Snap(*a), before);
  EXPECT_TRUE(a->Peek(H(10)).has_value()) << "a failed Allocate must not evict";
  EXPECT_INVARIANTS_OK(*a);
  // The three available blocks can still be had.
  EXPECT_EQ(AllocateN(*a, 3).size(), 3u);
}

TEST(BlockAllocatorAllocateTest, AllocateOneWhenFullIsResourceExhausted) {
  auto a = MakeVirtual(1);
  ASSERT_TRUE(a->AllocateOne().ok());
  absl::StatusOr<BlockId> b = a->AllocateOne();
  EXPECT_EQ(b.status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(BlockAllocatorAllocateTest, EmptyRequestSucceedsAndChangesNothing) {
  auto a = MakeVirtual(4);
  const Snapshot before = Snap(*a);
  EXPECT_TRUE(a->Allocate(absl::Span<BlockId>()).ok());
  EXPECT_EQ(Snap(*a), before);
}

TEST(BlockAllocatorAllocateTest, CanAllocateHonoursTheWatermarkAndCountsCachedBlocks) {
  auto a = MakeVirtual(100, 0.07);  // 7 blocks kept back
  EXPECT_TRUE(a->CanAllocate(93));
  EXPECT_FALSE(a->CanAllocate(94));
  EXPECT_TRUE(a->CanAllocate(0));
  std::vector<BlockId> ids = AllocateN(*a, 90);
  EXPECT_TRUE(a->CanAllocate(3));
  EXPECT_FALSE(a->CanAllocate(4));
  ASSERT_TRUE(a->SetHash(ids[0], H(1)).ok());
  ASSERT_TRUE(a->Release(ids[0]).ok());  // now cached: still available
  EXPECT_TRUE(a->CanAllocate(4));
  EXPECT_FALSE(a->CanAllocate(5));
  EXPECT_FALSE(a->CanAllocate(std::numeric_limits<uint32_t>::max()));
  // Allocate itself ignores the watermark: it is an admission policy, not a hard limit.
  EXPECT_EQ(AllocateN(*a, 11).size(), 11u);
  EXPECT_EQ(a->num_available(), 0u);
}

// ---- Release ------------------------------------------------------------------------------------

TEST(BlockAllocatorReleaseTest, DoubleReleaseIsFailedPreconditionAndChangesNothing) {
  auto a = MakeVirtual(4);
  const BlockId id = *a->AllocateOne();
  ASSERT_TRUE(a->Release(id).ok());
  const Snapshot before = Snap(*a);
  const absl::Status s = a->Release(id);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("double release"));
  EXPECT_EQ(Snap(*a), before);
  EXPECT_INVARIANTS_OK(*a);
}

TEST(BlockAllocatorReleaseTest, UnknownBlockIsInvalidArgumentAndChangesNothing) {
  auto a = MakeVirtual(4);
  AllocateN(*a, 2);
  const Snapshot before = Snap(*a);
  for (BlockId bad : {BlockId{4}, BlockId{1000}, kInvalidBlockId}) {
    const absl::Status s = a->Release(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr(std::to_string(bad)));
  }
  EXPECT_EQ(Snap(*a), before);
  EXPECT_INVARIANTS_OK(*a);
}

TEST(BlockAllocatorReleaseTest, SpanWithABadEntryReleasesNothing) {
  auto a = MakeVirtual(6);
  std::vector<BlockId> ids = AllocateN(*a, 4);
  ASSERT_TRUE(a->AddRef(ids[1]).ok());
  const Snapshot before = Snap(*a);
  // Unknown id at the end.
  std::vector<BlockId> bad1 = {ids[0], ids[1], 99};
  EXPECT_EQ(a->Release(absl::MakeConstSpan(bad1)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Snap(*a), before);
  // A free block in the middle.
  std::vector<BlockId> bad2 = {ids[0], 5, ids[2]};
  EXPECT_EQ(a->Release(absl::MakeConstSpan(bad2)).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Snap(*a), before);
  // ids[0] has ref 1 but is named twice.
  std::vector<BlockId> bad3 = {ids[0], ids[1], ids[0]};
  const absl::Status s = a->Release(absl::MakeConstSpan(bad3));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("entry 2"));
  EXPECT_EQ(Snap(*a), before);
  EXPECT_INVARIANTS_OK(*a);
}

TEST(BlockAllocatorReleaseTest, SpanMayNameABlockUpToItsRefCount) {
  auto a = MakeVirtual(4);
  const BlockId id = *a->AllocateOne();
  ASSERT_TRUE(a->AddRef(id).ok());
  ASSERT_TRUE(a->AddRef(id).ok());
  ASSERT_TRUE(a->SetHash(id, H(5)).ok());
  std::vector<BlockId> three = {id, id, id};
  ASSERT_TRUE(a->Release(absl::MakeConstSpan(three)).ok());
  EXPECT_EQ(a->ref_count(id), 0u);
  EXPECT_EQ(a->num_cached(), 1u) << "the block joins the LRU once";
  EXPECT_EQ(a->stats().releases, 3u);
  EXPECT_INVARIANTS_OK(*a);
}

TEST(BlockAllocatorReleaseTest, ReleaseToZeroFreesUnhashedAndCachesHashed) {
  auto a = MakeVirtual(4);
  std::vector<BlockId> ids = AllocateN(*a, 2);
  ASSERT_TRUE(a->SetHash(ids[0], H(1)).ok());
  ASSERT_TRUE(a->AddRef(ids[1]).ok());
  ASSERT_TRUE(a->Release(ids[0]).ok());
  ASSERT_TRUE(a->Release(ids[1]).ok());
  EXPECT_EQ(a->num_cached(), 1u);
  EXPECT_EQ(a->num_free(), 2u);
  EXPECT_EQ(a->ref_count(ids[1]), 1u);
  ASSERT_TRUE(a->Release(ids[1]).ok());
  EXPECT_EQ(a->num_free(), 3u);
  EXPECT_EQ(a->Peek(H(1)), ids[0]) << "a cached block stays findable";
  EXPECT_INVARIANTS_OK(*a);
}

// ---- AddRef / Touch -----------------------------------------------------------------------------

TEST(BlockAllocatorAddRefTest, FreeBlockIsFailedPreconditionUnknownIsInvalidArgument) {
  auto a = MakeVirtual(4);
  AllocateN(*a, 1);
  const Snapshot before = Snap(*a);
  EXPECT_EQ(a->AddRef(2).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(a->AddRef(4).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Snap(*a), before);
  EXPECT_INVARIANTS_OK(*a);
}

TEST(BlockAllocatorAddRefTest, AddRefOfACachedBlockTakesItOffTheLru) {
  auto a = MakeVirtual(3);
  std::vector<BlockId> ids = AllocateN(*a, 3);
  ASSERT_TRUE(a->SetHash(ids[0], H(7)).ok());
  ASSERT_TRUE(a->Release(ids[0]).ok());
  EXPECT_EQ(a->num_cached(), 1u);
  std::optional<BlockId> hit = a->Lookup(H(7));
  ASSERT_EQ(hit, ids[0]);
  ASSERT_TRUE(a->AddRef(*hit).ok());
  EXPECT_EQ(a->ref_count(ids[0]), 1u);
  EXPECT_EQ(a->num_cached(), 0u);
  EXPECT_EQ(a->num_in_use(), 3u);
  EXPECT_TRUE(a->is_hashed(ids[0]));
  EXPECT_EQ(a->CanAllocate(1), false);
  EXPECT_INVARIANTS_OK(*a);
}

TEST(BlockAllocatorTouchTest, TouchOfFreeInUseAndUnknownBlocks) {
  auto a = MakeVirtual(3);
  const BlockId id = *a->AllocateOne();
  const Snapshot before = Snap(*a);
  EXPECT_TRUE(a->Touch(id).ok());
  EXPECT_EQ(a->Touch(2).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(a->Touch(3).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Snap(*a), before);
}

// ---- Hashing ------------------------------------------------------------------------------------

TEST(BlockAllocatorHashTest, SetHashTwiceAndDuplicateHashAreRejectedWithoutChange) {
  auto a = MakeVirtual(4);
  std::vector<BlockId> ids = AllocateN(*a, 2);
  ASSERT_TRUE(a->SetHash(ids[0], H(1)).ok());
  const Snapshot before = Snap(*a);
  absl::Status s = a->SetHash(ids[0], H(2));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  s = a->SetHash(ids[1], H(1));
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("block " + std::to_string(ids[0])));
  EXPECT_EQ(a->SetHash(3, H(3)).code(), absl::StatusCode::kFailedPrecondition);  // free block
  EXPECT_EQ(a->SetHash(9, H(3)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Snap(*a), before);
  EXPECT_EQ(a->Peek(H(1)), ids[0]);
  EXPECT_FALSE(a->Peek(H(2)).has_value());
  EXPECT_INVARIANTS_OK(*a);
}

TEST(BlockAllocatorHashTest, SetHashOnACachedBlockIsFailedPrecondition) {
  auto a = MakeVirtual(2);
  const BlockId id = *a->AllocateOne();
  ASSERT_TRUE(a->SetHash(id, H(1)).ok());
  ASSERT_TRUE(a->Release(id).ok());
  EXPECT_EQ(a->SetHash(id, H(2)).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(a->Unhash(id).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(a->hash(id), H(1));
  EXPECT_INVARIANTS_OK(*a);
}

TEST(BlockAllocatorHashTest, UnhashRemovesTheIndexEntry) {
  auto a = MakeVirtual(2);
  const BlockId id = *a->AllocateOne();
  EXPECT_EQ(a->Unhash(id).code(), absl::StatusCode::kFailedPrecondition);  // not hashed
  ASSERT_TRUE(a->SetHash(id, H(4)).ok());
  ASSERT_TRUE(a->Unhash(id).ok());
  EXPECT_FALSE(a->is_hashed(id));
  EXPECT_FALSE(a->hash(id).has_value());
  EXPECT_FALSE(a->Peek(H(4)).has_value());
  ASSERT_TRUE(a->Release(id).ok());
  EXPECT_EQ(a->num_free(), 2u) << "an unhashed block is freed, not cached";
  EXPECT_INVARIANTS_OK(*a);
}

TEST(BlockAllocatorHashTest, LookupCountsHitsAndMissesPeekDoesNot) {
  auto a = MakeVirtual(2);
  const BlockId id = *a->AllocateOne();
  ASSERT_TRUE(a->SetHash(id, H(1)).ok());
  EXPECT_EQ(a->Lookup(H(1)), id);
  EXPECT_EQ(a->Lookup(H(2)), std::nullopt);
  EXPECT_EQ(a->Lookup(H(2)), std::nullopt);
  EXPECT_EQ(a->Peek(H(1)), id);
  EXPECT_EQ(a->Peek(H(3)), std::nullopt);
  EXPECT_EQ(a->stats().cache_hits, 1u);
  EXPECT_EQ(a->stats().cache_misses, 2u);
  EXPECT_EQ(a->ref_count(id), 1u) << "Lookup takes no reference";
}

// ---- Eviction -----------------------------------------------------------------------------------

// Four blocks, all hashed and released in the order 2, 0, 3, 1 (so the LRU is 2, 0, 3, 1).
std::unique_ptr<BlockAllocator> FourCached(RecordingListener* listener) {
  auto a = MakeVirtual(4);
  std::vector<BlockId> ids = AllocateN(*a, 4);
  for (BlockId id : ids) EXPECT_TRUE(a->SetHash(id, H(100 + id)).ok());
  for (BlockId id : {2u, 0u, 3u, 1u}) EXPECT_TRUE(a->Release(id).ok());
  a->SetEvictionListener(listener);
  return a;
}

std::vector<BlockId> EvictedIds(const RecordingListener& l) {
  std::vector<BlockId> out;
  for (const auto& [id, hash] : l.evicted) {
    EXPECT_EQ(hash, H(100 + id)) << "listener got the wrong hash for block " << id;
    out.push_back(id);
  }
  return out;
}

TEST(BlockAllocatorEvictionTest, EvictsLeastRecentlyReleasedFirst) {
  RecordingListener l;
  auto a = FourCached(&l);
  EXPECT_THAT(AllocateN(*a, 4), ElementsAre(2, 0, 3, 1));
  EXPECT_THAT(EvictedIds(l), ElementsAre(2, 0, 3, 1));
  EXPECT_EQ(a->stats().evictions, 4u);
  for (BlockId id = 0; id < 4; ++id) {
    EXPECT_FALSE(a->Peek(H(100 + id)).has_value()) << "evicted block " << id << " kept its hash";
    EXPECT_FALSE(a->is_hashed(id));
  }
  EXPECT_INVARIANTS_OK(*a);
}

TEST(BlockAllocatorEvictionTest, TouchMovesABlockToTheTail) {
  RecordingListener l;
  auto a = FourCached(&l);
  ASSERT_TRUE(a->Touch(2).ok());
  ASSERT_TRUE(a->Touch(3).ok());
  EXPECT_THAT(AllocateN(*a, 4), ElementsAre(0, 1, 2, 3));
  EXPECT_THAT(EvictedIds(l), ElementsAre(0, 1, 2, 3));
}

TEST(BlockAllocatorEvictionTest, LowPriorityReleaseGoesToTheHead) {
  RecordingListener l;
  auto a = MakeVirtual(4);
  std::vector<BlockId> ids = AllocateN(*a, 4);
  for (BlockId id : ids) ASSERT_TRUE(a->SetHash(id, H(100 + id)).ok());
  ASSERT_TRUE(a->Release(0).ok());
  ASSERT_TRUE(a->Release(1).ok());
  ASSERT_TRUE(a->Release(2, EvictionPriority::kLow).ok());
  std::vector<BlockId> last = {3};
  ASSERT_TRUE(a->Release(absl::MakeConstSpan(last), EvictionPriority::kLow).ok());
  a->SetEvictionListener(&l);
  EXPECT_THAT(AllocateN(*a, 4), ElementsAre(3, 2, 0, 1));
  EXPECT_THAT(EvictedIds(l), ElementsAre(3, 2, 0, 1));
}

TEST(BlockAllocatorEvictionTest, ListenerCanBeRemoved) {
  RecordingListener l;
  auto a = FourCached(&l);
  AllocateN(*a, 1);
  a->SetEvictionListener(nullptr);
  AllocateN(*a, 1);
  EXPECT_EQ(l.evicted.size(), 1u);
  EXPECT_EQ(a->stats().evictions, 2u);
}

TEST(BlockAllocatorEvictionTest, HitOnACachedBlockProtectsItFromEviction) {
  RecordingListener l;
  auto a = FourCached(&l);
  ASSERT_TRUE(a->AddRef(*a->Lookup(H(102))).ok());  // block 2, the LRU head
  EXPECT_THAT(AllocateN(*a, 3), ElementsAre(0, 3, 1));
  BlockId none = kInvalidBlockId;
  EXPECT_EQ(a->Allocate(absl::MakeSpan(&none, 1)).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(a->ref_count(2), 1u);
  EXPECT_INVARIANTS_OK(*a);
}

// ---- Statistics and logging ---------------------------------------------------------------------

TEST(BlockAllocatorStatsTest, CountsEveryKindOfEvent) {
  auto a = MakeVirtual(4);
  std::vector<BlockId> ids = AllocateN(*a, 3);
  ASSERT_TRUE(a->SetHash(ids[0], H(1)).ok());
  ASSERT_TRUE(a->Release(absl::MakeConstSpan(ids)).ok());
  AllocateN(*a, 4);  // 3 free + 1 evicted
  a->Lookup(H(1));
  const BlockAllocatorStats st = a->stats();
  EXPECT_EQ(st.num_blocks, 4u);
  EXPECT_EQ(st.num_free, 0u);
  EXPECT_EQ(st.num_cached, 0u);
  EXPECT_EQ(st.num_in_use, 4u);
  EXPECT_EQ(st.peak_in_use, 4u);
  EXPECT_EQ(st.allocations, 7u);
  EXPECT_EQ(st.releases, 3u);
  EXPECT_EQ(st.evictions, 1u);
  EXPECT_EQ(st.cache_hits, 0u);
  EXPECT_EQ(st.cache_misses, 1u);
}

TEST(BlockAllocatorStatsTest, TraceLevelLogsBlockIdsAndCounts) {
  auto a = MakeVirtual(4);
  LogCapture capture(spdlog::level::trace);
  std::vector<BlockId> ids = AllocateN(*a, 2);
  ASSERT_TRUE(a->Release(ids[1]).ok());
  const std::vector<std::string> lines = capture.Lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_THAT(lines[0], HasSubstr("allocate n=2 blocks=[0,1]"));
  EXPECT_THAT(lines[1], HasSubstr("release block=1"));
}

TEST(BlockAllocatorStatsTest, CheckInvariantsPassesOnAFreshAllocator) {
  for (uint32_t n : {1u, 2u, 17u, 1000u}) EXPECT_INVARIANTS_OK(*MakeVirtual(n));
}

// ---- Seeded random operations against a reference model -----------------------------------------

// The lifecycle of block_allocator.h written the plainest way: vectors, std::map, std::list.
struct Model {
  enum State { kFree, kCached, kInUse };
  explicit Model(uint32_t n) : n(n), ref(n, 0), state(n, kFree), hash(n) {
    for (BlockId i = 0; i < n; ++i) free_list.push_back(i);
  }
  using Key = std::pair<uint64_t, uint64_t>;
  static Key K(const BlockHash& h) { return {h.lo, h.hi}; }

  uint32_t n;
  std::vector<uint32_t> ref;
  std::vector<State> state;
  std::vector<std::optional<BlockHash>> hash;
  std::map<Key, BlockId> index;
  std::list<BlockId> free_list, lru;
  std::vector<std::pair<BlockId, BlockHash>> evicted;
  uint64_t peak = 0, allocations = 0, releases = 0, evictions = 0, hits = 0, misses = 0;

  uint32_t in_use() const { return n - free_list.size() - lru.size(); }

  void ToList(BlockId id, EvictionPriority p) {
    if (hash[id]) {
      state[id] = kCached;
      if (p == EvictionPriority::kLow) {
        lru.push_front(id);
      } else {
        lru.push_back(id);
      }
    } else {
      state[id] = kFree;
      free_list.push_front(id);
    }
  }

  absl::StatusCode Allocate(size_t k, std::vector<BlockId>* out) {
    if (k > free_list.size() + lru.size()) return absl::StatusCode::kResourceExhausted;
    for (size_t i = 0; i < k; ++i) {
      BlockId id;
      if (!free_list.empty()) {
        id = free_list.front();
        free_list.pop_front();
      } else {
        id = lru.front();
        lru.pop_front();
        index.erase(K(*hash[id]));
        evicted.emplace_back(id, *hash[id]);
        hash[id].reset();
        ++evictions;
      }
      ref[id] = 1;
      state[id] = kInUse;
      out->push_back(id);
    }
    allocations += k;
    peak = std::max<uint64_t>(peak, in_use());
    return absl::StatusCode::kOk;
  }

  absl::StatusCode Release(BlockId id, EvictionPriority p) {
    if (id >= n) return absl::StatusCode::kInvalidArgument;
    if (ref[id] == 0) return absl::StatusCode::kFailedPrecondition;
    ++releases;
    if (--ref[id] == 0) ToList(id, p);
    return absl::StatusCode::kOk;
  }

  absl::StatusCode ReleaseSpan(const std::vector<BlockId>& ids, EvictionPriority p) {
    std::map<BlockId, uint32_t> named;
    for (BlockId id : ids) {
      if (id >= n) return absl::StatusCode::kInvalidArgument;
      if (++named[id] > ref[id]) return absl::StatusCode::kFailedPrecondition;
    }
    for (BlockId id : ids) --ref[id];
    for (BlockId id : ids) {
      if (ref[id] == 0 && state[id] == kInUse) ToList(id, p);
    }
    releases += ids.size();
    return absl::StatusCode::kOk;
  }

  absl::StatusCode AddRef(BlockId id) {
    if (id >= n) return absl::StatusCode::kInvalidArgument;
    if (state[id] == kFree) return absl::StatusCode::kFailedPrecondition;
    if (state[id] == kCached) {
      lru.remove(id);
      state[id] = kInUse;
      ref[id] = 1;
      peak = std::max<uint64_t>(peak, in_use());
    } else {
      ++ref[id];
    }
    return absl::StatusCode::kOk;
  }

  absl::StatusCode Touch(BlockId id) {
    if (id >= n) return absl::StatusCode::kInvalidArgument;
    if (state[id] == kFree) return absl::StatusCode::kFailedPrecondition;
    if (state[id] == kCached) {
      lru.remove(id);
      lru.push_back(id);
    }
    return absl::StatusCode::kOk;
  }

  absl::StatusCode SetHash(BlockId id, const BlockHash& h) {
    if (id >= n) return absl::StatusCode::kInvalidArgument;
    if (state[id] != kInUse || hash[id]) return absl::StatusCode::kFailedPrecondition;
    if (index.count(K(h)) != 0) return absl::StatusCode::kAlreadyExists;
    index[K(h)] = id;
    hash[id] = h;
    return absl::StatusCode::kOk;
  }

  absl::StatusCode Unhash(BlockId id) {
    if (id >= n) return absl::StatusCode::kInvalidArgument;
    if (state[id] != kInUse || !hash[id]) return absl::StatusCode::kFailedPrecondition;
    index.erase(K(*hash[id]));
    hash[id].reset();
    return absl::StatusCode::kOk;
  }

  std::optional<BlockId> Lookup(const BlockHash& h) {
    auto it = index.find(K(h));
    if (it == index.end()) {
      ++misses;
      return std::nullopt;
    }
    ++hits;
    return it->second;
  }
};

class BlockAllocatorRandomTest : public ::testing::TestWithParam<uint32_t> {};

TEST_P(BlockAllocatorRandomTest, HundredThousandOpsMatchTheReferenceModel) {
  const uint32_t num_blocks = GetParam();
  constexpr int kOps = 100000;
  constexpr uint64_t kHashSpace = 48;  // small, so duplicate hashes and hits are common
  std::mt19937_64 rng(20261123 + num_blocks);
  auto uniform = [&](uint64_t lo, uint64_t hi) {  // [lo, hi]
    return std::uniform_int_distribution<uint64_t>(lo, hi)(rng);
  };

  auto a = MakeVirtual(num_blocks);
  ASSERT_NE(a, nullptr);
  RecordingListener listener;
  a->SetEvictionListener(&listener);
  Model m(num_blocks);

  // Any id, including ones past the end, so bad input is exercised too.
  auto any_id = [&]() { return static_cast<BlockId>(uniform(0, num_blocks + 1)); };
  auto held_id = [&]() -> BlockId {  // a block with ref > 0, else any id
    for (int tries = 0; tries < 8; ++tries) {
      const BlockId id = static_cast<BlockId>(uniform(0, num_blocks - 1));
      if (m.ref[id] > 0) return id;
    }
    return any_id();
  };
  auto priority = [&]() {
    return uniform(0, 3) == 0 ? EvictionPriority::kLow : EvictionPriority::kNormal;
  };

  for (int op = 0; op < kOps; ++op) {
    const uint64_t dice = uniform(0, 99);
    std::string what;
    absl::StatusCode want, got;
    if (dice < 22) {
      const size_t k = uniform(0, 6);
      std::vector<BlockId> want_ids, got_ids(k, kInvalidBlockId);
      want = m.Allocate(k, &want_ids);
      got = a->Allocate(absl::MakeSpan(got_ids)).code();
      what = "Allocate(" + std::to_string(k) + ")";
      if (want == absl::StatusCode::kOk) {
        ASSERT_EQ(got_ids, want_ids) << "op " << op << " " << what;
      }
    } else if (dice < 42) {
      const BlockId id = uniform(0, 19) == 0 ? any_id() : held_id();
      const EvictionPriority p = priority();
      want = m.Release(id, p);
      got = a->Release(id, p).code();
      what = "Release(" + std::to_string(id) + ")";
    } else if (dice < 52) {
      // A span of references actually held (a block may appear up to its ref count), sometimes
      // with one entry too many.
      std::vector<BlockId> held;
      for (BlockId id = 0; id < num_blocks; ++id) held.insert(held.end(), m.ref[id], id);
      std::shuffle(held.begin(), held.end(), rng);
      held.resize(std::min<size_t>(held.size(), uniform(0, 5)));
      if (uniform(0, 9) == 0) held.insert(held.begin() + uniform(0, held.size()), any_id());
      const EvictionPriority p = priority();
      want = m.ReleaseSpan(held, p);
      got = a->Release(absl::MakeConstSpan(held), p).code();
      what = "Release(span of " + std::to_string(held.size()) + ")";
    } else if (dice < 62) {
      const BlockId id = any_id();
      want = m.AddRef(id);
      got = a->AddRef(id).code();
      what = "AddRef(" + std::to_string(id) + ")";
    } else if (dice < 67) {
      const BlockId id = any_id();
      want = m.Touch(id);
      got = a->Touch(id).code();
      what = "Touch(" + std::to_string(id) + ")";
    } else if (dice < 82) {
      const BlockId id = uniform(0, 9) == 0 ? any_id() : held_id();
      const BlockHash h = H(uniform(0, kHashSpace - 1));
      want = m.SetHash(id, h);
      got = a->SetHash(id, h).code();
      what = "SetHash(" + std::to_string(id) + ")";
    } else if (dice < 87) {
      const BlockId id = held_id();
      want = m.Unhash(id);
      got = a->Unhash(id).code();
      what = "Unhash(" + std::to_string(id) + ")";
    } else if (dice < 97) {
      const BlockHash h = H(uniform(0, kHashSpace - 1));
      const std::optional<BlockId> w = m.Lookup(h);
      ASSERT_EQ(a->Lookup(h), w) << "op " << op << " Lookup";
      want = got = absl::StatusCode::kOk;
      what = "Lookup";
    } else {
      const uint32_t k = static_cast<uint32_t>(uniform(0, num_blocks + 1));
      ASSERT_EQ(a->CanAllocate(k), k <= m.free_list.size() + m.lru.size()) << "op " << op;
      want = got = absl::StatusCode::kOk;
      what = "CanAllocate";
    }
    ASSERT_EQ(got, want) << "op " << op << " " << what;

    const absl::Status inv = a->CheckInvariants();
    ASSERT_TRUE(inv.ok()) << "op " << op << " " << what << ": " << inv;
    const BlockAllocatorStats st = a->stats();
    ASSERT_EQ(st.num_free, m.free_list.size()) << "op " << op << " " << what;
    ASSERT_EQ(st.num_cached, m.lru.size()) << "op " << op << " " << what;
    ASSERT_EQ(st.num_in_use, m.in_use()) << "op " << op << " " << what;
    ASSERT_EQ(st.peak_in_use, m.peak) << "op " << op << " " << what;
    ASSERT_EQ(st.allocations, m.allocations) << "op " << op;
    ASSERT_EQ(st.releases, m.releases) << "op " << op;
    ASSERT_EQ(st.evictions, m.evictions) << "op " << op;
    ASSERT_EQ(st.cache_hits, m.hits) << "op " << op;
    ASSERT_EQ(st.cache_misses, m.misses) << "op " << op;
    for (BlockId id = 0; id < num_blocks; ++id) {
      ASSERT_EQ(a->ref_count(id), m.ref[id]) << "op " << op << " " << what << " block " << id;
      ASSERT_EQ(a->hash(id), m.hash[id]) << "op " << op << " " << what << " block " << id;
    }
    ASSERT_EQ(listener.evicted.size(), m.evicted.size()) << "op " << op;
  }
  for (size_t i = 0; i < m.evicted.size(); ++i) {
    ASSERT_EQ(listener.evicted[i].first, m.evicted[i].first) << "eviction " << i;
    ASSERT_EQ(listener.evicted[i].second, m.evicted[i].second) << "eviction " << i;
  }
  // The run must have reached the interesting states, or it proves little.
  EXPECT_GT(m.evictions, 100u);
  EXPECT_GT(m.hits, 50u);
  EXPECT_GT(m.peak, num_blocks / 2);
}

INSTANTIATE_TEST_SUITE_P(BlockCounts, BlockAllocatorRandomTest, ::testing::Values(1u, 17u, 64u));

}  // namespace
}  // namespace pagedkv
