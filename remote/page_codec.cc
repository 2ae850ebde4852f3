// Encoding and checking of page values (internal/page_codec.h).
#include "remote/internal/page_codec.h"

#include <bit>
#include <cstring>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace pagedkv::internal {
namespace {

static_assert(std::endian::native == std::endian::little,
              "the page format is little-endian; a big-endian host would need byte swaps");

constexpr char kMagic[4] = {'P', 'K', 'V', 'P'};

struct Header {
  char magic[4];
  uint32_t version;
  uint64_t model_fingerprint;
  uint32_t group;
  uint32_t block_size;
  uint64_t bytes_per_block;
  uint32_t dtype;
  uint32_t token_count;
  uint64_t chain_lo;
  uint64_t chain_hi;
  uint64_t checksum;
};
static_assert(sizeof(Header) == kPageHeaderBytes);

uint64_t Checksum(const void* tokens, size_t token_bytes, const void* page, size_t page_bytes) {
  return XXH3_64bits_withSeed(page, page_bytes, XXH3_64bits(tokens, token_bytes));
}

}  // namespace

const char* PageDecodeErrorName(PageDecodeError e) {
  switch (e) {
    case PageDecodeError::kNone:
      return "none";
    case PageDecodeError::kFormat:
      return "format";
    case PageDecodeError::kForeign:
      return "foreign";
    case PageDecodeError::kChecksum:
      return "checksum";
  }
  return "?";
}

void EncodePage(const PageGeometry& geometry, uint64_t chain_lo, uint64_t chain_hi,
                absl::Span<const TokenId> tokens, const std::byte* page, std::string* out) {
  const size_t token_bytes = tokens.size() * sizeof(TokenId);
  Header h;
  std::memcpy(h.magic, kMagic, sizeof(kMagic));
  h.version = kPageFormatVersion;
  h.model_fingerprint = geometry.model_fingerprint;
  h.group = geometry.group;
  h.block_size = geometry.block_size;
  h.bytes_per_block = geometry.bytes_per_block;
  h.dtype = geometry.dtype;
  h.token_count = static_cast<uint32_t>(tokens.size());
  h.chain_lo = chain_lo;
  h.chain_hi = chain_hi;
  h.checksum = Checksum(tokens.data(), token_bytes, page, geometry.bytes_per_block);
  out->resize(kPageHeaderBytes + token_bytes + geometry.bytes_per_block);
  char* p = out->data();
  std::memcpy(p, &h, sizeof(h));
  std::memcpy(p + kPageHeaderBytes, tokens.data(), token_bytes);
  std::memcpy(p + kPageHeaderBytes + token_bytes, page, geometry.bytes_per_block);
}

PageDecodeError DecodePage(std::string_view value, const PageGeometry& geometry, uint64_t chain_lo,
                           uint64_t chain_hi, DecodedPage* out) {
  if (value.size() < kPageHeaderBytes) return PageDecodeError::kFormat;
  Header h;
  std::memcpy(&h, value.data(), sizeof(h));
  if (std::memcmp(h.magic, kMagic, sizeof(kMagic)) != 0 || h.version != kPageFormatVersion) {
    return PageDecodeError::kFormat;
  }
  if (h.model_fingerprint != geometry.model_fingerprint || h.group != geometry.group ||
      h.block_size != geometry.block_size || h.bytes_per_block != geometry.bytes_per_block ||
      h.dtype != geometry.dtype || h.token_count != geometry.block_size || h.chain_lo != chain_lo ||
      h.chain_hi != chain_hi) {
    return PageDecodeError::kForeign;
  }
  const size_t token_bytes = static_cast<size_t>(h.token_count) * sizeof(TokenId);
  if (value.size() != kPageHeaderBytes + token_bytes + h.bytes_per_block) {
    return PageDecodeError::kFormat;  // truncated (or padded)
  }
  const char* tokens = value.data() + kPageHeaderBytes;
  const char* page = tokens + token_bytes;
  if (Checksum(tokens, token_bytes, page, h.bytes_per_block) != h.checksum) {
    return PageDecodeError::kChecksum;
  }
  out->tokens = reinterpret_cast<const TokenId*>(tokens);
  out->page = reinterpret_cast<const std::byte*>(page);
  return PageDecodeError::kNone;
}

}  // namespace pagedkv::internal
