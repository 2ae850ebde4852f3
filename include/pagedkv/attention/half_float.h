// fp16 (IEEE binary16) and bf16 (bfloat16) as raw 16-bit patterns, with our own conversions to and
// from float (round to nearest even; NaN stays NaN). The CPU kernels and the tests use these; no
// hardware half type is needed on the CPU.
//
//   uint16_t h = pagedkv::FloatToFp16Bits(0.5f);   // 0x3800
//   float f = pagedkv::Bf16BitsToFloat(0x3f80);    // 1.0f
#ifndef PAGEDKV_ATTENTION_HALF_FLOAT_H_
#define PAGEDKV_ATTENTION_HALF_FLOAT_H_

#include <cstdint>
#include <cstring>

namespace pagedkv {

inline uint32_t FloatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}
inline float BitsToFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

// Exact: every fp16 value (normal, subnormal, inf, NaN) is a float. Branch-free so loops over it
// vectorize: the 15 exponent+mantissa bits shifted into float position are the value times
// 2^-112, which one multiply fixes (also for subnormals); inf/NaN get the all-ones exponent.
inline float Fp16BitsToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t em = h & 0x7fffu;
  const float scaled = BitsToFloat(em << 13) * 0x1p112f;
  const uint32_t inf_nan = em >= 0x7c00u ? 0x7f800000u : 0u;
  return BitsToFloat(FloatBits(scaled) | inf_nan | sign);
}

// Round to nearest even; overflow gives inf, NaN gives a quiet NaN, tiny values go subnormal/zero.
inline uint16_t FloatToFp16Bits(float f) {
  const uint32_t x = FloatBits(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);   // NaN
  if (ax >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520: inf
  if (ax < 0x38800000u) {
    // Below the smallest normal (2^-14): the result is a subnormal k * 2^-24. Adding 0.5 (2^-1)
    // makes the float hardware round at the 2^-24 position for us (nearest even).
    const float r = BitsToFloat(ax) + 0.5f;
    return static_cast<uint16_t>(sign | (FloatBits(r) - 0x3f000000u));
  }
  // Normal: rebias the exponent (127 -> 15) and round the 13 dropped mantissa bits.
  const uint32_t odd = (ax >> 13) & 1u;
  const uint32_t rounded = ax + 0xfffu + odd - (112u << 23);
  return static_cast<uint16_t>(sign | (rounded >> 13));
}

inline float Bf16BitsToFloat(uint16_t b) { return BitsToFloat(static_cast<uint32_t>(b) << 16); }

inline uint16_t FloatToBf16Bits(float f) {
  const uint32_t x = FloatBits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // NaN
  const uint32_t odd = (x >> 16) & 1u;
  return static_cast<uint16_t>((x + 0x7fffu + odd) >> 16);
}

}  // namespace pagedkv

#endif  // PAGEDKV_ATTENTION_HALF_FLOAT_H_
