// Which implementation runs an attention or cache op: the CPU path or the CUDA kernels. kAuto looks
// at where the pool pointer lives (device memory -> CUDA, anything else -> CPU).
//
//   AttentionOptions opts;  opts.backend = Backend::kCpu;
#ifndef PAGEDKV_ATTENTION_BACKEND_H_
#define PAGEDKV_ATTENTION_BACKEND_H_

#include <cstdint>
#include <string_view>

namespace pagedkv {

enum class Backend : uint8_t {
  kAuto = 0,  // by where the pool pointer lives
  kCpu = 1,   // host memory, threads of a CpuWorkerPool
  kCuda = 2,  // device memory, kernels on a CUDA stream
};
std::string_view BackendName(Backend backend);  // "auto", "cpu", "cuda"

// True when this build contains the CUDA kernels (PAGEDKV_HAVE_CUDA).
bool AttentionBuiltWithCuda();
// True when the CUDA kernels are built and a device is usable now.
bool AttentionCudaDeviceAvailable();

}  // namespace pagedkv

#endif  // PAGEDKV_ATTENTION_BACKEND_H_
