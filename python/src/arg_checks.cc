#include "arg_checks.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <type_traits>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "pagedkv/core/absl_compat.h"

namespace pagedkv::python {
namespace {

constexpr std::string_view kTypeErrorPayload = "pagedkv.python/TypeError";
constexpr char kSwappedOrder = std::endian::native == std::endian::little ? '>' : '<';

using Wide = __int128;  // holds every int64 and uint64 value

bool IsIntKind(const ArrayDesc& a) {
  return (a.kind == 'i' || a.kind == 'u') &&
         (a.itemsize == 1 || a.itemsize == 2 || a.itemsize == 4 || a.itemsize == 8);
}

// The element at `offset` bytes from a.data, widened (memcpy: alignment does not matter).
Wide LoadInt(const ArrayDesc& a, int64_t offset) {
  const char* p = static_cast<const char*>(a.data) + offset;
  const bool is_signed = a.kind == 'i';
  switch (a.itemsize) {
    case 1: {
      uint8_t v;
      std::memcpy(&v, p, 1);
      return is_signed ? Wide{static_cast<int8_t>(v)} : Wide{v};
    }
    case 2: {
      uint16_t v;
      std::memcpy(&v, p, 2);
      return is_signed ? Wide{static_cast<int16_t>(v)} : Wide{v};
    }
    case 4: {
      uint32_t v;
      std::memcpy(&v, p, 4);
      return is_signed ? Wide{static_cast<int32_t>(v)} : Wide{v};
    }
    default: {
      uint64_t v;
      std::memcpy(&v, p, 8);
      return is_signed ? Wide{static_cast<int64_t>(v)} : Wide{v};
    }
  }
}

std::string WideString(Wide v) {
  if (v < 0) return absl::StrCat("-", static_cast<uint64_t>(-v));
  return absl::StrCat(static_cast<uint64_t>(v));
}

// Calls f(flat_index, byte_offset) for every element in C order.
template <typename F>
void ForEachElement(const ArrayDesc& a, F&& f) {
  const size_t ndim = a.shape.size();
  const int64_t n = NumElements(a);
  if (n <= 0) return;
  std::vector<int64_t> index(ndim, 0);
  int64_t offset = 0;
  for (int64_t i = 0; i < n; ++i) {
    f(i, offset);
    // Advance the multi-index (last axis fastest) and the byte offset with it.
    for (size_t d = ndim; d-- > 0;) {
      if (++index[d] < a.shape[d]) {
        offset += a.strides[d];
        break;
      }
      offset -= a.strides[d] * (a.shape[d] - 1);
      index[d] = 0;
    }
  }
}

std::string IndexString(const ArrayDesc& a, int64_t flat) {
  if (a.shape.size() <= 1) return absl::StrCat("[", flat, "]");
  return absl::StrCat("[", flat / a.shape[1], ", ", flat % a.shape[1], "]");
}

}  // namespace

int64_t NumElements(const ArrayDesc& a) {
  int64_t n = 1;
  for (int64_t d : a.shape) {
    if (d < 0) return -1;
    if (d == 0) return 0;
    if (n > (int64_t{1} << 62) / d) return -1;
    n *= d;
  }
  return n;
}

std::string ShapeString(const ArrayDesc& a) {
  std::string s = "(";
  for (size_t i = 0; i < a.shape.size(); ++i) absl::StrAppend(&s, i ? ", " : "", a.shape[i]);
  return s + (a.shape.size() == 1 ? ",)" : ")");
}

std::string DTypeString(const ArrayDesc& a) {
  switch (a.kind) {
    case 'i':
      return absl::StrCat("int", a.itemsize * 8);
    case 'u':
      return absl::StrCat("uint", a.itemsize * 8);
    case 'f':
      return absl::StrCat("float", a.itemsize * 8);
    case 'c':
      return absl::StrCat("complex", a.itemsize * 8);
    case 'b':
      return "bool";
    case 'O':
      return "object";
    case 'S':
    case 'U':
      return "str";
    case 'V':
      return "void (structured)";
    case 'M':
    case 'm':
      return "datetime";
    default:
      return absl::StrCat("dtype kind '", std::string(1, a.kind), "'");
  }
}

absl::Status ArgTypeError(std::string_view message) {
  absl::Status st = absl::InvalidArgumentError(AbslView(message));
  st.SetPayload(AbslView(kTypeErrorPayload), absl::Cord("1"));
  return st;
}

bool IsArgTypeError(const absl::Status& status) {
  return status.GetPayload(AbslView(kTypeErrorPayload)).has_value();
}

absl::Status CheckIntArray(const ArrayDesc& a, const IntSpec& spec) {
  const int64_t n = NumElements(a);
  if (n < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(AbslView(spec.name), " has an invalid shape ", ShapeString(a)));
  }
  if (a.shape.size() != a.strides.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(AbslView(spec.name), ": shape and strides disagree"));
  }
  const bool empty = n == 0;
  if (!empty) {
    if (!IsIntKind(a)) {
      return ArgTypeError(absl::StrCat(AbslView(spec.name), " must hold integers, got ",
                                       DTypeString(a),
                                       " (no silent casts: convert it, e.g. with "
                                       "numpy.asarray(x, dtype=numpy.int64), after checking)"));
    }
    if (!a.native_order) {
      return ArgTypeError(absl::StrCat(AbslView(spec.name), " must be in native byte order"));
    }
  }
  switch (spec.rank) {
    case Rank::kVector:
      if (a.shape.size() != 1) {
        return absl::InvalidArgumentError(absl::StrCat(
            AbslView(spec.name), " must be 1-D, got shape ", ShapeString(a),
            a.shape.size() > 1 ? " (a 2-D array is not flattened; pass one row)" : ""));
      }
      break;
    case Rank::kScalarOrVector:
      if (a.shape.size() > 1) {
        return absl::InvalidArgumentError(
            absl::StrCat(AbslView(spec.name), " must be an int or 1-D, got shape ", ShapeString(a),
                         " (a 2-D array is not flattened)"));
      }
      break;
    case Rank::kPairs:
      if (!empty && (a.shape.size() != 2 || a.shape[1] != 2)) {
        return absl::InvalidArgumentError(absl::StrCat(
            AbslView(spec.name), " must be an [n, 2] array of (src, dst) block ids, got shape ",
            ShapeString(a)));
      }
      break;
  }
  return absl::OkStatus();
}

