// CUDA IPC for the service's GPU pools: the server exports each device pool (one cudaMalloc) as a
// cudaIpcMemHandle_t in the pool socket's handle message; an engine process opens it and gets a
// device pointer to the very pages the page tables name. Also the server's own device work: it
// runs each step's CacheOps on the pools and waits for them before answering. Without CUDA in the
// build every call answers Unimplemented (and CudaIpcBuilt() is false).
//
//   PAGEDKV_ASSIGN_OR_RETURN(std::string handle, ExportCudaIpcHandle(pool.base(), 0));
//   PAGEDKV_ASSIGN_OR_RETURN(void* base, OpenCudaIpcHandle(handle, 0));   // in the engine
#ifndef PAGEDKV_SERVICE_INTERNAL_CUDA_IPC_H_
#define PAGEDKV_SERVICE_INTERNAL_CUDA_IPC_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace pagedkv::service::internal {

// Bytes of a cudaIpcMemHandle_t.
inline constexpr size_t kCudaIpcHandleBytes = 64;

bool CudaIpcBuilt();
// The handle of the allocation that starts at `base` on `device`.
absl::StatusOr<std::string> ExportCudaIpcHandle(void* base, int device);
// Maps another process's allocation; close it with CloseCudaIpcHandle. InvalidArgument for a
// handle of the wrong size; Unavailable when the device or the handle cannot be opened.
absl::StatusOr<void*> OpenCudaIpcHandle(std::string_view handle, int device);
void CloseCudaIpcHandle(void* base, int device);
// Waits for every copy the server issued on `device`.
absl::Status SynchronizeCudaDevice(int device);
// Page-locks host memory (a shared host pool) so device copies from and to it are DMA.
absl::Status RegisterHostMemory(void* base, size_t bytes);
void UnregisterHostMemory(void* base);

}  // namespace pagedkv::service::internal

#endif  // PAGEDKV_SERVICE_INTERNAL_CUDA_IPC_H_
