// CPU paged attention against the fp64 reference: fresh random inputs, ragged lengths, random page
// tables, block sizes 1/3/16/17/128, GQA ratios 1/4/8, head dims 64/128/256, windows, extend.
#include "pagedkv/attention/paged_attention.h"

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "pagedkv/core/absl_compat.h"
#include "tests/attention/reference_attention.h"
#include "tests/attention/test_util.h"

namespace pagedkv {
namespace {

using testing::BuildPagedBatch;
using testing::PagedBatch;
using testing::ReferenceAttention;
using testing::RelativeError;
using testing::ToDoubles;
using testing::TypedBuffer;

double Tolerance(DType kv) { return kv == DType::kFp32 ? 1e-5 : 1e-2; }

std::vector<int32_t> RandomLens(std::mt19937_64& rng, int n, int32_t max_len) {
  std::uniform_int_distribution<int32_t> dist(1, max_len);
  std::vector<int32_t> lens(n);
  for (int32_t& l : lens) l = dist(rng);
  return lens;
}

struct Case {
  int32_t ratio = 1;  // q heads per KV head
  int32_t head_dim = 64;
  int32_t window = 0;
  DType q_dtype;  // defaults to the KV dtype
};

// Runs decode or extend (qo counts given) and returns the relative error against the reference.
double RunAndCompare(PagedBatch& batch, DType q_dtype, int32_t num_q_heads,
                     const std::vector<int32_t>* qo_counts, int32_t window, float scale,
                     std::mt19937_64& rng, CpuWorkerPool* pool = nullptr) {
  const PagedKVView& v = batch.view;
  std::vector<int32_t> qo_indptr(1, 0);
  if (qo_counts) {
    for (int32_t c : *qo_counts) qo_indptr.push_back(qo_indptr.back() + c);
  }
  const int64_t num_tokens = qo_counts ? qo_indptr.back() : v.batch_size;
  TypedBuffer q(q_dtype, num_tokens * num_q_heads * v.head_dim);
  TypedBuffer out(q_dtype, q.size());
  q.FillRandom(rng, 2.0f);
  out.Poison();
  QueryBatch qb;
  qb.q = q.data();
  qb.out = out.data();
  qb.dtype = q_dtype;
  qb.num_q_heads = num_q_heads;
  qb.num_tokens = num_tokens;
  qb.qo_indptr = qo_counts ? qo_indptr.data() : nullptr;
  AttentionOptions opts;
  opts.backend = Backend::kCpu;
  opts.window_tokens = window;
  opts.softmax_scale = scale;
  opts.cpu_pool = pool;
  const absl::Status st =
      qo_counts ? PagedAttentionExtend(v, qb, opts) : PagedAttentionDecode(v, qb, opts);
  EXPECT_TRUE(st.ok()) << st.message();
  std::vector<double> got;
  EXPECT_TRUE(ToDoubles(out, &got)) << "an output element is NaN/inf (not written?)";
  const double used_scale = scale > 0 ? scale : 1.0 / std::sqrt(double(v.head_dim));
  const std::vector<double> ref = ReferenceAttention(
      v, q, num_q_heads, qo_counts ? qo_indptr.data() : nullptr, used_scale, window);
  return RelativeError(got, ref);
}

class PagedAttentionCpuTest : public ::testing::TestWithParam<std::tuple<int32_t, DType>> {
 protected:
  int32_t block_size() const { return std::get<0>(GetParam()); }
  DType dtype() const { return std::get<1>(GetParam()); }
};

TEST_P(PagedAttentionCpuTest, DecodeMatchesReference) {
  PAGEDKV_TEST_RNG(rng);
  const Case cases[] = {{1, 64}, {4, 128}, {8, 256}, {4, 64}, {1, 128}, {8, 128}};
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message() << "ratio " << c.ratio << " head_dim " << c.head_dim);
    PagedBatch batch;
    BuildPagedBatch(RandomLens(rng, 5, 300), block_size(), /*num_kv_heads=*/2, c.head_dim, dtype(),
                    rng, &batch);
    EXPECT_LT(RunAndCompare(batch, dtype(), 2 * c.ratio, nullptr, 0, 0.0f, rng),
              Tolerance(dtype()));
  }
}

TEST_P(PagedAttentionCpuTest, DecodeWithSlidingWindow) {
  PAGEDKV_TEST_RNG(rng);
  for (int32_t window : {1, 5, 40, 1000}) {
    SCOPED_TRACE(::testing::Message() << "window " << window);
    PagedBatch batch;
    BuildPagedBatch(RandomLens(rng, 4, 200), block_size(), 2, 64, dtype(), rng, &batch);
    EXPECT_LT(RunAndCompare(batch, dtype(), 8, nullptr, window, 0.0f, rng), Tolerance(dtype()));
  }
}

