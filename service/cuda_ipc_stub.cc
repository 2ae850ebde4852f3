// CUDA IPC without CUDA in the build: nothing to export or open (GPU pools fall back to shared
// host memory, which the pool socket passes as memfds).
#include "service/internal/cuda_ipc.h"

namespace pagedkv::service::internal {
namespace {

absl::Status NotBuilt() {
  return absl::UnimplementedError(
      "this pagedkv was built without CUDA (PAGEDKV_CUDA=OFF or no nvcc): CUDA IPC pools cannot "
      "be opened here; rebuild with CUDA on a machine with the toolkit");
}

}  // namespace

bool CudaIpcBuilt() { return false; }
absl::StatusOr<std::string> ExportCudaIpcHandle(void*, int) { return NotBuilt(); }
absl::StatusOr<void*> OpenCudaIpcHandle(std::string_view, int) { return NotBuilt(); }
void CloseCudaIpcHandle(void*, int) {}
absl::Status SynchronizeCudaDevice(int) { return NotBuilt(); }
absl::Status RegisterHostMemory(void*, size_t) { return NotBuilt(); }
void UnregisterHostMemory(void*) {}

}  // namespace pagedkv::service::internal
