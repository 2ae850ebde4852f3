// The two instruction-set builds of the CPU hot loops agree (to float rounding), and the fp16
// conversion matches the scalar definition on every pattern.
#include "attention/internal/cpu_kernels.h"

#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "pagedkv/attention/half_float.h"

namespace pagedkv::attention_internal {
namespace {

void ExpectConversionsExact(const CpuKernelTable& k) {
  std::vector<uint16_t> all(65536);
  for (uint32_t i = 0; i < 65536; ++i) all[i] = static_cast<uint16_t>(i);
  std::vector<float> out(all.size());
  k.fp16_to_float(all.data(), out.data(), int64_t(all.size()));
  for (uint32_t i = 0; i < 65536; ++i) {
    const float want = Fp16BitsToFloat(static_cast<uint16_t>(i));
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(out[i])) << k.name << " " << i;
    } else {
      ASSERT_EQ(out[i], want) << k.name << " " << i;
    }
  }
  k.bf16_to_float(all.data(), out.data(), int64_t(all.size()));
  for (uint32_t i = 0; i < 65536; ++i) {
    const float want = Bf16BitsToFloat(static_cast<uint16_t>(i));
    if (!std::isnan(want)) {
      ASSERT_EQ(out[i], want) << k.name << " " << i;
    }
  }
}

TEST(CpuKernels, ConversionsExact) {
  ExpectConversionsExact(CpuKernelsBaseline());
  if (CpuKernelsAvx2() != nullptr) ExpectConversionsExact(*CpuKernelsAvx2());
}

TEST(CpuKernels, Avx2TileMatchesBaseline) {
  const CpuKernelTable* avx2 = CpuKernelsAvx2();
  if (avx2 == nullptr) GTEST_SKIP() << "this CPU lacks AVX2/FMA/F16C";
  std::mt19937_64 rng(std::random_device{}());
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  const int32_t rows = 6, n = 29, d = 72;
  std::vector<float> q(rows * d), k(n * d), v(n * d);
  for (auto* vec : {&q, &k, &v}) {
    for (float& x : *vec) x = dist(rng);
  }
  std::vector<const float*> krows(n), vrows(n);
  for (int32_t j = 0; j < n; ++j) {
    krows[j] = k.data() + j * d;
    vrows[j] = v.data() + j * d;
  }
  std::vector<RowRange> ranges(rows);
  for (int32_t r = 0; r < rows; ++r) ranges[r] = {100 + r, 100 + 20 + r};
  std::vector<float> m1(rows, -INFINITY), l1(rows, 0), acc1(rows * d, 0), scratch(n);
  std::vector<float> m2 = m1, l2 = l1, acc2 = acc1;
  CpuKernelsBaseline().attend_tile(q.data(), rows, ranges.data(), 100, n, krows.data(),
                                   vrows.data(), d, m1.data(), l1.data(), acc1.data(),
                                   scratch.data());
  avx2->attend_tile(q.data(), rows, ranges.data(), 100, n, krows.data(), vrows.data(), d, m2.data(),
                    l2.data(), acc2.data(), scratch.data());
  for (int32_t r = 0; r < rows; ++r) {
    EXPECT_NEAR(m1[r], m2[r], 1e-5);
    EXPECT_NEAR(l1[r], l2[r], 1e-4 * l1[r]);
  }
  for (int32_t i = 0; i < rows * d; ++i) EXPECT_NEAR(acc1[i], acc2[i], 1e-4);
}

}  // namespace
}  // namespace pagedkv::attention_internal
