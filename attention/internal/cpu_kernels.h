// The hot loops of the CPU attention path, compiled twice: for the x86-64 baseline and for
// AVX2+FMA+F16C (picked at run time when the CPU has them). Everything else calls them through
// CpuKernels(), so only these few functions depend on the instruction set.
#ifndef PAGEDKV_ATTENTION_INTERNAL_CPU_KERNELS_H_
#define PAGEDKV_ATTENTION_INTERNAL_CPU_KERNELS_H_

#include <cstdint>

namespace pagedkv::attention_internal {

// Bounds of one query row: it attends to the absolute KV positions [lo, hi].
struct RowRange {
  int32_t lo = 0;
  int32_t hi = -1;
};

struct CpuKernelTable {
  const char* name;
  // dst[i] = value of 16-bit pattern src[i], i < n.
  void (*fp16_to_float)(const uint16_t* src, float* dst, int64_t n);
  void (*bf16_to_float)(const uint16_t* src, float* dst, int64_t n);
  // Online-softmax step of `num_rows` query rows over a tile of n KV tokens at absolute positions
  // t0 .. t0+n-1 (krows[j], vrows[j]: head_dim floats each). q rows are pre-scaled by
  // softmax_scale * log2(e), so scores are in base 2. Row r updates its running max m[r] (base 2),
  // its sum l[r] and its unnormalized output acc[r * head_dim ..]. Tokens outside ranges[r] are
  // masked. scratch: n floats.
  void (*attend_tile)(const float* q, int32_t num_rows, const RowRange* ranges, int32_t t0,
                      int32_t n, const float* const* krows, const float* const* vrows,
                      int32_t head_dim, float* m, float* l, float* acc, float* scratch);
};

// The best table for this CPU (decided once).
const CpuKernelTable& CpuKernels();
// Both tables, for tests: the baseline one always, the AVX2 one or nullptr when unsupported.
const CpuKernelTable& CpuKernelsBaseline();
const CpuKernelTable* CpuKernelsAvx2();

}  // namespace pagedkv::attention_internal

#endif  // PAGEDKV_ATTENTION_INTERNAL_CPU_KERNELS_H_
