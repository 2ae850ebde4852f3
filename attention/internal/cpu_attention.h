// The CPU paged-attention path (decode and extend share it). Inputs are already validated by
// paged_attention.cc; page tables, queries and the pool are host memory.
#ifndef PAGEDKV_ATTENTION_INTERNAL_CPU_ATTENTION_H_
#define PAGEDKV_ATTENTION_INTERNAL_CPU_ATTENTION_H_

#include "pagedkv/attention/cpu_worker_pool.h"
#include "pagedkv/attention/paged_attention.h"
#include "pagedkv/attention/paged_kv_view.h"

namespace pagedkv::attention_internal {

// Work is split into items (sequence, KV head, chunk of query tokens); each item walks the pages
// of its sequence once, converting a tile of K/V rows to float once for all query heads of the KV
// head's group and all query tokens of the chunk, with an online softmax (no score row is stored).
// qo_indptr == nullptr means decode (query token b belongs to sequence b).
// softmax_scale must be > 0; pool may be nullptr (a temporary pool is started).
void CpuPagedAttention(const PagedKVView& view, const QueryBatch& q, float softmax_scale,
                       int32_t window_tokens, CpuWorkerPool* pool);

}  // namespace pagedkv::attention_internal

#endif  // PAGEDKV_ATTENTION_INTERNAL_CPU_ATTENTION_H_
