// The data-through-table test: host-tier pools hold real bytes, token-derived values are written
// through slot_mapping, CacheOps are executed with memcpy, and after a seeded random mix of
// operations every sequence read back through its block table holds exactly its own values.
//
// PAGEDKV_DATA_TEST_TOTAL_OPS (default 200000) is split evenly over the parameterized cases;
// PAGEDKV_DATA_TEST_SEED (default 1) changes the seed of every case.
#include <cstdlib>
#include <string>

#include "gtest/gtest.h"
#include "tests/block_manager/data_harness.h"

namespace pagedkv::testing {
namespace {

struct DataCase {
  HarnessModel model;
  int32_t block_size;
  bool prefix_caching;
  bool remote = false;
};

std::string CaseName(const ::testing::TestParamInfo<DataCase>& info) {
  return std::string(HarnessModelName(info.param.model)) + "_bs" +
         std::to_string(info.param.block_size) +
         (info.param.prefix_caching ? "_prefix" : "_noprefix") +
         (info.param.remote ? "_remote" : "");
}

std::vector<DataCase> AllCases() {
  std::vector<DataCase> cases;
  for (int32_t bs : {1, 3, 16, 17, 128}) {
    cases.push_back({HarnessModel::kFull, bs, true});
    cases.push_back({HarnessModel::kShares, bs, true});
    cases.push_back({HarnessModel::kShares, bs, false});
    cases.push_back({HarnessModel::kSliding, bs, false});
    cases.push_back({HarnessModel::kFullSliding, bs, false});
    cases.push_back({HarnessModel::kCross, bs, true});
    cases.push_back({HarnessModel::kShares, bs, true, /*remote=*/true});
  }
  return cases;
}

int64_t EnvInt(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoll(v, nullptr, 10) : fallback;
}

class DataThroughTableTest : public ::testing::TestWithParam<DataCase> {};

TEST_P(DataThroughTableTest, EverySequenceReadsBackItsOwnValues) {
  const DataCase c = GetParam();
  const int64_t total = EnvInt("PAGEDKV_DATA_TEST_TOTAL_OPS", 200000);
  const int64_t ops = std::max<int64_t>(1, total / static_cast<int64_t>(AllCases().size()));
  const uint64_t seed = static_cast<uint64_t>(EnvInt("PAGEDKV_DATA_TEST_SEED", 1)) * 1000003 +
                        static_cast<uint64_t>(c.block_size) * 7 +
                        static_cast<uint64_t>(c.model) * 3 + (c.prefix_caching ? 1 : 0);
  HarnessOptions o;
  o.model = c.model;
  o.block_size = c.block_size;
  o.prefix_caching = c.prefix_caching;
  o.remote = c.remote;
  o.remote_admit_hits = static_cast<int32_t>(seed % 2);
  auto h = DataHarness::Create(o);
  ASSERT_TRUE(h.ok()) << h.status();
  RandomOpSource src(seed);
  const absl::Status st = (*h)->Run(src, ops);
  const HarnessCounters& n = (*h)->counters();
  ASSERT_TRUE(st.ok()) << st << "\nseed " << seed << "\n" << n.ToString();
  RecordProperty("counters", n.ToString());
  std::printf("%s\n", n.ToString().c_str());
  // The mix must actually exercise what the test claims to cover.
  EXPECT_GT(n.ok, n.ops / 3);
  EXPECT_GT(n.forks, 0u);
  EXPECT_GT(n.reorders, 0u);
  EXPECT_GT(n.swap_ins, 0u);
  if (c.block_size > 1) {
    EXPECT_GT(n.cow_copies, 0u);  // block size 1 has no partial pages to copy
  }
  EXPECT_GT(n.evictions + n.failed, 0u);
  EXPECT_GT(n.verified_tokens, 0u);
  // Chunked prefill, recompute preemption and fresh-page poisoning ran.
  EXPECT_GT(n.partial_computes, 0u);
  EXPECT_GT(n.readmits, 0u);
  EXPECT_GT(n.poisoned_blocks, 0u);
  if (c.prefix_caching) {
    EXPECT_GT(n.prefix_hit_pages, 0u);
    EXPECT_GT(n.host_offloads, 0u);
  }
  if (c.remote) {  // pages went to the store and came back; injected faults only cost misses
    EXPECT_GT(n.remote_writes, 0u);
    EXPECT_GT(n.remote_hit_pages, 0u);
    EXPECT_GT(n.remote_faults, 0u);
    EXPECT_GT(n.remote_misses_by_fault, 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, DataThroughTableTest, ::testing::ValuesIn(AllCases()), CaseName);

}  // namespace
}  // namespace pagedkv::testing
