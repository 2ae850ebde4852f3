// The paged-attention kernel templates. One thread block handles one query token, one KV head and
// up to kMaxGroup query heads of that KV head's group, over one split of the KV range: every K and
// V row of a page is loaded once (16-byte vector loads) for all those query heads. Online softmax
// in base 2 over tiles of kTileTokens; with several splits each block writes a normalized partial
// output and its log-sum-exp, and CombineSplitsKernel merges them (flash-decoding).
#ifndef PAGEDKV_ATTENTION_CUDA_ATTENTION_KERNEL_CUH_
#define PAGEDKV_ATTENTION_CUDA_ATTENTION_KERNEL_CUH_

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "pagedkv/attention/paged_kv_view.h"

namespace pagedkv::attention_cuda {

inline constexpr int kThreads = 128;    // 4 warps per block
inline constexpr int kVec = 8;          // 16-bit elements per 16-byte load
inline constexpr int kTileTokens = 64;  // KV tokens per online-softmax step

struct KernelParams {
  PagedKVView view;
  const void* q;
  void* out;
  const int32_t* qo_indptr;  // nullptr = decode
  int64_t num_tokens;
  int32_t num_q_heads;
  int32_t group;        // query heads per KV head
  int32_t head_chunks;  // ceil(group / kMaxGroup): blockIdx.y = kv_head * head_chunks + chunk
  float scale_log2;     // softmax_scale * log2(e)
  int32_t window_tokens;
  int32_t num_splits;
  int32_t tokens_per_split;  // a multiple of kTileTokens
  float* partial_out;        // [num_splits, num_tokens, num_q_heads, head_dim] when split
  float* partial_lse;        // [num_splits, num_tokens, num_q_heads], base 2, when split
};

template <typename T>
__device__ __forceinline__ void Unpack8(const uint4& raw, float* f);
template <>
__device__ __forceinline__ void Unpack8<__half>(const uint4& raw, float* f) {
  const __half2* h = reinterpret_cast<const __half2*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 x = __half22float2(h[i]);
    f[2 * i] = x.x;
    f[2 * i + 1] = x.y;
  }
}
template <>
__device__ __forceinline__ void Unpack8<__nv_bfloat16>(const uint4& raw, float* f) {
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 x = __bfloat1622float2(h[i]);
    f[2 * i] = x.x;
    f[2 * i + 1] = x.y;
  }
}

__device__ __forceinline__ float ToFloat(__half x) { return __half2float(x); }
__device__ __forceinline__ float ToFloat(__nv_bfloat16 x) { return __bfloat162float(x); }
template <typename T>
__device__ __forceinline__ T FromFloat(float x);
template <>
__device__ __forceinline__ __half FromFloat<__half>(float x) {
  return __float2half_rn(x);
}
template <>
__device__ __forceinline__ __nv_bfloat16 FromFloat<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

