// fp16/bf16 conversions: exhaustive decode of every fp16 pattern against the format's definition,
// and float -> 16-bit rounding checked as "nearest representable, ties to even".
#include "pagedkv/attention/half_float.h"

#include <cmath>
#include <random>

#include "gtest/gtest.h"

namespace pagedkv {
namespace {

double Fp16Definition(uint16_t h) {
  const int sign = (h >> 15) ? -1 : 1;
  const int exp = (h >> 10) & 0x1f;
  const int mant = h & 0x3ff;
  if (exp == 0) return sign * std::ldexp(mant, -24);
  if (exp == 31) return mant ? NAN : sign * INFINITY;
  return sign * std::ldexp(1024 + mant, exp - 25);
}

TEST(HalfFloat, EveryFp16PatternDecodesExactly) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const double want = Fp16Definition(static_cast<uint16_t>(h));
    const float got = Fp16BitsToFloat(static_cast<uint16_t>(h));
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got)) << h;
    } else {
      ASSERT_EQ(double(got), want) << "pattern " << h;
      // And back: every non-NaN fp16 value round-trips bit-exactly.
      ASSERT_EQ(FloatToFp16Bits(got), h) << "pattern " << h;
    }
  }
}

// Checks that `bits` is the nearest representable value to f (ties: even mantissa).
template <typename Decode>
void ExpectNearest(float f, uint16_t bits, Decode decode) {
  const double x = f;
  const double got = decode(bits);
  for (int delta : {-1, 1}) {
    const uint16_t other = static_cast<uint16_t>(bits + delta);
    const double alt = decode(other);
    if (std::isnan(alt)) continue;
    const double e_got = std::fabs(got - x), e_alt = std::fabs(alt - x);
    ASSERT_LE(e_got, e_alt) << f << " -> " << bits << " but " << other << " is nearer";
    if (e_got == e_alt) {
      ASSERT_EQ(bits & 1, 0) << "tie not rounded to even for " << f;
    }
  }
}

TEST(HalfFloat, FloatToFp16RoundsToNearestEven) {
  std::mt19937_64 rng(std::random_device{}());
  std::uniform_real_distribution<float> mag(-26.0f, 16.5f);
  for (int i = 0; i < 200000; ++i) {
    const float f = std::exp2(mag(rng)) * ((rng() & 1) ? 1.0f : -1.0f);
    const uint16_t h = FloatToFp16Bits(f);
    if (std::fabs(f) >= 65520.0f) {
      EXPECT_TRUE(std::isinf(Fp16BitsToFloat(h))) << f;
      continue;
    }
    ExpectNearest(f, h, [](uint16_t b) { return Fp16Definition(b); });
  }
  // Exact ties between fp16 neighbours go to even.
  EXPECT_EQ(FloatToFp16Bits(1.0f + 1.0f / 2048), 0x3c00);     // between 0x3c00 and 0x3c01
  EXPECT_EQ(FloatToFp16Bits(1.0f + 3.0f / 2048), 0x3c02);     // between 0x3c01 and 0x3c02
  EXPECT_EQ(FloatToFp16Bits(std::ldexp(1.0f, -25)), 0x0000);  // half the smallest subnormal
  EXPECT_EQ(FloatToFp16Bits(std::ldexp(3.0f, -25)), 0x0002);  // 1.5 subnormal steps
  EXPECT_EQ(FloatToFp16Bits(65504.0f), 0x7bff);
  EXPECT_EQ(FloatToFp16Bits(-INFINITY), 0xfc00);
  EXPECT_TRUE(std::isnan(Fp16BitsToFloat(FloatToFp16Bits(NAN))));
}

TEST(HalfFloat, Bf16RoundsToNearestEven) {
  std::mt19937_64 rng(std::random_device{}());
  std::uniform_real_distribution<float> mag(-120.0f, 120.0f);
  auto decode = [](uint16_t b) { return double(Bf16BitsToFloat(b)); };
  for (int i = 0; i < 200000; ++i) {
    const float f = std::exp2(mag(rng)) * ((rng() & 1) ? 1.0f : -1.0f);
    ExpectNearest(f, FloatToBf16Bits(f), decode);
  }
  EXPECT_EQ(FloatToBf16Bits(1.0f), 0x3f80);
  EXPECT_EQ(Bf16BitsToFloat(0xc000), -2.0f);
  EXPECT_TRUE(std::isnan(Bf16BitsToFloat(FloatToBf16Bits(NAN))));
  EXPECT_TRUE(std::isinf(Bf16BitsToFloat(FloatToBf16Bits(INFINITY))));
}

}  // namespace
}  // namespace pagedkv
