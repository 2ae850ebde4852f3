// The extension module pagedkv._pagedkv: exception types, then one Bind* call per bound area.
// The package pagedkv/__init__.py re-exports everything; users import `pagedkv`.
#include <string>

#include "common.h"

namespace pagedkv::python {

PyObject* g_out_of_blocks = nullptr;

void RaiseStatus(const absl::Status& status) {
  const std::string message(status.message());
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
      throw py::value_error(message);
    case absl::StatusCode::kNotFound:
      throw py::key_error(message);
    case absl::StatusCode::kResourceExhausted:
      PyErr_SetString(g_out_of_blocks, message.c_str());
      throw py::error_already_set();
    default:
      throw std::runtime_error(message);
  }
}

}  // namespace pagedkv::python

PYBIND11_MODULE(_pagedkv, m) {
  namespace pyb = pagedkv::python;
  m.doc() =
      "pagedkv: paged KV-cache memory manager (C++ extension). Import the `pagedkv` package, not "
      "this module.";
  // A MemoryError subclass, so `except MemoryError` also catches running out of KV blocks.
  static pybind11::exception<pyb::OutOfBlocksTag> out_of_blocks(m, "OutOfBlocks",
                                                                PyExc_MemoryError);
  out_of_blocks.doc() =
      "Raised when an operation needs more KV blocks than the pool has free (the C++ status "
      "ResourceExhausted). Free, swap out or preempt a sequence and retry.";
  pyb::g_out_of_blocks = out_of_blocks.ptr();

  pyb::BindCore(m);
#ifdef PAGEDKV_PY_HAVE_ALLOCATOR
  pyb::BindAllocator(m);
#endif
#ifdef PAGEDKV_PY_HAVE_BLOCK_MANAGER
  pyb::BindBlockManager(m);
#endif
#ifdef PAGEDKV_PY_HAVE_ATTENTION
  pyb::BindAttention(m);
#endif
#ifdef PAGEDKV_PY_HAVE_SCHEDULER
  pyb::BindScheduler(m);
#endif
  m.attr("_bound_areas") = pybind11::make_tuple("core"
#ifdef PAGEDKV_PY_HAVE_ALLOCATOR
                                                ,
                                                "allocator"
#endif
#ifdef PAGEDKV_PY_HAVE_BLOCK_MANAGER
                                                ,
                                                "block_manager"
#endif
#ifdef PAGEDKV_PY_HAVE_ATTENTION
                                                ,
                                                "attention"
#endif
#ifdef PAGEDKV_PY_HAVE_SCHEDULER
                                                ,
                                                "scheduler"
#endif
  );
}
