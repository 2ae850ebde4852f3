// The page value format of the remote tier: a round trip, and every way a value can be refused
// (truncated, padded, a flipped byte in the header, tokens or K/V bytes, another model, group,
// geometry or chain hash).
#include "remote/internal/page_codec.h"

#include <numeric>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace pagedkv::internal {
namespace {

PageGeometry Geometry() {
  PageGeometry g;
  g.model_fingerprint = 0x1234;
  g.group = 0;
  g.block_size = 4;
  g.bytes_per_block = 96;
  g.dtype = 1;
  return g;
}

struct Page {
  std::vector<TokenId> tokens{11, 12, 13, 14};
  std::vector<std::byte> bytes = std::vector<std::byte>(96);
  Page() {
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<std::byte>(i * 7);
  }
};

TEST(PageCodecTest, RoundTrip) {
  Page p;
  std::string v;
  EncodePage(Geometry(), 5, 6, p.tokens, p.bytes.data(), &v);
  EXPECT_EQ(v.size(), kPageHeaderBytes + 4 * sizeof(TokenId) + 96);
  DecodedPage d;
  ASSERT_EQ(DecodePage(v, Geometry(), 5, 6, &d), PageDecodeError::kNone);
  std::vector<TokenId> tokens(4);
  std::memcpy(tokens.data(), d.tokens, sizeof(TokenId) * 4);
  EXPECT_EQ(tokens, p.tokens);
  EXPECT_EQ(std::memcmp(d.page, p.bytes.data(), 96), 0);
}

TEST(PageCodecTest, RefusesEveryDamagedOrForeignValue) {
  Page p;
  std::string v;
  EncodePage(Geometry(), 5, 6, p.tokens, p.bytes.data(), &v);
  DecodedPage d;
  EXPECT_EQ(DecodePage(v.substr(0, 10), Geometry(), 5, 6, &d), PageDecodeError::kFormat);
  EXPECT_EQ(DecodePage(v.substr(0, v.size() - 1), Geometry(), 5, 6, &d), PageDecodeError::kFormat);
  EXPECT_EQ(DecodePage(v + "x", Geometry(), 5, 6, &d), PageDecodeError::kFormat);
  std::string bad_magic = v;
  bad_magic[0] = 'X';
  EXPECT_EQ(DecodePage(bad_magic, Geometry(), 5, 6, &d), PageDecodeError::kFormat);
  EXPECT_EQ(DecodePage(v, Geometry(), 5, 7, &d), PageDecodeError::kForeign);  // another page
  for (int field = 0; field < 4; ++field) {
    PageGeometry g = Geometry();
    if (field == 0) g.model_fingerprint = 99;
    if (field == 1) g.group = 1;
    if (field == 2) g.bytes_per_block = 48;
    if (field == 3) g.dtype = 2;
    EXPECT_EQ(DecodePage(v, g, 5, 6, &d), PageDecodeError::kForeign) << "field " << field;
  }
  // One flipped bit anywhere in the tokens or the K/V bytes fails the checksum.
  for (size_t pos = kPageHeaderBytes; pos < v.size(); pos += 7) {
    std::string flipped = v;
    flipped[pos] ^= 0x10;
    EXPECT_EQ(DecodePage(flipped, Geometry(), 5, 6, &d), PageDecodeError::kChecksum)
        << "byte " << pos;
  }
}

}  // namespace
}  // namespace pagedkv::internal
