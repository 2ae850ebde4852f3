#include "pagedkv/allocator/object_pool.h"

#include <cstdint>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace pagedkv {
namespace {

// Counts constructions and destructions through a shared counter.
struct Tracked {
  Tracked(int* live, int value) : live(live), value(value) { ++*live; }
  ~Tracked() { --*live; }
  int* live;
  int value;
  std::string payload = "a string long enough to need a heap allocation of its own";
};

struct alignas(16) Wide {
  double a[4];
};

TEST(ObjectPoolTest, NewConstructsAndDeleteDestroys) {
  int live = 0;
  ObjectPool<Tracked> pool(4);
  Tracked* t = pool.New(&live, 7);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->value, 7);
  EXPECT_EQ(live, 1);
  EXPECT_EQ(pool.num_live(), 1u);
  pool.Delete(t);
  EXPECT_EQ(live, 0);
  EXPECT_EQ(pool.num_live(), 0u);
}

TEST(ObjectPoolTest, LiveObjectsAreDestroyedWithThePool) {
  int live = 0;
  {
    ObjectPool<Tracked> pool(2);
    for (int i = 0; i < 10; ++i) pool.New(&live, i);
    pool.Delete(pool.New(&live, 99));
    EXPECT_EQ(live, 10);
  }
  EXPECT_EQ(live, 0);
}

TEST(ObjectPoolTest, SlotsAreReusedAfterDelete) {
  ObjectPool<int> pool(8);
  int* a = pool.New(1);
  pool.Delete(a);
  int* b = pool.New(2);
  EXPECT_EQ(a, b) << "a freed slot should be handed out again";
  EXPECT_EQ(*b, 2);
  pool.Delete(b);
}

TEST(ObjectPoolTest, ObjectsAreAlignedAndDistinct) {
  ObjectPool<Wide> pool(3);
  std::vector<Wide*> objs;
  std::set<Wide*> seen;
  for (int i = 0; i < 100; ++i) {
    Wide* w = pool.New();
    EXPECT_EQ(reinterpret_cast<uintptr_t>(w) % alignof(Wide), 0u);
    EXPECT_TRUE(seen.insert(w).second);
    w->a[0] = i;
    w->a[3] = -i;
    objs.push_back(w);
  }
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(objs[i]->a[0], i);
    EXPECT_EQ(objs[i]->a[3], -i);
  }
  for (Wide* w : objs) pool.Delete(w);
  EXPECT_EQ(pool.num_live(), 0u);
}

TEST(ObjectPoolTest, ManyObjectsInRandomOrder) {
  int live = 0;
  ObjectPool<Tracked> pool(16);
  std::vector<Tracked*> objs;
  std::mt19937 rng(42);
  for (int round = 0; round < 20000; ++round) {
    if (objs.empty() || rng() % 3 != 0) {
      objs.push_back(pool.New(&live, round));
    } else {
      const size_t i = rng() % objs.size();
      EXPECT_EQ(objs[i]->live, &live);
      pool.Delete(objs[i]);
      objs[i] = objs.back();
      objs.pop_back();
    }
    ASSERT_EQ(pool.num_live(), objs.size());
    ASSERT_EQ(live, static_cast<int>(objs.size()));
  }
  std::set<int> values;
  for (Tracked* t : objs) EXPECT_TRUE(values.insert(t->value).second);
  // Half deleted here, the rest by the pool's destructor.
  for (size_t i = 0; i < objs.size() / 2; ++i) pool.Delete(objs[i]);
}

TEST(ObjectPoolTest, ConstructorExceptionReturnsTheSlot) {
  struct Throws {
    explicit Throws(bool t) {
      if (t) throw std::runtime_error("boom");
    }
  };
  ObjectPool<Throws> pool(4);
  EXPECT_THROW(pool.New(true), std::runtime_error);
  EXPECT_EQ(pool.num_live(), 0u);
  Throws* ok = pool.New(false);
  EXPECT_EQ(pool.num_live(), 1u);
  pool.Delete(ok);
}

}  // namespace
}  // namespace pagedkv
