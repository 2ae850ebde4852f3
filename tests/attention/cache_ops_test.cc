// Cache ops on the CPU: WriteKV (negative slots skipped, out-of-range rejected before any write),
// CopyBlocks and SwapBlocks against a simple model, and their bad-input errors.
#include "pagedkv/attention/cache_ops.h"

#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/attention/test_util.h"

namespace pagedkv {
namespace {

using testing::BuildPagedBatch;
using testing::PagedBatch;
using testing::TypedBuffer;

class CacheOpsTest : public ::testing::TestWithParam<int32_t> {
 protected:
  int32_t block_size() const { return GetParam(); }
};

TEST_P(CacheOpsTest, WriteKVWritesSlotsAndSkipsNegative) {
  PAGEDKV_TEST_RNG(rng);
  for (DType dtype : {DType::kFp32, DType::kFp16, DType::kBf16}) {
    PagedBatch batch;
    BuildPagedBatch({50, 30}, block_size(), 2, 64, dtype, rng, &batch, false, 10);
    PagedKVView& v = batch.view;
    const TypedBuffer before = batch.pool;
    // Distinct random slots, every third one negative (padding).
    const int64_t total_slots = int64_t{v.num_blocks} * v.block_size;
    std::vector<int64_t> all(total_slots);
    for (int64_t i = 0; i < total_slots; ++i) all[i] = i;
    std::shuffle(all.begin(), all.end(), rng);
    const int64_t n = std::min<int64_t>(25, total_slots);
    std::vector<int64_t> slots(all.begin(), all.begin() + n);
    for (int64_t i = 0; i < n; i += 3) slots[i] = -1 - i;
    TypedBuffer k(dtype, n * v.num_kv_heads * v.head_dim), val(dtype, k.size());
    k.FillRandom(rng);
    val.FillRandom(rng);
    v.slot_mapping = slots.data();
    v.num_slots = n;
    ASSERT_TRUE(WriteKV(v, k.data(), val.data(), {Backend::kCpu, nullptr}).ok());

    // Model: the pool as before, with the written rows replaced.
    TypedBuffer expect = before;
    for (int64_t t = 0; t < n; ++t) {
      if (slots[t] < 0) continue;
      const int32_t block = int32_t(slots[t] / v.block_size),
                    off = int32_t(slots[t] % v.block_size);
      for (int32_t h = 0; h < v.num_kv_heads; ++h) {
        for (int32_t d = 0; d < v.head_dim; ++d) {
          const int64_t src = (t * v.num_kv_heads + h) * v.head_dim + d;
          expect.Set(v.KOffset(block, h, off) + d, k.Get(src));
          expect.Set(v.VOffset(block, h, off) + d, val.Get(src));
        }
      }
    }
    EXPECT_EQ(std::memcmp(expect.data(), batch.pool.data(), expect.bytes()), 0) << DTypeName(dtype);
  }
}

TEST_P(CacheOpsTest, WriteKVRejectsSlotBeyondPoolAndWritesNothing) {
  std::mt19937_64 rng(1);
  PagedBatch batch;
  BuildPagedBatch({10}, block_size(), 1, 64, DType::kFp16, rng, &batch);
  PagedKVView& v = batch.view;
  const TypedBuffer before = batch.pool;
  std::vector<int64_t> slots = {0, int64_t{v.num_blocks} * v.block_size};
  TypedBuffer k(DType::kFp16, 2 * 64), val(DType::kFp16, 2 * 64);
  k.FillRandom(rng);
  val.FillRandom(rng);
  v.slot_mapping = slots.data();
  v.num_slots = 2;
  const absl::Status st = WriteKV(v, k.data(), val.data(), {Backend::kCpu, nullptr});
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(st.message()).find("slot_mapping[1]"), std::string::npos) << st.message();
  EXPECT_EQ(std::memcmp(before.data(), batch.pool.data(), before.bytes()), 0);
}

std::vector<uint8_t> RandomBytes(std::mt19937_64& rng, size_t n) {
  std::vector<uint8_t> b(n);
  for (auto& x : b) x = static_cast<uint8_t>(rng());
  return b;
}

TEST_P(CacheOpsTest, CopyBlocksCopiesEveryPair) {
  PAGEDKV_TEST_RNG(rng);
  const int32_t num_blocks = 24;
  const uint64_t bytes_per_block = uint64_t(block_size()) * 2 * 2 * 64 * 2;  // 2 layers, fp16
  std::vector<uint8_t> pool = RandomBytes(rng, num_blocks * bytes_per_block);
  const std::vector<uint8_t> before = pool;
  std::vector<int32_t> ids(num_blocks);
  for (int32_t i = 0; i < num_blocks; ++i) ids[i] = i;
  std::shuffle(ids.begin(), ids.end(), rng);
  std::vector<BlockCopy> copies;
  for (int32_t i = 0; i < 8; ++i) copies.push_back({ids[i], ids[8 + i]});
  copies.push_back({ids[0], ids[16]});  // one source copied twice (a fork)
  ASSERT_TRUE(CopyBlocks(pool.data(), bytes_per_block, num_blocks, copies, {Backend::kCpu}).ok());
  std::vector<uint8_t> expect = before;
  for (const BlockCopy& c : copies) {
    std::memcpy(expect.data() + c.dst * bytes_per_block, before.data() + c.src * bytes_per_block,
                bytes_per_block);
  }
  EXPECT_EQ(expect, pool);
}

TEST_P(CacheOpsTest, SwapBlocksBetweenPools) {
  PAGEDKV_TEST_RNG(rng);
  const uint64_t bytes_per_block = uint64_t(block_size()) * 2 * 8 * 64 * 2;
  std::vector<uint8_t> gpu = RandomBytes(rng, 10 * bytes_per_block);
  std::vector<uint8_t> host = RandomBytes(rng, 6 * bytes_per_block);
  const std::vector<uint8_t> host_before = host;
  const std::vector<BlockCopy> out_pairs = {{3, 0}, {7, 5}, {0, 2}};
  ASSERT_TRUE(
      SwapBlocks(gpu.data(), 10, host.data(), 6, bytes_per_block, out_pairs, {Backend::kCpu}).ok());
  std::vector<uint8_t> expect = host_before;
  for (const BlockCopy& p : out_pairs) {
    std::memcpy(expect.data() + p.dst * bytes_per_block, gpu.data() + p.src * bytes_per_block,
                bytes_per_block);
  }
  EXPECT_EQ(expect, host);
  // And back into different device blocks.
  const std::vector<BlockCopy> in_pairs = {{0, 9}, {5, 8}};
  ASSERT_TRUE(
      SwapBlocks(host.data(), 6, gpu.data(), 10, bytes_per_block, in_pairs, {Backend::kCpu}).ok());
  EXPECT_EQ(0, std::memcmp(gpu.data() + 9 * bytes_per_block, gpu.data() + 3 * bytes_per_block,
                           bytes_per_block));
  EXPECT_EQ(0, std::memcmp(gpu.data() + 8 * bytes_per_block, gpu.data() + 7 * bytes_per_block,
                           bytes_per_block));
}

INSTANTIATE_TEST_SUITE_P(BlockSizes, CacheOpsTest, ::testing::Values(1, 3, 16, 17, 128));

TEST(CacheOpsBadInput, CopyPairsRejected) {
  std::vector<uint8_t> pool(8 * 64);
  const std::vector<uint8_t> before = pool;
  const CacheOpOptions cpu{Backend::kCpu};
  struct Bad {
    std::vector<BlockCopy> pairs;
    std::string fragment;
  };
  const Bad bad[] = {
      {{{0, 8}}, "outside the pools"},
      {{{-1, 2}}, "outside the pools"},
      {{{0, 2}, {1, 2}}, "destination of two pairs"},
      {{{0, 2}, {2, 3}}, "both a source and a destination"},
  };
  for (const Bad& b : bad) {
    const absl::Status st = CopyBlocks(pool.data(), 64, 8, b.pairs, cpu);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(std::string(st.message()).find(b.fragment), std::string::npos) << st.message();
  }
  EXPECT_EQ(pool, before);
  EXPECT_EQ(CopyBlocks(nullptr, 64, 8, {}, cpu).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SwapBlocks(pool.data(), 8, nullptr, 8, 64, {}, cpu).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CacheOpsBadInput, CudaBackendWithoutDevice) {
  if (AttentionCudaDeviceAvailable()) GTEST_SKIP() << "a CUDA device is present";
  std::vector<uint8_t> pool(8 * 64);
  const absl::Status st = CopyBlocks(pool.data(), 64, 8, {{0, 1}}, {Backend::kCuda});
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st.message();
}

}  // namespace
}  // namespace pagedkv
