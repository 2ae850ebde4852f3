// NumPy helpers for the binding sources: zero-copy views over C++ buffers (kept alive by a base
// object), and checked conversion of array arguments (arg_checks.h holds the rules): an argument
// is described as an ArrayDesc and read only through those checks, so a float, object or 2-D
// array is refused instead of cast, wrapped or flattened.
#ifndef PAGEDKV_PYTHON_SRC_ARRAY_UTIL_H_
#define PAGEDKV_PYTHON_SRC_ARRAY_UTIL_H_

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "arg_checks.h"
#include "pagedkv/block_manager/cache_ops.h"

namespace pagedkv::python {

namespace py = pybind11;

// TypeError or ValueError (arg_checks.h: IsArgTypeError) with the status' message.
[[noreturn]] void RaiseArgError(const absl::Status& status);
inline void ThrowIfArgError(const absl::Status& status) {
  if (!status.ok()) RaiseArgError(status);
}

// `obj` as a NumPy array without any dtype conversion: an ndarray itself, or what
// numpy.asarray makes of a list, tuple or scalar (a Python int becomes a 0-d int64 array, a list
// of floats float64). TypeError naming `what` when NumPy cannot make an array of it.
py::array AsArray(const py::handle& obj, std::string_view what);

// The ArrayDesc of a NumPy array (no copy; valid while `a` lives and the GIL is held).
ArrayDesc Describe(const py::array& a);

// An integer array argument checked by arg_checks.h's ReadInts: used in place when it already is
// a C-contiguous array of T of the right rank (no copy), else converted into a vector of T with
// every value range-checked. Only for calls that keep the GIL while they read it.
template <typename T>
class IntArg {
 public:
  IntArg(const py::handle& obj, const IntSpec& spec) {
    array_ = AsArray(obj, spec.name);
    const ArrayDesc d = Describe(array_);
    ThrowIfArgError(CheckIntArray(d, spec));
    const bool full_range = spec.min <= std::numeric_limits<T>::min() &&
                            spec.max >= static_cast<uint64_t>(std::numeric_limits<T>::max());
    scalar_ = d.shape.empty();
    if (full_range && IsExactIntArray<T>(d)) {
      span_ =
          absl::MakeConstSpan(static_cast<const T*>(d.data), static_cast<size_t>(NumElements(d)));
      return;
    }
    ThrowIfArgError(ReadInts(d, spec, &copy_));
    span_ = absl::MakeConstSpan(copy_);
  }
  absl::Span<const T> span() const { return span_; }
  bool scalar() const { return scalar_; }

 private:
  py::array array_;  // keeps the in-place data alive
  std::vector<T> copy_;
  absl::Span<const T> span_;
  bool scalar_ = false;
};

// A copy of an integer array argument (for calls that release the GIL: the copy is what the
// C++ code reads, whatever another thread does to the array meanwhile).
template <typename T>
std::vector<T> CopyInts(const py::handle& obj, const IntSpec& spec) {
  std::vector<T> out;
  ThrowIfArgError(ReadInts(Describe(AsArray(obj, spec.name)), spec, &out));
  return out;
}

// 1-D view of `v` whose lifetime is tied to `base` (the Python object owning `v`).
template <typename T>
py::array_t<T> VectorView(const std::vector<T>& v, py::handle base) {
  return py::array_t<T>({static_cast<py::ssize_t>(v.size())}, {static_cast<py::ssize_t>(sizeof(T))},
                        v.data(), base);
}

// [n, 2] uint32 view of (src, dst) block pairs.
inline py::array_t<uint32_t> PairView(const std::vector<BlockPair>& v, py::handle base) {
  static_assert(sizeof(BlockPair) == 2 * sizeof(uint32_t));
  return py::array_t<uint32_t>(
      {static_cast<py::ssize_t>(v.size()), py::ssize_t{2}},
      {static_cast<py::ssize_t>(sizeof(BlockPair)), static_cast<py::ssize_t>(sizeof(uint32_t))},
      reinterpret_cast<const uint32_t*>(v.data()), base);
}

}  // namespace pagedkv::python

#endif  // PAGEDKV_PYTHON_SRC_ARRAY_UTIL_H_
