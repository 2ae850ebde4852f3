// The hot loops of the CPU attention path, compiled three times: for the x86-64 baseline, for
// AVX2+FMA+F16C and for AVX-512 (F, BW, VL, DQ), picked at run time from what the CPU reports.
// Everything else calls them through CpuKernels(), so only these few functions depend on the
// instruction set.
#ifndef PAGEDKV_ATTENTION_INTERNAL_CPU_KERNELS_H_
#define PAGEDKV_ATTENTION_INTERNAL_CPU_KERNELS_H_

#include <cstdint>

namespace pagedkv::attention_internal {

// KV tokens per tile: the unit the kernels work on. 32 rows of K and V of head_dim 128 in fp16
// are 16 KiB, well inside L1, so every query row of a work item rereads them from L1.
constexpr int32_t kMaxTileTokens = 32;

// Bounds of one query row: it attends to the absolute KV positions [lo, hi].
struct RowRange {
  int32_t lo = 0;
  int32_t hi = -1;
};

// How K and V are stored in the pool.
enum class KvFormat : int32_t { kFp32, kFp16, kBf16 };

// One online-softmax step: `num_rows` query rows over a tile of n <= kMaxTileTokens KV tokens at
// absolute positions t0 .. t0+n-1. krows[j] / vrows[j] point at head_dim elements of `format`
// (straight into the pool: no conversion beforehand). q rows are fp32, pre-scaled by
// softmax_scale * log2(e), so scores are in base 2. Row r updates its running max m[r] (base 2),
// its sum l[r] and its unnormalized output acc[r * head_dim ..]. Tokens outside ranges[r] are
// masked. scratch: TileScratchFloats(head_dim) floats. next_krows / next_vrows (next_n rows, may
// be 0) are the next tile's rows, prefetched while this one is computed.
struct TileArgs {
  const float* q = nullptr;
  int32_t num_rows = 0;
  const RowRange* ranges = nullptr;
  int32_t t0 = 0;
  int32_t n = 0;
  const void* const* krows = nullptr;
  const void* const* vrows = nullptr;
  const void* const* next_krows = nullptr;
  const void* const* next_vrows = nullptr;
  int32_t next_n = 0;
  KvFormat format = KvFormat::kFp32;
  int32_t head_dim = 0;
  float* m = nullptr;
  float* l = nullptr;
  float* acc = nullptr;
  float* scratch = nullptr;
};

// Scratch a tile needs: converted K and V rows for the generic loops, or two score arrays of one
// register block (at most 8 rows) for the vector loops.
constexpr int64_t TileScratchFloats(int32_t head_dim) {
  return int64_t{kMaxTileTokens} * (2 * int64_t{head_dim} + 16);
}

struct CpuKernelTable {
  const char* name;
  // dst[i] = value of 16-bit pattern src[i], i < n.
  void (*fp16_to_float)(const uint16_t* src, float* dst, int64_t n);
  void (*bf16_to_float)(const uint16_t* src, float* dst, int64_t n);
  void (*attend_tile)(const TileArgs& args);
};

// The table the CPU path uses: the widest one this CPU supports, decided once. The environment
// variable PAGEDKV_CPU_KERNELS=baseline|avx2|avx512 caps it (to compare or test the narrower
// ones); a name the CPU cannot run, or an unknown one, is ignored with a warning.
const CpuKernelTable& CpuKernels();
// Each table, for tests and benchmarks: the baseline one always; the others or nullptr when this
// CPU (or this build) lacks the instructions.
const CpuKernelTable& CpuKernelsBaseline();
const CpuKernelTable* CpuKernelsAvx2();
const CpuKernelTable* CpuKernelsAvx512();

}  // namespace pagedkv::attention_internal

#endif  // PAGEDKV_ATTENTION_INTERNAL_CPU_KERNELS_H_
