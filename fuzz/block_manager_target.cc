// Fuzz target of the block manager (declared in fuzz_targets.h): the input bytes choose a model
// shape, block size, pool sizes and then a stream of operations (add, append, batch append, fork,
// beam reorder, rewind, free, swap out/in, cross attention, bad inputs), all run through the data
// harness: pools hold real bytes, CacheOps are executed with memcpy, and every sequence must read
// back exactly its own values; CheckInvariants runs throughout and nothing may leak at the end.
#include <string>

#include "absl/strings/str_cat.h"
#include "fuzz/fuzz_targets.h"
#include "tests/block_manager/data_harness.h"

namespace pagedkv::fuzz {

std::string FuzzBlockManager(const uint8_t* data, size_t size) {
  using pagedkv::testing::ByteOpSource;
  using pagedkv::testing::DataHarness;
  using pagedkv::testing::HarnessModel;
  using pagedkv::testing::HarnessOptions;
  if (size < 4) return "";
  ByteOpSource src(absl::MakeConstSpan(data, size));
  static constexpr int32_t kBlockSizes[] = {1, 3, 16, 17, 128};
  HarnessOptions o;
  o.model = static_cast<HarnessModel>(src.Next(pagedkv::testing::kNumHarnessModels));
  o.block_size = kBlockSizes[src.Next(5)];
  o.prefix_caching = src.Next(2) == 1;
  o.host_tier = src.Next(4) != 0;
  // Sometimes tiny pools, so allocation failures and evictions happen within a few operations.
  if (src.Next(2) == 0) {
    o.gpu_blocks = 2 + src.Next(24);
    o.host_blocks = 1 + src.Next(24);
  }
  o.max_live_seqs = 2 + static_cast<int32_t>(src.Next(12));
  o.verify_every = 4;
  auto harness = DataHarness::Create(o);
  if (!harness.ok()) return absl::StrCat("harness: ", harness.status().message());
  const absl::Status st = (*harness)->Run(src, /*num_ops=*/1 << 20);
  if (!st.ok()) {
    return absl::StrCat("block manager property violated: ", st.message(), "\n",
                        (*harness)->counters().ToString());
  }
  return "";
}

}  // namespace pagedkv::fuzz
