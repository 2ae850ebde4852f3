// CUDA pinned host backend: page-locked host memory (cudaHostAlloc, portable across contexts), so
// swaps between a GPU pool and this pool run as DMA copies. Compiled only with PAGEDKV_HAVE_CUDA.
#include <cuda_runtime_api.h>

#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "allocator/internal/pool_backend.h"
#include "pagedkv/core/absl_compat.h"
#include "pagedkv/core/logging.h"

namespace pagedkv::internal {
namespace {

class CudaPinnedHostBackend final : public PoolBackend {
 public:
  MemoryBackend kind() const override { return MemoryBackend::kCudaPinnedHost; }

  absl::StatusOr<std::byte*> Allocate(uint64_t total_bytes, std::string_view pool_name) override {
    void* base = nullptr;
    const cudaError_t err =
        cudaHostAlloc(&base, static_cast<size_t>(total_bytes), cudaHostAllocPortable);
    if (err != cudaSuccess) {
      cudaGetLastError();
      return absl::ResourceExhaustedError(
          absl::StrCat("pool '", AbslView(pool_name), "': cudaHostAlloc of ", total_bytes,
                       " pinned bytes failed: ", cudaGetErrorString(err),
                       "; use fewer host blocks or free host memory"));
    }
    return static_cast<std::byte*>(base);
  }

  void Free(std::byte* base, uint64_t total_bytes) override {
    if (base == nullptr) return;
    const cudaError_t err = cudaFreeHost(base);
    if (err != cudaSuccess) {
      cudaGetLastError();
      PAGEDKV_LOG_ERROR("cudaFreeHost of a {}-byte pool failed: {}", total_bytes,
                        cudaGetErrorString(err));
    }
  }
};

}  // namespace

std::unique_ptr<PoolBackend> MakeCudaPinnedHostBackend() {
  return std::make_unique<CudaPinnedHostBackend>();
}

}  // namespace pagedkv::internal