template <typename T>
absl::Status ReadInts(const ArrayDesc& a, const IntSpec& spec, std::vector<T>* out) {
  static_assert(std::is_integral_v<T>);
  if (absl::Status st = CheckIntArray(a, spec); !st.ok()) return st;
  out->clear();
  const int64_t n = NumElements(a);
  if (n == 0) return absl::OkStatus();
  const Wide lo = std::max<Wide>(spec.min, std::numeric_limits<T>::min());
  const Wide hi = std::min<Wide>(spec.max, std::numeric_limits<T>::max());
  out->resize(static_cast<size_t>(n));
  absl::Status status;
  ForEachElement(a, [&](int64_t i, int64_t offset) {
    if (!status.ok()) return;
    const Wide v = LoadInt(a, offset);
    if (v < lo || v > hi) {
      status = absl::InvalidArgumentError(absl::StrCat(
          AbslView(spec.name), IndexString(a, i), " = ", WideString(v), " is outside [",
          WideString(lo), ", ", WideString(hi), "]",
          hi < Wide{std::numeric_limits<int64_t>::max()} && v > hi ? " (values are not wrapped)"
                                                                   : ""));
      return;
    }
    (*out)[static_cast<size_t>(i)] = static_cast<T>(v);
  });
  if (!status.ok()) out->clear();
  return status;
}

template absl::Status ReadInts<int32_t>(const ArrayDesc&, const IntSpec&, std::vector<int32_t>*);
template absl::Status ReadInts<int64_t>(const ArrayDesc&, const IntSpec&, std::vector<int64_t>*);
template absl::Status ReadInts<uint32_t>(const ArrayDesc&, const IntSpec&, std::vector<uint32_t>*);
template absl::Status ReadInts<uint64_t>(const ArrayDesc&, const IntSpec&, std::vector<uint64_t>*);

