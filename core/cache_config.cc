#include "pagedkv/core/cache_config.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace pagedkv {

absl::Status CacheConfig::Validate() const {
  const auto invalid = [](auto&&... parts) {
    return absl::InvalidArgumentError(absl::StrCat("cache config: ", parts...));
  };
  if (block_size_tokens < 1) {
    return invalid("block_size_tokens must be >= 1, got ", block_size_tokens);
  }
  if (block_size_tokens > kMaxBlockSizeTokens) {
    return invalid("block_size_tokens must be <= ", kMaxBlockSizeTokens, ", got ",
                   block_size_tokens);
  }
  if (gpu_tier != Tier::kGpu && gpu_tier != Tier::kHost && gpu_tier != Tier::kVirtual) {
    return invalid("gpu_tier has unknown value ", static_cast<int>(gpu_tier),
                   "; expected gpu, host or virtual");
  }
  // Block ids are uint32 with the largest value reserved as kInvalidBlockId.
  constexpr int64_t kMaxBlocks = static_cast<int64_t>(kInvalidBlockId);
  if (gpu_num_blocks < 0 || gpu_num_blocks > kMaxBlocks) {
    return invalid("gpu_num_blocks must be in [0, ", kMaxBlocks, "], got ", gpu_num_blocks,
                   " (0 = use the byte budget or the memory fraction)");
  }
  if (host_num_blocks < 0 || host_num_blocks > kMaxBlocks) {
    return invalid("host_num_blocks must be in [0, ", kMaxBlocks, "], got ", host_num_blocks,
                   " (0 = use host_budget_bytes; both 0 = no host tier)");
  }
  // Written as a negated range test so that NaN fails too.
  if (!(gpu_memory_fraction > 0.0 && gpu_memory_fraction <= 1.0)) {
    return invalid("gpu_memory_fraction must be in (0, 1], got ", gpu_memory_fraction);
  }
  if (!(watermark >= 0.0 && watermark < 1.0)) {
    return invalid("watermark must be in [0, 1), got ", watermark);
  }
  return remote.Validate();
}

}  // namespace pagedkv
