#include "tests/attention/reference_attention.h"

#include <algorithm>
#include <cmath>

#include "pagedkv/attention/half_float.h"

namespace pagedkv::testing {
namespace {

double LoadKv(const PagedKVView& v, int64_t offset) {
  switch (v.dtype) {
    case DType::kFp16:
      return Fp16BitsToFloat(static_cast<const uint16_t*>(v.pool)[offset]);
    case DType::kBf16:
      return Bf16BitsToFloat(static_cast<const uint16_t*>(v.pool)[offset]);
    default:
      return static_cast<const float*>(v.pool)[offset];
  }
}

}  // namespace

std::vector<double> ReferenceAttention(const PagedKVView& v, const TypedBuffer& q,
                                       int32_t num_q_heads, const int32_t* qo_indptr,
                                       double softmax_scale, int32_t window_tokens) {
  const int32_t d = v.head_dim;
  const int32_t group = num_q_heads / v.num_kv_heads;
  const int64_t num_tokens = q.size() / (int64_t{num_q_heads} * d);
  std::vector<double> out(size_t(num_tokens) * num_q_heads * d, 0.0);
  for (int32_t b = 0; b < v.batch_size; ++b) {
    const int32_t begin = qo_indptr ? qo_indptr[b] : b;
    const int32_t end = qo_indptr ? qo_indptr[b + 1] : b + 1;
    const int32_t kv_len = v.SeqLen(b);
    for (int32_t t = begin; t < end; ++t) {
      const int32_t pos = kv_len - (end - t);
      const int32_t lo = window_tokens > 0 ? std::max(0, pos - window_tokens + 1) : 0;
      for (int32_t h = 0; h < num_q_heads; ++h) {
        const int32_t kvh = h / group;
        std::vector<double> scores;
        double mx = -INFINITY;
        for (int32_t j = lo; j <= pos; ++j) {
          const int64_t k_off = v.KOffset(v.BlockOf(b, j), kvh, j % v.block_size);
          double s = 0.0;
          for (int32_t k = 0; k < d; ++k) {
            s += double(q.Get((int64_t{t} * num_q_heads + h) * d + k)) * LoadKv(v, k_off + k);
          }
          s *= softmax_scale;
          scores.push_back(s);
          mx = std::max(mx, s);
        }
        double sum = 0.0;
        for (double& s : scores) sum += (s = std::exp(s - mx));
        double* o = out.data() + (int64_t{t} * num_q_heads + h) * d;
        for (int32_t j = lo; j <= pos; ++j) {
          const int64_t v_off = v.VOffset(v.BlockOf(b, j), kvh, j % v.block_size);
          const double p = scores[j - lo] / sum;
          for (int32_t k = 0; k < d; ++k) o[k] += p * LoadKv(v, v_off + k);
        }
      }
    }
  }
  return out;
}

}  // namespace pagedkv::testing
