// CUDA device backend: one cudaMalloc per pool. Also answers whether a device is usable at all
// (probed once per process: the answer cannot change while the process runs). Compiled only when
// PAGEDKV_HAVE_CUDA is defined; plain C++ against the CUDA runtime API.
#include <cuda_runtime_api.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "allocator/internal/pool_backend.h"
#include "pagedkv/core/absl_compat.h"
#include "pagedkv/core/logging.h"

namespace pagedkv::internal {
namespace {

struct CudaProbe {
  bool available = false;
  std::string reason;  // why not available; empty when available
};

CudaProbe RunProbe() {
  CudaProbe probe;
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear the error so later runtime calls start clean
    probe.reason = absl::StrCat("cudaGetDeviceCount failed: ", cudaGetErrorString(err));
  } else if (count <= 0) {
    probe.reason = "the CUDA runtime reports 0 devices";
  } else {
    probe.available = true;
  }
  return probe;
}

const CudaProbe& Probe() {
  static const CudaProbe probe = RunProbe();
  return probe;
}

// Restores the calling thread's current device when the backend switched to another one.
class ScopedDevice {
 public:
  explicit ScopedDevice(int device) {
    if (cudaGetDevice(&previous_) != cudaSuccess) previous_ = -1;
    status_ = cudaSetDevice(device);
  }
  ~ScopedDevice() {
    if (previous_ >= 0) cudaSetDevice(previous_);
  }
  cudaError_t status() const { return status_; }

 private:
  int previous_ = -1;
  cudaError_t status_ = cudaSuccess;
};

class CudaDeviceBackend final : public PoolBackend {
 public:
  explicit CudaDeviceBackend(int device) : device_(device) {}

  MemoryBackend kind() const override { return MemoryBackend::kCudaDevice; }

  absl::StatusOr<std::byte*> Allocate(uint64_t total_bytes, std::string_view pool_name) override {
    ScopedDevice scoped(device_);
    if (scoped.status() != cudaSuccess) {
      cudaGetLastError();
      return absl::InvalidArgumentError(
          absl::StrCat("pool '", AbslView(pool_name), "': cannot use CUDA device ", device_, ": ",
                       cudaGetErrorString(scoped.status()), "; pick a device id that exists"));
    }
    void* base = nullptr;
    const cudaError_t err = cudaMalloc(&base, static_cast<size_t>(total_bytes));
    if (err != cudaSuccess) {
      cudaGetLastError();
      size_t free_bytes = 0, total_device_bytes = 0;
      cudaMemGetInfo(&free_bytes, &total_device_bytes);
      cudaGetLastError();
      return absl::ResourceExhaustedError(absl::StrCat(
          "pool '", AbslView(pool_name), "': cudaMalloc of ", total_bytes, " bytes on device ",
          device_, " failed: ", cudaGetErrorString(err), " (", free_bytes, " of ",
          total_device_bytes, " bytes free); use fewer blocks or a smaller memory fraction"));
    }
    return static_cast<std::byte*>(base);
  }

  void Free(std::byte* base, uint64_t total_bytes) override {
    if (base == nullptr) return;
    ScopedDevice scoped(device_);
    const cudaError_t err = cudaFree(base);
    if (err != cudaSuccess) {
      cudaGetLastError();
      PAGEDKV_LOG_ERROR("cudaFree of a {}-byte pool on device {} failed: {}", total_bytes, device_,
                        cudaGetErrorString(err));
    }
  }

 private:
  int device_;
};

}  // namespace

std::unique_ptr<PoolBackend> MakeCudaDeviceBackend(int device) {
  return std::make_unique<CudaDeviceBackend>(device);
}

bool CudaDeviceUsable() { return Probe().available; }

std::string_view CudaUnavailableReason() { return Probe().reason; }

}  // namespace pagedkv::internal
