// NumPy helpers for the binding sources: zero-copy views over C++ buffers (kept alive by a base
// object) and argument conversion from any array-like without a copy when it already has the
// right dtype and is contiguous.
#ifndef PAGEDKV_PYTHON_SRC_ARRAY_UTIL_H_
#define PAGEDKV_PYTHON_SRC_ARRAY_UTIL_H_

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "pagedkv/block_manager/cache_ops.h"

namespace pagedkv::python {

namespace py = pybind11;

// An array argument: converted (copied) only when the input is not already a C-contiguous array
// of T; a Python int becomes a 0-d array (one element).
template <typename T>
using InArray = py::array_t<T, py::array::c_style | py::array::forcecast>;

template <typename T>
absl::Span<const T> AsSpan(const InArray<T>& a) {
  return absl::MakeConstSpan(a.data(), static_cast<size_t>(a.size()));
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
