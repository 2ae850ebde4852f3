#include "pagedkv/allocator/memory_pool.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <tuple>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "log_capture.h"
#include "pagedkv/core/logging.h"

namespace pagedkv {
namespace {

using ::pagedkv::testing::LogCapture;

using ::testing::HasSubstr;

constexpr uint64_t kBytesPerToken = 48;  // deliberately not a power of two

PoolOptions Options(Tier tier, uint64_t bytes_per_block, uint32_t num_blocks) {
  PoolOptions o;
  o.tier = tier;
  o.bytes_per_block = bytes_per_block;
  o.num_blocks = num_blocks;
  o.name = "test";
  return o;
}

// The backend each tier should land on, given the devices present.
MemoryBackend ExpectedBackend(Tier tier) {
  switch (tier) {
    case Tier::kGpu:
      return CudaDeviceAvailable() ? MemoryBackend::kCudaDevice : MemoryBackend::kHostAligned;
    case Tier::kHost:
      return CudaDeviceAvailable() ? MemoryBackend::kCudaPinnedHost : MemoryBackend::kHostAligned;
    case Tier::kVirtual:
      return MemoryBackend::kVirtual;
  }
  return MemoryBackend::kVirtual;
}

// ---- Across tiers and block sizes ---------------------------------------------------------------

class MemoryPoolTierTest : public ::testing::TestWithParam<std::tuple<Tier, int>> {
 protected:
  Tier tier() const { return std::get<0>(GetParam()); }
  uint64_t bytes_per_block() const { return std::get<1>(GetParam()) * kBytesPerToken; }
};

TEST_P(MemoryPoolTierTest, CreatesThePoolOnTheExpectedBackend) {
  constexpr uint32_t kNumBlocks = 9;
  absl::StatusOr<std::unique_ptr<MemoryPool>> pool =
      MemoryPool::Create(Options(tier(), bytes_per_block(), kNumBlocks));
  ASSERT_TRUE(pool.ok()) << pool.status();
  MemoryPool& p = **pool;
  EXPECT_EQ(p.tier(), tier());
  EXPECT_EQ(p.backend(), ExpectedBackend(tier()));
  EXPECT_EQ(p.num_blocks(), kNumBlocks);
  EXPECT_EQ(p.bytes_per_block(), bytes_per_block());
  EXPECT_EQ(p.total_bytes(), kNumBlocks * bytes_per_block());
  EXPECT_EQ(p.name(), "test");
  EXPECT_EQ(p.is_device_memory(), p.backend() == MemoryBackend::kCudaDevice);
  if (tier() == Tier::kVirtual) {
    EXPECT_FALSE(p.has_memory());
    EXPECT_EQ(p.base(), nullptr);
    EXPECT_EQ(p.BlockData(0), nullptr);
    EXPECT_EQ(p.BlockData(kNumBlocks - 1), nullptr);
    return;
  }
  ASSERT_TRUE(p.has_memory());
  for (BlockId id = 0; id < kNumBlocks; ++id) {
    EXPECT_EQ(p.BlockData(id), p.base() + id * bytes_per_block()) << "block " << id;
  }
  if (p.backend() == MemoryBackend::kHostAligned) {
    const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p.base()) % page, 0u) << "base is not page aligned";
  }
}

