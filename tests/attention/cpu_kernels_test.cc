// Every instruction-set build of the CPU hot loops: the fp16/bf16 conversions match the scalar
// definition on every pattern, and a sequence of attend_tile steps (ragged tiles, per-row masks,
// rows that see nothing in some tiles) gives the fp64 softmax-weighted sum, for each KV storage
// format, head dims that take the vector loops and ones that fall back to the generic loops, and
// row counts around each register-block size.
#include "attention/internal/cpu_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "pagedkv/attention/half_float.h"
#include "tests/attention/test_util.h"

namespace pagedkv::attention_internal {
namespace {

std::vector<const CpuKernelTable*> AvailableTables() {
  std::vector<const CpuKernelTable*> tables = {&CpuKernelsBaseline()};
  if (CpuKernelsAvx2() != nullptr) tables.push_back(CpuKernelsAvx2());
  if (CpuKernelsAvx512() != nullptr) tables.push_back(CpuKernelsAvx512());
  return tables;
}

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
  for (const CpuKernelTable* t : AvailableTables()) ExpectConversionsExact(*t);
}

TEST(CpuKernels, ChosenTableIsTheWidestAvailable) {
  const char* cap = std::getenv("PAGEDKV_CPU_KERNELS");
  if (cap != nullptr && *cap != '\0') GTEST_SKIP() << "PAGEDKV_CPU_KERNELS=" << cap << " caps it";
  EXPECT_EQ(&CpuKernels(), AvailableTables().back()) << CpuKernels().name;
}

// K/V storage of one format: the rows, and their exact values as double.
struct TileRows {
  std::vector<float> f32;
  std::vector<uint16_t> u16;
  std::vector<double> exact;
};

TileRows MakeRows(KvFormat format, int64_t n, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  TileRows rows;
  rows.exact.resize(n);
  if (format == KvFormat::kFp32) rows.f32.resize(n);
  if (format != KvFormat::kFp32) rows.u16.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    const float x = dist(rng);
    if (format == KvFormat::kFp32) {
      rows.f32[i] = x;
      rows.exact[i] = x;
    } else if (format == KvFormat::kFp16) {
      rows.u16[i] = FloatToFp16Bits(x);
      rows.exact[i] = Fp16BitsToFloat(rows.u16[i]);
    } else {
      rows.u16[i] = FloatToBf16Bits(x);
      rows.exact[i] = Bf16BitsToFloat(rows.u16[i]);
    }
  }
  return rows;
}

const void* RowPtr(const TileRows& rows, KvFormat format, int64_t elem) {
  return format == KvFormat::kFp32 ? static_cast<const void*>(rows.f32.data() + elem)
                                   : static_cast<const void*>(rows.u16.data() + elem);
}

