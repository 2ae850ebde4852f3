// Bindings of block_manager/: the BlockManager class (its value types, statistics, block tables
// and per-step outputs CacheOps and BatchLayout are in block_manager_values_bindings.cc).
//
// Array lifetimes (also in docs/python.md):
//   - take_cache_ops() and build_batch() return a NEW Python object that owns its buffers; its
//     arrays are zero-copy views with that object as base, so they stay valid as long as any of
//     them is referenced, whatever the manager does next. (The manager's own reused BatchLayout is
//     not exposed: the next build_batch would reallocate under live views.)
//   - kv_cache() is a zero-copy view of the pool memory with the manager as base (the pool lives
//     as long as the manager).
//   - block_table() copies the table (the C++ table is valid only until the next mutation).
#include <pybind11/operators.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "array_util.h"
#include "common.h"
#include "pagedkv/allocator/block_allocator.h"
#include "pagedkv/allocator/memory_pool.h"
#include "pagedkv/block_manager/batch_layout.h"
#include "pagedkv/block_manager/block_manager.h"
#include "pagedkv/block_manager/block_manager_stats.h"
#include "pagedkv/block_manager/block_table.h"
#include "pagedkv/block_manager/cache_ops.h"

namespace pagedkv::python {
namespace {

SequenceOptions MakeSeqOptions(uint64_t extra_key, EvictionPriority priority,
                               std::optional<uint64_t> encoder_key) {
  SequenceOptions o;
  o.extra_key = extra_key;
  o.priority = priority;
  o.encoder_key = encoder_key;
  return o;
}

// The pool of (group, tier); raises for a missing host tier or a group out of range.
MemoryPool& PoolOf(const BlockManager& bm, int32_t group, Tier tier) {
  if (group < 0 || group >= bm.num_groups()) {
    throw py::value_error("group " + std::to_string(group) + " out of range [0, " +
                          std::to_string(bm.num_groups()) + ")");
  }
  if (tier == Tier::kHost) {
    MemoryPool* p = bm.host_pool(group);
    if (p == nullptr) {
      throw std::runtime_error("the manager has no host tier; set CacheConfig.host_num_blocks");
    }
    return *p;
  }
  return bm.gpu_pool(group);
}

py::dtype NumpyDType(DType d) {
  switch (d) {
    case DType::kFp32:
      return py::dtype("float32");
    case DType::kFp16:
      return py::dtype("float16");
    case DType::kBf16:
      return py::dtype("uint16");  // raw bf16 bits: NumPy has no bfloat16
    case DType::kFp8E4m3:
      return py::dtype("uint8");  // raw fp8 bits
    case DType::kInt8:
      return py::dtype("int8");
  }
  return py::dtype("uint8");
}

// Batch entries from array-likes (checked by arg_checks.h: integers only, no duplicate ids, counts
// >= 0), into a buffer reused across calls (the GIL serializes them).
absl::Span<const BatchEntry> MakeEntries(const py::object& seq_ids,
                                         const py::object& num_new_tokens,
                                         const py::object& num_context_tokens) {
  static auto* entries = new std::vector<BatchEntry>();
  static auto* args = new BatchEntryArgs();
  const py::array ids = AsArray(seq_ids, "seq_ids");
  const py::array news = AsArray(num_new_tokens, "num_new_tokens");
  py::array context;
  ArrayDesc context_desc;
  if (!num_context_tokens.is_none()) {
    context = AsArray(num_context_tokens, "num_context_tokens");
    context_desc = Describe(context);
  }
  ThrowIfArgError(ReadBatchEntries(Describe(ids), Describe(news),
                                   num_context_tokens.is_none() ? nullptr : &context_desc, args));
  const size_t n = args->seq_ids.size();
  entries->resize(n);
  for (size_t i = 0; i < n; ++i) {
    BatchEntry& e = (*entries)[i];
    e.seq_id = args->seq_ids[i];
    e.num_new_tokens = args->num_new_tokens[i];
    e.num_context_tokens = args->num_context_tokens[i];
  }
  return absl::MakeConstSpan(*entries);
}

// Integer arguments of the manager's calls (arg_checks.h): token ids are int32, sequence ids
// uint64, computed-token counts int64; anything else is refused, never cast.
IntSpec Tokens(std::string_view name, Rank rank = Rank::kVector) { return {name, rank}; }
IntSpec SeqIds(std::string_view name, Rank rank = Rank::kVector) { return {name, rank}; }

// Each build_batch returns a new BatchLayout (its arrays may outlive the call), so its vectors
// start empty; growing them by doubling cost several reallocations and copies per call. The
// sizes of the previous call (steps of one engine are alike) size them once instead.
struct LayoutSizeHint {
  size_t pages = 0;
  size_t slots = 0;
};
LayoutSizeHint g_layout_hint;  // guarded by the GIL

void ReserveLikeLast(size_t batch_size, BatchLayout* layout) {
  layout->page_indptr.reserve(batch_size + 1);
  layout->last_page_len.reserve(batch_size);
  layout->first_page_token.reserve(batch_size);
  layout->query_indptr.reserve(batch_size + 1);
  layout->page_indices.reserve(g_layout_hint.pages + g_layout_hint.pages / 8 + batch_size);
  layout->slot_mapping.reserve(std::max(g_layout_hint.slots, batch_size));
}

void RememberSizes(const BatchLayout& layout) {
  g_layout_hint.pages = layout.page_indices.size();
  g_layout_hint.slots = layout.slot_mapping.size();
}

constexpr const char* kBlockManagerDoc =
    R"doc(Maps sequences to KV pages (the C++ pagedkv::BlockManager).

One block table per (sequence, KV group); copy-on-write forks, beam reorder, prefix caching,
swap to a host tier, rewind, sliding windows and cross-attention. Every mutation is all or
nothing: a failed call raises and leaves the manager unchanged.

