// The CPU kernels compiled with AVX-512 F/BW/VL/DQ on top of AVX2+FMA+F16C (see
// attention/CMakeLists.txt); used only when the CPU reports all of them.
// GCC 12's AVX-512 extract intrinsics start from an "undefined" vector that its own
// -Wmaybe-uninitialized then reports (GCC bug 105593, fixed in GCC 13).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "attention/internal/cpu_kernels.h"

namespace pagedkv::attention_internal {
namespace avx512 {
#include "attention/internal/cpu_kernels.inc"
}  // namespace avx512

const CpuKernelTable* CpuKernelsAvx512() {
  static const CpuKernelTable table{"avx512", avx512::Fp16ToFloat, avx512::Bf16ToFloat,
                                    avx512::AttendTile};
  static const bool supported =
      __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx512f") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq");
  return supported ? &table : nullptr;
}

}  // namespace pagedkv::attention_internal
