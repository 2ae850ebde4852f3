// The CPU kernels for the x86-64 (or other) baseline instruction set, and the run-time choice of
// the table.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "attention/internal/cpu_kernels.h"
#include "pagedkv/core/logging.h"

namespace pagedkv::attention_internal {
namespace baseline {
#include "attention/internal/cpu_kernels.inc"
}  // namespace baseline

const CpuKernelTable& CpuKernelsBaseline() {
  static const CpuKernelTable table{"baseline", baseline::Fp16ToFloat, baseline::Bf16ToFloat,
                                    baseline::AttendTile};
  return table;
}

#if !defined(PAGEDKV_CPU_X86_KERNELS)
const CpuKernelTable* CpuKernelsAvx2() { return nullptr; }
const CpuKernelTable* CpuKernelsAvx512() { return nullptr; }
#endif

namespace {

const CpuKernelTable& ChooseKernels() {
  const CpuKernelTable* best = &CpuKernelsBaseline();
  if (CpuKernelsAvx2() != nullptr) best = CpuKernelsAvx2();
  if (CpuKernelsAvx512() != nullptr) best = CpuKernelsAvx512();
  const char* cap = std::getenv("PAGEDKV_CPU_KERNELS");
  if (cap == nullptr || *cap == '\0') return *best;
  const std::string_view want(cap);
  for (const CpuKernelTable* t : {CpuKernelsAvx512(), CpuKernelsAvx2(), &CpuKernelsBaseline()}) {
    if (t != nullptr && want == t->name) return *t;
  }
  const bool known = want == "avx512" || want == "avx2" || want == "baseline";
  PAGEDKV_LOG_WARN(
      "pagedkv attention: PAGEDKV_CPU_KERNELS={} {}; using '{}' (valid: baseline, avx2, avx512)",
      want, known ? "needs instructions this CPU or build lacks" : "is not a kernel set",
      best->name);
  return *best;
}

}  // namespace

const CpuKernelTable& CpuKernels() {
  static const CpuKernelTable& table = ChooseKernels();
  return table;
}

}  // namespace pagedkv::attention_internal