TEST_P(PagedAttentionCpuTest, ExtendMatchesReference) {
  PAGEDKV_TEST_RNG(rng);
  for (int32_t window : {0, 7}) {
    for (int32_t ratio : {1, 4}) {
      SCOPED_TRACE(::testing::Message() << "window " << window << " ratio " << ratio);
      PagedBatch batch;
      std::vector<int32_t> lens = RandomLens(rng, 4, 150);
      lens.push_back(37);  // one whole prefill (all tokens are queries)
      BuildPagedBatch(lens, block_size(), 2, 64, dtype(), rng, &batch);
      std::vector<int32_t> counts;
      for (size_t i = 0; i + 1 < lens.size(); ++i) {
        counts.push_back(std::uniform_int_distribution<int32_t>(1, std::min(lens[i], 40))(rng));
      }
      counts.push_back(37);
      EXPECT_LT(RunAndCompare(batch, dtype(), 2 * ratio, &counts, window, 0.0f, rng),
                Tolerance(dtype()));
    }
  }
}

std::string ParamName(const ::testing::TestParamInfo<std::tuple<int32_t, DType>>& info) {
  return "bs" + std::to_string(std::get<0>(info.param)) + "_" +
         std::string(DTypeName(std::get<1>(info.param)));
}

INSTANTIATE_TEST_SUITE_P(BlockSizesAndDtypes, PagedAttentionCpuTest,
                         ::testing::Combine(::testing::Values(1, 3, 16, 17, 128),
                                            ::testing::Values(DType::kFp32, DType::kFp16,
                                                              DType::kBf16)),
                         ParamName);

TEST(PagedAttentionCpu, Fp32QueriesOverHalfKv) {
  PAGEDKV_TEST_RNG(rng);
  for (DType kv : {DType::kFp16, DType::kBf16}) {
    PagedBatch batch;
    BuildPagedBatch(RandomLens(rng, 3, 100), 16, 2, 128, kv, rng, &batch);
    EXPECT_LT(RunAndCompare(batch, DType::kFp32, 8, nullptr, 0, 0.0f, rng), 1e-5);
  }
}

TEST(PagedAttentionCpu, CustomScaleAndOddHeadDim) {
  PAGEDKV_TEST_RNG(rng);
  PagedBatch batch;
  BuildPagedBatch(RandomLens(rng, 3, 90), 5, 3, 40, DType::kFp32, rng, &batch);
  EXPECT_LT(RunAndCompare(batch, DType::kFp32, 6, nullptr, 0, 0.3f, rng), 1e-5);
}

TEST(PagedAttentionCpu, LongContextWithMqa) {
  PAGEDKV_TEST_RNG(rng);
  PagedBatch batch;
  BuildPagedBatch({1500, 700}, 16, 1, 64, DType::kFp32, rng, &batch);
  EXPECT_LT(RunAndCompare(batch, DType::kFp32, 8, nullptr, 0, 0.0f, rng), 1e-5);
}

// Long contexts in small batches split each sequence's KV across work items and merge the
// partial softmax states: decode, extend (rows whose window misses a whole split), and windows.
TEST(PagedAttentionCpu, SplitKvMatchesReference) {
  PAGEDKV_TEST_RNG(rng);
  for (DType dtype : {DType::kFp32, DType::kFp16}) {
    for (int32_t window : {0, 700}) {
      SCOPED_TRACE(::testing::Message() << DTypeName(dtype) << " window " << window);
      PagedBatch batch;
      BuildPagedBatch({2600, 1200}, 16, 2, 128, dtype, rng, &batch);
      EXPECT_LT(RunAndCompare(batch, dtype, 8, nullptr, window, 0.0f, rng), Tolerance(dtype));
      const std::vector<int32_t> counts = {40, 1};
      EXPECT_LT(RunAndCompare(batch, dtype, 8, &counts, window, 0.0f, rng), Tolerance(dtype));
    }
  }
}

// The work plan does not depend on the thread count, so the bits do not either (split-KV
// included: the contexts below are long enough to be split).
TEST(PagedAttentionCpu, WorkerPoolGivesSameBitsAsTemporaryThreads) {
  PAGEDKV_TEST_RNG(rng);
  PagedBatch batch;
  std::vector<int32_t> lens = RandomLens(rng, 6, 200);
  lens.push_back(2500);
  BuildPagedBatch(lens, 16, 2, 64, DType::kBf16, rng, &batch);
  TypedBuffer q(DType::kBf16, 7 * 8 * 64), out1(DType::kBf16, q.size()),
      out2(DType::kBf16, q.size());
  q.FillRandom(rng);
  out1.Poison();
  out2.Poison();
  QueryBatch qb{q.data(), out1.data(), DType::kBf16, 8, 7, nullptr};
  AttentionOptions opts;
  opts.backend = Backend::kCpu;
  ASSERT_TRUE(PagedAttentionDecode(batch.view, qb, opts).ok());
  CpuWorkerPool pool(3);
  opts.cpu_pool = &pool;
  qb.out = out2.data();
  ASSERT_TRUE(PagedAttentionDecode(batch.view, qb, opts).ok());
  EXPECT_EQ(std::memcmp(out1.data(), out2.data(), out1.bytes()), 0);
}

TEST(PagedAttentionCpu, EmptyBatchIsOk) {
  PagedKVView v =
      PagedKVView::ForLayer(reinterpret_cast<void*>(64), DType::kFp16, 4, 1, 0, 1, 64, 16);
  QueryBatch qb;
  qb.num_q_heads = 1;
  AttentionOptions opts;
  opts.backend = Backend::kCpu;
  EXPECT_TRUE(PagedAttentionDecode(v, qb, opts).ok());
}

