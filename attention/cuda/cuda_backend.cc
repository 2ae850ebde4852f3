// The Status-returning CUDA entry points of attention/internal/cuda_launchers.h: device discovery
// (logged once), pointer classification, and the cache-op / attention launchers wrapped so that a
// CUDA error becomes an Internal status naming the operation.
#include <cuda_runtime.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "attention/cuda/kernels.h"
#include "attention/internal/cuda_launchers.h"
#include "pagedkv/core/logging.h"

namespace pagedkv::attention_internal {
namespace {

static_assert(sizeof(BlockCopy) == 2 * sizeof(int32_t), "BlockCopy is read as int32 pairs");

absl::Status FromCuda(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, ": CUDA error ", static_cast<int>(err), " (",
                                          cudaGetErrorName(err), ": ", cudaGetErrorString(err),
                                          ")"));
}

const int32_t* PairsAsInts(absl::Span<const BlockCopy> pairs) {
  return reinterpret_cast<const int32_t*>(pairs.data());
}

}  // namespace

bool CudaDeviceUsable() {
  static const bool usable = [] {
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
      cudaGetLastError();
      PAGEDKV_LOG_WARN(
          "pagedkv attention: built with CUDA but no usable CUDA device ({}); attention and "
          "cache ops on host memory run on the CPU, Backend::kCuda requests fail",
          err != cudaSuccess ? cudaGetErrorString(err) : "device count is 0");
      return false;
    }
    PAGEDKV_LOG_INFO("pagedkv attention: {} CUDA device(s) usable", count);
    return true;
  }();
  return usable;
}

bool CudaIsDevicePointer(const void* ptr) {
  if (ptr == nullptr || !CudaDeviceUsable()) return false;
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, ptr) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged;
}

absl::Status CudaWriteKV(const PagedKVView& view, const void* key, const void* value,
                         void* stream) {
  return FromCuda(
      attention_cuda::LaunchWriteKV(view, key, value, static_cast<cudaStream_t>(stream)),
      "WriteKV");
}

absl::Status CudaCopyBlocks(void* pool, uint64_t bytes_per_block,
                            absl::Span<const BlockCopy> copies, void* stream) {
  return FromCuda(attention_cuda::LaunchCopyBlocks(pool, bytes_per_block, PairsAsInts(copies),
                                                   static_cast<int64_t>(copies.size()),
                                                   static_cast<cudaStream_t>(stream)),
                  "CopyBlocks");
}

absl::Status CudaSwapBlocks(const void* src_pool, void* dst_pool, uint64_t bytes_per_block,
                            absl::Span<const BlockCopy> pairs, void* stream) {
  return FromCuda(attention_cuda::LaunchSwapBlocks(
                      src_pool, dst_pool, bytes_per_block, PairsAsInts(pairs),
                      static_cast<int64_t>(pairs.size()), static_cast<cudaStream_t>(stream)),
                  "SwapBlocks");
}

absl::Status CudaPagedAttention(const PagedKVView& view, const QueryBatch& q, float softmax_scale,
                                int32_t window_tokens, int32_t max_kv_len_hint, void* stream) {
  attention_cuda::AttentionLaunch a;
  a.view = view;
  a.q = q.q;
  a.out = q.out;
  a.qo_indptr = q.qo_indptr;
  a.num_tokens = q.num_tokens;
  a.num_q_heads = q.num_q_heads;
  a.softmax_scale = softmax_scale;
  a.window_tokens = window_tokens;
  a.max_kv_len_hint = max_kv_len_hint;
  return FromCuda(attention_cuda::LaunchPagedAttention(a, static_cast<cudaStream_t>(stream)),
                  q.qo_indptr ? "PagedAttentionExtend" : "PagedAttentionDecode");
}

}  // namespace pagedkv::attention_internal