// Sequence of query token `token` and its position in that sequence's KV.
__device__ __forceinline__ void LocateToken(const KernelParams& p, int64_t token, int32_t* seq,
                                            int32_t* pos) {
  const PagedKVView& v = p.view;
  if (p.qo_indptr == nullptr) {
    *seq = static_cast<int32_t>(token);
    *pos = v.SeqLen(*seq) - 1;
    return;
  }
  // Last b with qo_indptr[b] <= token: the sequence whose query rows hold `token` (sequences
  // with no query rows share their indptr value with the next one and are skipped).
  int32_t lo = 0, hi = v.batch_size - 1;
  while (lo < hi) {
    const int32_t mid = (lo + hi + 1) / 2;
    if (p.qo_indptr[mid] <= token) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  *seq = lo;
  *pos = v.SeqLen(lo) - static_cast<int32_t>(p.qo_indptr[lo + 1] - token);
}

template <typename T, int kHeadDim, int kMaxGroup>
__global__ void __launch_bounds__(kThreads)
    PagedAttentionKernel(const __grid_constant__ KernelParams p) {
  constexpr int kLanesPerToken = kHeadDim / kVec;            // 8, 16 or 32 (within one warp)
  constexpr int kTokensPerPass = kThreads / kLanesPerToken;  // 16, 8 or 4
  constexpr int kWarps = kThreads / 32;
  static_assert(kTileTokens % kTokensPerPass == 0 && kTileTokens == 64, "tile shape");

  __shared__ float s_p[kMaxGroup][kTileTokens];  // scores, then probabilities, of one tile
  __shared__ float s_m[kMaxGroup], s_l[kMaxGroup], s_alpha[kMaxGroup];
  __shared__ float s_o[kMaxGroup][kHeadDim];

  const PagedKVView& v = p.view;
  const int64_t token = blockIdx.x;
  const int32_t kv_head = blockIdx.y / p.head_chunks;
  const int32_t head0 = (blockIdx.y % p.head_chunks) * kMaxGroup;  // first query head in group
  const int32_t heads = min(kMaxGroup, p.group - head0);
  const int32_t split = blockIdx.z;
  const int tid = threadIdx.x;
  const int lane_in_token = tid % kLanesPerToken;
  const int token_lane = tid / kLanesPerToken;

  int32_t seq, pos;
  LocateToken(p, token, &seq, &pos);
  const int32_t kv_begin = p.window_tokens > 0 ? max(0, pos - p.window_tokens + 1) : 0;
  const int32_t kv_end = pos + 1;
  const int32_t begin = kv_begin + split * p.tokens_per_split;
  // The last split runs to the end even when max_kv_len_hint was too small.
  const int32_t end = split == p.num_splits - 1 ? kv_end : min(kv_end, begin + p.tokens_per_split);

  // This thread's slice of every query head, pre-scaled so that scores are base-2 logits.
  const T* q = static_cast<const T*>(p.q);
  const int64_t q_row0 = token * p.num_q_heads + int64_t{kv_head} * p.group + head0;
  float q_reg[kMaxGroup][kVec];
#pragma unroll
  for (int g = 0; g < kMaxGroup; ++g) {
    if (g < heads) {
      const uint4 raw =
          *reinterpret_cast<const uint4*>(q + (q_row0 + g) * kHeadDim + lane_in_token * kVec);
      Unpack8<T>(raw, q_reg[g]);
#pragma unroll
      for (int i = 0; i < kVec; ++i) q_reg[g][i] *= p.scale_log2;
    } else {
#pragma unroll
      for (int i = 0; i < kVec; ++i) q_reg[g][i] = 0.0f;
    }
  }
  for (int i = tid; i < kMaxGroup * kHeadDim; i += kThreads) (&s_o[0][0])[i] = 0.0f;
  if (tid < kMaxGroup) {
    s_m[tid] = -INFINITY;
    s_l[tid] = 0.0f;
  }
  float acc[kMaxGroup][kVec];
#pragma unroll
  for (int g = 0; g < kMaxGroup; ++g) {
#pragma unroll
    for (int i = 0; i < kVec; ++i) acc[g][i] = 0.0f;
  }
  __syncthreads();

  const T* pool = static_cast<const T*>(v.pool);
  for (int32_t t0 = begin; t0 < end; t0 += kTileTokens) {
    const int32_t n = min(kTileTokens, end - t0);
    // Scores: kLanesPerToken threads per token, each one 16-byte slice of the K row. Every thread
    // runs the same trip count so the shuffles see full warps.
#pragma unroll
    for (int it = 0; it < kTileTokens / kTokensPerPass; ++it) {
      const int j = it * kTokensPerPass + token_lane;
      float dot[kMaxGroup];
#pragma unroll
      for (int g = 0; g < kMaxGroup; ++g) dot[g] = 0.0f;
      if (j < n) {
        const int32_t t = t0 + j;
        const uint4 raw = *reinterpret_cast<const uint4*>(
            pool + v.KOffset(v.BlockOf(seq, t), kv_head, t % v.block_size) + lane_in_token * kVec);
        float k[kVec];
        Unpack8<T>(raw, k);
#pragma unroll
        for (int g = 0; g < kMaxGroup; ++g) {
#pragma unroll
          for (int i = 0; i < kVec; ++i) dot[g] += q_reg[g][i] * k[i];
        }
      }
#pragma unroll
      for (int g = 0; g < kMaxGroup; ++g) {
#pragma unroll
        for (int off = kLanesPerToken / 2; off > 0; off >>= 1) {
          dot[g] += __shfl_xor_sync(0xffffffffu, dot[g], off);
        }
      }
      if (lane_in_token == 0) {
#pragma unroll
        for (int g = 0; g < kMaxGroup; ++g) s_p[g][j] = j < n ? dot[g] : -INFINITY;
      }
    }
    __syncthreads();

    // Online-softmax bookkeeping: one warp per head.
    const int warp = tid / 32, lane = tid % 32;
    for (int g = warp; g < kMaxGroup; g += kWarps) {
      const float a = s_p[g][lane], b = s_p[g][lane + 32];
      float mx = fmaxf(a, b);
#pragma unroll
      for (int off = 16; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
      const float m_old = s_m[g];
      const float m_new = fmaxf(m_old, mx);  // finite: the tile has at least one token
      const float pa = exp2f(a - m_new), pb = exp2f(b - m_new);
      s_p[g][lane] = pa;
      s_p[g][lane + 32] = pb;
      float sum = pa + pb;
#pragma unroll
      for (int off = 16; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
      __syncwarp();  // every lane has read s_m[g] before lane 0 rewrites it
      if (lane == 0) {
        const float alpha = exp2f(m_old - m_new);  // 0 on the first tile (m_old = -inf)
        s_alpha[g] = alpha;
        s_l[g] = s_l[g] * alpha + sum;
        s_m[g] = m_new;
      }
    }
    __syncthreads();

    // Values: the same thread layout; each V slice is loaded once for every head.
#pragma unroll
    for (int g = 0; g < kMaxGroup; ++g) {
      const float alpha = s_alpha[g];
#pragma unroll
      for (int i = 0; i < kVec; ++i) acc[g][i] *= alpha;
    }
    // Constant trip count (guarded) so that the loads of the whole tile are issued together.
#pragma unroll
    for (int it = 0; it < kTileTokens / kTokensPerPass; ++it) {
      const int j = it * kTokensPerPass + token_lane;
      if (j < n) {
        const int32_t t = t0 + j;
        const uint4 raw = *reinterpret_cast<const uint4*>(
            pool + v.VOffset(v.BlockOf(seq, t), kv_head, t % v.block_size) + lane_in_token * kVec);
        float val[kVec];
        Unpack8<T>(raw, val);
#pragma unroll
        for (int g = 0; g < kMaxGroup; ++g) {
          const float pr = s_p[g][j];
#pragma unroll
          for (int i = 0; i < kVec; ++i) acc[g][i] += pr * val[i];
        }
      }
    }
    __syncthreads();  // s_p is rewritten by the next tile
  }

  // Sum the token lanes' partial outputs.
#pragma unroll
  for (int g = 0; g < kMaxGroup; ++g) {
    if (g < heads) {
#pragma unroll
      for (int i = 0; i < kVec; ++i) atomicAdd(&s_o[g][lane_in_token * kVec + i], acc[g][i]);
    }
  }
  __syncthreads();

  for (int i = tid; i < heads * kHeadDim; i += kThreads) {
    const int g = i / kHeadDim, d = i % kHeadDim;
    const int64_t row = q_row0 + g;  // (token, query head)
    const float l = s_l[g];
    if (p.num_splits == 1) {
      static_cast<T*>(p.out)[row * kHeadDim + d] = FromFloat<T>(s_o[g][d] / l);
    } else {
      const int64_t prow = int64_t{split} * p.num_tokens * p.num_q_heads + row;
      p.partial_out[prow * kHeadDim + d] = l > 0.0f ? s_o[g][d] / l : 0.0f;
      if (d == 0) p.partial_lse[prow] = l > 0.0f ? s_m[g] + log2f(l) : -INFINITY;
    }
  }
}

// Merges the splits of one (token, query head): weights 2^(lse_s - max lse).
template <typename T>
__global__ void CombineSplitsKernel(const float* __restrict__ partial_out,
                                    const float* __restrict__ partial_lse, T* __restrict__ out,
                                    int64_t num_tokens, int32_t num_q_heads, int32_t head_dim,
                                    int32_t num_splits) {
  const int64_t row = int64_t{blockIdx.x} * num_q_heads + blockIdx.y;
  const int64_t split_stride = num_tokens * num_q_heads;
  float mx = -INFINITY;
  for (int32_t s = 0; s < num_splits; ++s) mx = fmaxf(mx, partial_lse[s * split_stride + row]);
  float denom = 0.0f;
  for (int32_t s = 0; s < num_splits; ++s) denom += exp2f(partial_lse[s * split_stride + row] - mx);
  for (int32_t d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float sum = 0.0f;
    for (int32_t s = 0; s < num_splits; ++s) {
      const int64_t prow = s * split_stride + row;
      const float w = exp2f(partial_lse[prow] - mx);
      if (w > 0.0f) sum += w * partial_out[prow * head_dim + d];
    }
    out[row * head_dim + d] = FromFloat<T>(sum / denom);
  }
}

}  // namespace pagedkv::attention_cuda

#endif  // PAGEDKV_ATTENTION_CUDA_ATTENTION_KERNEL_CUH_
