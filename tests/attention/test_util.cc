#include "tests/attention/test_util.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "pagedkv/attention/half_float.h"

namespace pagedkv::testing {

float TypedBuffer::Get(int64_t i) const {
  const void* d = data();
  switch (dtype_) {
    case DType::kFp16:
      return Fp16BitsToFloat(static_cast<const uint16_t*>(d)[i]);
    case DType::kBf16:
      return Bf16BitsToFloat(static_cast<const uint16_t*>(d)[i]);
    default:
      return static_cast<const float*>(d)[i];
  }
}

void TypedBuffer::Set(int64_t i, float v) {
  void* d = data();
  switch (dtype_) {
    case DType::kFp16:
      static_cast<uint16_t*>(d)[i] = FloatToFp16Bits(v);
      return;
    case DType::kBf16:
      static_cast<uint16_t*>(d)[i] = FloatToBf16Bits(v);
      return;
    default:
      static_cast<float*>(d)[i] = v;
  }
}

void TypedBuffer::FillRandom(std::mt19937_64& rng, float range) {
  std::uniform_real_distribution<float> dist(-range, range);
  for (int64_t i = 0; i < n_; ++i) Set(i, dist(rng));
}

void TypedBuffer::Poison() {
  if (dtype_ == DType::kFp32) {
    std::fill_n(static_cast<float*>(data()), n_, std::nanf(""));
  } else {
    std::memset(data(), 0xff, bytes());
  }
}

void BuildPagedBatch(const std::vector<int32_t>& seq_lens, int32_t block_size, int32_t num_kv_heads,
                     int32_t head_dim, DType dtype, std::mt19937_64& rng, PagedBatch* out,
                     bool identity_pages, int32_t extra_blocks) {
  const int32_t batch = static_cast<int32_t>(seq_lens.size());
  out->seq_lens = seq_lens;
  out->indptr.assign(1, 0);
  out->last_page_len.clear();
  for (int32_t len : seq_lens) {
    const int32_t pages = (len + block_size - 1) / block_size;
    out->indptr.push_back(out->indptr.back() + pages);
    out->last_page_len.push_back(len - (pages - 1) * block_size);
  }
  const int32_t nnz = out->indptr.back();
  const int32_t num_blocks = nnz + extra_blocks;
  std::vector<int32_t> perm(num_blocks);
  std::iota(perm.begin(), perm.end(), 0);
  if (!identity_pages) std::shuffle(perm.begin(), perm.end(), rng);
  out->indices.assign(perm.begin(), perm.begin() + nnz);

  out->view = PagedKVView::ForLayer(nullptr, dtype, num_blocks, out->layers_in_group,
                                    /*layer_in_group=*/1, num_kv_heads, head_dim, block_size);
  out->pool = TypedBuffer(dtype, out->view.block_stride_elems * num_blocks);
  out->pool.FillRandom(rng);
  out->view.pool = out->pool.data();
  out->view.batch_size = batch;
  out->view.page_indptr = out->indptr.data();
  out->view.page_indices = out->indices.data();
  out->view.last_page_len = out->last_page_len.data();
}

double RelativeError(const std::vector<double>& a, const std::vector<double>& b) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  if (a.size() != b.size()) return INFINITY;
  return den == 0.0 ? std::sqrt(num) : std::sqrt(num / den);
}

bool ToDoubles(const TypedBuffer& buf, std::vector<double>* out) {
  out->resize(buf.size());
  bool finite = true;
  for (int64_t i = 0; i < buf.size(); ++i) {
    (*out)[i] = buf.Get(i);
    if (!std::isfinite((*out)[i])) finite = false;
  }
  return finite;
}

}  // namespace pagedkv::testing
