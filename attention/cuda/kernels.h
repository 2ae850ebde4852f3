// Launchers of the attention-area CUDA kernels, as plain functions returning cudaError_t (no
// Abseil here, so nvcc never parses it). attention/cuda/cuda_backend.cc wraps them into the
// Status-returning functions of attention/internal/cuda_launchers.h. Inputs are already validated;
// every pointer except the host-side pair lists is device memory.
#ifndef PAGEDKV_ATTENTION_CUDA_KERNELS_H_
#define PAGEDKV_ATTENTION_CUDA_KERNELS_H_

#include <cuda_runtime.h>

#include <cstdint>

#include "pagedkv/attention/paged_kv_view.h"

namespace pagedkv::attention_cuda {

// One paged-attention launch (decode when qo_indptr == nullptr, else extend).
struct AttentionLaunch {
  PagedKVView view;                    // pool and page table in device memory
  const void* q = nullptr;             // [num_tokens, num_q_heads, head_dim], view.dtype
  void* out = nullptr;                 // same shape and dtype
  const int32_t* qo_indptr = nullptr;  // [batch_size + 1] device memory, or nullptr (decode)
  int64_t num_tokens = 0;
  int32_t num_q_heads = 0;
  float softmax_scale = 0.0f;   // > 0
  int32_t window_tokens = 0;    // 0 = none
  int32_t max_kv_len_hint = 0;  // 0 = unknown: no split-KV
};

// Picks the split-KV partition, runs the attention kernel (and the combine kernel when split).
// Temporary split buffers are stream-ordered allocations (cudaMallocAsync) freed on the stream.
cudaError_t LaunchPagedAttention(const AttentionLaunch& a, cudaStream_t stream);

// The split count LaunchPagedAttention would use (exposed for tests and the benchmark).
int32_t ChooseNumSplits(int64_t work_blocks, int32_t kv_len_tokens, int32_t num_sms);

// key/value: [view.num_slots, num_kv_heads, head_dim] device memory; view.slot_mapping device.
cudaError_t LaunchWriteKV(const PagedKVView& view, const void* key, const void* value,
                          cudaStream_t stream);

// pairs: host memory, (src, dst) block ids; staged to the device and copied in one launch.
cudaError_t LaunchCopyBlocks(void* pool, uint64_t bytes_per_block, const int32_t* pairs_src_dst,
                             int64_t num_pairs, cudaStream_t stream);

// Whole-block copies between two pools (device or pinned host), runs of consecutive blocks merged,
// issued as one cudaMemcpyBatchAsync (one cudaMemcpyAsync per run on the legacy default stream,
// which the batch API does not accept).
cudaError_t LaunchSwapBlocks(const void* src_pool, void* dst_pool, uint64_t bytes_per_block,
                             const int32_t* pairs_src_dst, int64_t num_pairs, cudaStream_t stream);

}  // namespace pagedkv::attention_cuda

#endif  // PAGEDKV_ATTENTION_CUDA_KERNELS_H_
