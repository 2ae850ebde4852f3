// Host-memory cache ops (memcpy). Inputs are validated by cache_ops.cc.
#ifndef PAGEDKV_ATTENTION_INTERNAL_CPU_CACHE_OPS_H_
#define PAGEDKV_ATTENTION_INTERNAL_CPU_CACHE_OPS_H_

#include <cstdint>

#include "absl/types/span.h"
#include "pagedkv/attention/cache_ops.h"
#include "pagedkv/attention/paged_kv_view.h"

namespace pagedkv::attention_internal {

void CpuWriteKV(const PagedKVView& view, const void* key, const void* value);
void CpuCopyBlocks(const void* src_pool, void* dst_pool, uint64_t bytes_per_block,
                   absl::Span<const BlockCopy> pairs);

}  // namespace pagedkv::attention_internal

#endif  // PAGEDKV_ATTENTION_INTERNAL_CPU_CACHE_OPS_H_
