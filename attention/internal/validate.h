// Boundary checks shared by paged_attention.cc and cache_ops.cc: every user mistake becomes an
// InvalidArgument naming the field, its value and the valid range, before any kernel runs.
#ifndef PAGEDKV_ATTENTION_INTERNAL_VALIDATE_H_
#define PAGEDKV_ATTENTION_INTERNAL_VALIDATE_H_

#include "absl/status/status.h"
#include "pagedkv/attention/backend.h"
#include "pagedkv/attention/paged_attention.h"
#include "pagedkv/attention/paged_kv_view.h"

namespace pagedkv::attention_internal {

// Pool geometry: pointers, positive sizes, strides consistent, dtype supported by `backend`
// (kCpu or kCuda, already resolved).
absl::Status ValidatePool(const PagedKVView& view, Backend backend);
// Page table: shape checks always; contents (indptr monotone, >= 1 page per sequence, block ids
// < num_blocks, last_page_len in 1..block_size) only for kCpu, where the arrays are host memory.
absl::Status ValidatePageTable(const PagedKVView& view, Backend backend);
// Queries against the view; `extend` requires qo_indptr (contents checked on kCpu).
absl::Status ValidateQueries(const PagedKVView& view, const QueryBatch& q, bool extend,
                             Backend backend);
// Resolves kAuto by where `ptr` lives; FailedPrecondition when CUDA is asked for but unavailable.
absl::Status ResolveBackend(Backend requested, const void* ptr, Backend* resolved);

}  // namespace pagedkv::attention_internal

#endif  // PAGEDKV_ATTENTION_INTERNAL_VALIDATE_H_