    spec = pagedkv.ModelSpec.preset("llama-3-8b")
    bm = pagedkv.BlockManager(spec, pagedkv.CacheConfig(gpu_num_blocks=4096))
    bm.add_sequence(1, prompt)                     # prompt: list or int32 array of token ids
    bm.append_token_batch(seq_ids, next_tokens)    # one decode step for many sequences
    ops = bm.take_cache_ops()                      # swaps and copies to run before the model
    layout = bm.build_batch(seq_ids)               # CSR page table + slot_mapping (NumPy)

Errors: ValueError (invalid argument), KeyError (unknown sequence), pagedkv.OutOfBlocks (a
MemoryError: not enough blocks), RuntimeError (wrong state, e.g. swapped out; duplicate id).
Not thread-safe: one owner serializes calls.)doc";

}  // namespace

void BindBlockManager(py::module_& m) {
  BindBlockManagerValues(m);

  // ---- BlockManager -----------------------------------------------------------------------------
  py::class_<BlockManager, std::unique_ptr<BlockManager>>(m, "BlockManager", kBlockManagerDoc)
      .def(py::init([](const ModelSpec& spec, const CacheConfig& config) {
             return ValueOrThrow(BlockManager::Create(spec, config));
           }),
           py::arg("spec"), py::arg("config"),
           "Builds one pool per KV group and tier. ValueError for an invalid spec or config, "
           "OutOfBlocks when pool memory cannot be allocated.")
      // Shape
      .def_property_readonly("block_size", &BlockManager::block_size, "tokens per page")
      .def_property_readonly("num_groups", &BlockManager::num_groups)
      .def(
          "group_info",
          [](const BlockManager& bm, int32_t group) {
            // The C++ accessor only DCHECKs the range: check it here.
            PoolOf(bm, group, Tier::kGpu);
            return bm.group_info(group);
          },
          py::arg("group") = 0,
          "A copy of the group's kind, layers, bytes per block and block counts; ValueError for "
          "a group out of range.")
      .def(
          "locate_layer",
          [](const BlockManager& bm, int32_t layer) { return ValueOrThrow(bm.LocateLayer(layer)); },
          py::arg("layer"), "(group, layer_in_group) holding a model layer's K/V.")
      .def_property_readonly("prefix_caching_enabled", &BlockManager::prefix_caching_enabled)
      .def_property_readonly("has_host_tier", &BlockManager::has_host_tier)
      .def(
          "_pool_array",
          [](py::object self, int32_t group, Tier tier, int32_t num_kv_heads, int32_t head_dim,
             DType dtype) {
            const BlockManager& bm = self.cast<const BlockManager&>();
            MemoryPool& pool = PoolOf(bm, group, tier);
            if (!pool.has_memory()) {
              throw std::runtime_error("the pool is virtual (metadata only): no memory to view");
            }
            if (pool.is_device_memory()) {
              throw std::runtime_error(
                  "the pool is CUDA device memory; use pool_ptr() and the pagedkv.raw functions");
            }
            const py::ssize_t layers =
                static_cast<py::ssize_t>(bm.group_info(group).group.layers.size());
            const py::ssize_t bs = bm.block_size();
            const py::ssize_t item = static_cast<py::ssize_t>(DTypeSize(dtype));
            const py::ssize_t d = head_dim;
            const py::ssize_t h = num_kv_heads;
            if (static_cast<uint64_t>(layers * 2 * h * bs * d * item) != pool.bytes_per_block()) {
              throw py::value_error("num_kv_heads/head_dim/dtype do not match the pool's " +
                                    std::to_string(pool.bytes_per_block()) + " bytes per block");
            }
            std::vector<py::ssize_t> shape = {
                static_cast<py::ssize_t>(pool.num_blocks()), layers, 2, h, bs, d};
            std::vector<py::ssize_t> strides(6);
            py::ssize_t stride = item;
            for (int i = 5; i >= 0; --i) {
              strides[i] = stride;
              stride *= shape[i];
            }
            return py::array(NumpyDType(dtype), shape, strides, pool.base(), self);
          },
          py::arg("group"), py::arg("tier"), py::arg("num_kv_heads"), py::arg("head_dim"),
          py::arg("dtype"),
          "Zero-copy view of a host-memory pool; use kv_cache(), which fills in the shape.")
      .def(
          "pool_ptr",
          [](const BlockManager& bm, int32_t group, Tier tier) {
            return reinterpret_cast<uintptr_t>(PoolOf(bm, group, tier).base());
          },
          py::arg("group") = 0, py::arg("tier") = Tier::kGpu,
          "Address of the pool's block 0 (0 for a virtual pool): for the pagedkv.raw functions "
          "and for wrapping device memory in a tensor.")
      .def(
          "pool_is_device_memory",
          [](const BlockManager& bm, int32_t group, Tier tier) {
            return PoolOf(bm, group, tier).is_device_memory();
          },
          py::arg("group") = 0, py::arg("tier") = Tier::kGpu)
      // Admission
      .def(
          "can_admit",
          [](const BlockManager& bm, const py::object& prompt, uint64_t extra_key,
             EvictionPriority priority, std::optional<uint64_t> encoder_key) {
            const IntArg<int32_t> ids(prompt, Tokens("prompt"));
            return bm.CanAdmit(ids.span(), MakeSeqOptions(extra_key, priority, encoder_key));
          },
          py::arg("prompt"), py::arg("extra_key") = 0,
          py::arg("priority") = EvictionPriority::kNormal, py::arg("encoder_key") = py::none(),
          "Would add_sequence(prompt) fit above the watermark? Counts prefix hits (published "
          "pages only) without taking them.")
      .def(
          "add_sequence",
          [](BlockManager& bm, SeqId seq, const py::object& prompt, uint64_t extra_key,
             EvictionPriority priority, std::optional<uint64_t> encoder_key) {
            const IntArg<int32_t> ids(prompt, Tokens("prompt"));
            return ValueOrThrow(
                bm.AddSequence(seq, ids.span(), MakeSeqOptions(extra_key, priority, encoder_key)));
          },
          py::arg("seq_id"), py::arg("prompt"), py::arg("extra_key") = 0,
          py::arg("priority") = EvictionPriority::kNormal, py::arg("encoder_key") = py::none(),
          "Admits a sequence with its prompt (token ids), taking prefix-cache hits (the sequence "
          "starts with that many computed tokens). encoder_key (int): identity of the encoder "
          "input, required on a cross-attention model with prefix caching. RuntimeError for a "
          "known id, OutOfBlocks when it does not fit, ValueError for a missing encoder_key. "
          "Returns an AdmitInfo.")
      // Compute progress
      .def(
          "mark_computed",
          [](BlockManager& bm, SeqId seq, int64_t n) { ThrowIfError(bm.MarkComputed(seq, n)); },
          py::arg("seq_id"), py::arg("num_computed_tokens"),
          "After a forward pass: the K/V of the first num_computed_tokens tokens is written. Full "
          "computed pages are published to the prefix cache. Monotone (ValueError below the "
          "current count or above the length); KeyError for an unknown id.")
      .def(
          "mark_computed_batch",
          [](BlockManager& bm, const py::object& seqs, const py::object& counts) {
            const IntArg<uint64_t> ids(seqs, SeqIds("seq_ids"));
            const IntArg<int64_t> n(counts, {"num_computed_tokens", Rank::kVector});
            ThrowIfError(bm.MarkComputedBatch(ids.span(), n.span()));
          },
          py::arg("seq_ids"), py::arg("num_computed_tokens"),
          "mark_computed for one step's sequences, all or nothing.")
      .def(
          "num_computed_tokens",
          [](const BlockManager& bm, SeqId seq) { return ValueOrThrow(bm.NumComputedTokens(seq)); },
          py::arg("seq_id"), "Tokens of the sequence whose K/V is computed (prefix hits included).")
      // Growth
      .def(
          "append_tokens",
          [](BlockManager& bm, SeqId seq, const py::object& tokens) {
            const IntArg<int32_t> ids(tokens, Tokens("tokens", Rank::kScalarOrVector));
            ThrowIfError(bm.AppendTokens(seq, ids.span()));
          },
          py::arg("seq_id"), py::arg("tokens"),
          "Appends token ids (an int or an array-like) to one sequence; copy-on-write of a "
          "shared last page is recorded in the next CacheOps.")
      .def(
          "append_token_batch",
          [](BlockManager& bm, const py::object& seqs, const py::object& tokens) {
            const IntArg<uint64_t> ids(seqs, SeqIds("seq_ids", Rank::kScalarOrVector));
            const IntArg<int32_t> toks(tokens, Tokens("tokens", Rank::kScalarOrVector));
            ThrowIfError(bm.AppendTokenBatch(ids.span(), toks.span()));
          },
          py::arg("seq_ids"), py::arg("tokens"),
          "One decode step: appends tokens[i] to seq_ids[i] for every i, all or nothing. The "
          "fast path for many sequences (pass uint64 / int32 NumPy arrays to avoid conversion).")
      .def("can_append", &BlockManager::CanAppend, py::arg("seq_id"), py::arg("num_tokens") = 1,
           "True when append_tokens(seq_id, num_tokens tokens) would succeed now (False for "
           "unknown or swapped-out sequences).")
      .def(
          "blocks_to_append",
          [](const BlockManager& bm, SeqId seq, int32_t n) {
            return ValueOrThrow(bm.BlocksToAppend(seq, n));
          },
          py::arg("seq_id"), py::arg("num_tokens") = 1,
          "GPU blocks (all groups, copy-on-write included) append_tokens would allocate.")
      // Sharing
      .def(
          "fork",
          [](BlockManager& bm, SeqId parent, SeqId child) { ThrowIfError(bm.Fork(parent, child)); },
          py::arg("parent"), py::arg("child"),
          "The child shares every page of the parent (no data moves until a write).")
      .def(
          "reorder_beams",
          [](BlockManager& bm, const py::object& beams, const py::object& parents) {
            const IntArg<uint64_t> ids(beams, SeqIds("beams"));
            const IntArg<int32_t> index(parents, {"parent_indices", Rank::kVector});
            ThrowIfError(bm.ReorderBeams(ids.span(), index.span()));
          },
          py::arg("beams"), py::arg("parent_indices"),
          "Beam step: beam i continues old beam parent_indices[i] (an index into `beams`).")
      // Shrinking
      .def(
          "rewind", [](BlockManager& bm, SeqId seq, int32_t n) { ThrowIfError(bm.Rewind(seq, n)); },
          py::arg("seq_id"), py::arg("num_tokens"),
          "Truncates the sequence to num_tokens tokens, releasing pages past the end.")
      .def(
          "free", [](BlockManager& bm, SeqId seq) { ThrowIfError(bm.Free(seq)); },
          py::arg("seq_id"), "Releases every page; published pages join the prefix cache.")
      // Swap
      .def(
          "swap_out",
          [](BlockManager& bm, const py::object& seqs) {
            const IntArg<uint64_t> ids(seqs, SeqIds("seq_ids", Rank::kScalarOrVector));
            ThrowIfError(bm.SwapOut(ids.span()));
          },
          py::arg("seq_ids"), "Moves the sequences' pages to the host tier (an id or a list).")
      .def(
          "swap_in",
          [](BlockManager& bm, const py::object& seqs) {
            const IntArg<uint64_t> ids(seqs, SeqIds("seq_ids", Rank::kScalarOrVector));
            ThrowIfError(bm.SwapIn(ids.span()));
          },
          py::arg("seq_ids"), "Brings swapped-out sequences back to GPU pages.")
      .def(
          "can_swap_in",
          [](const BlockManager& bm, const py::object& seqs) {
            const IntArg<uint64_t> ids(seqs, SeqIds("seq_ids", Rank::kScalarOrVector));
            return bm.CanSwapIn(ids.span());
          },
          py::arg("seq_ids"), "True when swap_in(seq_ids) would succeed now.")
      // Encoder-decoder
      .def(
          "set_cross_attention",
          [](BlockManager& bm, SeqId seq, int32_t n) {
            ThrowIfError(bm.SetCrossAttention(seq, n));
          },
          py::arg("seq_id"), py::arg("encoder_tokens"),
          "Allocates the cross-attention pages for the encoder output.")
      // Eviction hooks
      .def(
          "set_eviction_priority",
          [](BlockManager& bm, SeqId seq, EvictionPriority p) {
            ThrowIfError(bm.SetEvictionPriority(seq, p));
          },
          py::arg("seq_id"), py::arg("priority"))
      .def(
          "touch_prefix",
          [](BlockManager& bm, const py::object& prompt, uint64_t extra_key,
             std::optional<uint64_t> encoder_key) {
            const IntArg<int32_t> ids(prompt, Tokens("prompt"));
            return bm.TouchPrefix(
                ids.span(), MakeSeqOptions(extra_key, EvictionPriority::kNormal, encoder_key));
          },
          py::arg("prompt"), py::arg("extra_key") = 0, py::arg("encoder_key") = py::none(),
          "Marks the cached pages of this prompt's prefix most recently used; returns how many "
          "leading pages were found.")
      // Per-step outputs
      .def(
          "take_cache_ops",
          [](BlockManager& bm) {
            auto ops = std::make_unique<CacheOps>();
            bm.TakeCacheOps(ops.get());
            return ops;
          },
          "Moves the pending CacheOps out (a new object each call; its arrays stay valid). Call "
          "once per step, before executing the ops and running the model.")
      .def(
          "build_batch",
          [](const BlockManager& bm, const py::object& seq_ids, const py::object& num_new_tokens,
             const py::object& num_context_tokens, int32_t group) {
            absl::Span<const BatchEntry> entries =
                MakeEntries(seq_ids, num_new_tokens, num_context_tokens);
            auto layout = std::make_unique<BatchLayout>();
            ReserveLikeLast(entries.size(), layout.get());
            ThrowIfError(bm.BuildBatch(entries, group, layout.get()));
            RememberSizes(*layout);
            return layout;
          },
          py::arg("seq_ids"), py::arg("num_new_tokens") = 1,
          py::arg("num_context_tokens") = py::none(), py::arg("group") = 0,
          "The batch's page table for one KV group, as a new BatchLayout (NumPy arrays, "
          "zero-copy views of buffers the layout owns). num_new_tokens: an int or one per "
          "sequence (1 = decode, the chunk length for prefill); num_context_tokens: None (all "
          "tokens), an int or one per sequence (chunked prefill), each >= 0. ValueError for a "
          "sequence listed twice.")
      // Queries
      .def("contains", &BlockManager::Contains, py::arg("seq_id"), "Is the sequence known?")
      .def("__contains__", &BlockManager::Contains, py::arg("seq_id"))
      .def_property_readonly("num_sequences", &BlockManager::num_sequences)
      .def("__len__", &BlockManager::num_sequences, "Number of known sequences.")
      .def(
          "num_tokens",
          [](const BlockManager& bm, SeqId seq) { return ValueOrThrow(bm.NumTokens(seq)); },
          py::arg("seq_id"), "Tokens of a sequence; KeyError for an unknown one.")
      .def(
          "sequence_stats",
          [](const BlockManager& bm, SeqId seq) { return ValueOrThrow(bm.GetSequenceStats(seq)); },
          py::arg("seq_id"), "Per-sequence statistics; KeyError for an unknown one.")
      .def(
          "block_table",
          [](const BlockManager& bm, SeqId seq, int32_t group) {
            return BlockTable(*ValueOrThrow(bm.GetBlockTable(seq, group)));
          },
          py::arg("seq_id"), py::arg("group") = 0, "A copy of the (sequence, group) table.")
      .def("sequence_ids", &BlockManager::SequenceIds, "Ids of all known sequences (unordered).")
      .def("stats", &BlockManager::stats,
           "Global statistics (O(sequences + groups)): call per step or less.")
      .def_property_readonly("has_remote_tier", &BlockManager::has_remote_tier)
      .def("remote_stats", &BlockManager::remote_stats,
           "Counters of the remote tier (zeros without one).")
      .def(
          "flush_remote_writes",
          [](BlockManager& bm, double timeout_s) {
            py::gil_scoped_release release;
            return bm.FlushRemoteWrites(absl::Seconds(timeout_s));
          },
          py::arg("timeout_s") = 10.0,
          "Waits until the queued remote writes are done (True) or timeout_s passed (False).")
      .def(
          "check_invariants", [](const BlockManager& bm) { ThrowIfError(bm.CheckInvariants()); },
          "Raises RuntimeError describing the first broken invariant (O(blocks)).");
}

}  // namespace pagedkv::python
