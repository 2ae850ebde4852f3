// CUDA IPC and device synchronization for the service (built with CUDA; cuda_ipc_stub.cc
// otherwise). Plain C++ against the CUDA runtime API.
#include <cuda_runtime_api.h>

#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "service/internal/cuda_ipc.h"

namespace pagedkv::service::internal {
namespace {

absl::Status CudaError(cudaError_t err, std::string_view what) {
  cudaGetLastError();  // clear it so later calls start clean
  return absl::UnavailableError(
      absl::StrCat(std::string(what), " failed: ", cudaGetErrorString(err),
                   "; the engine must run on the server's machine with access to the GPU"));
}

}  // namespace

static_assert(sizeof(cudaIpcMemHandle_t) == kCudaIpcHandleBytes);

bool CudaIpcBuilt() { return true; }

absl::StatusOr<std::string> ExportCudaIpcHandle(void* base, int device) {
  if (cudaError_t err = cudaSetDevice(device); err != cudaSuccess) {
    return CudaError(err, absl::StrCat("cudaSetDevice(", device, ")"));
  }
  cudaIpcMemHandle_t handle;
  if (cudaError_t err = cudaIpcGetMemHandle(&handle, base); err != cudaSuccess) {
    return CudaError(err, "cudaIpcGetMemHandle");
  }
  return std::string(reinterpret_cast<const char*>(&handle), sizeof(handle));
}

absl::StatusOr<void*> OpenCudaIpcHandle(std::string_view bytes, int device) {
  if (bytes.size() != sizeof(cudaIpcMemHandle_t)) {
    return absl::InvalidArgumentError(absl::StrCat("a CUDA IPC handle has ", kCudaIpcHandleBytes,
                                                   " bytes, this one ", bytes.size()));
  }
  if (cudaError_t err = cudaSetDevice(device); err != cudaSuccess) {
    return CudaError(err, absl::StrCat("cudaSetDevice(", device, ")"));
  }
  cudaIpcMemHandle_t handle;
  std::memcpy(&handle, bytes.data(), sizeof(handle));
  void* base = nullptr;
  if (cudaError_t err = cudaIpcOpenMemHandle(&base, handle, cudaIpcMemLazyEnablePeerAccess);
      err != cudaSuccess) {
    return CudaError(err, "cudaIpcOpenMemHandle");
  }
  return base;
}

void CloseCudaIpcHandle(void* base, int device) {
  if (base == nullptr) return;
  cudaSetDevice(device);
  cudaIpcCloseMemHandle(base);
  cudaGetLastError();
}

absl::Status SynchronizeCudaDevice(int device) {
  if (cudaError_t err = cudaSetDevice(device); err != cudaSuccess) {
    return CudaError(err, absl::StrCat("cudaSetDevice(", device, ")"));
  }
  if (cudaError_t err = cudaDeviceSynchronize(); err != cudaSuccess) {
    return CudaError(err, "cudaDeviceSynchronize after the step's cache ops");
  }
  return absl::OkStatus();
}

absl::Status RegisterHostMemory(void* base, size_t bytes) {
  if (cudaError_t err = cudaHostRegister(base, bytes, cudaHostRegisterDefault);
      err != cudaSuccess) {
    return CudaError(err, "cudaHostRegister of a shared host pool");
  }
  return absl::OkStatus();
}

void UnregisterHostMemory(void* base) {
  cudaHostUnregister(base);
  cudaGetLastError();
}

}  // namespace pagedkv::service::internal
