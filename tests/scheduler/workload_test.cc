#include "pagedkv/scheduler/workload.h"

#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace pagedkv {
namespace {

Request Hashed(uint64_t id, int32_t prompt, std::vector<uint64_t> hashes, int32_t hash_tokens) {
  Request r;
  r.request_id = id;
  r.prompt_tokens = prompt;
  r.output_tokens = 1;
  r.prefix_block_hashes = std::move(hashes);
  r.hash_block_tokens = hash_tokens;
  return r;
}

// Number of leading blocks of `block_size` tokens that are full in both and equal (a block can be
// shared only when every block before it is shared too: prefix hashes chain).
int64_t SharedLeadingBlocks(const std::vector<TokenId>& a, const std::vector<TokenId>& b,
                            int32_t block_size) {
  const size_t full = std::min(a.size(), b.size()) / block_size;
  for (size_t blk = 0; blk < full; ++blk) {
    for (size_t t = blk * block_size; t < (blk + 1) * block_size; ++t) {
      if (a[t] != b[t]) return static_cast<int64_t>(blk);
    }
  }
  return static_cast<int64_t>(full);
}

class PromptTokenIdsTest : public ::testing::TestWithParam<int32_t> {};

TEST_P(PromptTokenIdsTest, EqualHashesShareExactlyTheirTokens) {
  const int32_t bs = GetParam();
  // Two requests agree on their first two 512-token hash blocks, then differ.
  Request a = Hashed(0, 1100, {0, 1, 2}, 512);
  Request b = Hashed(1, 1500, {0, 1, 5}, 512);
  std::vector<TokenId> ia = PromptTokenIds(a, bs);
  std::vector<TokenId> ib = PromptTokenIds(b, bs);
  ASSERT_EQ(ia.size(), 1100u);
  ASSERT_EQ(ib.size(), 1500u);
  EXPECT_EQ(SharedLeadingBlocks(ia, ib, bs), 1024 / bs);
  // Deterministic: same request, same ids.
  EXPECT_EQ(PromptTokenIds(a, bs), ia);
  for (TokenId t : ia) {
    EXPECT_GE(t, 0);
  }
}

TEST_P(PromptTokenIdsTest, SameHashesThenPrivateSuffixDiverges) {
  const int32_t bs = GetParam();
  // Hashes cover 700 tokens of 1000 (a 700-token shared prefix, as synthetic prefix groups make).
  Request a = Hashed(3, 1000, {9}, 700);
  Request b = Hashed(4, 1000, {9}, 700);
  EXPECT_EQ(SharedLeadingBlocks(PromptTokenIds(a, bs), PromptTokenIds(b, bs), bs), 700 / bs);
}

TEST_P(PromptTokenIdsTest, RequestsWithoutHashesShareNothing) {
  const int32_t bs = GetParam();
  std::vector<std::vector<TokenId>> all;
  for (uint64_t id = 0; id < 200; ++id) {
    Request r;
    r.request_id = id;
    r.prompt_tokens = 600;
    all.push_back(PromptTokenIds(r, bs));
  }
  for (size_t i = 1; i < all.size(); ++i) {
    EXPECT_EQ(SharedLeadingBlocks(all[0], all[i], bs), 0) << "request " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(BlockSizes, PromptTokenIdsTest, ::testing::Values(1, 3, 16, 17, 512));

TEST(PromptTokenIdsInjectiveTest, FirstTokensAreInjectiveAcrossRequestsAndHashes) {
  std::set<TokenId> firsts;
  for (uint64_t id = 0; id < 5000; ++id) {
    Request r;
    r.request_id = id;
    r.prompt_tokens = 1;
    firsts.insert(PromptTokenIds(r, 1)[0]);
  }
  for (uint64_t h = 0; h < 5000; ++h) firsts.insert(PromptTokenIds(Hashed(0, 1, {h}, 512), 1)[0]);
  EXPECT_EQ(firsts.size(), 10000u);
}

TEST(WorkloadTest, ValidateNamesTheBadRequest) {
  Workload w;
  w.name = "t";
  w.requests.resize(3);
  for (size_t i = 0; i < 3; ++i) {
    w.requests[i].request_id = i;
    w.requests[i].arrival_time_s = static_cast<double>(i);
  }
  EXPECT_TRUE(w.Validate().ok());
  w.requests[1].output_tokens = 0;
  absl::Status s = w.Validate();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(s.message()).find("request 1"), std::string::npos) << s;
  EXPECT_NE(std::string(s.message()).find("output_tokens"), std::string::npos) << s;
  w.requests[1].output_tokens = 1;
  w.requests[2].arrival_time_s = 0.5;
  EXPECT_FALSE(w.Validate().ok());
  w.requests[2].arrival_time_s = 2;
  w.requests[2].prefix_block_hashes = {1};
  EXPECT_FALSE(w.Validate().ok());  // hashes without hash_block_tokens
  w.requests[2].hash_block_tokens = 16;
  EXPECT_TRUE(w.Validate().ok());
  EXPECT_EQ(w.TotalPromptTokens(), 3);
  EXPECT_DOUBLE_EQ(w.ArrivalSpanSeconds(), 2.0);
}

TEST(WorkloadTest, LoadWorkloadDispatchesAndNamesSources) {
  absl::StatusOr<Workload> s = LoadWorkload("synthetic:n=10,rate=2,seed=3");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->name, "synthetic");
  EXPECT_EQ(s->requests.size(), 10u);
  absl::StatusOr<Workload> p =
      LoadWorkload(std::string(PAGEDKV_TEST_DATA_DIR) + "/azure_small.csv");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->name, "azure_small");
  EXPECT_EQ(LoadWorkload("no-such-trace").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(LoadWorkload("synthetic:rate=-1").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(VendoredTraceNames().size(), 4u);
}

TEST(WorkloadTest, TracesDirOptionOverridesDefault) {
  WorkloadOptions options;
  options.traces_dir = "/nonexistent/traces";
  absl::StatusOr<Workload> w = LoadWorkload("azure-conv", options);
  EXPECT_EQ(w.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(std::string(w.status().message()).find("/nonexistent/traces"), std::string::npos);
}

}  // namespace
}  // namespace pagedkv