template <typename T>
bool IsExactIntArray(const ArrayDesc& a) {
  return a.kind == (std::is_signed_v<T> ? 'i' : 'u') && a.itemsize == sizeof(T) && a.native_order &&
         a.c_contiguous && a.aligned && a.shape.size() == a.strides.size() && NumElements(a) >= 0;
}

template bool IsExactIntArray<int32_t>(const ArrayDesc&);
template bool IsExactIntArray<int64_t>(const ArrayDesc&);
template bool IsExactIntArray<uint64_t>(const ArrayDesc&);

absl::Status ReadPageTable(const ArrayDesc& indptr, const ArrayDesc& indices,
                           const ArrayDesc& last_len, PageTableArgs* out) {
  constexpr uint64_t kMax = std::numeric_limits<int32_t>::max();
  if (absl::Status st = ReadInts(indptr, {"page_indptr", Rank::kVector, 0, kMax}, &out->indptr);
      !st.ok()) {
    return st;
  }
  if (absl::Status st =
          ReadInts(indices, {"page_indices", Rank::kVector, INT32_MIN, kMax}, &out->indices);
      !st.ok()) {
    return st;
  }
  if (absl::Status st =
          ReadInts(last_len, {"last_page_len", Rank::kVector, INT32_MIN, kMax}, &out->last_len);
      !st.ok()) {
    return st;
  }
  if (out->indptr.empty()) {
    return absl::InvalidArgumentError("page_indptr must have batch_size + 1 >= 1 entries");
  }
  const size_t b = out->indptr.size() - 1;
  if (out->last_len.size() != b) {
    return absl::InvalidArgumentError(absl::StrCat("last_page_len has ", out->last_len.size(),
                                                   " entries, page_indptr implies batch_size ", b));
  }
  if (out->indptr[0] != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_indptr[0] is ", out->indptr[0], ", must be 0"));
  }
  for (size_t i = 1; i <= b; ++i) {
    if (out->indptr[i] < out->indptr[i - 1]) {
      return absl::InvalidArgumentError(absl::StrCat("page_indptr decreases at entry ", i, " (",
                                                     out->indptr[i - 1], " then ", out->indptr[i],
                                                     ")"));
    }
  }
  // Monotone, so every entry lies in [0, nnz]: the kernels may index page_indices with any.
  if (static_cast<size_t>(out->indptr[b]) > out->indices.size()) {
    return absl::InvalidArgumentError(absl::StrCat("page_indptr[batch_size] = ", out->indptr[b],
                                                   " but page_indices has ", out->indices.size(),
                                                   " entries"));
  }
  return absl::OkStatus();
}

absl::Status ReadBlockPairs(const ArrayDesc& pairs, std::vector<std::pair<int32_t, int32_t>>* out) {
  std::vector<int32_t> flat;
  if (absl::Status st = ReadInts(
          pairs, {"pairs", Rank::kPairs, 0, uint64_t{std::numeric_limits<int32_t>::max()}}, &flat);
      !st.ok()) {
    return st;
  }
  out->clear();
  out->reserve(flat.size() / 2);
  for (size_t i = 0; i + 1 < flat.size(); i += 2) out->emplace_back(flat[i], flat[i + 1]);
  return absl::OkStatus();
}

