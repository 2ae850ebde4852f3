#include "pagedkv/attention/backend.h"

#if PAGEDKV_ATTENTION_CUDA
#include "attention/internal/cuda_launchers.h"
#endif

namespace pagedkv {

std::string_view BackendName(Backend backend) {
  switch (backend) {
    case Backend::kAuto:
      return "auto";
    case Backend::kCpu:
      return "cpu";
    case Backend::kCuda:
      return "cuda";
  }
  return "unknown";
}

bool AttentionBuiltWithCuda() {
#if PAGEDKV_ATTENTION_CUDA
  return true;
#else
  return false;
#endif
}

bool AttentionCudaDeviceAvailable() {
#if PAGEDKV_ATTENTION_CUDA
  return attention_internal::CudaDeviceUsable();
#else
  return false;
#endif
}

}  // namespace pagedkv
