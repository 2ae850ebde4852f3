// BlockHash: the 128-bit content hash of a full KV page, H(parent page hash, token ids, keys).
// Shared by the allocator's hash index, the block manager's prefix cache and the remote tier's
// keys.
#ifndef PAGEDKV_CORE_BLOCK_HASH_H_
#define PAGEDKV_CORE_BLOCK_HASH_H_

#include <cstdint>
#include <utility>

namespace pagedkv {

// 128 bits make an accidental collision negligible (about 2^-64 after 2^32 distinct blocks); the
// block manager additionally confirms token ids.
struct BlockHash {
  uint64_t lo = 0;
  uint64_t hi = 0;
  friend bool operator==(const BlockHash& a, const BlockHash& b) = default;
  template <typename H>
  friend H AbslHashValue(H h, const BlockHash& b) {
    return H::combine(std::move(h), b.lo, b.hi);
  }
};

}  // namespace pagedkv

#endif  // PAGEDKV_CORE_BLOCK_HASH_H_
