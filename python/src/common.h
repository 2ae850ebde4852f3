// Shared helpers of the pybind11 sources: Status -> Python exception mapping and the per-area
// binding entry points called by module.cc. Each area's bindings live in <area>_bindings.cc and
// are compiled only when that area's library exists (PAGEDKV_PY_HAVE_<AREA>).
#ifndef PAGEDKV_PYTHON_SRC_COMMON_H_
#define PAGEDKV_PYTHON_SRC_COMMON_H_

#include <pybind11/pybind11.h>

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace pagedkv::python {

namespace py = pybind11;

// Tag type of the pagedkv.OutOfBlocks exception class (never thrown as C++).
struct OutOfBlocksTag {};

// The Python class pagedkv.OutOfBlocks (a MemoryError); set by module.cc before any binding runs.
extern PyObject* g_out_of_blocks;

// Raises the Python exception for a non-OK status (same message):
//   kInvalidArgument -> ValueError, kResourceExhausted -> pagedkv.OutOfBlocks (MemoryError),
//   kNotFound -> KeyError, anything else -> RuntimeError.
[[noreturn]] void RaiseStatus(const absl::Status& status);

inline void ThrowIfError(const absl::Status& status) {
  if (!status.ok()) RaiseStatus(status);
}
template <typename T>
T ValueOrThrow(absl::StatusOr<T>&& result) {
  if (!result.ok()) RaiseStatus(result.status());
  return std::move(result).value();
}

void BindCore(py::module_& m);
void BindAllocator(py::module_& m);
void BindBlockManager(py::module_& m);
void BindBlockManagerValues(py::module_& m);  // called by BindBlockManager
void BindAttention(py::module_& m);
void BindScheduler(py::module_& m);

}  // namespace pagedkv::python

#endif  // PAGEDKV_PYTHON_SRC_COMMON_H_
