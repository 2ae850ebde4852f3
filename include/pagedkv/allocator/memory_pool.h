// MemoryPool: one arena of `num_blocks` fixed-size blocks on one tier (one pool per KV group and
// tier). Block-major, so a block is one contiguous chunk of `bytes_per_block` bytes.
// Backends: CUDA device memory, pinned host memory, plain aligned host memory, shared host memory
// (a memfd another process can map: PoolOptions::shared), virtual (no bytes).
//
//   PoolOptions o{.tier = Tier::kHost, .bytes_per_block = 1 << 20, .num_blocks = 64};
//   PAGEDKV_ASSIGN_OR_RETURN(std::unique_ptr<MemoryPool> pool, MemoryPool::Create(o));
//   std::byte* p = pool->BlockData(3);  // nullptr on a virtual pool
#ifndef PAGEDKV_ALLOCATOR_MEMORY_POOL_H_
#define PAGEDKV_ALLOCATOR_MEMORY_POOL_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "pagedkv/core/types.h"

namespace pagedkv {
namespace internal {
class PoolBackend;
}  // namespace internal

// The memory that actually backs a pool (a kGpu request may end up on kHostAligned).
enum class MemoryBackend : uint8_t {
  kCudaDevice = 0,      // cudaMalloc
  kCudaPinnedHost = 1,  // cudaHostAlloc
  kHostAligned = 2,     // aligned host memory (page-aligned, optional transparent huge pages)
  kVirtual = 3,         // no memory at all
  kSharedHost = 4,      // host memory in a sealed memfd segment, mapped MAP_SHARED
};
std::string_view MemoryBackendName(MemoryBackend backend);

struct PoolOptions {
  Tier tier = Tier::kHost;
  uint64_t bytes_per_block = 0;  // > 0
  uint32_t num_blocks = 0;       // > 0, < kInvalidBlockId
  // kGpu with no usable CUDA device: false = fall back to host memory (one log line),
  // true = FailedPrecondition.
  bool strict = false;
  bool huge_pages = false;  // kHostAligned only: madvise(MADV_HUGEPAGE)
  // Host memory that other processes can map: a kHost pool, and a kGpu pool that falls back to
  // host memory, are allocated in a memfd segment (kSharedHost; wins over pinned memory when
  // CUDA is present). A kGpu pool on a CUDA device and a kVirtual pool ignore it.
  bool shared = false;
  int cuda_device = 0;
  std::string name = "pool";  // for log lines and errors
};

class MemoryPool {
 public:
  // InvalidArgument for zero sizes or a byte total that overflows; ResourceExhausted when the
  // backend cannot provide the memory; FailedPrecondition for a strict kGpu request with no device.
  static absl::StatusOr<std::unique_ptr<MemoryPool>> Create(const PoolOptions& options);
  ~MemoryPool();
  MemoryPool(const MemoryPool&) = delete;
  MemoryPool& operator=(const MemoryPool&) = delete;

  Tier tier() const { return options_.tier; }  // the tier asked for
  MemoryBackend backend() const { return backend_; }
  bool is_device_memory() const { return backend_ == MemoryBackend::kCudaDevice; }
  bool has_memory() const { return base_ != nullptr; }
  uint64_t bytes_per_block() const { return options_.bytes_per_block; }
  uint32_t num_blocks() const { return options_.num_blocks; }
  uint64_t total_bytes() const { return options_.bytes_per_block * options_.num_blocks; }
  const std::string& name() const { return options_.name; }

  // Base of the arena; nullptr for kVirtual.
  std::byte* base() const { return base_; }
  // Start of block `id` (id < num_blocks); nullptr for kVirtual.
  std::byte* BlockData(BlockId id) const;

  // kSharedHost only: the memfd holding the arena at offset 0 (owned by the pool: dup it to keep
  // it, never close it), and the bytes to map (total_bytes() rounded up to whole pages). Another
  // process maps it with mmap(MAP_SHARED) and sees block `id` at offset id * bytes_per_block.
  // -1 and 0 for every other backend.
  int shared_memory_fd() const;
  uint64_t shared_memory_bytes() const;

 private:
  MemoryPool(const PoolOptions& options, std::unique_ptr<internal::PoolBackend> impl,
             std::byte* base);
  PoolOptions options_;
  std::unique_ptr<internal::PoolBackend> impl_;  // allocated the arena; frees it
  MemoryBackend backend_;                        // impl_->kind()
  std::byte* base_;                              // nullptr for kVirtual
};

// True when a CUDA device is usable at run time (always false in a build without CUDA).
bool CudaDeviceAvailable();

}  // namespace pagedkv

#endif  // PAGEDKV_ALLOCATOR_MEMORY_POOL_H_
