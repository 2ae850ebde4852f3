#include "array_util.h"

#include <bit>

namespace pagedkv::python {

void RaiseArgError(const absl::Status& status) {
  const std::string message(status.message());
  if (IsArgTypeError(status)) throw py::type_error(message);
  throw py::value_error(message);
}

py::array AsArray(const py::handle& obj, std::string_view what) {
  if (py::isinstance<py::array>(obj)) return py::reinterpret_borrow<py::array>(obj);
  if (obj.is_none()) {
    throw py::type_error(std::string(what) + " must be an array-like of numbers, got None");
  }
  // numpy.asarray: no dtype requested, so nothing is cast; a ragged list fails here.
  py::array converted = py::array::ensure(obj);
  if (!converted) {
    throw py::type_error(std::string(what) + " must be an array-like of numbers, got " +
                         py::str(py::type::of(obj).attr("__name__")).cast<std::string>());
  }
  return converted;
}

ArrayDesc Describe(const py::array& a) {
  constexpr int kAligned = 0x0100;  // NPY_ARRAY_ALIGNED
  constexpr char kSwapped = std::endian::native == std::endian::little ? '>' : '<';
  ArrayDesc d;
  const py::dtype dt = a.dtype();
  d.kind = dt.kind();
  d.itemsize = static_cast<int64_t>(dt.itemsize());
  d.native_order = dt.byteorder() != kSwapped;
  d.shape.assign(a.shape(), a.shape() + a.ndim());
  d.strides.assign(a.strides(), a.strides() + a.ndim());
  d.data = a.data();
  d.c_contiguous = (a.flags() & py::array::c_style) != 0;
  d.aligned = (a.flags() & kAligned) != 0;
  d.writeable = a.writeable();
  return d;
}

}  // namespace pagedkv::python