// ---- Bad input: InvalidArgument with a message, output untouched. ----
class PagedAttentionBadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    std::mt19937_64 rng(7);
    BuildPagedBatch({20, 33}, 16, 2, 64, DType::kFp16, rng, &batch_);
    q_ = TypedBuffer(DType::kFp16, 2 * 4 * 64);
    out_ = TypedBuffer(DType::kFp16, q_.size());
    q_.FillRandom(rng);
    out_.Poison();
    qb_ = QueryBatch{q_.data(), out_.data(), DType::kFp16, 4, 2, nullptr};
    opts_.backend = Backend::kCpu;
  }
  absl::Status Decode() { return PagedAttentionDecode(batch_.view, qb_, opts_); }
  void ExpectInvalid(const absl::Status& st, const std::string& fragment) {
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st.message();
    EXPECT_NE(std::string(st.message()).find(fragment), std::string::npos) << st.message();
    std::vector<double> d;
    EXPECT_FALSE(ToDoubles(out_, &d)) << "output was written by a failed call";
  }
  PagedBatch batch_;
  TypedBuffer q_, out_;
  QueryBatch qb_;
  AttentionOptions opts_;
};

TEST_F(PagedAttentionBadInput, HeadsNotAMultiple) {
  qb_.num_q_heads = 3;
  ExpectInvalid(Decode(), "multiple of num_kv_heads");
}

TEST_F(PagedAttentionBadInput, LastPageLenOutOfRange) {
  batch_.last_page_len[1] = 0;
  ExpectInvalid(Decode(), "last_page_len[1] is 0");
  batch_.last_page_len[1] = 17;
  ExpectInvalid(Decode(), "last_page_len[1] is 17");
}

TEST_F(PagedAttentionBadInput, BlockIdOutsidePool) {
  batch_.indices[2] = batch_.view.num_blocks;
  ExpectInvalid(Decode(), "outside the pool");
  batch_.indices[2] = -1;
  ExpectInvalid(Decode(), "outside the pool");
}

TEST_F(PagedAttentionBadInput, SequenceWithoutPages) {
  batch_.indptr[1] = 0;
  ExpectInvalid(Decode(), "at least one page");
}

TEST_F(PagedAttentionBadInput, IndptrNotStartingAtZero) {
  batch_.indptr[0] = 1;
  ExpectInvalid(Decode(), "page_indptr[0]");
}

TEST_F(PagedAttentionBadInput, DecodeTokenCountMismatch) {
  qb_.num_tokens = 3;
  ExpectInvalid(Decode(), "num_tokens 3 != batch_size 2");
}

TEST_F(PagedAttentionBadInput, DtypeMismatch) {
  qb_.dtype = DType::kBf16;
  ExpectInvalid(Decode(), "must equal the KV dtype");
}

TEST_F(PagedAttentionBadInput, UnsupportedKvDtype) {
  batch_.view.dtype = DType::kInt8;
  ExpectInvalid(Decode(), "not supported");
}

TEST_F(PagedAttentionBadInput, NegativeWindowAndBadScale) {
  opts_.window_tokens = -1;
  ExpectInvalid(Decode(), "window_tokens");
  opts_.window_tokens = 0;
  opts_.softmax_scale = -1.0f;
  ExpectInvalid(Decode(), "softmax_scale");
}

TEST_F(PagedAttentionBadInput, BadStrides) {
  batch_.view.layer_offset_elems = batch_.view.block_stride_elems;
  ExpectInvalid(Decode(), "ForLayer");
}

TEST_F(PagedAttentionBadInput, NullPointers) {
  batch_.view.page_indices = nullptr;
  ExpectInvalid(Decode(), "page_indices");
  batch_.view.page_indices = batch_.indices.data();
  qb_.out = nullptr;
  ExpectInvalid(Decode(), "QueryBatch.q");
}

TEST_F(PagedAttentionBadInput, ExtendQueriesLongerThanKv) {
  std::vector<int32_t> qo = {0, 21, 22};  // sequence 0 has 20 KV tokens
  qb_.qo_indptr = qo.data();
  qb_.num_tokens = 22;
  ExpectInvalid(PagedAttentionExtend(batch_.view, qb_, opts_), "21 query tokens");
  qo = {0, 1, 3};
  qb_.num_tokens = 2;
  ExpectInvalid(PagedAttentionExtend(batch_.view, qb_, opts_), "qo_indptr[batch_size=2] is 3");
  qb_.qo_indptr = nullptr;
  ExpectInvalid(PagedAttentionExtend(batch_.view, qb_, opts_), "qo_indptr");
}

TEST_F(PagedAttentionBadInput, CudaBackendUnavailable) {
  if (AttentionCudaDeviceAvailable()) GTEST_SKIP() << "a CUDA device is present";
  opts_.backend = Backend::kCuda;
  const absl::Status st = Decode();
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st.message();
}

}  // namespace
}  // namespace pagedkv
