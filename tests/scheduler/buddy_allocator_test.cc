// Tests of the buddy allocator behind the orca-* policies (scheduler/internal/buddy_allocator.h):
// block sizes, splitting at the lowest address, merging with free buddies, regions of a capacity
// that is not a power of two, fragmentation counts, and random operations against a reference.
#include "internal/buddy_allocator.h"

#include <map>
#include <optional>
#include <random>

#include "gtest/gtest.h"
#include "internal/first_fit_allocator.h"

namespace pagedkv::internal {
namespace {

TEST(BuddyAllocatorTest, OrderAndFootprintAreTheNextPowerOfTwo) {
  EXPECT_EQ(BuddyAllocator::OrderOf(1), 0);
  EXPECT_EQ(BuddyAllocator::OrderOf(2), 1);
  EXPECT_EQ(BuddyAllocator::OrderOf(3), 2);
  EXPECT_EQ(BuddyAllocator::OrderOf(4), 2);
  EXPECT_EQ(BuddyAllocator::OrderOf(25), 5);
  EXPECT_EQ(BuddyAllocator::OrderOf(1024), 10);
  EXPECT_EQ(BuddyAllocator::OrderOf(1025), 11);
  BuddyAllocator a(1 << 12);
  EXPECT_EQ(a.FootprintTokens(25), 32);
  EXPECT_EQ(a.FootprintTokens(32), 32);
  EXPECT_EQ(a.FootprintTokens(2049), 4096);
}

TEST(BuddyAllocatorTest, CapacityIsCutIntoPowerOfTwoRegions) {
  BuddyAllocator a(1000);  // 512 + 256 + 128 + 64 + 32 + 8
  EXPECT_EQ(a.capacity(), 1000);
  EXPECT_EQ(a.free_tokens(), 1000);
  EXPECT_EQ(a.largest_free(), 512);
  for (int k : {9, 8, 7, 6, 5, 3}) EXPECT_EQ(a.NumFreeBlocks(k), 1) << k;
  EXPECT_TRUE(a.CheckInvariants().ok());
  // 600 tokens never fit (no block of 1024), although 1000 are free.
  EXPECT_FALSE(a.CanAllocate(600));
  EXPECT_EQ(a.Allocate(600), std::nullopt);
  EXPECT_EQ(a.Allocate(300), 0);    // the 512 region
  EXPECT_EQ(a.Allocate(200), 512);  // the 256 region
  EXPECT_EQ(a.Allocate(100), 768);  // the 128 region
  EXPECT_EQ(a.free_tokens(), 1000 - 512 - 256 - 128);
  EXPECT_TRUE(a.CheckInvariants().ok());
}

TEST(BuddyAllocatorTest, SplitsTheSmallestBlockAndTakesItsLowerHalf) {
  BuddyAllocator a(64);
  EXPECT_EQ(a.Allocate(5), 0);  // 64 -> 32 + 16 + 8 free, [0, 8) taken
  EXPECT_EQ(a.NumFreeBlocks(5), 1);
  EXPECT_EQ(a.NumFreeBlocks(4), 1);
  EXPECT_EQ(a.NumFreeBlocks(3), 1);
  EXPECT_EQ(a.Allocate(8), 8);    // the free 8 at 8
  EXPECT_EQ(a.Allocate(3), 16);   // splits the 16 at 16: 4 at 20 and 8 at 24 stay free
  EXPECT_EQ(a.Allocate(4), 20);   // the smallest fitting block, not the 32
  EXPECT_EQ(a.Allocate(16), 32);  // splits the 32
  EXPECT_EQ(a.free_tokens(), 64 - 8 - 8 - 4 - 4 - 16);
  EXPECT_TRUE(a.CheckInvariants().ok()) << a.CheckInvariants();
}

TEST(BuddyAllocatorTest, FreedBuddiesMergeBackToOneBlock) {
  BuddyAllocator a(64);
  std::vector<int64_t> offsets;
  for (int i = 0; i < 8; ++i) offsets.push_back(*a.Allocate(8));
  EXPECT_EQ(a.free_tokens(), 0);
  EXPECT_FALSE(a.CanAllocate(1));
  // Free every other block: four 8-token holes, none mergeable.
  for (int i = 0; i < 8; i += 2) a.Free(offsets[i], 8);
  EXPECT_EQ(a.NumFreeBlocks(3), 4);
  EXPECT_EQ(a.largest_free(), 8);
  EXPECT_EQ(a.FreeTokensInHolesSmallerThan(9), 32);  // 32 free, no 16 fits
  EXPECT_EQ(a.FreeTokensInHolesSmallerThan(8), 0);
  for (int i = 1; i < 8; i += 2) a.Free(offsets[i], 7);  // a length whose block is 8
  EXPECT_EQ(a.NumFreeBlocks(6), 1);
  EXPECT_EQ(a.NumFreeBlocks(3), 0);
  EXPECT_EQ(a.largest_free(), 64);
  EXPECT_TRUE(a.CheckInvariants().ok());
}

TEST(BuddyAllocatorTest, BlocksNeverMergeAcrossRegions) {
  BuddyAllocator a(48);           // regions [0, 32) and [32, 48)
  EXPECT_EQ(a.Allocate(16), 32);  // the whole 16 region: the smallest block that fits
  EXPECT_EQ(a.Allocate(16), 0);
  a.Free(0, 16);
  a.Free(32, 16);
  EXPECT_EQ(a.NumFreeBlocks(5), 1);  // [0, 32) merged
  EXPECT_EQ(a.NumFreeBlocks(4), 1);  // [32, 48) stays alone
  EXPECT_EQ(a.largest_free(), 32);
  EXPECT_TRUE(a.CheckInvariants().ok());
}

TEST(BuddyAllocatorTest, ExtendsOnlyInsideItsBlock) {
  BuddyAllocator a(64);
  const int64_t off = *a.Allocate(5);
  EXPECT_TRUE(a.CanExtend(off, 5, 8));
  EXPECT_TRUE(a.TryExtend(off, 5, 8));
  EXPECT_FALSE(a.CanExtend(off, 8, 9));
  EXPECT_FALSE(a.TryExtend(off, 8, 9));
  EXPECT_EQ(a.free_tokens(), 56);
}

TEST(BuddyAllocatorTest, CloneIsIndependent) {
  BuddyAllocator a(64);
  std::unique_ptr<ExtentAllocator> b = a.Clone();
  EXPECT_EQ(b->Allocate(64), 0);
  EXPECT_EQ(a.free_tokens(), 64);
  EXPECT_EQ(b->free_tokens(), 0);
  EXPECT_EQ(b->kind(), ExtentAllocatorKind::kBuddy);
}

// Random allocations and frees: allocated blocks never overlap, are aligned to their size, free
// tokens add up, and freeing everything restores the initial regions.
TEST(BuddyAllocatorTest, RandomOperationsKeepInvariants) {
  for (int64_t capacity : {1, 7, 64, 1000, 4096, 15805}) {
    SCOPED_TRACE(capacity);
    BuddyAllocator a(capacity);
    std::mt19937_64 rng(static_cast<uint64_t>(capacity));
    std::map<int64_t, int64_t> held;  // offset -> requested length
    int64_t held_tokens = 0;
    for (int op = 0; op < 4000; ++op) {
      if (rng() % 3 != 0 || held.empty()) {
        const int64_t length = 1 + static_cast<int64_t>(rng() % std::max<int64_t>(capacity / 4, 1));
        const bool can = a.CanAllocate(length);
        std::optional<int64_t> off = a.Allocate(length);
        ASSERT_EQ(off.has_value(), can);
        if (!off) continue;
        const int64_t size = a.FootprintTokens(length);
        ASSERT_EQ(*off % size, 0);
        ASSERT_LE(*off + size, capacity);
        auto next = held.lower_bound(*off);
        if (next != held.end()) {
          ASSERT_LE(*off + size, next->first);
        }
        if (next != held.begin()) {
          auto prev = std::prev(next);
          ASSERT_LE(prev->first + a.FootprintTokens(prev->second), *off);
        }
        held[*off] = length;
        held_tokens += size;
      } else {
        auto it = held.begin();
        std::advance(it, static_cast<long>(rng() % held.size()));
        a.Free(it->first, it->second);
        held_tokens -= a.FootprintTokens(it->second);
        held.erase(it);
      }
      ASSERT_EQ(a.free_tokens() + held_tokens, capacity);
      ASSERT_TRUE(a.CheckInvariants().ok()) << a.CheckInvariants();
    }
    for (const auto& [off, length] : held) a.Free(off, length);
    EXPECT_EQ(a.free_tokens(), capacity);
    EXPECT_EQ(a.largest_free(), BuddyAllocator(capacity).largest_free());
  }
}

// First-fit, for contrast: the same 48 slots hold three 16-token extents back to back.
TEST(FirstFitAllocatorTest, TakesExactlyTheLength) {
  FirstFitAllocator a(48);
  EXPECT_EQ(a.FootprintTokens(10), 10);
  EXPECT_EQ(a.Allocate(16), 0);
  EXPECT_EQ(a.Allocate(16), 16);
  EXPECT_EQ(a.Allocate(16), 32);
  EXPECT_EQ(a.free_tokens(), 0);
  a.Free(16, 16);
  EXPECT_EQ(a.FreeTokensInHolesSmallerThan(17), 16);
  EXPECT_TRUE(a.CheckInvariants().ok());
}

}  // namespace
}  // namespace pagedkv::internal
