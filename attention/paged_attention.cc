#include "pagedkv/attention/paged_attention.h"

#include <cmath>

#include "absl/strings/str_format.h"
#include "attention/internal/cpu_attention.h"
#include "attention/internal/validate.h"
#include "pagedkv/core/status.h"

#if PAGEDKV_ATTENTION_CUDA
#include "attention/internal/cuda_launchers.h"
#endif

namespace pagedkv {
namespace {

absl::Status Run(const PagedKVView& view, const QueryBatch& q, const AttentionOptions& options,
                 bool extend) {
  Backend backend;
  PAGEDKV_RETURN_IF_ERROR(attention_internal::ResolveBackend(options.backend, view.pool, &backend));
  PAGEDKV_RETURN_IF_ERROR(attention_internal::ValidatePool(view, backend));
  PAGEDKV_RETURN_IF_ERROR(attention_internal::ValidatePageTable(view, backend));
  PAGEDKV_RETURN_IF_ERROR(attention_internal::ValidateQueries(view, q, extend, backend));
  if (!(options.softmax_scale >= 0.0f) || !std::isfinite(options.softmax_scale)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "softmax_scale %g must be finite and >= 0 (0 = 1/sqrt(head_dim))", options.softmax_scale));
  }
  if (options.window_tokens < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("window_tokens %d < 0 (0 = no window)", options.window_tokens));
  }
  if (q.num_tokens == 0) return absl::OkStatus();
  const float scale = options.softmax_scale > 0.0f
                          ? options.softmax_scale
                          : 1.0f / std::sqrt(static_cast<float>(view.head_dim));
  QueryBatch qb = q;
  if (!extend) qb.qo_indptr = nullptr;
  if (backend == Backend::kCpu) {
    attention_internal::CpuPagedAttention(view, qb, scale, options.window_tokens, options.cpu_pool);
    return absl::OkStatus();
  }
#if PAGEDKV_ATTENTION_CUDA
  return attention_internal::CudaPagedAttention(view, qb, scale, options.window_tokens,
                                                options.max_kv_len_hint, options.cuda_stream);
#else
  return absl::FailedPreconditionError("pagedkv was built without CUDA");
#endif
}

}  // namespace

absl::Status PagedAttentionDecode(const PagedKVView& view, const QueryBatch& q,
                                  const AttentionOptions& options) {
  return Run(view, q, options, /*extend=*/false);
}

absl::Status PagedAttentionExtend(const PagedKVView& view, const QueryBatch& q,
                                  const AttentionOptions& options) {
  return Run(view, q, options, /*extend=*/true);
}

}  // namespace pagedkv
