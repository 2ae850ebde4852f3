#include "pagedkv/block_manager/block_manager.h"

#include "gtest/gtest.h"

namespace pagedkv {
namespace {

TEST(BlockManagerSmoke, Builds) {
  ModelSpec spec;
  spec.name = "tiny";
  spec.num_q_heads = 1;
  spec.num_kv_heads = 1;
  spec.head_dim = 2;
  spec.kv_dtype = DType::kFp32;
  spec.layers = {LayerSpec::Full()};
  CacheConfig cfg;
  cfg.block_size_tokens = 4;
  cfg.gpu_tier = Tier::kVirtual;
  cfg.gpu_num_blocks = 16;
  auto bm = BlockManager::Create(spec, cfg);
  ASSERT_TRUE(bm.ok()) << bm.status();
}

}  // namespace
}  // namespace pagedkv
