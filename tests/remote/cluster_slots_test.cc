// Redis Cluster key slots (CRC16 XMODEM, hash tags) and the slot map.
#include "remote/internal/cluster_slots.h"

#include "gtest/gtest.h"

namespace pagedkv::internal {
namespace {

TEST(ClusterSlotsTest, KeySlotMatchesTheClusterSpecification) {
  // The check value of CRC16/XMODEM is 0x31C3 for "123456789": slot 12739.
  EXPECT_EQ(KeySlot("123456789"), 12739);
  EXPECT_EQ(KeySlot(""), 0);
  // A non-empty {tag} is what is hashed; an empty one is ignored.
  EXPECT_EQ(KeySlot("user:{123456789}:a"), KeySlot("123456789"));
  EXPECT_EQ(KeySlot("{123456789}"), KeySlot("other{123456789}"));
  EXPECT_NE(KeySlot("a{}b"), KeySlot(""));
  EXPECT_EQ(KeySlot("a{}b"), KeySlot("a{}b"));
}

TEST(ClusterSlotsTest, SlotMapAssignsRangesToMasters) {
  SlotMap map;
  EXPECT_TRUE(map.empty());
  map.Assign(0, 5460, "127.0.0.1:7000");
  map.Assign(5461, 10922, "127.0.0.1:7001");
  map.Assign(10923, 16383, "127.0.0.1:7002");
  EXPECT_EQ(map.nodes.size(), 3u);
  EXPECT_EQ(map.nodes[map.owner[0]], "127.0.0.1:7000");
  EXPECT_EQ(map.nodes[map.owner[10922]], "127.0.0.1:7001");
  EXPECT_EQ(map.nodes[map.owner[16383]], "127.0.0.1:7002");
  map.Assign(100, 200, "127.0.0.1:7002");  // a slot range that moved
  EXPECT_EQ(map.nodes[map.owner[150]], "127.0.0.1:7002");
  EXPECT_EQ(map.nodes.size(), 3u);
}

}  // namespace
}  // namespace pagedkv::internal
