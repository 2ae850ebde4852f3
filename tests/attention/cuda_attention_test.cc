// The CUDA backend against the CPU path on the same inputs: decode (with and without split-KV),
// extend, GQA/MQA, windows, head dims 64/128/256, block sizes 8..128, fp16/bf16; WriteKV,
// CopyBlocks and SwapBlocks (device <-> pinned host). Every test skips when no device is usable.
#include <cuda_runtime.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "attention/cuda/kernels.h"
#include "gtest/gtest.h"
#include "pagedkv/attention/cache_ops.h"
#include "pagedkv/attention/paged_attention.h"
#include "tests/attention/test_util.h"

namespace pagedkv {
namespace {

using testing::BuildPagedBatch;
using testing::PagedBatch;
using testing::RelativeError;
using testing::ToDoubles;
using testing::TypedBuffer;

#define SKIP_WITHOUT_DEVICE()                                                             \
  do {                                                                                    \
    if (!AttentionCudaDeviceAvailable()) {                                                \
      GTEST_SKIP() << "no usable CUDA device in this machine; the CUDA kernels are only " \
                      "compiled here (the CPU tests cover the algorithm)";                \
    }                                                                                     \
  } while (0)

// A device copy of a host buffer, freed on destruction.
class DeviceBuffer {
 public:
  DeviceBuffer(const void* host, size_t bytes) : bytes_(bytes) {
    EXPECT_EQ(cudaMalloc(&ptr_, bytes_ > 0 ? bytes_ : 16), cudaSuccess);
    if (host != nullptr && bytes_ > 0) {
      EXPECT_EQ(cudaMemcpy(ptr_, host, bytes_, cudaMemcpyHostToDevice), cudaSuccess);
    }
  }
  ~DeviceBuffer() { cudaFree(ptr_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* get() const { return ptr_; }
  void CopyTo(void* host) const {
    EXPECT_EQ(cudaMemcpy(host, ptr_, bytes_, cudaMemcpyDeviceToHost), cudaSuccess);
  }

 private:
  void* ptr_ = nullptr;
  size_t bytes_;
};

template <typename T>
size_t Bytes(const std::vector<T>& v) {
  return v.size() * sizeof(T);
}

// Runs the same batch on the CPU and on the device; returns the relative error of the device
// output against the CPU output (both in the storage dtype).
double CompareWithCpu(PagedBatch& batch, int32_t num_q_heads, const std::vector<int32_t>* counts,
                      int32_t window, int32_t max_kv_len_hint, std::mt19937_64& rng) {
  const PagedKVView& hv = batch.view;
  std::vector<int32_t> qo(1, 0);
  if (counts) {
    for (int32_t c : *counts) qo.push_back(qo.back() + c);
  }
  const int64_t num_tokens = counts ? qo.back() : hv.batch_size;
  TypedBuffer q(hv.dtype, num_tokens * num_q_heads * hv.head_dim);
  q.FillRandom(rng, 2.0f);
  TypedBuffer cpu_out(hv.dtype, q.size()), gpu_out(hv.dtype, q.size());
  cpu_out.Poison();
  gpu_out.Poison();

  QueryBatch qb{q.data(),    cpu_out.data(), hv.dtype,
                num_q_heads, num_tokens,     counts ? qo.data() : nullptr};
  AttentionOptions opts;
  opts.backend = Backend::kCpu;
  opts.window_tokens = window;
  absl::Status st =
      counts ? PagedAttentionExtend(hv, qb, opts) : PagedAttentionDecode(hv, qb, opts);
  EXPECT_TRUE(st.ok()) << st.message();

  DeviceBuffer d_pool(batch.pool.data(), batch.pool.bytes());
  DeviceBuffer d_indptr(batch.indptr.data(), Bytes(batch.indptr));
  DeviceBuffer d_indices(batch.indices.data(), Bytes(batch.indices));
  DeviceBuffer d_last(batch.last_page_len.data(), Bytes(batch.last_page_len));
  DeviceBuffer d_qo(qo.data(), Bytes(qo));
  DeviceBuffer d_q(q.data(), q.bytes());
  DeviceBuffer d_out(gpu_out.data(), gpu_out.bytes());  // poisoned on the device too
  PagedKVView dv = hv;
  dv.pool = d_pool.get();
  dv.page_indptr = static_cast<const int32_t*>(d_indptr.get());
  dv.page_indices = static_cast<const int32_t*>(d_indices.get());
  dv.last_page_len = static_cast<const int32_t*>(d_last.get());
  QueryBatch dq{d_q.get(),  d_out.get(),
                hv.dtype,   num_q_heads,
                num_tokens, counts ? static_cast<const int32_t*>(d_qo.get()) : nullptr};
  opts.backend = Backend::kCuda;
  opts.max_kv_len_hint = max_kv_len_hint;
  st = counts ? PagedAttentionExtend(dv, dq, opts) : PagedAttentionDecode(dv, dq, opts);
  EXPECT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  d_out.CopyTo(gpu_out.data());

  std::vector<double> a, b;
  EXPECT_TRUE(ToDoubles(gpu_out, &a)) << "a device output element is NaN/inf (not written?)";
  EXPECT_TRUE(ToDoubles(cpu_out, &b));
  return RelativeError(a, b);
}

std::vector<int32_t> RandomLens(std::mt19937_64& rng, int n, int32_t max_len) {
  std::uniform_int_distribution<int32_t> dist(1, max_len);
  std::vector<int32_t> lens(n);
  for (int32_t& l : lens) l = dist(rng);
  return lens;
}

class CudaAttentionTest : public ::testing::TestWithParam<std::tuple<int32_t, DType>> {
 protected:
  int32_t block_size() const { return std::get<0>(GetParam()); }
  DType dtype() const { return std::get<1>(GetParam()); }
};

TEST_P(CudaAttentionTest, DecodeMatchesCpu) {
  SKIP_WITHOUT_DEVICE();
  PAGEDKV_TEST_RNG(rng);
  for (int32_t head_dim : {64, 128, 256}) {
    for (int32_t ratio : {1, 4, 6, 8, 16}) {
      for (int32_t hint : {0, 2048}) {  // 2048: split-KV with a combine step
        SCOPED_TRACE(::testing::Message()
                     << "head_dim " << head_dim << " ratio " << ratio << " hint " << hint);
        PagedBatch batch;
        BuildPagedBatch(RandomLens(rng, 5, 1500), block_size(), 2, head_dim, dtype(), rng, &batch);
        EXPECT_LT(CompareWithCpu(batch, 2 * ratio, nullptr, 0, hint, rng), 1e-2);
      }
    }
  }
}

TEST_P(CudaAttentionTest, DecodeWithWindowMatchesCpu) {
  SKIP_WITHOUT_DEVICE();
  PAGEDKV_TEST_RNG(rng);
  for (int32_t window : {1, 100, 700}) {
    SCOPED_TRACE(::testing::Message() << "window " << window);
    PagedBatch batch;
    BuildPagedBatch(RandomLens(rng, 4, 1200), block_size(), 2, 128, dtype(), rng, &batch);
    EXPECT_LT(CompareWithCpu(batch, 8, nullptr, window, 1200, rng), 1e-2);
  }
}

TEST_P(CudaAttentionTest, ExtendMatchesCpu) {
  SKIP_WITHOUT_DEVICE();
  PAGEDKV_TEST_RNG(rng);
  for (int32_t window : {0, 33}) {
    PagedBatch batch;
    std::vector<int32_t> lens = RandomLens(rng, 4, 600);
    lens.push_back(70);
    BuildPagedBatch(lens, block_size(), 2, 128, dtype(), rng, &batch);
    std::vector<int32_t> counts;
    for (size_t i = 0; i + 1 < lens.size(); ++i) {
      counts.push_back(std::uniform_int_distribution<int32_t>(0, std::min(lens[i], 50))(rng));
    }
    counts.push_back(70);  // a whole prefill
    EXPECT_LT(CompareWithCpu(batch, 8, &counts, window, 600, rng), 1e-2);
  }
}

std::string ParamName(const ::testing::TestParamInfo<std::tuple<int32_t, DType>>& info) {
  return "bs" + std::to_string(std::get<0>(info.param)) + "_" +
         std::string(DTypeName(std::get<1>(info.param)));
}

INSTANTIATE_TEST_SUITE_P(BlockSizesAndDtypes, CudaAttentionTest,
                         ::testing::Combine(::testing::Values(8, 16, 32, 64, 128),
                                            ::testing::Values(DType::kFp16, DType::kBf16)),
                         ParamName);

TEST(CudaCacheOps, WriteKVMatchesCpu) {
  SKIP_WITHOUT_DEVICE();
  PAGEDKV_TEST_RNG(rng);
  for (int32_t head_dim : {64, 128, 36}) {  // 36: rows not a multiple of 16 bytes
    PagedBatch batch;
    BuildPagedBatch({40, 90}, 16, 4, head_dim, DType::kBf16, rng, &batch, false, 8);
    PagedKVView hv = batch.view;
    std::vector<int64_t> slots = {5, -1, 17, 100, -3, int64_t{hv.num_blocks} * 16 - 1};
    TypedBuffer k(DType::kBf16, int64_t(slots.size()) * 4 * head_dim), v(DType::kBf16, k.size());
    k.FillRandom(rng);
    v.FillRandom(rng);
    DeviceBuffer d_pool(batch.pool.data(), batch.pool.bytes());
    DeviceBuffer d_slots(slots.data(), Bytes(slots));
    DeviceBuffer d_k(k.data(), k.bytes()), d_v(v.data(), v.bytes());
    hv.slot_mapping = slots.data();
    hv.num_slots = int64_t(slots.size());
    ASSERT_TRUE(WriteKV(hv, k.data(), v.data(), {Backend::kCpu}).ok());
    PagedKVView dv = hv;
    dv.pool = d_pool.get();
    dv.slot_mapping = static_cast<const int64_t*>(d_slots.get());
    ASSERT_TRUE(WriteKV(dv, d_k.get(), d_v.get(), {Backend::kCuda}).ok());
    std::vector<uint8_t> got(batch.pool.bytes());
    d_pool.CopyTo(got.data());
    EXPECT_EQ(std::memcmp(got.data(), batch.pool.data(), got.size()), 0) << head_dim;
  }
}

TEST(CudaCacheOps, CopyAndSwapBlocksMatchCpu) {
  SKIP_WITHOUT_DEVICE();
  PAGEDKV_TEST_RNG(rng);
  const uint64_t bytes_per_block = 16 * 2 * 8 * 128 * 2;
  const int32_t num_blocks = 32;
  std::vector<uint8_t> host(num_blocks * bytes_per_block);
  for (auto& x : host) x = static_cast<uint8_t>(rng());
  DeviceBuffer dev(host.data(), host.size());
  const std::vector<BlockCopy> copies = {{0, 5}, {1, 6}, {2, 7}, {3, 20}, {0, 31}};
  ASSERT_TRUE(CopyBlocks(host.data(), bytes_per_block, num_blocks, copies, {Backend::kCpu}).ok());
  ASSERT_TRUE(CopyBlocks(dev.get(), bytes_per_block, num_blocks, copies, {Backend::kCuda}).ok());
  std::vector<uint8_t> got(host.size());
  dev.CopyTo(got.data());
  EXPECT_EQ(got, host);

  // Swap out to a pinned host pool on a non-default stream (batched copy) and back in.
  void* pinned = nullptr;
  ASSERT_EQ(cudaHostAlloc(&pinned, 8 * bytes_per_block, cudaHostAllocDefault), cudaSuccess);
  std::memset(pinned, 0, 8 * bytes_per_block);
  cudaStream_t stream;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  const std::vector<BlockCopy> out_pairs = {{4, 0}, {5, 1}, {6, 2}, {30, 7}, {9, 4}};
  ASSERT_TRUE(SwapBlocks(dev.get(), num_blocks, pinned, 8, bytes_per_block, out_pairs,
                         {Backend::kAuto, stream})
                  .ok());
  ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  for (const BlockCopy& p : out_pairs) {
    EXPECT_EQ(0, std::memcmp(static_cast<uint8_t*>(pinned) + p.dst * bytes_per_block,
                             host.data() + p.src * bytes_per_block, bytes_per_block));
  }
  const std::vector<BlockCopy> in_pairs = {{0, 10}, {1, 11}, {7, 12}};
  ASSERT_TRUE(SwapBlocks(pinned, 8, dev.get(), num_blocks, bytes_per_block, in_pairs,
                         {Backend::kAuto, nullptr})
                  .ok());
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  dev.CopyTo(got.data());
  EXPECT_EQ(0, std::memcmp(got.data() + 10 * bytes_per_block, host.data() + 4 * bytes_per_block,
                           bytes_per_block));
  EXPECT_EQ(0, std::memcmp(got.data() + 12 * bytes_per_block, host.data() + 30 * bytes_per_block,
                           bytes_per_block));
  cudaStreamDestroy(stream);
  cudaFreeHost(pinned);
}

// The split-KV policy is host code: it runs without a device.
TEST(CudaSplitPolicy, FillsTheSmsWithoutTinySplits) {
  using attention_cuda::ChooseNumSplits;
  // Batch 1 x 8 KV heads on 132 SMs: about two waves of blocks.
  EXPECT_EQ(ChooseNumSplits(8, 32768, 132), 33);
  // Enough blocks already: no split.
  EXPECT_EQ(ChooseNumSplits(2048, 32768, 132), 1);
  // Short context: at least 256 tokens per split.
  EXPECT_EQ(ChooseNumSplits(8, 300, 132), 2);
  EXPECT_EQ(ChooseNumSplits(8, 256, 132), 1);
  // Unknown length (hint 0): one split; never more than 64.
  EXPECT_EQ(ChooseNumSplits(8, 0, 132), 1);
  EXPECT_EQ(ChooseNumSplits(1, 1 << 20, 132), 64);
}

TEST(CudaBackend, AutoOnHostMemoryRunsOnCpu) {
  // Holds with or without a device: host pointers never go to the kernels under kAuto.
  std::vector<uint8_t> pool(4 * 64);
  pool[0] = 7;
  ASSERT_TRUE(CopyBlocks(pool.data(), 64, 4, {{0, 1}}, {Backend::kAuto}).ok());
  EXPECT_EQ(pool[64], 7);
  EXPECT_TRUE(AttentionBuiltWithCuda());
}

}  // namespace
}  // namespace pagedkv
