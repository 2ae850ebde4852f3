// Chained 128-bit content hash of a full page: HashPage(parent page hash, token ids, key).
// Internal to the block manager (tests use it to check the hash chain).
//
//   BlockHash h0 = HashPage(kRootHash, tokens.subspan(0, 16), lora_id);
//   BlockHash h1 = HashPage(h0, tokens.subspan(16, 16), lora_id);
#ifndef PAGEDKV_BLOCK_MANAGER_INTERNAL_BLOCK_HASHER_H_
#define PAGEDKV_BLOCK_MANAGER_INTERNAL_BLOCK_HASHER_H_

#include <cstdint>
#include <cstring>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "absl/types/span.h"
#include "pagedkv/allocator/block_allocator.h"
#include "pagedkv/core/types.h"

namespace pagedkv::internal {

// Parent of the first page: a fixed non-zero value so an all-zero hash never occurs by chance.
inline constexpr BlockHash kRootHash = {0x243f6a8885a308d3ull, 0x13198a2e03707344ull};

// XXH3-128 (Debian's libxxhash, header-only) of the page's token ids seeded with the sequence's
// key, then XXH3-128 of (parent hash, that hash): the chain value depends on all 128 bits of the
// parent, and no input is copied. The token count is part of the input length, so pages of
// different lengths never alias. Not cryptographic: hits are confirmed against stored token ids.
inline BlockHash HashPage(const BlockHash& parent, absl::Span<const TokenId> tokens, uint64_t key) {
  const XXH128_hash_t page =
      XXH3_128bits_withSeed(tokens.data(), tokens.size() * sizeof(TokenId), key);
  const uint64_t pair[4] = {parent.lo, parent.hi, page.low64, page.high64};
  const XXH128_hash_t h = XXH3_128bits(pair, sizeof(pair));
  return BlockHash{h.low64, h.high64};
}

// 64x64 -> 128 multiply folded to 64 bits.
inline uint64_t FoldedMultiply(uint64_t a, uint64_t b) {
  const unsigned __int128 r = static_cast<unsigned __int128>(a) * b;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}

// One 64-bit key from two (a sequence's extra_key and encoder_key): different pairs give different
// keys except with probability about 2^-64.
inline uint64_t MixKeys(uint64_t a, uint64_t b) {
  return FoldedMultiply(a ^ 0x452821e638d01377ull, b ^ 0xbe5466cf34e90c6cull) ^
         FoldedMultiply(b ^ 0xc0ac29b7c97c50ddull, 0x3f84d5b5b5470917ull);
}

}  // namespace pagedkv::internal

#endif  // PAGEDKV_BLOCK_MANAGER_INTERNAL_BLOCK_HASHER_H_
