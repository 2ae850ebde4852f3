// The CUDA side of the attention area, as seen from the host code. Defined in attention/cuda/*.cu
// when PAGEDKV_HAVE_CUDA; paged_attention.cc and cache_ops.cc call them only in such builds.
// Inputs are validated by the callers; pointers are device memory (except where noted).
#ifndef PAGEDKV_ATTENTION_INTERNAL_CUDA_LAUNCHERS_H_
#define PAGEDKV_ATTENTION_INTERNAL_CUDA_LAUNCHERS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "pagedkv/attention/cache_ops.h"
#include "pagedkv/attention/paged_attention.h"
#include "pagedkv/attention/paged_kv_view.h"

namespace pagedkv::attention_internal {

// True when a CUDA device can be used now (device count > 0 and the runtime initializes).
bool CudaDeviceUsable();
// True when `ptr` is device memory (or managed memory) of the current CUDA context.
bool CudaIsDevicePointer(const void* ptr);

absl::Status CudaWriteKV(const PagedKVView& view, const void* key, const void* value, void* stream);
// `copies` is host memory; it is staged to the device and copied in one launch.
absl::Status CudaCopyBlocks(void* pool, uint64_t bytes_per_block,
                            absl::Span<const BlockCopy> copies, void* stream);
// One batched copy for all pairs (src/dst pools: device or pinned host).
absl::Status CudaSwapBlocks(const void* src_pool, void* dst_pool, uint64_t bytes_per_block,
                            absl::Span<const BlockCopy> pairs, void* stream);
// Decode (q.qo_indptr == nullptr) or extend. softmax_scale > 0.
absl::Status CudaPagedAttention(const PagedKVView& view, const QueryBatch& q, float softmax_scale,
                                int32_t window_tokens, int32_t max_kv_len_hint, void* stream);

}  // namespace pagedkv::attention_internal

#endif  // PAGEDKV_ATTENTION_INTERNAL_CUDA_LAUNCHERS_H_
