// Test helpers for the attention area: random paged batches (random non-identity page tables,
// ragged lengths, a pool holding two layers so the layer offset matters), typed fill/read of
// fp32/fp16/bf16 buffers, NaN poisoning and the relative-error metric.
#ifndef PAGEDKV_TESTS_ATTENTION_TEST_UTIL_H_
#define PAGEDKV_TESTS_ATTENTION_TEST_UTIL_H_

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "pagedkv/attention/paged_kv_view.h"
#include "pagedkv/core/types.h"

// Declares `std::mt19937_64 name` seeded from std::random_device and adds the seed to every
// failure message of the enclosing scope (fresh inputs each run, reproducible from the log).
#define PAGEDKV_TEST_RNG(name)                                      \
  const uint64_t name##_seed = std::random_device{}();              \
  SCOPED_TRACE(::testing::Message() << "rng seed " << name##_seed); \
  std::mt19937_64 name(name##_seed)

namespace pagedkv::testing {

// A typed host buffer of n elements of `dtype`, 64-byte aligned storage.
class TypedBuffer {
 public:
  TypedBuffer() = default;
  TypedBuffer(DType dtype, int64_t n) : dtype_(dtype), n_(n), words_((n * 4 + 63) / 8 + 8) {}
  // Copies the elements, not the raw storage: the aligned start sits at a different offset in the
  // copy's storage.
  TypedBuffer(const TypedBuffer& other)
      : dtype_(other.dtype_), n_(other.n_), words_(other.words_.size()) {
    std::memcpy(data(), other.data(), bytes());
  }
  TypedBuffer& operator=(const TypedBuffer& other) {
    if (this != &other) {
      dtype_ = other.dtype_;
      n_ = other.n_;
      words_.assign(other.words_.size(), 0);
      std::memcpy(data(), other.data(), bytes());
    }
    return *this;
  }
  TypedBuffer(TypedBuffer&&) = default;  // the vector's storage moves with its alignment
  TypedBuffer& operator=(TypedBuffer&&) = default;
  void* data() { return Aligned(); }
  const void* data() const { return const_cast<TypedBuffer*>(this)->Aligned(); }
  int64_t size() const { return n_; }
  DType dtype() const { return dtype_; }
  size_t bytes() const { return size_t(n_) * DTypeSize(dtype_); }
  float Get(int64_t i) const;
  void Set(int64_t i, float v);  // rounds to the dtype
  // Uniform in [-range, range], rounded to the dtype.
  void FillRandom(std::mt19937_64& rng, float range = 1.0f);
  // NaN in every element (all-ones 16-bit patterns are NaN in fp16 and bf16).
  void Poison();

 private:
  void* Aligned() {
    auto p = reinterpret_cast<uintptr_t>(words_.data());
    return reinterpret_cast<void*>((p + 63) & ~uintptr_t{63});
  }
  DType dtype_ = DType::kFp32;
  int64_t n_ = 0;
  std::vector<uint64_t> words_;
};

struct PagedBatch {
  TypedBuffer pool;
  std::vector<int32_t> indptr, indices, last_page_len, seq_lens;
  int32_t layers_in_group = 2;
  PagedKVView view;  // points into the vectors above: do not copy a PagedBatch after building
};

// Builds `out` for the given KV lengths (each >= 1): random block ids (a random permutation of a
// pool with `extra_blocks` spare blocks), the pool filled with random values, layer 1 of 2.
// identity_pages: each sequence's pages are consecutive blocks (for comparisons).
void BuildPagedBatch(const std::vector<int32_t>& seq_lens, int32_t block_size, int32_t num_kv_heads,
                     int32_t head_dim, DType dtype, std::mt19937_64& rng, PagedBatch* out,
                     bool identity_pages = false, int32_t extra_blocks = 3);

// ||a - b||_2 / ||b||_2 over all elements.
double RelativeError(const std::vector<double>& a, const std::vector<double>& b);
// The buffer as doubles; fails the test (returns false) when any element is NaN or inf.
bool ToDoubles(const TypedBuffer& buf, std::vector<double>* out);

}  // namespace pagedkv::testing

#endif  // PAGEDKV_TESTS_ATTENTION_TEST_UTIL_H_
