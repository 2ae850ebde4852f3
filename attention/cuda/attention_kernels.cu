// Dispatch of the paged-attention kernels: runtime dtype, head dim and group size become template
// constants here, and only here. Instantiations: {fp16, bf16} x head_dim {64, 128, 256} x
// max group {1, 2, 4, 8} = 24 attention kernels + 2 combine kernels; a group above 8 runs in
// chunks of 8 query heads (grid dimension y), a group of 3 uses the 4 instantiation, and so on.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>

#include "attention/cuda/attention_kernel.cuh"
#include "attention/cuda/kernels.h"

namespace pagedkv::attention_cuda {
namespace {

// Below this many KV tokens per split the combine step costs more than the parallelism gains.
constexpr int32_t kMinTokensPerSplit = 256;
constexpr int32_t kMaxSplits = 64;

int NumSms() {
  static const int num_sms = [] {
    int device = 0, sms = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) {
      cudaGetLastError();
      return 108;
    }
    return sms;
  }();
  return num_sms;
}

template <typename T, int kHeadDim, int kMaxGroup>
cudaError_t LaunchTyped(const KernelParams& p, dim3 grid, cudaStream_t stream) {
  PagedAttentionKernel<T, kHeadDim, kMaxGroup><<<grid, kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

template <typename T, int kHeadDim>
cudaError_t DispatchGroup(int max_group, const KernelParams& p, dim3 grid, cudaStream_t stream) {
  switch (max_group) {
    case 1:
      return LaunchTyped<T, kHeadDim, 1>(p, grid, stream);
    case 2:
      return LaunchTyped<T, kHeadDim, 2>(p, grid, stream);
    case 4:
      return LaunchTyped<T, kHeadDim, 4>(p, grid, stream);
    case 8:
      return LaunchTyped<T, kHeadDim, 8>(p, grid, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

template <typename T>
cudaError_t DispatchHeadDim(int head_dim, int max_group, const KernelParams& p, dim3 grid,
                            cudaStream_t stream) {
  switch (head_dim) {
    case 64:
      return DispatchGroup<T, 64>(max_group, p, grid, stream);
    case 128:
      return DispatchGroup<T, 128>(max_group, p, grid, stream);
    case 256:
      return DispatchGroup<T, 256>(max_group, p, grid, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

template <typename T>
cudaError_t RunTyped(const AttentionLaunch& a, KernelParams p, int max_group, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(a.num_tokens),
                  static_cast<unsigned>(a.view.num_kv_heads * p.head_chunks),
                  static_cast<unsigned>(p.num_splits));
  if (p.num_splits == 1) return DispatchHeadDim<T>(a.view.head_dim, max_group, p, grid, stream);
  const size_t rows = size_t(p.num_splits) * size_t(a.num_tokens) * size_t(a.num_q_heads);
  void* workspace = nullptr;
  cudaError_t err =
      cudaMallocAsync(&workspace, rows * (size_t(a.view.head_dim) + 1) * sizeof(float), stream);
  if (err != cudaSuccess) return err;
  p.partial_out = static_cast<float*>(workspace);
  p.partial_lse = p.partial_out + rows * a.view.head_dim;
  err = DispatchHeadDim<T>(a.view.head_dim, max_group, p, grid, stream);
  if (err == cudaSuccess) {
    CombineSplitsKernel<T>
        <<<dim3(static_cast<unsigned>(a.num_tokens), a.num_q_heads), std::min(a.view.head_dim, 128),
           0, stream>>>(p.partial_out, p.partial_lse, static_cast<T*>(a.out), a.num_tokens,
                        a.num_q_heads, a.view.head_dim, p.num_splits);
    err = cudaGetLastError();
  }
  const cudaError_t free_err = cudaFreeAsync(workspace, stream);
  return err != cudaSuccess ? err : free_err;
}

}  // namespace

int32_t ChooseNumSplits(int64_t work_blocks, int32_t kv_len_tokens, int32_t num_sms) {
  if (kv_len_tokens <= 0 || work_blocks <= 0) return 1;
  // Aim for about two waves of blocks over the SMs, never below kMinTokensPerSplit per split.
  const int64_t by_occupancy = (2 * int64_t{num_sms} + work_blocks - 1) / work_blocks;
  const int64_t by_length = (kv_len_tokens + kMinTokensPerSplit - 1) / kMinTokensPerSplit;
  return static_cast<int32_t>(
      std::clamp<int64_t>(std::min(by_occupancy, by_length), 1, kMaxSplits));
}

cudaError_t LaunchPagedAttention(const AttentionLaunch& a, cudaStream_t stream) {
  if (a.num_tokens == 0) return cudaSuccess;
  const int32_t group = a.num_q_heads / a.view.num_kv_heads;
  const int max_group = group <= 1 ? 1 : group <= 2 ? 2 : group <= 4 ? 4 : 8;
  KernelParams p{};
  p.view = a.view;
  p.q = a.q;
  p.out = a.out;
  p.qo_indptr = a.qo_indptr;
  p.num_tokens = a.num_tokens;
  p.num_q_heads = a.num_q_heads;
  p.group = group;
  p.head_chunks = (group + max_group - 1) / max_group;
  p.scale_log2 = a.softmax_scale * 1.4426950408889634f;
  p.window_tokens = a.window_tokens;
  // The KV range one query token reads: the sequence length, or the window when smaller.
  int32_t kv_len = a.max_kv_len_hint;
  if (a.window_tokens > 0 && kv_len > 0) kv_len = std::min(kv_len, a.window_tokens);
  const int64_t work_blocks = a.num_tokens * a.view.num_kv_heads * p.head_chunks;
  p.num_splits = ChooseNumSplits(work_blocks, kv_len, NumSms());
  p.tokens_per_split = 0;
  if (p.num_splits > 1) {
    const int32_t per = (kv_len + p.num_splits - 1) / p.num_splits;
    p.tokens_per_split = (per + kTileTokens - 1) / kTileTokens * kTileTokens;
    p.num_splits = (kv_len + p.tokens_per_split - 1) / p.tokens_per_split;
  }
  if (p.num_splits <= 1) {
    p.num_splits = 1;
    p.tokens_per_split = 0;
  }
  switch (a.view.dtype) {
    case DType::kFp16:
      return RunTyped<__half>(a, p, max_group, stream);
    case DType::kBf16:
      return RunTyped<__nv_bfloat16>(a, p, max_group, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace pagedkv::attention_cuda