// Runs `num_rows` query rows over `num_tokens` KV tokens in tiles of random sizes (1..32) and
// compares acc / l with the fp64 softmax over each row's range.
void CheckTileSequence(const CpuKernelTable& table, KvFormat format, int32_t head_dim,
                       int32_t num_rows, std::mt19937_64& rng) {
  const int32_t d = head_dim;
  const int32_t base_pos = 1000;  // absolute position of token 0
  const int32_t num_tokens = 97;
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> q(size_t(num_rows) * d);
  // Scores of a few units, as a pre-scaled query gives: the softmax is far from uniform.
  for (float& x : q) x = 0.4f * dist(rng);
  const TileRows k = MakeRows(format, int64_t{num_tokens} * d, rng);
  const TileRows v = MakeRows(format, int64_t{num_tokens} * d, rng);
  // Ranges: causal-style ends, window-style starts; every row sees at least one token.
  std::vector<RowRange> ranges(num_rows);
  std::uniform_int_distribution<int32_t> pos(0, num_tokens - 1);
  for (RowRange& r : ranges) {
    int32_t a = pos(rng), b = pos(rng);
    if (rng() % 3 == 0) a = 0;
    if (rng() % 3 == 0) b = num_tokens - 1;
    r = {base_pos + std::min(a, b), base_pos + std::max(a, b)};
  }

  std::vector<float> m(num_rows, -INFINITY), l(num_rows, 0.0f), acc(size_t(num_rows) * d, 0.0f);
  std::vector<float> scratch(size_t(TileScratchFloats(d)), NAN);
  std::uniform_int_distribution<int32_t> tile_len(1, kMaxTileTokens);
  std::vector<const void*> krows(kMaxTileTokens), vrows(kMaxTileTokens);
  for (int32_t j0 = 0; j0 < num_tokens;) {
    const int32_t n = std::min(tile_len(rng), num_tokens - j0);
    for (int32_t j = 0; j < n; ++j) {
      krows[j] = RowPtr(k, format, int64_t{j0 + j} * d);
      vrows[j] = RowPtr(v, format, int64_t{j0 + j} * d);
    }
    TileArgs args;
    args.q = q.data();
    args.num_rows = num_rows;
    args.ranges = ranges.data();
    args.t0 = base_pos + j0;
    args.n = n;
    args.krows = krows.data();
    args.vrows = vrows.data();
    args.format = format;
    args.head_dim = d;
    args.m = m.data();
    args.l = l.data();
    args.acc = acc.data();
    args.scratch = scratch.data();
    table.attend_tile(args);
    j0 += n;
  }

  std::vector<double> got, want;
  for (int32_t r = 0; r < num_rows; ++r) {
    const int32_t lo = ranges[r].lo - base_pos, hi = ranges[r].hi - base_pos;
    std::vector<double> s(hi - lo + 1);
    double s_max = -INFINITY;
    for (int32_t t = lo; t <= hi; ++t) {
      double dot = 0;
      for (int32_t i = 0; i < d; ++i)
        dot += double(q[size_t(r) * d + i]) * k.exact[size_t(t) * d + i];
      s[t - lo] = dot;
      s_max = std::max(s_max, dot);
    }
    double sum = 0;
    std::vector<double> out(d, 0.0);
    for (int32_t t = lo; t <= hi; ++t) {
      const double p = std::exp2(s[t - lo] - s_max);
      sum += p;
      for (int32_t i = 0; i < d; ++i) out[i] += p * v.exact[size_t(t) * d + i];
    }
    EXPECT_NEAR(m[r], s_max, 1e-5 * std::max(1.0, std::abs(s_max))) << "row " << r;
    for (int32_t i = 0; i < d; ++i) {
      got.push_back(double(acc[size_t(r) * d + i]) / l[r]);
      want.push_back(out[i] / sum);
    }
  }
  EXPECT_LT(testing::RelativeError(got, want), 1e-5);
}

TEST(CpuKernels, TileSequencesMatchFp64) {
  PAGEDKV_TEST_RNG(rng);
  const KvFormat formats[] = {KvFormat::kFp32, KvFormat::kFp16, KvFormat::kBf16};
  const char* format_names[] = {"fp32", "fp16", "bf16"};
  // 64/128/256: the vector loops; 40: a 2-vector and a 1-vector slice with AVX2 (the AVX-512
  // table hands it to the AVX2 loops); 36: the generic loops everywhere.
  for (const CpuKernelTable* table : AvailableTables()) {
    for (int f = 0; f < 3; ++f) {
      for (int32_t head_dim : {64, 128, 256, 40, 36}) {
        for (int32_t rows : {1, 3, 4, 5, 8, 11, 16}) {
          SCOPED_TRACE(std::string(table->name) + " " + format_names[f] + " head_dim " +
                       std::to_string(head_dim) + " rows " + std::to_string(rows));
          CheckTileSequence(*table, formats[f], head_dim, rows, rng);
        }
      }
    }
  }
}

}  // namespace
}  // namespace pagedkv::attention_internal
