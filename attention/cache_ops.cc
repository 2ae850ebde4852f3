#include "pagedkv/attention/cache_ops.h"

#include <cstring>
#include <vector>

#include "absl/strings/str_format.h"
#include "attention/internal/cpu_cache_ops.h"
#include "attention/internal/validate.h"
#include "pagedkv/core/status.h"

#if PAGEDKV_ATTENTION_CUDA
#include "attention/internal/cuda_launchers.h"
#endif

namespace pagedkv {
namespace {

// Block ids in range, destinations distinct, and (within one pool) no destination also a source.
absl::Status ValidatePairs(absl::Span<const BlockCopy> pairs, int32_t src_num_blocks,
                           int32_t dst_num_blocks, bool same_pool) {
  std::vector<uint8_t> is_dst(static_cast<size_t>(dst_num_blocks), 0);
  for (size_t i = 0; i < pairs.size(); ++i) {
    const BlockCopy& p = pairs[i];
    if (p.src < 0 || p.src >= src_num_blocks || p.dst < 0 || p.dst >= dst_num_blocks) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "pair %d (src %d -> dst %d) names a block outside the pools (%d source blocks, %d "
          "destination blocks)",
          i, p.src, p.dst, src_num_blocks, dst_num_blocks));
    }
    if (is_dst[p.dst]) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "pair %d: block %d is the destination of two pairs; the copies run concurrently", i,
          p.dst));
    }
    is_dst[p.dst] = 1;
  }
  if (same_pool) {
    for (size_t i = 0; i < pairs.size(); ++i) {
      if (is_dst[pairs[i].src]) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "pair %d: block %d is both a source and a destination; the copies run concurrently, "
            "split them into two calls",
            i, pairs[i].src));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status WriteKV(const PagedKVView& view, const void* key, const void* value,
                     const CacheOpOptions& options) {
  Backend backend;
  PAGEDKV_RETURN_IF_ERROR(attention_internal::ResolveBackend(options.backend, view.pool, &backend));
  PAGEDKV_RETURN_IF_ERROR(attention_internal::ValidatePool(view, backend));
  if (view.num_slots < 0) {
    return absl::InvalidArgumentError(absl::StrFormat("num_slots %d < 0", view.num_slots));
  }
  if (view.num_slots == 0) return absl::OkStatus();
  if (view.slot_mapping == nullptr || key == nullptr || value == nullptr) {
    return absl::InvalidArgumentError("WriteKV needs slot_mapping, key and value");
  }
  if (backend == Backend::kCpu) {
    const int64_t num_slots_in_pool = int64_t{view.num_blocks} * view.block_size;
    for (int64_t t = 0; t < view.num_slots; ++t) {
      if (view.slot_mapping[t] >= num_slots_in_pool) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "slot_mapping[%d] is slot %d, beyond the pool's %d slots (%d blocks x %d tokens); "
            "nothing was written",
            t, view.slot_mapping[t], num_slots_in_pool, view.num_blocks, view.block_size));
      }
    }
    attention_internal::CpuWriteKV(view, key, value);
    return absl::OkStatus();
  }
#if PAGEDKV_ATTENTION_CUDA
  return attention_internal::CudaWriteKV(view, key, value, options.cuda_stream);
#else
  return absl::FailedPreconditionError("pagedkv was built without CUDA");
#endif
}

absl::Status CopyBlocks(void* pool, uint64_t bytes_per_block, int32_t num_blocks,
                        absl::Span<const BlockCopy> copies, const CacheOpOptions& options) {
  Backend backend;
  PAGEDKV_RETURN_IF_ERROR(attention_internal::ResolveBackend(options.backend, pool, &backend));
  if (pool == nullptr || bytes_per_block == 0 || num_blocks <= 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "CopyBlocks: pool %s, bytes_per_block %d, num_blocks %d: need a pool and sizes > 0",
        pool ? "set" : "null", bytes_per_block, num_blocks));
  }
  PAGEDKV_RETURN_IF_ERROR(ValidatePairs(copies, num_blocks, num_blocks, /*same_pool=*/true));
  if (copies.empty()) return absl::OkStatus();
  if (backend == Backend::kCpu) {
    attention_internal::CpuCopyBlocks(pool, pool, bytes_per_block, copies);
    return absl::OkStatus();
  }
#if PAGEDKV_ATTENTION_CUDA
  return attention_internal::CudaCopyBlocks(pool, bytes_per_block, copies, options.cuda_stream);
#else
  return absl::FailedPreconditionError("pagedkv was built without CUDA");
#endif
}

absl::Status SwapBlocks(const void* src_pool, int32_t src_num_blocks, void* dst_pool,
                        int32_t dst_num_blocks, uint64_t bytes_per_block,
                        absl::Span<const BlockCopy> pairs, const CacheOpOptions& options) {
  Backend backend;
  // Either side on the device makes it a CUDA copy under kAuto.
  PAGEDKV_RETURN_IF_ERROR(attention_internal::ResolveBackend(options.backend, src_pool, &backend));
  if (backend == Backend::kCpu && options.backend == Backend::kAuto) {
    PAGEDKV_RETURN_IF_ERROR(
        attention_internal::ResolveBackend(options.backend, dst_pool, &backend));
  }
  if (src_pool == nullptr || dst_pool == nullptr || bytes_per_block == 0 || src_num_blocks <= 0 ||
      dst_num_blocks <= 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "SwapBlocks: src_pool %s, dst_pool %s, bytes_per_block %d, blocks %d -> %d: need both "
        "pools and sizes > 0",
        src_pool ? "set" : "null", dst_pool ? "set" : "null", bytes_per_block, src_num_blocks,
        dst_num_blocks));
  }
  PAGEDKV_RETURN_IF_ERROR(
      ValidatePairs(pairs, src_num_blocks, dst_num_blocks, /*same_pool=*/src_pool == dst_pool));
  if (pairs.empty()) return absl::OkStatus();
  if (backend == Backend::kCpu) {
    attention_internal::CpuCopyBlocks(src_pool, dst_pool, bytes_per_block, pairs);
    return absl::OkStatus();
  }
#if PAGEDKV_ATTENTION_CUDA
  return attention_internal::CudaSwapBlocks(src_pool, dst_pool, bytes_per_block, pairs,
                                            options.cuda_stream);
#else
  return absl::FailedPreconditionError("pagedkv was built without CUDA");
#endif
}

}  // namespace pagedkv