TEST_P(MemoryPoolTierTest, HostBlocksAreWritableAndDoNotOverlap) {
  constexpr uint32_t kNumBlocks = 7;
  absl::StatusOr<std::unique_ptr<MemoryPool>> pool =
      MemoryPool::Create(Options(tier(), bytes_per_block(), kNumBlocks));
  ASSERT_TRUE(pool.ok()) << pool.status();
  MemoryPool& p = **pool;
  if (p.backend() == MemoryBackend::kVirtual) GTEST_SKIP() << "a virtual pool has no bytes";
  if (p.is_device_memory()) GTEST_SKIP() << "device memory is not host-accessible";
  // Fill every block with its own pattern (first and last byte included), then read all back:
  // a block that overlapped its neighbour would show the neighbour's pattern.
  for (BlockId id = 0; id < kNumBlocks; ++id) {
    std::memset(p.BlockData(id), 0x11 * (id + 1), p.bytes_per_block());
  }
  for (BlockId id = 0; id < kNumBlocks; ++id) {
    const auto* data = reinterpret_cast<const unsigned char*>(p.BlockData(id));
    const auto want = static_cast<unsigned char>(0x11 * (id + 1));
    for (uint64_t i = 0; i < p.bytes_per_block(); ++i) {
      ASSERT_EQ(data[i], want) << "block " << id << " byte " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(TiersAndBlockSizes, MemoryPoolTierTest,
                         ::testing::Combine(::testing::Values(Tier::kHost, Tier::kVirtual,
                                                              Tier::kGpu),
                                            ::testing::Values(1, 3, 16, 17, 128)),
                         [](const ::testing::TestParamInfo<std::tuple<Tier, int>>& info) {
                           return std::string(TierName(std::get<0>(info.param))) + "_block" +
                                  std::to_string(std::get<1>(info.param));
                         });

// ---- GPU requests with and without a device -----------------------------------------------------

TEST(MemoryPoolGpuTest, NonStrictGpuRequestWithoutDeviceFallsBackWithOneWarning) {
  if (CudaDeviceAvailable()) GTEST_SKIP() << "a CUDA device is present: no fallback happens";
  LogCapture capture(spdlog::level::warn);
  PoolOptions o = Options(Tier::kGpu, 4096, 4);
  o.name = "fallback-pool";
  absl::StatusOr<std::unique_ptr<MemoryPool>> pool = MemoryPool::Create(o);
  ASSERT_TRUE(pool.ok()) << pool.status();
  EXPECT_EQ((*pool)->tier(), Tier::kGpu);
  EXPECT_EQ((*pool)->backend(), MemoryBackend::kHostAligned);
  EXPECT_FALSE((*pool)->is_device_memory());
  EXPECT_EQ(capture.Count(spdlog::level::warn, "fallback-pool"), 1);
  EXPECT_EQ(capture.Count(spdlog::level::warn, "no CUDA device"), 1);
}

TEST(MemoryPoolGpuTest, HostAndVirtualRequestsLogNoWarning) {
  LogCapture capture(spdlog::level::warn);
  ASSERT_TRUE(MemoryPool::Create(Options(Tier::kHost, 4096, 4)).ok());
  ASSERT_TRUE(MemoryPool::Create(Options(Tier::kVirtual, 4096, 4)).ok());
  EXPECT_EQ(capture.Count(spdlog::level::warn, ""), 0);
}

TEST(MemoryPoolGpuTest, StrictGpuRequestWithoutDeviceIsFailedPrecondition) {
  if (CudaDeviceAvailable()) GTEST_SKIP() << "a CUDA device is present: strict mode succeeds";
  PoolOptions o = Options(Tier::kGpu, 4096, 4);
  o.strict = true;
  absl::StatusOr<std::unique_ptr<MemoryPool>> pool = MemoryPool::Create(o);
  ASSERT_FALSE(pool.ok());
  EXPECT_EQ(pool.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(pool.status().message()), HasSubstr("strict"));
}

TEST(MemoryPoolGpuTest, StrictGpuRequestWithDeviceGetsDeviceMemory) {
  if (!CudaDeviceAvailable()) GTEST_SKIP() << "needs a CUDA device; none is usable here";
  PoolOptions o = Options(Tier::kGpu, 1 << 20, 8);
  o.strict = true;
  absl::StatusOr<std::unique_ptr<MemoryPool>> pool = MemoryPool::Create(o);
  ASSERT_TRUE(pool.ok()) << pool.status();
  EXPECT_EQ((*pool)->backend(), MemoryBackend::kCudaDevice);
  EXPECT_TRUE((*pool)->is_device_memory());
  EXPECT_NE((*pool)->base(), nullptr);
}

TEST(MemoryPoolGpuTest, UnknownDeviceIdIsInvalidArgument) {
  if (!CudaDeviceAvailable()) GTEST_SKIP() << "needs a CUDA device; none is usable here";
  PoolOptions o = Options(Tier::kGpu, 4096, 4);
  o.cuda_device = 1000;
  absl::StatusOr<std::unique_ptr<MemoryPool>> pool = MemoryPool::Create(o);
  ASSERT_FALSE(pool.ok());
  EXPECT_EQ(pool.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(MemoryPoolGpuTest, DeviceAvailabilityIsStable) {
  const bool first = CudaDeviceAvailable();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(CudaDeviceAvailable(), first);
#if !defined(PAGEDKV_HAVE_CUDA)
  EXPECT_FALSE(first) << "a build without CUDA cannot have a device";
#endif
}

// ---- Bad input ----------------------------------------------------------------------------------

void ExpectInvalid(const PoolOptions& o, const std::string& needle) {
  absl::StatusOr<std::unique_ptr<MemoryPool>> pool = MemoryPool::Create(o);
  ASSERT_FALSE(pool.ok()) << "expected an error mentioning '" << needle << "'";
  EXPECT_EQ(pool.status().code(), absl::StatusCode::kInvalidArgument) << pool.status();
  EXPECT_THAT(std::string(pool.status().message()), HasSubstr(needle));
}

TEST(MemoryPoolBadInputTest, ZeroBytesPerBlock) {
  for (Tier t : {Tier::kHost, Tier::kVirtual, Tier::kGpu}) {
    ExpectInvalid(Options(t, 0, 16), "bytes_per_block is 0");
  }
}

TEST(MemoryPoolBadInputTest, ZeroBlocks) {
  for (Tier t : {Tier::kHost, Tier::kVirtual, Tier::kGpu}) {
    ExpectInvalid(Options(t, 4096, 0), "num_blocks is 0");
  }
}

TEST(MemoryPoolBadInputTest, TooManyBlocks) {
  ExpectInvalid(Options(Tier::kVirtual, 1, kInvalidBlockId), "too large");
}

TEST(MemoryPoolBadInputTest, OverflowingByteCount) {
  // 2^40 bytes x 2^30 blocks = 2^70 bytes: wraps a uint64_t.
  for (Tier t : {Tier::kHost, Tier::kVirtual, Tier::kGpu}) {
    ExpectInvalid(Options(t, uint64_t{1} << 40, 1u << 30), "overflows");
  }
  ExpectInvalid(Options(Tier::kHost, std::numeric_limits<uint64_t>::max(), 2), "overflows");
}

TEST(MemoryPoolBadInputTest, NegativeDevice) {
  PoolOptions o = Options(Tier::kGpu, 4096, 4);
  o.cuda_device = -1;
  ExpectInvalid(o, "cuda_device -1");
}

TEST(MemoryPoolBadInputTest, ErrorNamesThePool) {
  PoolOptions o = Options(Tier::kHost, 0, 4);
  o.name = "kv-group-3";
  ExpectInvalid(o, "kv-group-3");
}

TEST(MemoryPoolBadInputTest, MoreHostMemoryThanTheMachineHasIsResourceExhausted) {
  // 2^56 bytes: representable, but no machine has it.
  absl::StatusOr<std::unique_ptr<MemoryPool>> pool =
      MemoryPool::Create(Options(Tier::kHost, uint64_t{1} << 40, 1u << 16));
  ASSERT_FALSE(pool.ok());
  EXPECT_EQ(pool.status().code(), absl::StatusCode::kResourceExhausted) << pool.status();
}

TEST(MemoryPoolBadInputTest, AHugeVirtualPoolNeedsNoMemory) {
  // 80 GiB of 2 MiB blocks: fine anywhere, since nothing is allocated.
  absl::StatusOr<std::unique_ptr<MemoryPool>> pool =
      MemoryPool::Create(Options(Tier::kVirtual, uint64_t{2} << 20, 40960));
  ASSERT_TRUE(pool.ok()) << pool.status();
  EXPECT_EQ((*pool)->total_bytes(), uint64_t{80} << 30);
  EXPECT_FALSE((*pool)->has_memory());
}

// ---- Host options -------------------------------------------------------------------------------

TEST(MemoryPoolHostTest, HugePagesGiveTwoMebibyteAlignment) {
  if (CudaDeviceAvailable()) GTEST_SKIP() << "kHost uses pinned memory when a device is present";
  PoolOptions o = Options(Tier::kHost, 1 << 20, 3);
  o.huge_pages = true;
  absl::StatusOr<std::unique_ptr<MemoryPool>> pool = MemoryPool::Create(o);
  ASSERT_TRUE(pool.ok()) << pool.status();
  EXPECT_EQ((*pool)->backend(), MemoryBackend::kHostAligned);
  EXPECT_EQ(reinterpret_cast<uintptr_t>((*pool)->base()) % (uintptr_t{2} << 20), 0u);
  std::memset((*pool)->base(), 0x5a, (*pool)->total_bytes());
  EXPECT_EQ(static_cast<unsigned char>((*pool)->BlockData(2)[(1 << 20) - 1]), 0x5a);
}

TEST(MemoryPoolHostTest, BackendNames) {
  EXPECT_EQ(MemoryBackendName(MemoryBackend::kCudaDevice), "cuda_device");
  EXPECT_EQ(MemoryBackendName(MemoryBackend::kCudaPinnedHost), "cuda_pinned_host");
  EXPECT_EQ(MemoryBackendName(MemoryBackend::kHostAligned), "host_aligned");
  EXPECT_EQ(MemoryBackendName(MemoryBackend::kVirtual), "virtual");
  EXPECT_EQ(MemoryBackendName(MemoryBackend::kSharedHost), "shared_host");
}

// ---- Shared host memory (memfd) -----------------------------------------------------------------

TEST(MemoryPoolSharedTest, SharedHostPoolIsAMemfdThatASecondMappingSees) {
  PoolOptions o = Options(Tier::kHost, 3 * kBytesPerToken, 5);
  o.shared = true;
  absl::StatusOr<std::unique_ptr<MemoryPool>> pool = MemoryPool::Create(o);
  ASSERT_TRUE(pool.ok()) << pool.status();
  MemoryPool& p = **pool;
  EXPECT_EQ(p.backend(), MemoryBackend::kSharedHost);
  ASSERT_GE(p.shared_memory_fd(), 0);
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  EXPECT_GE(p.shared_memory_bytes(), p.total_bytes());
  EXPECT_EQ(p.shared_memory_bytes() % page, 0u);
  // A second mapping of the descriptor (what a client process does) aliases the arena.
  void* view = mmap(nullptr, p.shared_memory_bytes(), PROT_READ | PROT_WRITE, MAP_SHARED,
                    p.shared_memory_fd(), 0);
  ASSERT_NE(view, MAP_FAILED);
  auto* bytes = static_cast<unsigned char*>(view);
  std::memset(p.BlockData(4), 0x3c, p.bytes_per_block());
  EXPECT_EQ(bytes[4 * p.bytes_per_block() + 7], 0x3c);
  bytes[2 * p.bytes_per_block()] = 0x77;
  EXPECT_EQ(static_cast<unsigned char>(p.BlockData(2)[0]), 0x77);
  munmap(view, p.shared_memory_bytes());
}

TEST(MemoryPoolSharedTest, SharedSegmentIsSealedAgainstResizing) {
  PoolOptions o = Options(Tier::kHost, 4096, 2);
  o.shared = true;
  absl::StatusOr<std::unique_ptr<MemoryPool>> pool = MemoryPool::Create(o);
  ASSERT_TRUE(pool.ok()) << pool.status();
  const int fd = (*pool)->shared_memory_fd();
  EXPECT_NE(ftruncate(fd, 0), 0) << "a client could shrink the pool under the server";
  EXPECT_NE(ftruncate(fd, 1 << 20), 0);
  const int seals = fcntl(fd, F_GET_SEALS);
  EXPECT_TRUE(seals & F_SEAL_SHRINK);
  EXPECT_TRUE(seals & F_SEAL_GROW);
}

TEST(MemoryPoolSharedTest, GpuFallbackToHostIsSharedToo) {
  if (CudaDeviceAvailable()) GTEST_SKIP() << "a CUDA device is present: no fallback happens";
  LogCapture capture(spdlog::level::warn);
  PoolOptions o = Options(Tier::kGpu, 4096, 4);
  o.shared = true;
  o.name = "shared-fallback";
  absl::StatusOr<std::unique_ptr<MemoryPool>> pool = MemoryPool::Create(o);
  ASSERT_TRUE(pool.ok()) << pool.status();
  EXPECT_EQ((*pool)->backend(), MemoryBackend::kSharedHost);
  EXPECT_GE((*pool)->shared_memory_fd(), 0);
  EXPECT_EQ(capture.Count(spdlog::level::warn, "shared-fallback"), 1);
}

TEST(MemoryPoolSharedTest, OtherBackendsHaveNoDescriptor) {
  for (Tier tier : {Tier::kHost, Tier::kVirtual}) {
    absl::StatusOr<std::unique_ptr<MemoryPool>> pool = MemoryPool::Create(Options(tier, 64, 2));
    ASSERT_TRUE(pool.ok()) << pool.status();
    EXPECT_EQ((*pool)->shared_memory_fd(), -1);
    EXPECT_EQ((*pool)->shared_memory_bytes(), 0u);
  }
  PoolOptions o = Options(Tier::kVirtual, 64, 2);
  o.shared = true;  // nothing to share
  absl::StatusOr<std::unique_ptr<MemoryPool>> pool = MemoryPool::Create(o);
  ASSERT_TRUE(pool.ok()) << pool.status();
  EXPECT_EQ((*pool)->backend(), MemoryBackend::kVirtual);
  EXPECT_EQ((*pool)->shared_memory_fd(), -1);
}

TEST(MemoryPoolSharedTest, TooLargeSharedPoolIsResourceExhausted) {
  PoolOptions o = Options(Tier::kHost, uint64_t{1} << 40, 1u << 10);  // 1 PiB
  o.shared = true;
  absl::StatusOr<std::unique_ptr<MemoryPool>> pool = MemoryPool::Create(o);
  EXPECT_EQ(pool.status().code(), absl::StatusCode::kResourceExhausted) << pool.status();
}

TEST(MemoryPoolHostTest, CreationIsTracedAtTraceLevel) {
  LogCapture capture(spdlog::level::trace);
  PoolOptions o = Options(Tier::kVirtual, 64, 5);
  o.name = "traced-pool";
  ASSERT_TRUE(MemoryPool::Create(o).ok());
  EXPECT_GE(capture.Count(spdlog::level::trace, "traced-pool' created"), 1);
}

}  // namespace
}  // namespace pagedkv
