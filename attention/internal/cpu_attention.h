// The CPU paged-attention path (decode and extend share it). Inputs are already validated by
// paged_attention.cc; page tables, queries and the pool are host memory.
#ifndef PAGEDKV_ATTENTION_INTERNAL_CPU_ATTENTION_H_
#define PAGEDKV_ATTENTION_INTERNAL_CPU_ATTENTION_H_

#include "pagedkv/attention/cpu_worker_pool.h"
#include "pagedkv/attention/paged_attention.h"
#include "pagedkv/attention/paged_kv_view.h"

namespace pagedkv::attention_internal {

// Work is split into items (a chunk of one sequence's query tokens, or a split of the chunk's KV
// range); each item walks its pages a tile at a time through every KV head, so each KV vector is
// loaded once for all query heads of its group and all query tokens of the chunk, with an online
// softmax (no score row is stored). Splits are merged at the end.
// qo_indptr == nullptr means decode (query token b belongs to sequence b).
// softmax_scale must be > 0; pool may be nullptr (a temporary pool is started).
void CpuPagedAttention(const PagedKVView& view, const QueryBatch& q, float softmax_scale,
                       int32_t window_tokens, CpuWorkerPool* pool);

}  // namespace pagedkv::attention_internal

#endif  // PAGEDKV_ATTENTION_INTERNAL_CPU_ATTENTION_H_
