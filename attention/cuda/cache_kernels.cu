// Cache-op kernels: WriteKV (one block per new token, 16-byte stores when rows allow), CopyBlocks
// (all pairs in one launch, 16-byte copies), and the batched swap copy.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "attention/cuda/kernels.h"

namespace pagedkv::attention_cuda {
namespace {

// Unit: uint4 (16 bytes) when the row bytes and pointers allow it, else uint16_t.
template <typename Unit>
__global__ void WriteKVKernel(PagedKVView v, const Unit* __restrict__ key,
                              const Unit* __restrict__ value, int32_t units_per_row,
                              int32_t units_per_elem_div) {
  const int64_t t = blockIdx.x;
  const int64_t slot = v.slot_mapping[t];
  if (slot < 0) return;  // padding token
  const int32_t block = static_cast<int32_t>(slot / v.block_size);
  const int32_t off = static_cast<int32_t>(slot % v.block_size);
  Unit* pool = static_cast<Unit*>(v.pool);
  const int32_t units = v.num_kv_heads * units_per_row;
  for (int32_t i = threadIdx.x; i < units; i += blockDim.x) {
    const int32_t h = i / units_per_row, u = i % units_per_row;
    const int64_t src = (t * v.num_kv_heads + h) * units_per_row + u;
    // Offsets are in elements; units_per_elem_div converts them to units (8 for uint4 over 16-bit).
    pool[v.KOffset(block, h, off) / units_per_elem_div + u] = key[src];
    pool[v.VOffset(block, h, off) / units_per_elem_div + u] = value[src];
  }
}

template <typename Unit>
__global__ void CopyBlocksKernel(Unit* pool, const int32_t* __restrict__ pairs,
                                 int64_t units_per_block) {
  const int64_t src = pairs[2 * blockIdx.x], dst = pairs[2 * blockIdx.x + 1];
  const Unit* from = pool + src * units_per_block;
  Unit* to = pool + dst * units_per_block;
  for (int64_t i = int64_t{blockIdx.y} * blockDim.x + threadIdx.x; i < units_per_block;
       i += int64_t{gridDim.y} * blockDim.x) {
    to[i] = from[i];
  }
}

bool Aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

cudaError_t LaunchWriteKV(const PagedKVView& v, const void* key, const void* value,
                          cudaStream_t stream) {
  if (v.num_slots == 0) return cudaSuccess;
  const int64_t elem = static_cast<int64_t>(DTypeSize(v.dtype));
  const int64_t row_bytes = int64_t{v.head_dim} * elem;
  const bool vec = row_bytes % 16 == 0 && Aligned16(v.pool) && Aligned16(key) && Aligned16(value) &&
                   (v.block_stride_elems * elem) % 16 == 0 &&
                   (v.layer_offset_elems * elem) % 16 == 0;
  const unsigned grid = static_cast<unsigned>(v.num_slots);
  if (vec) {
    const int32_t units_per_row = static_cast<int32_t>(row_bytes / 16);
    const int32_t threads = std::min(256, std::max(32, v.num_kv_heads * units_per_row));
    WriteKVKernel<uint4><<<grid, threads, 0, stream>>>(
        v, static_cast<const uint4*>(key), static_cast<const uint4*>(value), units_per_row,
        static_cast<int32_t>(16 / elem));
  } else if (elem == 2) {
    const int32_t threads = std::min(256, std::max(32, v.num_kv_heads * v.head_dim));
    WriteKVKernel<uint16_t><<<grid, threads, 0, stream>>>(
        v, static_cast<const uint16_t*>(key), static_cast<const uint16_t*>(value), v.head_dim, 1);
  } else {
    const int32_t threads = std::min(256, std::max(32, v.num_kv_heads * v.head_dim));
    WriteKVKernel<uint32_t><<<grid, threads, 0, stream>>>(
        v, static_cast<const uint32_t*>(key), static_cast<const uint32_t*>(value), v.head_dim, 1);
  }
  return cudaGetLastError();
}

cudaError_t LaunchCopyBlocks(void* pool, uint64_t bytes_per_block, const int32_t* pairs_src_dst,
                             int64_t num_pairs, cudaStream_t stream) {
  if (num_pairs == 0) return cudaSuccess;
  const size_t pair_bytes = size_t(num_pairs) * 2 * sizeof(int32_t);
  int32_t* d_pairs = nullptr;
  cudaError_t err = cudaMallocAsync(reinterpret_cast<void**>(&d_pairs), pair_bytes, stream);
  if (err != cudaSuccess) return err;
  // From pageable memory the copy has taken the host data by the time it returns.
  err = cudaMemcpyAsync(d_pairs, pairs_src_dst, pair_bytes, cudaMemcpyHostToDevice, stream);
  if (err == cudaSuccess) {
    constexpr int kThreads = 256;
    const bool vec = bytes_per_block % 16 == 0 && Aligned16(pool);
    const int64_t units = vec ? int64_t(bytes_per_block / 16) : int64_t(bytes_per_block);
    // Enough blocks per pair to keep every SM busy for a few pairs, at most 64.
    const unsigned per_pair = static_cast<unsigned>(
        std::clamp<int64_t>((units + kThreads * 4 - 1) / (kThreads * 4), 1, 64));
    const dim3 grid(static_cast<unsigned>(num_pairs), per_pair);
    if (vec) {
      CopyBlocksKernel<uint4>
          <<<grid, kThreads, 0, stream>>>(static_cast<uint4*>(pool), d_pairs, units);
    } else {
      CopyBlocksKernel<uint8_t>
          <<<grid, kThreads, 0, stream>>>(static_cast<uint8_t*>(pool), d_pairs, units);
    }
    err = cudaGetLastError();
  }
  const cudaError_t free_err = cudaFreeAsync(d_pairs, stream);
  return err != cudaSuccess ? err : free_err;
}

cudaError_t LaunchSwapBlocks(const void* src_pool, void* dst_pool, uint64_t bytes_per_block,
                             const int32_t* pairs_src_dst, int64_t num_pairs, cudaStream_t stream) {
  if (num_pairs == 0) return cudaSuccess;
  // Runs of consecutive source and destination blocks become one copy each.
  std::vector<void*> dsts;
  std::vector<const void*> srcs;
  std::vector<size_t> sizes;
  const auto* src = static_cast<const uint8_t*>(src_pool);
  auto* dst = static_cast<uint8_t*>(dst_pool);
  int64_t i = 0;
  while (i < num_pairs) {
    int64_t j = i + 1;
    while (j < num_pairs && pairs_src_dst[2 * j] == pairs_src_dst[2 * (j - 1)] + 1 &&
           pairs_src_dst[2 * j + 1] == pairs_src_dst[2 * (j - 1) + 1] + 1) {
      ++j;
    }
    srcs.push_back(src + uint64_t(pairs_src_dst[2 * i]) * bytes_per_block);
    dsts.push_back(dst + uint64_t(pairs_src_dst[2 * i + 1]) * bytes_per_block);
    sizes.push_back(size_t(j - i) * bytes_per_block);
    i = j;
  }
  if (stream != nullptr && dsts.size() > 1) {
    cudaMemcpyAttributes attr{};
    attr.srcAccessOrder = cudaMemcpySrcAccessOrderStream;
    size_t attr_index = 0;
    const cudaError_t err = cudaMemcpyBatchAsync(dsts.data(), srcs.data(), sizes.data(),
                                                 dsts.size(), &attr, &attr_index, 1, stream);
    if (err == cudaSuccess) return cudaSuccess;
    cudaGetLastError();  // not supported here (driver, legacy stream): copy run by run below
  }
  for (size_t r = 0; r < dsts.size(); ++r) {
    const cudaError_t err = cudaMemcpyAsync(dsts[r], srcs[r], sizes[r], cudaMemcpyDefault, stream);
    if (err != cudaSuccess) return err;
  }
  return cudaSuccess;
}

}  // namespace pagedkv::attention_cuda
