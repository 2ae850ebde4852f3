// Checks of the array arguments of the Python bindings, in plain C++ (no Python headers) so that
// tests and a libFuzzer target (fuzz/python_args_fuzzer.cc) can drive them with arbitrary array
// descriptions. The bindings describe each NumPy argument as an ArrayDesc and never read an
// argument's memory except through these functions; what they return (a copy of small index
// arrays) is what a kernel uses after the GIL is released.
//
//   ArrayDesc d = Describe(array);                    // array_util.h, from a NumPy array
//   std::vector<int32_t> tokens;
//   absl::Status st = ReadInts(d, {.name = "prompt", .rank = Rank::kVector}, &tokens);
//   if (!st.ok()) RaiseArgError(st);                  // TypeError or ValueError
#ifndef PAGEDKV_PYTHON_SRC_ARG_CHECKS_H_
#define PAGEDKV_PYTHON_SRC_ARG_CHECKS_H_

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace pagedkv::python {

// What the bindings see of a NumPy array (its buffer description), or of a Python object that
// NumPy converted to one (a list becomes int64, float64 or object).
struct ArrayDesc {
  char kind = 0;             // dtype kind: 'i' 'u' 'f' 'b' 'c' 'O' 'V' 'S' 'U' 'M' 'm'
  int64_t itemsize = 0;      // bytes per element
  bool native_order = true;  // false for a byte-swapped dtype ('>' on this machine)
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;  // bytes per step along each axis; may be 0 or negative
  const void* data = nullptr;    // element [0, 0, ...]
  bool c_contiguous = false;
  bool aligned = true;
  bool writeable = false;
};

// Elements of `a` (the product of its shape); -1 when negative or beyond 2^62.
int64_t NumElements(const ArrayDesc& a);
// "(3, 2)", "(5,)", "()".
std::string ShapeString(const ArrayDesc& a);
// "int64", "float32", "object", ... from kind and itemsize.
std::string DTypeString(const ArrayDesc& a);

// A status the bindings raise as TypeError (a wrong dtype or Python type); every other non-OK
// status of these functions is raised as ValueError (shape, rank, range).
absl::Status ArgTypeError(std::string_view message);
bool IsArgTypeError(const absl::Status& status);

// The rank an integer argument may have.
enum class Rank : uint8_t {
  kVector,          // 1-D: [n]
  kScalarOrVector,  // 0-D (one value, e.g. `append_tokens(seq, 7)`) or 1-D
  kPairs,           // 2-D [n, 2] (src, dst) pairs; an empty array of any shape means none
};

struct IntSpec {
  std::string_view name;  // the argument, for messages: "prompt", "slot_mapping"
  Rank rank = Rank::kVector;
  // Every value must lie in [min, max] (and in the range of the type it is read as).
  int64_t min = std::numeric_limits<int64_t>::min();
  uint64_t max = std::numeric_limits<uint64_t>::max();
};

// TypeError unless `a` holds integers (kinds 'i' and 'u' of 1, 2, 4 or 8 bytes, native byte
// order): floats, bools, objects, strings and structured dtypes are refused, never cast. A size-0
// array of any kind passes (an empty list is float64 to NumPy). ValueError when the rank or
// shape is not spec.rank's.
absl::Status CheckIntArray(const ArrayDesc& a, const IntSpec& spec);

// CheckIntArray, then every element, in C order through the strides, into `out` (cleared
// first) as T. ValueError naming the index and the value when one lies outside
// [max(spec.min, T's min), min(spec.max, T's max)]: ids beyond 32 bits are refused, not wrapped.
// Never reads outside the elements `a` describes.
template <typename T>
absl::Status ReadInts(const ArrayDesc& a, const IntSpec& spec, std::vector<T>* out);

// True when `a` can be used in place as a T array of its rank: an integer kind of exactly T's
// size and signedness, native order, C-contiguous and aligned. (ReadInts would copy it unchanged;
// a caller holding the GIL may read it in place instead.)
template <typename T>
bool IsExactIntArray(const ArrayDesc& a);

// A page table (CSR) for the attention kernels, copied and checked before the GIL is released:
// page_indptr [B + 1] (0, non-decreasing, last <= len(page_indices)), page_indices and
// last_page_len [B] as int32. Content rules the kernels need (block ids, last lengths) are the
// kernels' own checks, which run on these copies.
struct PageTableArgs {
  std::vector<int32_t> indptr, indices, last_len;
};
absl::Status ReadPageTable(const ArrayDesc& indptr, const ArrayDesc& indices,
                           const ArrayDesc& last_len, PageTableArgs* out);

// (src, dst) block pairs of copy_blocks / swap_blocks: an [n, 2] integer array (CacheOps arrays
// are uint32, Python lists int64), each id in [0, 2^31 - 1].
absl::Status ReadBlockPairs(const ArrayDesc& pairs, std::vector<std::pair<int32_t, int32_t>>* out);

// A pool array of copy_blocks / swap_blocks: numeric ('f', 'i' or 'u'), native order, at least
// 1-D, C-contiguous, aligned, at most 2^31 - 1 blocks; writeable when `writeable`. TypeError for
// an object (or other non-numeric) dtype, whose elements are pointers that a byte copy would
// corrupt.
absl::Status CheckPoolArray(const ArrayDesc& a, std::string_view name, bool writeable);

// A float array for the kernels (kv_cache, q, out, key/value rows): kind 'f' (TypeError
// otherwise), native order, rank `ndim`. C-contiguous, aligned and writeable are checked only
// when asked (ValueError).
struct FloatSpec {
  std::string_view name;
  int ndim = 1;
  bool need_contiguous = true;
  bool need_writeable = false;
};
absl::Status CheckFloatArray(const ArrayDesc& a, const FloatSpec& spec);

// Entries of build_batch: sequence ids without duplicates, num_new_tokens >= 0 (one value or one
// per sequence) and num_context_tokens >= 0 (absent = all tokens; one value or one per sequence).
struct BatchEntryArgs {
  std::vector<uint64_t> seq_ids;
  std::vector<int32_t> num_new_tokens;      // one per sequence
  std::vector<int32_t> num_context_tokens;  // one per sequence; -1 = all tokens
};
absl::Status ReadBatchEntries(const ArrayDesc& seq_ids, const ArrayDesc& num_new_tokens,
                              const ArrayDesc* num_context_tokens, BatchEntryArgs* out);

}  // namespace pagedkv::python

#endif  // PAGEDKV_PYTHON_SRC_ARG_CHECKS_H_
