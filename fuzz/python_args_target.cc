// Fuzz target of the Python bindings' argument checks (python/src/arg_checks.h): the input bytes
// describe arrays as NumPy could hand them over (any dtype kind and item size, 0 to 3 dimensions,
// zero, negative, unaligned or overlapping strides, byte-swapped) with their elements in a buffer
// allocated to exactly the bytes the description spans, so that ASan reports any read outside it.
#include <algorithm>
#include <cstring>
#include <limits>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "arg_checks.h"
#include "fuzz/fuzz_targets.h"

namespace pagedkv::fuzz {
namespace {

using python::ArrayDesc;

class Bytes {
 public:
  Bytes(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  uint8_t Next() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint64_t Next64() {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | Next();
    return v;
  }
  bool empty() const { return pos_ >= size_; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// An array description and the buffer holding exactly the bytes its elements span.
struct FuzzArray {
  ArrayDesc desc;
  std::unique_ptr<uint8_t[]> buffer;
  int64_t min_offset = 0;  // byte offset of the lowest element byte from desc.data
  int64_t span = 0;        // bytes from the lowest to the highest element byte
};

FuzzArray MakeArray(Bytes& in) {
  static constexpr char kKinds[] = {'i', 'u', 'i', 'u', 'f', 'b', 'O', 'c', 'V'};
  static constexpr int64_t kSizes[] = {1, 2, 4, 8, 4, 8, 3, 16};
  FuzzArray a;
  ArrayDesc& d = a.desc;
  d.kind = kKinds[in.Next() % sizeof(kKinds)];
  d.itemsize = kSizes[in.Next() % (sizeof(kSizes) / sizeof(kSizes[0]))];
  const uint8_t flags = in.Next();
  d.native_order = (flags & 1) == 0;
  d.writeable = (flags & 2) != 0;
  const int ndim = in.Next() % 4;
  for (int i = 0; i < ndim; ++i) {
    d.shape.push_back(in.Next() % 9);
    // Strides: C order most of the time, else a multiple of the item size (0, negative,
    // overlapping) plus possibly an odd byte (unaligned).
    const uint8_t s = in.Next();
    d.strides.push_back(s < 128 ? 0
                                : (static_cast<int64_t>(s % 7) - 3) * d.itemsize + (s % 5 == 0));
  }
  // C-order strides where the input asked for them (stride byte < 128), as NumPy would lay out.
  int64_t expected = d.itemsize;
  bool c_order = true;
  for (int i = ndim - 1; i >= 0; --i) {
    if (d.strides[i] == 0 && (flags & 4) == 0) d.strides[i] = expected;
    if (d.shape[i] > 1 && d.strides[i] != expected) c_order = false;
    expected *= std::max<int64_t>(d.shape[i], 1);
  }
  const int64_t n = python::NumElements(d);
  // NumPy's flags follow from the strides; the checks trust them.
  d.c_contiguous = c_order || n == 0;
  int64_t lo = 0, hi = 0;
  for (int i = 0; i < ndim; ++i) {
    if (d.shape[i] == 0) continue;
    const int64_t extent = (d.shape[i] - 1) * d.strides[i];
    (extent < 0 ? lo : hi) += extent;
  }
  a.span = n == 0 ? 0 : hi - lo + d.itemsize;
  a.min_offset = lo;
  a.buffer.reset(new uint8_t[static_cast<size_t>(a.span)]);
  for (int64_t i = 0; i < a.span; ++i) a.buffer[i] = in.Next();
  d.data = a.buffer.get() - lo;
  d.aligned = reinterpret_cast<uintptr_t>(d.data) % std::max<int64_t>(d.itemsize, 1) == 0 &&
              std::all_of(d.strides.begin(), d.strides.end(),
                          [&](int64_t s) { return s % std::max<int64_t>(d.itemsize, 1) == 0; });
  return a;
}

// Element `flat` (C order) of an integer array, by explicit index arithmetic.
__int128 Reference(const ArrayDesc& d, int64_t flat) {
  int64_t offset = 0;
  for (size_t i = d.shape.size(); i-- > 0;) {
    offset += (flat % d.shape[i]) * d.strides[i];
    flat /= d.shape[i];
  }
  uint64_t raw = 0;
  std::memcpy(&raw, static_cast<const char*>(d.data) + offset, static_cast<size_t>(d.itemsize));
  if (d.kind == 'u') return raw;
  const int bits = static_cast<int>(d.itemsize * 8);
  const int64_t v = bits == 64 ? static_cast<int64_t>(raw)
                               : static_cast<int64_t>(raw << (64 - bits)) >> (64 - bits);
  return v;
}

template <typename T>
std::string CheckRead(const FuzzArray& a, const python::IntSpec& spec) {
  std::vector<T> out;
  const absl::Status st = python::ReadInts(a.desc, spec, &out);
  if (!st.ok()) {
    if (!absl::IsInvalidArgument(st)) return "ReadInts: " + st.ToString();
    return "";
  }
  const int64_t n = python::NumElements(a.desc);
  if (static_cast<int64_t>(out.size()) != std::max<int64_t>(n, 0)) {
    return absl::StrCat("ReadInts returned ", out.size(), " of ", n, " elements");
  }
  const __int128 lo = std::max<__int128>(spec.min, std::numeric_limits<T>::min());
  const __int128 hi = std::min<__int128>(spec.max, std::numeric_limits<T>::max());
  for (int64_t i = 0; i < n; ++i) {
    const __int128 ref = Reference(a.desc, i);
    if (ref != static_cast<__int128>(out[i]) || ref < lo || ref > hi) {
      return absl::StrCat("ReadInts element ", i, " differs from the array or is out of range");
    }
  }
  // The in-place path of IntArg: an exact array is read as n contiguous elements.
  if (python::IsExactIntArray<T>(a.desc) && n > 0) {
    if (a.min_offset != 0 || a.span != n * static_cast<int64_t>(sizeof(T))) {
      return "IsExactIntArray accepted an array that is not n contiguous elements";
    }
    const T* p = static_cast<const T*>(a.desc.data);
    for (int64_t i = 0; i < n; ++i) {
      if (p[i] != out[i]) return "in-place read differs";
    }
  }
  return "";
}

}  // namespace

std::string FuzzPythonArgs(const uint8_t* data, size_t size) {
  Bytes in(data, size);
  const uint8_t which = in.Next();
  const int64_t min = static_cast<int64_t>(in.Next64());
  const uint64_t max = in.Next64();
  FuzzArray a = MakeArray(in);
  const python::Rank rank = static_cast<python::Rank>(which % 3);
  std::string broken;
  switch ((which / 3) % 6) {
    case 0:
      broken = CheckRead<int32_t>(a, {"a", rank, min, max});
      break;
    case 1:
      broken = CheckRead<int64_t>(a, {"a", rank, min, max});
      break;
    case 2:
      broken = CheckRead<uint64_t>(a, {"a", rank});
      break;
    case 3: {
      FuzzArray b = MakeArray(in), c = MakeArray(in);
      python::PageTableArgs t;
      if (python::ReadPageTable(a.desc, b.desc, c.desc, &t).ok()) {
        if (t.indptr.empty() || t.last_len.size() + 1 != t.indptr.size() || t.indptr[0] != 0 ||
            !std::is_sorted(t.indptr.begin(), t.indptr.end()) ||
            static_cast<size_t>(t.indptr.back()) > t.indices.size()) {
          broken = "ReadPageTable accepted a malformed page table";
        }
      }
      break;
    }
    case 4: {
      std::vector<std::pair<int32_t, int32_t>> pairs;
      if (python::ReadBlockPairs(a.desc, &pairs).ok()) {
        for (const auto& [src, dst] : pairs) {
          if (src < 0 || dst < 0) broken = "ReadBlockPairs accepted a negative block id";
        }
        if (python::NumElements(a.desc) > 0 &&
            pairs.size() * 2 != static_cast<size_t>(python::NumElements(a.desc))) {
          broken = "ReadBlockPairs lost pairs";
        }
      }
      (void)python::CheckPoolArray(a.desc, "pool", (which & 64) != 0);
      (void)python::CheckFloatArray(a.desc,
                                    {"x", static_cast<int>(a.desc.shape.size()), true, true});
      break;
    }
    default: {
      FuzzArray b = MakeArray(in), c = MakeArray(in);
      python::BatchEntryArgs e;
      if (python::ReadBatchEntries(a.desc, b.desc, (which & 128) ? &c.desc : nullptr, &e).ok()) {
        const size_t n = e.seq_ids.size();
        std::set<uint64_t> unique(e.seq_ids.begin(), e.seq_ids.end());
        if (unique.size() != n || e.num_new_tokens.size() != n ||
            e.num_context_tokens.size() != n) {
          broken = "ReadBatchEntries accepted duplicates or mismatched lengths";
        }
        for (size_t i = 0; i < n && broken.empty(); ++i) {
          if (e.num_new_tokens[i] < 0 || e.num_context_tokens[i] < -1) {
            broken = "ReadBatchEntries accepted a negative count";
          }
        }
      }
      break;
    }
  }
  return broken;
}

}  // namespace pagedkv::fuzz
