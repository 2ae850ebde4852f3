// Chained 128-bit content hash of a full page: HashPage(parent page hash, token ids, extra key).
// Internal to the block manager (tests use it to check the hash chain).
//
//   BlockHash h0 = HashPage(kRootHash, tokens.subspan(0, 16), lora_id);
//   BlockHash h1 = HashPage(h0, tokens.subspan(16, 16), lora_id);
#ifndef PAGEDKV_BLOCK_MANAGER_INTERNAL_BLOCK_HASHER_H_
#define PAGEDKV_BLOCK_MANAGER_INTERNAL_BLOCK_HASHER_H_

#include <cstdint>

#include "absl/types/span.h"
#include "pagedkv/allocator/block_allocator.h"
#include "pagedkv/core/types.h"

namespace pagedkv::internal {

// Parent of the first page: a fixed non-zero value so an all-zero hash never occurs by chance.
inline constexpr BlockHash kRootHash = {0x243f6a8885a308d3ull, 0x13198a2e03707344ull};

// 64x64 -> 128 multiply folded to 64 bits: the mixing step of both lanes.
inline uint64_t FoldedMultiply(uint64_t a, uint64_t b) {
  const unsigned __int128 r = static_cast<unsigned __int128>(a) * b;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}

// Two independent 64-bit lanes (different multipliers and seeds) give 128 bits; the token count is
// mixed in so pages of different lengths never alias. Not cryptographic: hits are confirmed
// against stored token ids anyway.
inline BlockHash HashPage(const BlockHash& parent, absl::Span<const TokenId> tokens,
                          uint64_t extra_key) {
  constexpr uint64_t kA = 0xa0761d6478bd642full, kB = 0xe7037ed1a0b428dbull;
  constexpr uint64_t kC = 0x8ebc6af09c88c6e3ull, kD = 0x589965cc75374cc3ull;
  uint64_t lo = FoldedMultiply(parent.lo ^ kA, extra_key ^ kB);
  uint64_t hi = FoldedMultiply(parent.hi ^ kC, extra_key ^ kD ^ tokens.size());
  size_t i = 0;
  for (; i + 2 <= tokens.size(); i += 2) {
    const uint64_t v = static_cast<uint32_t>(tokens[i]) |
                       (static_cast<uint64_t>(static_cast<uint32_t>(tokens[i + 1])) << 32);
    lo = FoldedMultiply(lo ^ v, kB) + hi;
    hi = FoldedMultiply(hi ^ v ^ kC, kD) ^ lo;
  }
  if (i < tokens.size()) {
    const uint64_t v = static_cast<uint32_t>(tokens[i]) | (1ull << 40);
    lo = FoldedMultiply(lo ^ v, kB) + hi;
    hi = FoldedMultiply(hi ^ v ^ kC, kD) ^ lo;
  }
  // Final avalanche of both lanes.
  lo = FoldedMultiply(lo ^ kD, hi ^ kA);
  hi = FoldedMultiply(hi ^ kB, lo ^ kC);
  return BlockHash{lo, hi};
}

// One 64-bit key from two (a sequence's extra_key and encoder_key): different pairs give different
// keys except with probability about 2^-64.
inline uint64_t MixKeys(uint64_t a, uint64_t b) {
  return FoldedMultiply(a ^ 0x452821e638d01377ull, b ^ 0xbe5466cf34e90c6cull) ^
         FoldedMultiply(b ^ 0xc0ac29b7c97c50ddull, 0x3f84d5b5b5470917ull);
}

}  // namespace pagedkv::internal

#endif  // PAGEDKV_BLOCK_MANAGER_INTERNAL_BLOCK_HASHER_H_
