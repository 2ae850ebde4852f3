// PagedAttention: attention of new query tokens over K/V stored in pages of a pool, read through
// the batch's page table (PagedKVView). Decode: one query token per sequence. Extend (chunked
// prefill): the query tokens of sequence b are the LAST (qo_indptr[b+1] - qo_indptr[b]) tokens of
// its KV (already written with WriteKV) and attend causally. GQA/MQA, optional sliding window.
//
//   QueryBatch q{.q = q_ptr, .out = out_ptr, .dtype = DType::kBf16, .num_q_heads = 32,
//                .num_tokens = batch_size};
//   PAGEDKV_RETURN_IF_ERROR(PagedAttentionDecode(view, q, {}));
#ifndef PAGEDKV_ATTENTION_PAGED_ATTENTION_H_
#define PAGEDKV_ATTENTION_PAGED_ATTENTION_H_

#include <cstdint>

#include "absl/status/status.h"
#include "pagedkv/attention/backend.h"
#include "pagedkv/attention/cpu_worker_pool.h"
#include "pagedkv/attention/paged_kv_view.h"
#include "pagedkv/core/types.h"

namespace pagedkv {

struct QueryBatch {
  // [num_tokens, num_q_heads, head_dim] Queries; same dtype as the KV (or fp32 on the CPU).
  const void* q = nullptr;
  // [num_tokens, num_q_heads, head_dim] Output, same dtype as q. Every element is written.
  void* out = nullptr;
  DType dtype = DType::kFp16;
  // A multiple of the view's num_kv_heads (query head h reads KV head h / (num_q_heads /
  // num_kv_heads)).
  int32_t num_q_heads = 0;
  // Decode: == batch_size. Extend: == qo_indptr[batch_size].
  int64_t num_tokens = 0;
  // [batch_size + 1] Extend only: the query tokens of sequence b are rows
  // qo_indptr[b] .. qo_indptr[b+1] of q; qo_indptr[0] == 0; each count <= that sequence's KV
  // length.
  const int32_t* qo_indptr = nullptr;
};

struct AttentionOptions {
  // Scale of q.k before the softmax; 0 = 1 / sqrt(head_dim).
  float softmax_scale = 0.0f;
  // Sliding window: a query at position p sees KV positions (p - window_tokens, p]; 0 = no window.
  int32_t window_tokens = 0;
  Backend backend = Backend::kAuto;
  // CPU: threads to use; nullptr = start threads for this call only (all cores).
  CpuWorkerPool* cpu_pool = nullptr;
  // CUDA: the stream (cudaStream_t; nullptr = default stream); the call is asynchronous on it.
  void* cuda_stream = nullptr;
  // CUDA decode: an upper bound of the KV length of any sequence in the batch (the page table is on
  // the device, so the host cannot see it); sizes the split-KV partition. 0 = unknown.
  int32_t max_kv_len_hint = 0;
};

// One query token per sequence: q.num_tokens == view.batch_size; qo_indptr is ignored.
absl::Status PagedAttentionDecode(const PagedKVView& view, const QueryBatch& q,
                                  const AttentionOptions& options);

// Several query tokens per sequence (q.qo_indptr required), causal within the sequence.
absl::Status PagedAttentionExtend(const PagedKVView& view, const QueryBatch& q,
                                  const AttentionOptions& options);

}  // namespace pagedkv

#endif  // PAGEDKV_ATTENTION_PAGED_ATTENTION_H_
