#include "attention/internal/cpu_cache_ops.h"

#include <cstring>

namespace pagedkv::attention_internal {

void CpuWriteKV(const PagedKVView& view, const void* key, const void* value) {
  const size_t elem = DTypeSize(view.dtype);
  const size_t row_bytes = size_t(view.head_dim) * elem;
  const auto* k_src = static_cast<const std::byte*>(key);
  const auto* v_src = static_cast<const std::byte*>(value);
  auto* pool = static_cast<std::byte*>(view.pool);
  for (int64_t t = 0; t < view.num_slots; ++t) {
    const int64_t slot = view.slot_mapping[t];
    if (slot < 0) continue;
    const int32_t block = static_cast<int32_t>(slot / view.block_size);
    const int32_t off = static_cast<int32_t>(slot % view.block_size);
    for (int32_t h = 0; h < view.num_kv_heads; ++h) {
      const size_t src_off = (size_t(t) * view.num_kv_heads + h) * row_bytes;
      std::memcpy(pool + view.KOffset(block, h, off) * elem, k_src + src_off, row_bytes);
      std::memcpy(pool + view.VOffset(block, h, off) * elem, v_src + src_off, row_bytes);
    }
  }
}

void CpuCopyBlocks(const void* src_pool, void* dst_pool, uint64_t bytes_per_block,
                   absl::Span<const BlockCopy> pairs) {
  const auto* src = static_cast<const std::byte*>(src_pool);
  auto* dst = static_cast<std::byte*>(dst_pool);
  for (const BlockCopy& p : pairs) {
    std::memcpy(dst + uint64_t(p.dst) * bytes_per_block, src + uint64_t(p.src) * bytes_per_block,
                bytes_per_block);
  }
}

}  // namespace pagedkv::attention_internal
