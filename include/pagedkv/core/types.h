// Basic identifiers and enums shared by every pagedkv area: block, sequence and token ids, memory
// tiers and KV storage dtypes.
//
//   pagedkv::BlockId b = 7;  pagedkv::Tier t = pagedkv::Tier::kGpu;
//   size_t bytes = pagedkv::DTypeSize(pagedkv::DType::kFp16);  // 2
#ifndef PAGEDKV_CORE_TYPES_H_
#define PAGEDKV_CORE_TYPES_H_

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string_view>

#include "absl/status/statusor.h"

namespace pagedkv {

// Index of a block (page) within one pool. Slot of a token = block_id * block_size + offset.
using BlockId = uint32_t;
// One token stream. A request with beams or parallel samples is several sequences.
using SeqId = uint64_t;
// A token id as produced by the tokenizer.
using TokenId = int32_t;

inline constexpr BlockId kInvalidBlockId = std::numeric_limits<BlockId>::max();

// Where a pool lives.
enum class Tier : uint8_t {
  kGpu = 0,      // CUDA device memory (falls back to host memory when no device is present).
  kHost = 1,     // Pinned host memory when CUDA is present, plain aligned memory otherwise.
  kVirtual = 2,  // Metadata only, no bytes: simulating a large GPU anywhere.
};
std::string_view TierName(Tier tier);  // "gpu", "host", "virtual"
absl::StatusOr<Tier> ParseTier(std::string_view name);

// Element type of the stored K/V.
enum class DType : uint8_t { kFp32 = 0, kFp16 = 1, kBf16 = 2, kFp8E4m3 = 3, kInt8 = 4 };
// Bytes per element: 4, 2, 2, 1, 1.
constexpr size_t DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kFp32:
      return 4;
    case DType::kFp16:
    case DType::kBf16:
      return 2;
    case DType::kFp8E4m3:
    case DType::kInt8:
      return 1;
  }
  return 0;
}
std::string_view DTypeName(DType dtype);  // "fp32", "fp16", "bf16", "fp8_e4m3", "int8"
// Accepts the names above and the aliases "float32", "float16", "half", "bfloat16", "fp8".
absl::StatusOr<DType> ParseDType(std::string_view name);

}  // namespace pagedkv

#endif  // PAGEDKV_CORE_TYPES_H_
