// Private to scheduler/: a small seeded generator whose output is identical on every platform and
// standard library (the std:: distributions are implementation-defined), used by the synthetic
// generators and the Poisson arrivals of length-only traces.
#ifndef PAGEDKV_SCHEDULER_INTERNAL_W_RANDOM_H_
#define PAGEDKV_SCHEDULER_INTERNAL_W_RANDOM_H_

#include <cmath>
#include <cstdint>

namespace pagedkv::internal {

// SplitMix64 finalizer: a bijection on 64-bit values with good avalanche.
inline uint64_t Mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// xoshiro256** seeded through SplitMix64.
class Rng {
 public:
  explicit Rng(uint64_t seed) {
    uint64_t x = seed;
    for (uint64_t& s : s_) {
      x += 0x9e3779b97f4a7c15ull;
      s = Mix64(x);
    }
  }
  uint64_t Next() {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }
  // Uniform in [0, 1).
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  // Uniform in (0, 1]: safe under log().
  double UniformPositive() { return 1.0 - Uniform(); }
  // Uniform integer in [0, n), n >= 1 (multiply-shift; the bias is negligible for small n).
  uint64_t Below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(Next()) * n) >> 64);
  }
  double Exponential(double rate) { return -std::log(UniformPositive()) / rate; }
  // Standard normal (Box-Muller; one value per call keeps the stream simple to reason about).
  double Normal() {
    const double u1 = UniformPositive();
    const double u2 = Uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  }
  // Gamma(shape, scale = 1): Marsaglia and Tsang; shape < 1 through the boost u^(1/shape).
  double Gamma(double shape) {
    // A huge shape (a coefficient of variation near 0) has a relative spread of 1/sqrt(shape):
    // its mean is the value. (The loop below would never end for an infinite shape.)
    if (!(shape < 1e12)) return shape;
    if (shape < 1.0) return Gamma(shape + 1.0) * std::pow(UniformPositive(), 1.0 / shape);
    const double d = shape - 1.0 / 3.0;
    const double c = 1.0 / std::sqrt(9.0 * d);
    while (true) {
      double x = Normal();
      double v = 1.0 + c * x;
      if (v <= 0) continue;
      v = v * v * v;
      const double u = UniformPositive();
      if (std::log(u) < 0.5 * x * x + d - d * v + d * std::log(v)) return d * v;
    }
  }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

}  // namespace pagedkv::internal

#endif  // PAGEDKV_SCHEDULER_INTERNAL_W_RANDOM_H_
