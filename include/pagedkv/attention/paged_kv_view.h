// PagedKVView: how a kernel finds one layer's K and V in a pool, and the batch's page table (CSR).
// A plain struct with no owning pointers; the CPU path and the CUDA kernels index through the same
// PAGEDKV_HOST_DEVICE accessors. Shapes are validated once at the API boundary (paged_attention.h,
// cache_ops.h); the accessors assume valid input.
//
//   PagedKVView v = PagedKVView::ForLayer(pool_base, DType::kFp16, num_blocks, layers_in_group,
//                                        layer_in_group, num_kv_heads, head_dim, block_size);
//   v.batch_size = b; v.page_indptr = indptr; v.page_indices = indices; v.last_page_len = last;
#ifndef PAGEDKV_ATTENTION_PAGED_KV_VIEW_H_
#define PAGEDKV_ATTENTION_PAGED_KV_VIEW_H_

#include <cstdint>

#include "pagedkv/core/host_device.h"
#include "pagedkv/core/types.h"

namespace pagedkv {

// Pool layout (DESIGN.md), block-major:
//   pool[block][layer_in_group][kv: 0=K,1=V][kv_head][slot_in_block][head_dim]
// so one KV head's K rows of one page are block_size * head_dim contiguous elements.
struct PagedKVView {
  // Base of the pool arena (block 0). Device memory for the CUDA backend, host memory for the CPU.
  void* pool = nullptr;
  // Element type of the stored K/V (fp32 on the CPU only, fp16, bf16).
  DType dtype = DType::kFp16;
  // Blocks in the pool: every block id must be < num_blocks (checked at the API boundary for
  // host-resident tables).
  int32_t num_blocks = 0;
  // Elements (not bytes) from one block to the next: bytes_per_block / sizeof(dtype)
  //   = layers_in_group * 2 * num_kv_heads * block_size * head_dim.
  int64_t block_stride_elems = 0;
  // Elements from the start of a block to this layer's K: layer_in_group * 2 * num_kv_heads *
  // block_size * head_dim. V follows K at + num_kv_heads * block_size * head_dim.
  int64_t layer_offset_elems = 0;
  int32_t num_kv_heads = 0;
  int32_t head_dim = 0;
  int32_t block_size = 0;  // tokens per block (page)

  // ---- The batch's page table (CSR); all int32, on the same side (host/device) as the pool. ----
  int32_t batch_size = 0;
  // [batch_size + 1] The page indptr array: the pages of sequence b are
  // page_indices[page_indptr[b] .. page_indptr[b + 1]); page_indptr[0] == 0, non-decreasing.
  const int32_t* page_indptr = nullptr;
  // [page_indptr[batch_size]] The block ids of every sequence's pages, in token order.
  const int32_t* page_indices = nullptr;
  // [batch_size] Tokens in the last page of each sequence, 1..block_size.
  const int32_t* last_page_len = nullptr;

  // ---- For WriteKV only. ----
  int64_t num_slots = 0;  // tokens to write
  // [num_slots] slot = block_id * block_size + offset of each new token; negative = skip (padding).
  const int64_t* slot_mapping = nullptr;

  // Builds the pool part of the view for layer `layer_in_group` of a group of `layers_in_group`.
  static PagedKVView ForLayer(void* pool, DType dtype, int32_t num_blocks, int32_t layers_in_group,
                              int32_t layer_in_group, int32_t num_kv_heads, int32_t head_dim,
                              int32_t block_size) {
    PagedKVView v;
    v.pool = pool;
    v.dtype = dtype;
    v.num_blocks = num_blocks;
    const int64_t per_kv = int64_t{num_kv_heads} * block_size * head_dim;
    v.block_stride_elems = int64_t{layers_in_group} * 2 * per_kv;
    v.layer_offset_elems = int64_t{layer_in_group} * 2 * per_kv;
    v.num_kv_heads = num_kv_heads;
    v.head_dim = head_dim;
    v.block_size = block_size;
    return v;
  }

  // Elements of one of K or V of one layer in one block: num_kv_heads * block_size * head_dim.
  PAGEDKV_HOST_DEVICE PAGEDKV_INLINE int64_t kv_stride_elems() const {
    return int64_t{num_kv_heads} * block_size * head_dim;
  }
  // Element offset of K (kv = 0) or V (kv = 1) of token `slot_in_block` of `kv_head` in `block`.
  PAGEDKV_HOST_DEVICE PAGEDKV_INLINE int64_t Offset(int32_t block, int32_t kv, int32_t kv_head,
                                                    int32_t slot_in_block) const {
    return int64_t{block} * block_stride_elems + layer_offset_elems + kv * kv_stride_elems() +
           (int64_t{kv_head} * block_size + slot_in_block) * head_dim;
  }
  PAGEDKV_HOST_DEVICE PAGEDKV_INLINE int64_t KOffset(int32_t block, int32_t kv_head,
                                                     int32_t slot_in_block) const {
    return Offset(block, 0, kv_head, slot_in_block);
  }
  PAGEDKV_HOST_DEVICE PAGEDKV_INLINE int64_t VOffset(int32_t block, int32_t kv_head,
                                                     int32_t slot_in_block) const {
    return Offset(block, 1, kv_head, slot_in_block);
  }
  // Typed pointers; T must match dtype (float, or a 16-bit type for fp16/bf16).
  template <typename T>
  PAGEDKV_HOST_DEVICE PAGEDKV_INLINE T* KPtr(int32_t block, int32_t kv_head,
                                             int32_t slot_in_block) const {
    return static_cast<T*>(pool) + KOffset(block, kv_head, slot_in_block);
  }
  template <typename T>
  PAGEDKV_HOST_DEVICE PAGEDKV_INLINE T* VPtr(int32_t block, int32_t kv_head,
                                             int32_t slot_in_block) const {
    return static_cast<T*>(pool) + VOffset(block, kv_head, slot_in_block);
  }

  // Pages of sequence b.
  PAGEDKV_HOST_DEVICE PAGEDKV_INLINE int32_t NumPages(int32_t b) const {
    return page_indptr[b + 1] - page_indptr[b];
  }
  // Tokens of sequence b (its KV length): full pages plus the last page's tokens; 0 without pages.
  PAGEDKV_HOST_DEVICE PAGEDKV_INLINE int32_t SeqLen(int32_t b) const {
    const int32_t pages = NumPages(b);
    return pages == 0 ? 0 : (pages - 1) * block_size + last_page_len[b];
  }
  // Block holding token `token` (0-based position in sequence b).
  PAGEDKV_HOST_DEVICE PAGEDKV_INLINE int32_t BlockOf(int32_t b, int32_t token) const {
    return page_indices[page_indptr[b] + token / block_size];
  }
};

}  // namespace pagedkv

#endif  // PAGEDKV_ATTENTION_PAGED_KV_VIEW_H_
