#include "attention/internal/validate.h"

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "pagedkv/core/absl_compat.h"

#if PAGEDKV_ATTENTION_CUDA
#include "attention/internal/cuda_launchers.h"
#endif

namespace pagedkv::attention_internal {
namespace {

bool IsPow2In(int32_t v, int32_t lo, int32_t hi) {
  return v >= lo && v <= hi && (v & (v - 1)) == 0;
}

}  // namespace

absl::Status ResolveBackend(Backend requested, const void* ptr, Backend* resolved) {
#if PAGEDKV_ATTENTION_CUDA
  if (requested == Backend::kCuda) {
    if (!CudaDeviceUsable()) {
      return absl::FailedPreconditionError(
          "backend cuda requested but no CUDA device is usable; use Backend::kCpu with host "
          "memory");
    }
    *resolved = Backend::kCuda;
    return absl::OkStatus();
  }
  if (requested == Backend::kAuto) {
    *resolved = CudaIsDevicePointer(ptr) ? Backend::kCuda : Backend::kCpu;
    return absl::OkStatus();
  }
  *resolved = Backend::kCpu;
  return absl::OkStatus();
#else
  if (requested == Backend::kCuda) {
    return absl::FailedPreconditionError(
        "backend cuda requested but pagedkv was built without CUDA (PAGEDKV_CUDA=OFF or no nvcc); "
        "use Backend::kCpu or rebuild with CUDA");
  }
  *resolved = Backend::kCpu;
  return absl::OkStatus();
#endif
}

absl::Status ValidatePool(const PagedKVView& v, Backend backend) {
  if (v.pool == nullptr) return absl::InvalidArgumentError("PagedKVView.pool is null");
  if (v.num_kv_heads <= 0 || v.head_dim <= 0 || v.block_size <= 0 || v.num_blocks <= 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "PagedKVView: num_kv_heads=%d head_dim=%d block_size=%d num_blocks=%d must all be > 0",
        v.num_kv_heads, v.head_dim, v.block_size, v.num_blocks));
  }
  const int64_t kv = v.kv_stride_elems();
  if (v.layer_offset_elems < 0 || v.block_stride_elems < 2 * kv ||
      v.layer_offset_elems + 2 * kv > v.block_stride_elems) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "PagedKVView: layer_offset_elems=%d and block_stride_elems=%d do not hold K and V of %d "
        "elements each inside one block; build the view with PagedKVView::ForLayer",
        v.layer_offset_elems, v.block_stride_elems, kv));
  }
  const bool cuda = backend == Backend::kCuda;
  const bool dtype_ok =
      v.dtype == DType::kFp16 || v.dtype == DType::kBf16 || (!cuda && v.dtype == DType::kFp32);
  if (!dtype_ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "PagedKVView.dtype ", AbslView(DTypeName(v.dtype)), " is not supported by the ",
        AbslView(BackendName(backend)), " backend (fp16 and bf16 everywhere, fp32 on the CPU)"));
  }
  if (cuda) {
    if (v.head_dim != 64 && v.head_dim != 128 && v.head_dim != 256) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "head_dim %d is not supported by the CUDA kernels (64, 128 or 256)", v.head_dim));
    }
    if (!IsPow2In(v.block_size, 8, 128)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "block_size %d is not supported by the CUDA kernels (8, 16, 32, 64 or 128)",
          v.block_size));
    }
    if (reinterpret_cast<uintptr_t>(v.pool) % 16 != 0 ||
        (v.block_stride_elems * int64_t(DTypeSize(v.dtype))) % 16 != 0) {
      return absl::InvalidArgumentError(
          "CUDA kernels need a 16-byte aligned pool and bytes_per_block a multiple of 16");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidatePageTable(const PagedKVView& v, Backend backend) {
  if (v.batch_size < 0) {
    return absl::InvalidArgumentError(absl::StrFormat("batch_size %d < 0", v.batch_size));
  }
  if (v.batch_size == 0) return absl::OkStatus();
  if (v.page_indptr == nullptr || v.page_indices == nullptr || v.last_page_len == nullptr) {
    return absl::InvalidArgumentError(
        "page_indptr, page_indices and last_page_len must be set when batch_size > 0");
  }
  if (backend != Backend::kCpu) return absl::OkStatus();  // device arrays: the caller's contract
  if (v.page_indptr[0] != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("page_indptr[0] is %d, must be 0", v.page_indptr[0]));
  }
  for (int32_t b = 0; b < v.batch_size; ++b) {
    const int32_t begin = v.page_indptr[b], end = v.page_indptr[b + 1];
    if (end <= begin) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "sequence %d has %d pages (page_indptr[%d]=%d, page_indptr[%d]=%d); every sequence in "
          "an attention batch needs at least one page",
          b, end - begin, b, begin, b + 1, end));
    }
    const int32_t last = v.last_page_len[b];
    if (last < 1 || last > v.block_size) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "last_page_len[%d] is %d, must be in 1..block_size (%d)", b, last, v.block_size));
    }
    for (int32_t i = begin; i < end; ++i) {
      const int32_t block = v.page_indices[i];
      if (block < 0 || block >= v.num_blocks) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "page_indices[%d] (page %d of sequence %d) is block %d, outside the pool's 0..%d", i,
            i - begin, b, block, v.num_blocks - 1));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateQueries(const PagedKVView& v, const QueryBatch& q, bool extend,
                             Backend backend) {
  if (q.num_q_heads <= 0 || q.num_q_heads % v.num_kv_heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("num_q_heads %d must be a positive multiple of num_kv_heads %d",
                        q.num_q_heads, v.num_kv_heads));
  }
  const bool dtype_ok = q.dtype == v.dtype || (backend == Backend::kCpu && q.dtype == DType::kFp32);
  if (!dtype_ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "query dtype ", AbslView(DTypeName(q.dtype)), " must equal the KV dtype ",
        AbslView(DTypeName(v.dtype)), backend == Backend::kCpu ? " (or be fp32 on the CPU)" : ""));
  }
  if (q.num_tokens < 0) {
    return absl::InvalidArgumentError(absl::StrFormat("num_tokens %d < 0", q.num_tokens));
  }
  if (q.num_tokens > 0 && (q.q == nullptr || q.out == nullptr)) {
    return absl::InvalidArgumentError("QueryBatch.q and QueryBatch.out must be set");
  }
  if (backend == Backend::kCuda && q.num_tokens > 0 &&
      (reinterpret_cast<uintptr_t>(q.q) % 16 != 0 ||
       reinterpret_cast<uintptr_t>(q.out) % 16 != 0)) {
    return absl::InvalidArgumentError(
        "the CUDA kernels read and write queries with 16-byte vectors: QueryBatch.q and "
        "QueryBatch.out must be 16-byte aligned");
  }
  if (!extend) {
    if (q.num_tokens != v.batch_size) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "decode takes one query token per sequence: num_tokens %d != batch_size %d", q.num_tokens,
          v.batch_size));
    }
    return absl::OkStatus();
  }
  if (v.batch_size > 0 && q.qo_indptr == nullptr) {
    return absl::InvalidArgumentError("extend needs QueryBatch.qo_indptr ([batch_size + 1])");
  }
  if (backend != Backend::kCpu || v.batch_size == 0) return absl::OkStatus();
  if (q.qo_indptr[0] != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("qo_indptr[0] is %d, must be 0", q.qo_indptr[0]));
  }
  for (int32_t b = 0; b < v.batch_size; ++b) {
    const int32_t count = q.qo_indptr[b + 1] - q.qo_indptr[b];
    const int32_t kv_len = v.SeqLen(b);
    if (count < 0 || count > kv_len) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "sequence %d has %d query tokens (qo_indptr[%d]=%d, qo_indptr[%d]=%d) but %d KV tokens; "
          "the query tokens must be the last tokens of the KV (write them with WriteKV first)",
          b, count, b, q.qo_indptr[b], b + 1, q.qo_indptr[b + 1], kv_len));
    }
  }
  if (q.qo_indptr[v.batch_size] != q.num_tokens) {
    return absl::InvalidArgumentError(
        absl::StrFormat("qo_indptr[batch_size=%d] is %d but num_tokens is %d", v.batch_size,
                        q.qo_indptr[v.batch_size], q.num_tokens));
  }
  return absl::OkStatus();
}

}  // namespace pagedkv::attention_internal
