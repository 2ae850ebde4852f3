// The value format of one page in the remote tier: a 64-byte little-endian header (format
// version, model fingerprint, KV group, page geometry, dtype, token count, the page's chain hash,
// an XXH3-64 checksum of what follows), the page's token ids, then its K/V bytes for every layer
// of the group (the block's bytes, block-major as in the pool). Internal to remote/.
#ifndef PAGEDKV_REMOTE_INTERNAL_PAGE_CODEC_H_
#define PAGEDKV_REMOTE_INTERNAL_PAGE_CODEC_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/types/span.h"
#include "pagedkv/core/types.h"

namespace pagedkv::internal {

inline constexpr uint32_t kPageFormatVersion = 1;
inline constexpr size_t kPageHeaderBytes = 64;

// What every page of one (model, KV group) shares; a stored page must match all of it.
struct PageGeometry {
  uint64_t model_fingerprint = 0;
  uint32_t group = 0;
  uint32_t block_size = 0;       // tokens per page
  uint64_t bytes_per_block = 0;  // K/V bytes of the page
  uint32_t dtype = 0;            // DType as an integer
};

// header + tokens + page bytes into *out (reusing its capacity). tokens.size() == block_size.
void EncodePage(const PageGeometry& geometry, uint64_t chain_lo, uint64_t chain_hi,
                absl::Span<const TokenId> tokens, const std::byte* page, std::string* out);

enum class PageDecodeError : uint8_t {
  kNone = 0,
  kFormat = 1,    // not a page value, another format version, or a size that does not add up
  kForeign = 2,   // another model, group, geometry or dtype, or another chain hash
  kChecksum = 3,  // the payload does not match its checksum (corrupted in the store or on the way)
};
const char* PageDecodeErrorName(PageDecodeError e);

struct DecodedPage {
  const TokenId* tokens = nullptr;  // block_size of them (unaligned reads: memcpy them out)
  const std::byte* page = nullptr;  // bytes_per_block
};

// Checks everything a value must satisfy to be this page, and points into it.
PageDecodeError DecodePage(std::string_view value, const PageGeometry& geometry, uint64_t chain_lo,
                           uint64_t chain_hi, DecodedPage* out);

}  // namespace pagedkv::internal

#endif  // PAGEDKV_REMOTE_INTERNAL_PAGE_CODEC_H_
