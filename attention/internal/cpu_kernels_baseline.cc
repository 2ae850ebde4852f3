// The CPU kernels for the x86-64 (or other) baseline instruction set.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "attention/internal/cpu_kernels.h"

namespace pagedkv::attention_internal {
namespace baseline {
#include "attention/internal/cpu_kernels.inc"
}  // namespace baseline

const CpuKernelTable& CpuKernelsBaseline() {
  static const CpuKernelTable table{"baseline", baseline::Fp16ToFloat, baseline::Bf16ToFloat,
                                    baseline::AttendTile};
  return table;
}

#if !defined(PAGEDKV_CPU_AVX2_KERNELS)
const CpuKernelTable* CpuKernelsAvx2() { return nullptr; }
#endif

const CpuKernelTable& CpuKernels() {
  static const CpuKernelTable& table = []() -> const CpuKernelTable& {
    const CpuKernelTable* avx2 = CpuKernelsAvx2();
    return avx2 != nullptr ? *avx2 : CpuKernelsBaseline();
  }();
  return table;
}

}  // namespace pagedkv::attention_internal
