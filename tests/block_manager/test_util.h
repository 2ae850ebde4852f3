// Shared by the block manager's unit tests: a small model shape, a metadata-only cache config,
// token runs, and the check that a failed call changed nothing.
#ifndef PAGEDKV_TESTS_BLOCK_MANAGER_TEST_UTIL_H_
#define PAGEDKV_TESTS_BLOCK_MANAGER_TEST_UTIL_H_

#include <memory>
#include <numeric>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "pagedkv/block_manager/block_manager.h"

namespace pagedkv::testing {

// 2 query heads, 1 KV head of dim 4, fp16, the given layers.
inline ModelSpec Spec(std::vector<LayerSpec> layers = {LayerSpec::Full()}) {
  ModelSpec spec;
  spec.name = "unit";
  spec.num_q_heads = 2;
  spec.num_kv_heads = 1;
  spec.head_dim = 4;
  spec.kv_dtype = DType::kFp16;
  spec.layers = std::move(layers);
  return spec;
}

// A virtual (metadata only) GPU pool, no watermark.
inline CacheConfig Config(int32_t bs, int64_t gpu_blocks, int64_t host_blocks = 0,
                          bool prefix = true) {
  CacheConfig cfg;
  cfg.block_size_tokens = bs;
  cfg.gpu_tier = Tier::kVirtual;
  cfg.gpu_num_blocks = gpu_blocks;
  cfg.host_num_blocks = host_blocks;
  cfg.watermark = 0.0;
  cfg.enable_prefix_caching = prefix;
  return cfg;
}

inline std::unique_ptr<BlockManager> Make(const ModelSpec& spec, const CacheConfig& cfg) {
  auto bm = BlockManager::Create(spec, cfg);
  EXPECT_TRUE(bm.ok()) << bm.status();
  return bm.ok() ? std::move(*bm) : nullptr;
}

// base, base + 1, ..., n tokens.
inline std::vector<TokenId> Tokens(int32_t n, TokenId base = 100) {
  std::vector<TokenId> t(n);
  std::iota(t.begin(), t.end(), base);
  return t;
}

// Runs `call`, expects `code` and a message, and checks that stats, per-sequence stats and
// invariants are as before.
template <typename F>
void ExpectFailsUnchanged(BlockManager& bm, absl::StatusCode code, F&& call) {
  const BlockManagerStats before = bm.stats();
  std::vector<SequenceStats> seqs_before;
  for (SeqId id : bm.SequenceIds()) seqs_before.push_back(*bm.GetSequenceStats(id));
  const absl::Status st = call();
  EXPECT_EQ(st.code(), code) << st;
  EXPECT_FALSE(st.message().empty());
  EXPECT_EQ(bm.stats(), before);
  std::vector<SequenceStats> seqs_after;
  for (SeqId id : bm.SequenceIds()) seqs_after.push_back(*bm.GetSequenceStats(id));
  EXPECT_EQ(seqs_after, seqs_before);
  EXPECT_TRUE(bm.CheckInvariants().ok()) << bm.CheckInvariants();
}

}  // namespace pagedkv::testing

#endif  // PAGEDKV_TESTS_BLOCK_MANAGER_TEST_UTIL_H_