absl::Status CheckPoolArray(const ArrayDesc& a, std::string_view name, bool writeable) {
  if (a.kind != 'f' && a.kind != 'i' && a.kind != 'u') {
    return ArgTypeError(absl::StrCat(AbslView(name), " must be a numeric pool array, got ",
                                     DTypeString(a),
                                     " (a block copy of object pointers would corrupt them)"));
  }
  if (!a.native_order)
    return ArgTypeError(absl::StrCat(AbslView(name), " must be in native byte order"));
  if (a.shape.empty() || a.shape.size() != a.strides.size() || NumElements(a) < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        AbslView(name), " must be at least 1-D [num_blocks, ...], got shape ", ShapeString(a)));
  }
  if (!a.c_contiguous || !a.aligned) {
    return absl::InvalidArgumentError(
        absl::StrCat(AbslView(name), " must be C-contiguous and aligned (a view from kv_cache())"));
  }
  if (a.shape[0] > std::numeric_limits<int32_t>::max()) {
    return absl::InvalidArgumentError(
        absl::StrCat(AbslView(name), " has more than 2^31 - 1 blocks"));
  }
  if (writeable && !a.writeable) {
    return absl::InvalidArgumentError(absl::StrCat(AbslView(name), " must be writeable"));
  }
  return absl::OkStatus();
}

absl::Status CheckFloatArray(const ArrayDesc& a, const FloatSpec& spec) {
  if (a.kind != 'f') {
    return ArgTypeError(
        absl::StrCat(AbslView(spec.name), " must be a float array, got ", DTypeString(a)));
  }
  if (!a.native_order) {
    return ArgTypeError(absl::StrCat(AbslView(spec.name), " must be in native byte order"));
  }
  if (static_cast<int>(a.shape.size()) != spec.ndim || a.shape.size() != a.strides.size() ||
      NumElements(a) < 0) {
    return absl::InvalidArgumentError(absl::StrCat(AbslView(spec.name), " must be ", spec.ndim,
                                                   "-D, got shape ", ShapeString(a)));
  }
  if (spec.need_contiguous && (!a.c_contiguous || !a.aligned)) {
    return absl::InvalidArgumentError(
        absl::StrCat(AbslView(spec.name), " must be C-contiguous and aligned"));
  }
  if (spec.need_writeable && !a.writeable) {
    return absl::InvalidArgumentError(absl::StrCat(AbslView(spec.name), " must be writeable"));
  }
  return absl::OkStatus();
}

absl::Status ReadBatchEntries(const ArrayDesc& seq_ids, const ArrayDesc& num_new_tokens,
                              const ArrayDesc* num_context_tokens, BatchEntryArgs* out) {
  constexpr uint64_t kMax = std::numeric_limits<int32_t>::max();
  if (absl::Status st = ReadInts(seq_ids, {"seq_ids", Rank::kScalarOrVector}, &out->seq_ids);
      !st.ok()) {
    return st;
  }
  const size_t n = out->seq_ids.size();
  // One value for every sequence, or one per sequence.
  const auto per_seq = [&](const ArrayDesc& a, std::string_view name,
                           std::vector<int32_t>* values) -> absl::Status {
    if (absl::Status st = ReadInts(a, {name, Rank::kScalarOrVector, 0, kMax}, values); !st.ok()) {
      return st;
    }
    if (a.shape.empty() && values->size() == 1) {
      values->assign(n, values->front());
    } else if (values->size() != n) {
      return absl::InvalidArgumentError(absl::StrCat(AbslView(name), " has ", values->size(),
                                                     " entries for ", n,
                                                     " sequences; pass one per sequence or a "
                                                     "single int"));
    }
    return absl::OkStatus();
  };
  if (absl::Status st = per_seq(num_new_tokens, "num_new_tokens", &out->num_new_tokens); !st.ok()) {
    return st;
  }
  if (num_context_tokens == nullptr) {
    out->num_context_tokens.assign(n, -1);
  } else if (absl::Status st =
                 per_seq(*num_context_tokens, "num_context_tokens", &out->num_context_tokens);
             !st.ok()) {
    if (IsArgTypeError(st)) return st;
    return absl::InvalidArgumentError(
        absl::StrCat(st.message(), " (None means all tokens of each sequence)"));
  }
  std::vector<uint64_t> sorted = out->seq_ids;
  std::sort(sorted.begin(), sorted.end());
  if (auto dup = std::adjacent_find(sorted.begin(), sorted.end()); dup != sorted.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("seq_ids lists sequence ", *dup, " twice; each may appear once in a batch"));
  }
  return absl::OkStatus();
}

}  // namespace pagedkv::python
