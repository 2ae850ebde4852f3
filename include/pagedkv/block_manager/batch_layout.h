// BatchLayout: the page table of one batch for one KV group in CSR form, plus the slots where the
// step's new tokens are written. Filled by BlockManager::BuildBatch(); read by PagedKVView and the
// attention / WriteKV kernels. Buffers are reused across steps (no allocation in steady state).
//
//   BatchEntry entries[] = {{.seq_id = 7, .num_new_tokens = 1}, {.seq_id = 9, .num_new_tokens =
//   12}}; PAGEDKV_RETURN_IF_ERROR(manager->BuildBatch(entries, /*group=*/0, &layout));
//   // layout.page_indices[layout.page_indptr[b] .. layout.page_indptr[b + 1]) = pages of entry b
#ifndef PAGEDKV_BLOCK_MANAGER_BATCH_LAYOUT_H_
#define PAGEDKV_BLOCK_MANAGER_BATCH_LAYOUT_H_

#include <cstdint>
#include <vector>

#include "pagedkv/core/types.h"

namespace pagedkv {

// One sequence of a batch.
struct BatchEntry {
  SeqId seq_id = 0;
  // Query tokens of this step: the last `num_new_tokens` tokens of the context. Their slots are
  // written to slot_mapping. 1 for a decode step, the chunk length for (chunked) prefill, the
  // encoder length for a cross group in the step right after SetCrossAttention, 0 for read-only.
  int32_t num_new_tokens = 1;
  // Tokens visible to this step's attention: -1 = all tokens of the table (the sequence's tokens
  // for self-attention groups, the encoder tokens for a cross group); a smaller value serves
  // chunked prefill (the chunk ends at token num_context_tokens). 0 <= num_new_tokens <= context;
  // other negative values are refused.
  int32_t num_context_tokens = -1;
};

// CSR page table of a batch of B sequences for one group. Every array is int32 except
// slot_mapping (int64: block_id * block_size overflows int32 on large pools).
struct BatchLayout {
  int32_t group = 0;
  int32_t block_size = 0;  // tokens per page
  // [B + 1] page_indptr[b] .. page_indptr[b + 1] index page_indices for entry b; page_indptr[0] =
  // 0.
  std::vector<int32_t> page_indptr;
  // [nnz] block ids of the pages of each entry, in token order. For a sliding-window group only
  // the pages still held are listed (leading pages wholly outside the window were released); the
  // first listed page starts at token first_page_token[b].
  std::vector<int32_t> page_indices;
  // [B] tokens held in each entry's last listed page, 1..block_size. An entry with no context
  // tokens (an empty prompt, or a cross group before SetCrossAttention) has no pages and
  // last_page_len 0; kernels must skip it.
  std::vector<int32_t> last_page_len;
  // [B] token index (within the sequence) at which the entry's first listed page starts: a
  // multiple of block_size; 0 except for sliding-window groups that released leading pages.
  // The kv length the kernel sees is (pages - 1) * block_size + last_page_len.
  std::vector<int32_t> first_page_token;
  // [B + 1] query_indptr[b] .. query_indptr[b + 1] index slot_mapping (and the step's new K/V rows)
  // for entry b.
  std::vector<int32_t> query_indptr;
  // [T] slot of each new token: block_id * block_size + offset_in_page; negative = skip the write.
  std::vector<int64_t> slot_mapping;

  int32_t batch_size() const { return static_cast<int32_t>(last_page_len.size()); }
  int32_t num_pages() const { return static_cast<int32_t>(page_indices.size()); }
  int32_t num_new_tokens() const { return static_cast<int32_t>(slot_mapping.size()); }
  // Empties the arrays, keeping their capacity.
  void clear() {
    page_indptr.clear();
    page_indices.clear();
    last_page_len.clear();
    first_page_token.clear();
    query_indptr.clear();
    slot_mapping.clear();
  }
};

}  // namespace pagedkv

#endif  // PAGEDKV_BLOCK_MANAGER_BATCH_LAYOUT_H_
