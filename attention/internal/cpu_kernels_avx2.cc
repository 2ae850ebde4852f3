// The CPU kernels compiled with -mavx2 -mfma -mf16c (see attention/CMakeLists.txt); used only when
// the CPU reports all three.
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "attention/internal/cpu_kernels.h"

namespace pagedkv::attention_internal {
namespace avx2 {
#include "attention/internal/cpu_kernels.inc"
}  // namespace avx2

const CpuKernelTable* CpuKernelsAvx2() {
  static const CpuKernelTable table{"avx2", avx2::Fp16ToFloat, avx2::Bf16ToFloat, avx2::AttendTile};
  static const bool supported = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                                __builtin_cpu_supports("f16c");
  return supported ? &table : nullptr;
}

}  // namespace pagedkv::attention_internal
