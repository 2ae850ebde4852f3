// Cache ops: the memory movement of one serving step. WriteKV stores new K/V rows in their slots;
// CopyBlocks copies whole blocks inside one pool (copy-on-write); SwapBlocks moves whole blocks
// between a GPU pool and a host pool. Inputs are validated here once; the kernels assume valid
// input.
//
//   PAGEDKV_RETURN_IF_ERROR(WriteKV(view, k_new, v_new, {}));   // view.slot_mapping, num_slots set
//   PAGEDKV_RETURN_IF_ERROR(CopyBlocks(pool, bytes_per_block, num_blocks, copies, {}));
#ifndef PAGEDKV_ATTENTION_CACHE_OPS_H_
#define PAGEDKV_ATTENTION_CACHE_OPS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "pagedkv/attention/backend.h"
#include "pagedkv/attention/paged_kv_view.h"

namespace pagedkv {

struct CacheOpOptions {
  Backend backend = Backend::kAuto;
  void* cuda_stream = nullptr;  // cudaStream_t; nullptr = the default stream. Ops are async on it.
};

// Writes key/value rows [view.num_slots, num_kv_heads, head_dim] (dtype = view.dtype) to
// view.slot_mapping's slots of the view's layer. Negative slots are skipped. On the CPU every slot
// is range-checked first (InvalidArgument names the token and slot; nothing is written then); on
// CUDA the slot_mapping is device memory and must hold valid slots.
absl::Status WriteKV(const PagedKVView& view, const void* key, const void* value,
                     const CacheOpOptions& options);

// One block copy: block `src` to block `dst`.
struct BlockCopy {
  int32_t src = 0;
  int32_t dst = 0;
};

// Copies every pair's whole block (bytes_per_block bytes) inside one pool of num_blocks blocks, in
// one launch on CUDA. `copies` is host memory. Destinations must be distinct and no destination may
// also be a source (the copies run concurrently): InvalidArgument otherwise.
absl::Status CopyBlocks(void* pool, uint64_t bytes_per_block, int32_t num_blocks,
                        absl::Span<const BlockCopy> copies, const CacheOpOptions& options);

// Copies whole blocks from `src_pool` (src_num_blocks blocks) to `dst_pool` (dst_num_blocks);
// pairs name (src block, dst block). For GPU <-> host swaps the host pool must be pinned
// (cudaHostAlloc); the CUDA path issues one batched copy for all pairs. Both host: memcpy.
// Distinct destinations required.
absl::Status SwapBlocks(const void* src_pool, int32_t src_num_blocks, void* dst_pool,
                        int32_t dst_num_blocks, uint64_t bytes_per_block,
                        absl::Span<const BlockCopy> pairs, const CacheOpOptions& options);

}  // namespace pagedkv

#endif  // PAGEDKV_ATTENTION_CACHE_OPS_H_
