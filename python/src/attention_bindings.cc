// Bindings of attention/: the CPU kernels on NumPy arrays, and every kernel on raw addresses
// (pagedkv.raw) so that device memory (e.g. torch's tensor.data_ptr()) can be passed without any
// dependency on a tensor library.
//
// A NumPy KV cache is the 6-D view BlockManager.kv_cache() returns:
//   [num_blocks, layers_in_group, 2 (K, V), num_kv_heads, block_size, head_dim], C-contiguous,
//   float32 or float16.
// Every kernel call releases the GIL.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "array_util.h"
#include "common.h"
#include "pagedkv/attention/backend.h"
#include "pagedkv/attention/cache_ops.h"
#include "pagedkv/attention/cpu_worker_pool.h"
#include "pagedkv/attention/paged_attention.h"
#include "pagedkv/attention/paged_kv_view.h"

namespace pagedkv::python {
namespace {

// float32 or float16 (the kernels' dtypes); TypeError for any other, float64 included.
DType FloatDType(const ArrayDesc& d, const char* what) {
  if (d.kind == 'f' && d.itemsize == 4) return DType::kFp32;
  if (d.kind == 'f' && d.itemsize == 2) return DType::kFp16;
  throw py::type_error(std::string(what) + " must be float32 or float16, got " + DTypeString(d));
}

int32_t Dim32(const ArrayDesc& d, size_t axis, const char* what) {
  if (d.shape[axis] > INT32_MAX) {
    throw py::value_error(std::string(what) + ": dimension " + std::to_string(axis) +
                          " is larger than 2^31 - 1");
  }
  return static_cast<int32_t>(d.shape[axis]);
}

// The pool part of a view from a 6-D cache array.
PagedKVView CacheView(const py::array& cache, int32_t layer_in_group) {
  const ArrayDesc d = Describe(cache);
  ThrowIfArgError(CheckFloatArray(d, {"kv_cache", 6, /*need_contiguous=*/true,
                                      /*need_writeable=*/true}));
  if (d.shape[2] != 2) {
    throw py::value_error(
        "kv_cache must be [num_blocks, layers_in_group, 2, num_kv_heads, block_size, head_dim] "
        "(BlockManager.kv_cache()), got shape " +
        ShapeString(d));
  }
  const DType dtype = FloatDType(d, "kv_cache");
  const int32_t layers = Dim32(d, 1, "kv_cache");
  if (layer_in_group < 0 || layer_in_group >= layers) {
    throw py::value_error("layer_in_group " + std::to_string(layer_in_group) +
                          " out of range [0, " + std::to_string(layers) + ")");
  }
  return PagedKVView::ForLayer(const_cast<void*>(d.data), dtype, Dim32(d, 0, "kv_cache"), layers,
                               layer_in_group, Dim32(d, 3, "kv_cache"), Dim32(d, 5, "kv_cache"),
                               Dim32(d, 4, "kv_cache"));
}

// [T, num_kv_heads, head_dim] rows in the cache's dtype: a float array (TypeError otherwise),
// converted from another float width when needed (documented), C-contiguous.
py::array KvRows(const py::object& rows, const PagedKVView& v, int64_t num_tokens,
                 const char* what) {
  const py::array in = AsArray(rows, what);
  const ArrayDesc d = Describe(in);
  ThrowIfArgError(CheckFloatArray(d, {what, 3, /*need_contiguous=*/false}));
  if (d.shape[0] != num_tokens || d.shape[1] != v.num_kv_heads || d.shape[2] != v.head_dim) {
    throw py::value_error(std::string(what) + " must be [" + std::to_string(num_tokens) + ", " +
                          std::to_string(v.num_kv_heads) + ", " + std::to_string(v.head_dim) +
                          "], got " + ShapeString(d));
  }
  constexpr int kAligned = 0x0100;  // NPY_ARRAY_ALIGNED
  return py::array::ensure(py::module_::import("numpy").attr("asarray")(
                               in, v.dtype == DType::kFp32 ? "float32" : "float16"),
                           py::array::c_style | kAligned);
}

// Queries [T, Hq, head_dim], float32 or the cache's dtype; the output array of the same dtype.
std::pair<py::array, py::array> QueryAndOut(const py::object& q_obj, const PagedKVView& v,
                                            const py::object& out) {
  const py::array q = AsArray(q_obj, "q");
  const ArrayDesc qd_desc = Describe(q);
  ThrowIfArgError(CheckFloatArray(qd_desc, {"q", 3, /*need_contiguous=*/false}));
  const DType qd = FloatDType(qd_desc, "q");
  if (qd != DType::kFp32 && qd != v.dtype) {
    throw py::type_error("q must be float32 or the cache's dtype");
  }
  if (q.shape(2) != v.head_dim || q.shape(1) < 1 || q.shape(1) % v.num_kv_heads != 0 ||
      q.shape(1) > INT32_MAX) {
    throw py::value_error("q must be [num_tokens, num_q_heads, " + std::to_string(v.head_dim) +
                          "] with num_q_heads a multiple of " + std::to_string(v.num_kv_heads) +
                          ", got " + ShapeString(qd_desc));
  }
  constexpr int kAligned = 0x0100;  // NPY_ARRAY_ALIGNED
  py::array qc = py::array::ensure(q, py::array::c_style | kAligned);
  py::array o;
  if (out.is_none()) {
    o = py::array(q.dtype(), std::vector<py::ssize_t>{q.shape(0), q.shape(1), q.shape(2)});
  } else {
    o = AsArray(out, "out");
    const ArrayDesc od = Describe(o);
    ThrowIfArgError(CheckFloatArray(od, {"out", 3, /*need_contiguous=*/true,
                                         /*need_writeable=*/true}));
    if (!o.dtype().is(q.dtype()) || od.shape != qd_desc.shape) {
      throw py::value_error("out must be a writeable C-contiguous array like q " +
                            ShapeString(qd_desc));
    }
  }
  return {qc, o};
}

AttentionOptions MakeAttnOptions(float softmax_scale, int32_t window_tokens, Backend backend,
                                 CpuWorkerPool* cpu_pool, uintptr_t stream,
                                 int32_t max_kv_len_hint) {
  AttentionOptions o;
  o.softmax_scale = softmax_scale;
  o.window_tokens = window_tokens;
  o.backend = backend;
  o.cpu_pool = cpu_pool;
  o.cuda_stream = reinterpret_cast<void*>(stream);
  o.max_kv_len_hint = max_kv_len_hint;
  return o;
}

// The page table is copied (arg_checks.h ReadPageTable) before the GIL is released, so the
// kernel's own checks and its reads see the same values whatever other threads do.
py::array NumpyAttention(const py::array& cache, int32_t layer_in_group, const py::object& q,
                         const py::object& page_indptr, const py::object& page_indices,
                         const py::object& last_page_len, const py::object* qo_indptr,
                         float softmax_scale, int32_t window_tokens, const py::object& out,
                         CpuWorkerPool* cpu_pool) {
  PagedKVView v = CacheView(cache, layer_in_group);
  PageTableArgs table;
  ThrowIfArgError(ReadPageTable(Describe(AsArray(page_indptr, "page_indptr")),
                                Describe(AsArray(page_indices, "page_indices")),
                                Describe(AsArray(last_page_len, "last_page_len")), &table));
  v.batch_size = static_cast<int32_t>(table.last_len.size());
  v.page_indptr = table.indptr.data();
  v.page_indices = table.indices.data();
  v.last_page_len = table.last_len.data();
  auto [qc, o] = QueryAndOut(q, v, out);
  QueryBatch qb;
  qb.q = qc.data();
  qb.out = o.mutable_data();
  qb.dtype = FloatDType(Describe(qc), "q");
  qb.num_q_heads = static_cast<int32_t>(qc.shape(1));
  qb.num_tokens = qc.shape(0);
  std::vector<int32_t> qo;
  if (qo_indptr != nullptr) {
    qo = CopyInts<int32_t>(*qo_indptr, {"qo_indptr", Rank::kVector, INT32_MIN, INT32_MAX});
    if (static_cast<int64_t>(qo.size()) != int64_t{v.batch_size} + 1) {
      throw py::value_error(
          "qo_indptr must have batch_size + 1 = " + std::to_string(v.batch_size + 1) + " entries");
    }
    qb.qo_indptr = qo.data();
  }
  const AttentionOptions opts =
      MakeAttnOptions(softmax_scale, window_tokens, Backend::kCpu, cpu_pool, 0, 0);
  absl::Status st;
  {
    py::gil_scoped_release release;
    st = qo_indptr == nullptr ? PagedAttentionDecode(v, qb, opts)
                              : PagedAttentionExtend(v, qb, opts);
  }
  ThrowIfError(st);
  return o;
}

// (src, dst) pairs as BlockCopy: an [n, 2] integer array (CacheOps arrays are uint32, lists
// int64), copied before the GIL is released.
std::vector<BlockCopy> ToCopies(const py::object& pairs) {
  std::vector<std::pair<int32_t, int32_t>> read;
  ThrowIfArgError(ReadBlockPairs(Describe(AsArray(pairs, "pairs")), &read));
  std::vector<BlockCopy> out(read.size());
  for (size_t i = 0; i < read.size(); ++i) out[i] = {read[i].first, read[i].second};
  return out;
}

CacheOpOptions MakeOpOptions(Backend backend, uintptr_t stream) {
  CacheOpOptions o;
  o.backend = backend;
  o.cuda_stream = reinterpret_cast<void*>(stream);
  return o;
}

const void* Ptr(uintptr_t p) { return reinterpret_cast<const void*>(p); }

}  // namespace

void BindAttention(py::module_& m) {
  py::enum_<Backend> backend(m, "Backend",
                             "Which implementation runs a kernel: AUTO (by where the pool "
                             "pointer lives), CPU or CUDA.");
  backend.value("AUTO", Backend::kAuto).value("CPU", Backend::kCpu).value("CUDA", Backend::kCuda);
  backend.def(py::init([](const std::string& name) {
                if (name == "auto") return Backend::kAuto;
                if (name == "cpu") return Backend::kCpu;
                if (name == "cuda") return Backend::kCuda;
                throw py::value_error("unknown backend '" + name + "'; use auto, cpu or cuda");
              }),
              py::arg("name"));
  py::implicitly_convertible<py::str, Backend>();
  m.def("attention_built_with_cuda", &AttentionBuiltWithCuda,
        "True when this build contains the CUDA kernels.");
  m.def("cuda_device_available", &AttentionCudaDeviceAvailable,
        "True when the CUDA kernels are built and a device is usable now.");

  py::class_<CpuWorkerPool>(m, "CpuWorkerPool",
                            "Threads for the CPU kernels. Create one per engine and pass it as "
                            "cpu_pool=; without one each call starts its own threads.")
      .def(py::init<int>(), py::arg("num_threads") = 0, "0 = all cores (the caller included)")
      .def_property_readonly("num_threads", &CpuWorkerPool::num_threads);

  // ---- CPU kernels on NumPy arrays --------------------------------------------------------------
  m.def(
      "write_kv",
      [](py::array kv_cache, int32_t layer_in_group, const py::object& slot_mapping,
         const py::object& key, const py::object& value) {
        PagedKVView v = CacheView(kv_cache, layer_in_group);
        // A copy: the kernel checks every slot and then writes through the same values.
        const std::vector<int64_t> slots =
            CopyInts<int64_t>(slot_mapping, {"slot_mapping", Rank::kVector});
        v.num_slots = static_cast<int64_t>(slots.size());
        v.slot_mapping = slots.data();
        py::array k = KvRows(key, v, v.num_slots, "key");
        py::array val = KvRows(value, v, v.num_slots, "value");
        CacheOpOptions o = MakeOpOptions(Backend::kCpu, 0);
        absl::Status st;
        {
          py::gil_scoped_release release;
          st = WriteKV(v, k.data(), val.data(), o);
        }
        ThrowIfError(st);
      },
      py::arg("kv_cache"), py::arg("layer_in_group"), py::arg("slot_mapping"), py::arg("key"),
      py::arg("value"),
      "Stores key/value rows [T, num_kv_heads, head_dim] of one layer in their slots "
      "(BatchLayout.slot_mapping, integers; negative slots are skipped). ValueError naming the "
      "token for a slot out of range (nothing is written then). Rows are float arrays, "
      "converted to the cache's dtype; TypeError for any other dtype.");

  m.def(
      "paged_attention_decode",
      [](py::array kv_cache, int32_t layer_in_group, py::object q, py::object page_indptr,
         py::object page_indices, py::object last_page_len, float softmax_scale,
         int32_t window_tokens, py::object out, CpuWorkerPool* cpu_pool) {
        return NumpyAttention(kv_cache, layer_in_group, q, page_indptr, page_indices, last_page_len,
                              nullptr, softmax_scale, window_tokens, out, cpu_pool);
      },
      py::arg("kv_cache"), py::arg("layer_in_group"), py::arg("q"), py::arg("page_indptr"),
      py::arg("page_indices"), py::arg("last_page_len"), py::kw_only(),
      py::arg("softmax_scale") = 0.0f, py::arg("window_tokens") = 0, py::arg("out") = py::none(),
      py::arg("cpu_pool") = nullptr,
      "One query token per sequence: q [B, num_q_heads, head_dim] (float32 or the cache's "
      "dtype) attends over each sequence's pages. Returns out (allocated when None), same dtype "
      "as q. softmax_scale 0 = 1/sqrt(head_dim); window_tokens 0 = no window.");
  m.def(
      "paged_attention_extend",
      [](py::array kv_cache, int32_t layer_in_group, py::object q, py::object qo_indptr,
         py::object page_indptr, py::object page_indices, py::object last_page_len,
         float softmax_scale, int32_t window_tokens, py::object out, CpuWorkerPool* cpu_pool) {
        return NumpyAttention(kv_cache, layer_in_group, q, page_indptr, page_indices, last_page_len,
                              &qo_indptr, softmax_scale, window_tokens, out, cpu_pool);
      },
      py::arg("kv_cache"), py::arg("layer_in_group"), py::arg("q"), py::arg("qo_indptr"),
      py::arg("page_indptr"), py::arg("page_indices"), py::arg("last_page_len"), py::kw_only(),
      py::arg("softmax_scale") = 0.0f, py::arg("window_tokens") = 0, py::arg("out") = py::none(),
      py::arg("cpu_pool") = nullptr,
      "Several query tokens per sequence (rows qo_indptr[b]:qo_indptr[b+1] of q are the LAST "
      "tokens of sequence b's KV, already written), causal within the sequence.");

  m.def(
      "copy_blocks",
      [](py::array kv_cache, const py::object& pairs) {
        ThrowIfArgError(CheckPoolArray(Describe(kv_cache), "kv_cache", /*writeable=*/true));
        std::vector<BlockCopy> copies = ToCopies(pairs);
        const auto bytes = static_cast<uint64_t>(kv_cache.strides(0));
        absl::Status st;
        {
          py::gil_scoped_release release;
          st = CopyBlocks(kv_cache.mutable_data(), bytes, static_cast<int32_t>(kv_cache.shape(0)),
                          copies, MakeOpOptions(Backend::kCpu, 0));
        }
        ThrowIfError(st);
      },
      py::arg("kv_cache"), py::arg("pairs"),
      "Copies whole blocks inside one pool: pairs is [n, 2] (src, dst), e.g. "
      "GroupCacheOps.copies.");
  m.def(
      "swap_blocks",
      [](const py::array& src_cache, py::array dst_cache, const py::object& pairs) {
        const ArrayDesc src = Describe(src_cache), dst = Describe(dst_cache);
        ThrowIfArgError(CheckPoolArray(src, "src_cache", /*writeable=*/false));
        ThrowIfArgError(CheckPoolArray(dst, "dst_cache", /*writeable=*/true));
        if (src.kind != dst.kind || src.itemsize != dst.itemsize) {
          throw py::type_error("src_cache is " + DTypeString(src) + " but dst_cache is " +
                               DTypeString(dst) + "; swap between pools of one dtype");
        }
        if (src.strides[0] != dst.strides[0]) {
          throw py::value_error("src and dst pools have different block sizes in bytes");
        }
        // Two views of one buffer at different offsets would make the block copies overlap.
        const auto* s0 = static_cast<const char*>(src.data);
        const auto* d0 = static_cast<const char*>(dst.data);
        const int64_t src_bytes = src.shape[0] * src.strides[0];
        const int64_t dst_bytes = dst.shape[0] * dst.strides[0];
        if (s0 != d0 && s0 < d0 + dst_bytes && d0 < s0 + src_bytes) {
          throw py::value_error("src_cache and dst_cache overlap in memory; swap between pools");
        }
        std::vector<BlockCopy> copies = ToCopies(pairs);
        absl::Status st;
        {
          py::gil_scoped_release release;
          st = SwapBlocks(src.data, static_cast<int32_t>(src.shape[0]), const_cast<void*>(dst.data),
                          static_cast<int32_t>(dst.shape[0]), static_cast<uint64_t>(src.strides[0]),
                          copies, MakeOpOptions(Backend::kCpu, 0));
        }
        ThrowIfError(st);
      },
      py::arg("src_cache"), py::arg("dst_cache"), py::arg("pairs"),
      "Copies whole blocks from one pool to another (swap_out: GPU -> host, swap_in: host -> "
      "GPU), pairs [n, 2] (src block, dst block).");

  // ---- Raw addresses (CUDA device memory, or any memory with backend='cpu')
  // ----------------------
  py::module_ raw = m.def_submodule(
      "raw",
      "Kernels on raw addresses (ints), for device memory owned elsewhere: pass "
      "tensor.data_ptr() and BlockManager.pool_ptr(). No tensor library is needed. The page "
      "table, slot_mapping and qo_indptr addresses must be on the same side as the pool (device "
      "memory for backend CUDA). Calls are asynchronous on `stream` (a cudaStream_t as int, 0 = "
      "default stream).");
  py::class_<PagedKVView>(raw, "PagedKVView",
                          "How a kernel finds one layer's K/V in a pool and the batch's page "
                          "table (pointer fields are addresses as ints).")
      .def(py::init([](uintptr_t pool, DType dtype, int32_t num_blocks, int32_t layers_in_group,
                       int32_t layer_in_group, int32_t num_kv_heads, int32_t head_dim,
                       int32_t block_size) {
             return PagedKVView::ForLayer(reinterpret_cast<void*>(pool), dtype, num_blocks,
                                          layers_in_group, layer_in_group, num_kv_heads, head_dim,
                                          block_size);
           }),
           py::kw_only(), py::arg("pool"), py::arg("dtype"), py::arg("num_blocks"),
           py::arg("layers_in_group"), py::arg("layer_in_group"), py::arg("num_kv_heads"),
           py::arg("head_dim"), py::arg("block_size"))
      .def_property(
          "pool", [](const PagedKVView& v) { return reinterpret_cast<uintptr_t>(v.pool); },
          [](PagedKVView& v, uintptr_t p) { v.pool = reinterpret_cast<void*>(p); })
      .def_readwrite("dtype", &PagedKVView::dtype)
      .def_readwrite("num_blocks", &PagedKVView::num_blocks)
      .def_readwrite("block_stride_elems", &PagedKVView::block_stride_elems)
      .def_readwrite("layer_offset_elems", &PagedKVView::layer_offset_elems)
      .def_readwrite("num_kv_heads", &PagedKVView::num_kv_heads)
      .def_readwrite("head_dim", &PagedKVView::head_dim)
      .def_readwrite("block_size", &PagedKVView::block_size)
      .def_readwrite("batch_size", &PagedKVView::batch_size)
      .def_property(
          "page_indptr",
          [](const PagedKVView& v) { return reinterpret_cast<uintptr_t>(v.page_indptr); },
          [](PagedKVView& v, uintptr_t p) { v.page_indptr = reinterpret_cast<const int32_t*>(p); })
      .def_property(
          "page_indices",
          [](const PagedKVView& v) { return reinterpret_cast<uintptr_t>(v.page_indices); },
          [](PagedKVView& v, uintptr_t p) { v.page_indices = reinterpret_cast<const int32_t*>(p); })
      .def_property(
          "last_page_len",
          [](const PagedKVView& v) { return reinterpret_cast<uintptr_t>(v.last_page_len); },
          [](PagedKVView& v, uintptr_t p) {
            v.last_page_len = reinterpret_cast<const int32_t*>(p);
          })
      .def_readwrite("num_slots", &PagedKVView::num_slots)
      .def_property(
          "slot_mapping",
          [](const PagedKVView& v) { return reinterpret_cast<uintptr_t>(v.slot_mapping); },
          [](PagedKVView& v, uintptr_t p) {
            v.slot_mapping = reinterpret_cast<const int64_t*>(p);
          });

  raw.def(
      "write_kv",
      [](const PagedKVView& view, uintptr_t key, uintptr_t value, Backend backend,
         uintptr_t stream) {
        absl::Status st;
        {
          py::gil_scoped_release release;
          st = WriteKV(view, Ptr(key), Ptr(value), MakeOpOptions(backend, stream));
        }
        ThrowIfError(st);
      },
      py::arg("view"), py::arg("key"), py::arg("value"), py::kw_only(),
      py::arg("backend") = Backend::kAuto, py::arg("stream") = 0,
      "WriteKV: key/value rows [view.num_slots, num_kv_heads, head_dim] to view.slot_mapping.");
  auto raw_attention = [](bool extend) {
    return [extend](const PagedKVView& view, uintptr_t q, uintptr_t out, DType dtype,
                    int32_t num_q_heads, int64_t num_tokens, uintptr_t qo_indptr,
                    float softmax_scale, int32_t window_tokens, Backend backend, uintptr_t stream,
                    int32_t max_kv_len_hint) {
      QueryBatch qb;
      qb.q = Ptr(q);
      qb.out = reinterpret_cast<void*>(out);
      qb.dtype = dtype;
      qb.num_q_heads = num_q_heads;
      qb.num_tokens = num_tokens;
      qb.qo_indptr = reinterpret_cast<const int32_t*>(qo_indptr);
      const AttentionOptions o =
          MakeAttnOptions(softmax_scale, window_tokens, backend, nullptr, stream, max_kv_len_hint);
      absl::Status st;
      {
        py::gil_scoped_release release;
        st = extend ? PagedAttentionExtend(view, qb, o) : PagedAttentionDecode(view, qb, o);
      }
      ThrowIfError(st);
    };
  };
  raw.def("paged_attention_decode", raw_attention(false), py::arg("view"), py::arg("q"),
          py::arg("out"), py::kw_only(), py::arg("dtype"), py::arg("num_q_heads"),
          py::arg("num_tokens"), py::arg("qo_indptr") = 0, py::arg("softmax_scale") = 0.0f,
          py::arg("window_tokens") = 0, py::arg("backend") = Backend::kAuto, py::arg("stream") = 0,
          py::arg("max_kv_len_hint") = 0,
          "Decode attention: q/out [num_tokens == view.batch_size, num_q_heads, head_dim] at "
          "raw addresses; qo_indptr is ignored.");
  raw.def("paged_attention_extend", raw_attention(true), py::arg("view"), py::arg("q"),
          py::arg("out"), py::kw_only(), py::arg("dtype"), py::arg("num_q_heads"),
          py::arg("num_tokens"), py::arg("qo_indptr"), py::arg("softmax_scale") = 0.0f,
          py::arg("window_tokens") = 0, py::arg("backend") = Backend::kAuto, py::arg("stream") = 0,
          py::arg("max_kv_len_hint") = 0,
          "Extend attention; qo_indptr [batch_size + 1] int32 at a raw address.");
  raw.def(
      "copy_blocks",
      [](uintptr_t pool, uint64_t bytes_per_block, int32_t num_blocks, const py::object& pairs,
         Backend backend, uintptr_t stream) {
        std::vector<BlockCopy> copies = ToCopies(pairs);
        absl::Status st;
        {
          py::gil_scoped_release release;
          st = CopyBlocks(reinterpret_cast<void*>(pool), bytes_per_block, num_blocks, copies,
                          MakeOpOptions(backend, stream));
        }
        ThrowIfError(st);
      },
      py::arg("pool"), py::arg("bytes_per_block"), py::arg("num_blocks"), py::arg("pairs"),
      py::kw_only(), py::arg("backend") = Backend::kAuto, py::arg("stream") = 0,
      "CopyBlocks; pairs is a host [n, 2] array (e.g. GroupCacheOps.copies).");
  raw.def(
      "swap_blocks",
      [](uintptr_t src_pool, int32_t src_num_blocks, uintptr_t dst_pool, int32_t dst_num_blocks,
         uint64_t bytes_per_block, const py::object& pairs, Backend backend, uintptr_t stream) {
        std::vector<BlockCopy> copies = ToCopies(pairs);
        absl::Status st;
        {
          py::gil_scoped_release release;
          st = SwapBlocks(Ptr(src_pool), src_num_blocks, reinterpret_cast<void*>(dst_pool),
                          dst_num_blocks, bytes_per_block, copies, MakeOpOptions(backend, stream));
        }
        ThrowIfError(st);
      },
      py::arg("src_pool"), py::arg("src_num_blocks"), py::arg("dst_pool"),
      py::arg("dst_num_blocks"), py::arg("bytes_per_block"), py::arg("pairs"), py::kw_only(),
      py::arg("backend") = Backend::kAuto, py::arg("stream") = 0,
      "SwapBlocks between two pools (GPU <-> pinned host); pairs is a host [n, 2] array.");
}

}  // namespace pagedkv::python
