// The one interface every MemoryPool backend implements (CUDA device, CUDA pinned host, aligned
// host, shared host memory, virtual), plus the factories. Private to allocator/: MemoryPool picks a
// backend from the tier and the devices present, and frees through the same backend that allocated.
//
//   std::unique_ptr<PoolBackend> b = MakeHostAlignedBackend(/*huge_pages=*/false);
//   PAGEDKV_ASSIGN_OR_RETURN(std::byte* base, b->Allocate(total_bytes, "pool"));
#ifndef PAGEDKV_ALLOCATOR_INTERNAL_POOL_BACKEND_H_
#define PAGEDKV_ALLOCATOR_INTERNAL_POOL_BACKEND_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include <unistd.h>

#include "absl/status/statusor.h"
#include "pagedkv/allocator/memory_pool.h"

namespace pagedkv::internal {

// The system page size (bytes; 4096 when sysconf cannot tell).
inline uint64_t SystemPageBytes() {
  const long page = sysconf(_SC_PAGESIZE);
  return page > 0 ? static_cast<uint64_t>(page) : 4096;
}

// Physical memory of this machine (bytes); 0 when unknown. An arena larger than this can never be
// backed, so host backends refuse it up front with a clear message rather than overcommit.
inline uint64_t PhysicalMemoryBytes() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  if (pages <= 0) return 0;
  return static_cast<uint64_t>(pages) * SystemPageBytes();
}

class PoolBackend {
 public:
  virtual ~PoolBackend() = default;
  virtual MemoryBackend kind() const = 0;
  // One arena of `total_bytes` (> 0) bytes. nullptr with OK only for the virtual backend.
  // ResourceExhausted when the memory cannot be had; `pool_name` is for the message.
  virtual absl::StatusOr<std::byte*> Allocate(uint64_t total_bytes, std::string_view pool_name) = 0;
  // Returns an arena from Allocate of this backend (nullptr is ignored). Never fails loudly: a
  // failure is logged, since destructors cannot report it.
  virtual void Free(std::byte* base, uint64_t total_bytes) = 0;
  // Shared-memory backends: the descriptor another process maps (owned by the backend), and the
  // bytes it maps (total_bytes rounded up to whole pages). -1 and 0 for every other backend.
  virtual int shared_fd() const { return -1; }
  virtual uint64_t mapped_bytes() const { return 0; }
};

// Page-aligned host memory; with huge_pages, 2 MiB aligned and advised for transparent huge pages.
std::unique_ptr<PoolBackend> MakeHostAlignedBackend(bool huge_pages);
// Host memory in a sealed memfd segment mapped MAP_SHARED (one backend object per arena: it keeps
// the descriptor).
std::unique_ptr<PoolBackend> MakeSharedMemoryBackend();
// No memory at all: Allocate returns nullptr.
std::unique_ptr<PoolBackend> MakeVirtualBackend();

#if defined(PAGEDKV_HAVE_CUDA)
// cudaMalloc on `device` (the caller's current device is restored afterwards).
std::unique_ptr<PoolBackend> MakeCudaDeviceBackend(int device);
// cudaHostAlloc (portable pinned host memory).
std::unique_ptr<PoolBackend> MakeCudaPinnedHostBackend();
// Whether a CUDA device is usable (probed once per process, then cached).
bool CudaDeviceUsable();
// Why no CUDA device is usable ("" when one is): the CUDA runtime's answer, for log lines.
std::string_view CudaUnavailableReason();
#endif

}  // namespace pagedkv::internal

#endif  // PAGEDKV_ALLOCATOR_INTERNAL_POOL_BACKEND_H_
