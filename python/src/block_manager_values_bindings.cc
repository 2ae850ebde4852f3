// Bindings of the block manager's value types: EvictionPriority, AdmitInfo, GroupInfo,
// LayerLocation, the statistics, BlockTable (a copy), and the per-step outputs CacheOps and
// BatchLayout with their zero-copy NumPy views (lifetimes in block_manager_bindings.cc and
// docs/python.md). Called by BindBlockManager before the BlockManager class is bound.
#include <pybind11/operators.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <vector>

#include "array_util.h"
#include "common.h"
#include "pagedkv/block_manager/batch_layout.h"
#include "pagedkv/block_manager/block_manager.h"
#include "pagedkv/block_manager/block_manager_stats.h"
#include "pagedkv/block_manager/block_table.h"
#include "pagedkv/block_manager/cache_ops.h"

namespace pagedkv::python {

void BindBlockManagerValues(py::module_& m) {
  py::enum_<EvictionPriority>(m, "EvictionPriority",
                              "How released prefix-cache pages join the LRU: LOW is evicted "
                              "first.")
      .value("NORMAL", EvictionPriority::kNormal)
      .value("LOW", EvictionPriority::kLow);

  py::class_<AdmitInfo>(m, "AdmitInfo", "What admitting a prompt would take or took.")
      .def_readonly("can_admit", &AdmitInfo::can_admit)
      .def_readonly("num_cached_tokens", &AdmitInfo::num_cached_tokens,
                    "prompt tokens served by prefix-cache pages")
      .def_readonly("num_new_blocks", &AdmitInfo::num_new_blocks)
      .def_readonly("num_host_hit_pages", &AdmitInfo::num_host_hit_pages)
      .def_readonly("num_remote_hit_pages", &AdmitInfo::num_remote_hit_pages)
      .def("__repr__", [](const AdmitInfo& a) {
        return "AdmitInfo(can_admit=" + std::string(a.can_admit ? "True" : "False") +
               ", num_cached_tokens=" + std::to_string(a.num_cached_tokens) +
               ", num_new_blocks=" + std::to_string(a.num_new_blocks) +
               ", num_host_hit_pages=" + std::to_string(a.num_host_hit_pages) + ")";
      });

  py::class_<GroupInfo>(m, "GroupInfo", "One KV group as the manager built it.")
      .def_readonly("group", &GroupInfo::group)
      .def_readonly("bytes_per_block", &GroupInfo::bytes_per_block)
      .def_readonly("gpu_num_blocks", &GroupInfo::gpu_num_blocks)
      .def_readonly("host_num_blocks", &GroupInfo::host_num_blocks);

  py::class_<LayerLocation>(m, "LayerLocation", "Where a model layer's K/V lives.")
      .def_readonly("group", &LayerLocation::group)
      .def_readonly("layer_in_group", &LayerLocation::layer_in_group)
      .def("__repr__", [](const LayerLocation& l) {
        return "LayerLocation(group=" + std::to_string(l.group) +
               ", layer_in_group=" + std::to_string(l.layer_in_group) + ")";
      });

  py::class_<RemoteTierStats>(m, "RemoteTierStats",
                              "Counters of the remote tier (see remote_tier.h for each field).")
      .def_readonly("lookups", &RemoteTierStats::lookups)
      .def_readonly("lookups_skipped", &RemoteTierStats::lookups_skipped)
      .def_readonly("lookup_pages", &RemoteTierStats::lookup_pages)
      .def_readonly("hit_pages", &RemoteTierStats::hit_pages)
      .def_readonly("miss_missing", &RemoteTierStats::miss_missing)
      .def_readonly("miss_timeout", &RemoteTierStats::miss_timeout)
      .def_readonly("miss_error", &RemoteTierStats::miss_error)
      .def_readonly("miss_corrupt", &RemoteTierStats::miss_corrupt)
      .def_readonly("miss_foreign", &RemoteTierStats::miss_foreign)
      .def_readonly("bytes_read", &RemoteTierStats::bytes_read)
      .def_readonly("writes_queued", &RemoteTierStats::writes_queued)
      .def_readonly("writes_done", &RemoteTierStats::writes_done)
      .def_readonly("writes_dropped", &RemoteTierStats::writes_dropped)
      .def_readonly("write_errors", &RemoteTierStats::write_errors)
      .def_readonly("bytes_written", &RemoteTierStats::bytes_written)
      .def_readonly("queue_bytes", &RemoteTierStats::queue_bytes);

  py::class_<SequenceStats>(m, "SequenceStats")
      .def_readonly("seq_id", &SequenceStats::seq_id)
      .def_readonly("num_tokens", &SequenceStats::num_tokens)
      .def_readonly("num_computed_tokens", &SequenceStats::num_computed_tokens)
      .def_readonly("num_encoder_tokens", &SequenceStats::num_encoder_tokens)
      .def_readonly("num_pages", &SequenceStats::num_pages)
      .def_readonly("num_shared_pages", &SequenceStats::num_shared_pages)
      .def_readonly("swapped_out", &SequenceStats::swapped_out)
      .def(py::self == py::self);

  py::class_<GroupPoolStats>(m, "GroupPoolStats", "Block counts of one group's pools.")
      .def_readonly("group", &GroupPoolStats::group)
      .def_readonly("gpu_num_blocks", &GroupPoolStats::gpu_num_blocks)
      .def_readonly("gpu_free_blocks", &GroupPoolStats::gpu_free_blocks)
      .def_readonly("gpu_cached_blocks", &GroupPoolStats::gpu_cached_blocks)
      .def_readonly("gpu_in_use_blocks", &GroupPoolStats::gpu_in_use_blocks)
      .def_readonly("host_num_blocks", &GroupPoolStats::host_num_blocks)
      .def_readonly("host_free_blocks", &GroupPoolStats::host_free_blocks)
      .def_readonly("host_cached_blocks", &GroupPoolStats::host_cached_blocks)
      .def_readonly("host_in_use_blocks", &GroupPoolStats::host_in_use_blocks)
      .def(py::self == py::self);

  py::class_<BlockManagerStats>(m, "BlockManagerStats",
                                "Global statistics (see block_manager_stats.h for each field).")
      .def_readonly("num_sequences", &BlockManagerStats::num_sequences)
      .def_readonly("num_swapped_sequences", &BlockManagerStats::num_swapped_sequences)
      .def_readonly("tokens_stored", &BlockManagerStats::tokens_stored)
      .def_readonly("slots_allocated", &BlockManagerStats::slots_allocated)
      .def_readonly("internal_fragmentation_slots",
                    &BlockManagerStats::internal_fragmentation_slots)
      .def_readonly("pages_saved_by_sharing", &BlockManagerStats::pages_saved_by_sharing)
      .def_readonly("prefix_query_pages", &BlockManagerStats::prefix_query_pages)
      .def_readonly("prefix_hit_pages", &BlockManagerStats::prefix_hit_pages)
      .def_readonly("prefix_host_hit_pages", &BlockManagerStats::prefix_host_hit_pages)
      .def_readonly("prefix_remote_hit_pages", &BlockManagerStats::prefix_remote_hit_pages)
      .def_readonly("prefix_hit_rate", &BlockManagerStats::prefix_hit_rate)
      .def_readonly("swap_out_bytes", &BlockManagerStats::swap_out_bytes)
      .def_readonly("swap_in_bytes", &BlockManagerStats::swap_in_bytes)
      .def_readonly("copy_bytes", &BlockManagerStats::copy_bytes)
      .def_readonly("cow_copies", &BlockManagerStats::cow_copies)
      .def_readonly("host_offloads", &BlockManagerStats::host_offloads)
      .def_readonly("groups", &BlockManagerStats::groups)
      .def(py::self == py::self);

  py::class_<BlockTable>(m, "BlockTable",
                         "A copy of one sequence's block table in one group (taken by "
                         "BlockManager.block_table; later mutations do not change it).")
      .def_property_readonly(
          "blocks",
          [](py::object self) {
            const BlockTable& t = self.cast<const BlockTable&>();
            return py::array_t<uint32_t>({static_cast<py::ssize_t>(t.blocks().size())},
                                         {static_cast<py::ssize_t>(sizeof(BlockId))},
                                         t.blocks().data(), self);
          },
          "uint32 block id per page, in token order; 0xFFFFFFFF for pages a sliding window "
          "released.")
      .def_property_readonly("num_tokens", &BlockTable::num_tokens)
      .def_property_readonly("num_pages", &BlockTable::num_pages)
      .def_property_readonly("first_live_page", &BlockTable::first_live_page)
      .def_property_readonly("num_live_pages", &BlockTable::num_live_pages)
      .def_property_readonly("tier", &BlockTable::tier)
      .def("slot", &BlockTable::Slot, py::arg("token_index"), py::arg("block_size"),
           "block_id * block_size + offset of a token.")
      .def("__len__", &BlockTable::num_pages);

  // ---- CacheOps --------------------------------------------------------------------------------
  py::class_<GroupCacheOps>(m, "GroupCacheOps",
                            "The movements of one KV group. swap_out / swap_in / copies are "
                            "[n, 2] uint32 arrays of (src, dst) block ids, zero-copy views that "
                            "keep their CacheOps alive.")
      .def_readonly("group", &GroupCacheOps::group)
      .def_readonly("bytes_per_block", &GroupCacheOps::bytes_per_block)
      .def_property_readonly(
          "swap_out",
          [](py::object self) {
            return PairView(self.cast<const GroupCacheOps&>().swap_out, self);
          },
          "GPU block -> host block")
      .def_property_readonly(
          "swap_in",
          [](py::object self) { return PairView(self.cast<const GroupCacheOps&>().swap_in, self); },
          "host block -> GPU block")
      .def_property_readonly(
          "copies",
          [](py::object self) { return PairView(self.cast<const GroupCacheOps&>().copies, self); },
          "GPU block -> GPU block (copy-on-write)")
      .def("empty", &GroupCacheOps::empty)
      .def("swap_out_bytes", &GroupCacheOps::swap_out_bytes)
      .def("swap_in_bytes", &GroupCacheOps::swap_in_bytes)
      .def("copy_bytes", &GroupCacheOps::copy_bytes);

  py::class_<CacheOps>(m, "CacheOps",
                       "Every memory movement the next step must execute before the model runs, "
                       "one GroupCacheOps per KV group. Order: all swap_out, then swap_in, then "
                       "copies.")
      .def(py::init<>())
      .def_property_readonly(
          "groups",
          [](py::object self) {
            CacheOps& ops = self.cast<CacheOps&>();
            py::list groups;
            for (GroupCacheOps& g : ops.groups) {
              groups.append(py::cast(&g, py::return_value_policy::reference_internal, self));
            }
            return groups;
          },
          "One GroupCacheOps per group (index = group id).")
      .def("empty", &CacheOps::empty)
      .def("swap_out_bytes", &CacheOps::swap_out_bytes)
      .def("swap_in_bytes", &CacheOps::swap_in_bytes)
      .def("copy_bytes", &CacheOps::copy_bytes)
      .def("total_bytes", &CacheOps::total_bytes)
      .def("__bool__", [](const CacheOps& ops) { return !ops.empty(); })
      .def("__repr__", [](const CacheOps& ops) {
        size_t out = 0, in = 0, copies = 0;
        for (const GroupCacheOps& g : ops.groups) {
          out += g.swap_out.size();
          in += g.swap_in.size();
          copies += g.copies.size();
        }
        return "CacheOps(groups=" + std::to_string(ops.groups.size()) +
               ", swap_out=" + std::to_string(out) + ", swap_in=" + std::to_string(in) +
               ", copies=" + std::to_string(copies) + ")";
      });

  // ---- BatchLayout ------------------------------------------------------------------------------
  py::class_<BatchLayout>(m, "BatchLayout",
                          "CSR page table of one batch for one KV group plus the slots of the "
                          "step's new tokens (built by BlockManager.build_batch). Arrays are "
                          "zero-copy views that keep this object alive; int32 except "
                          "slot_mapping (int64).")
      .def_readonly("group", &BatchLayout::group)
      .def_readonly("block_size", &BatchLayout::block_size)
      .def_property_readonly("batch_size", &BatchLayout::batch_size)
      .def_property_readonly("num_pages", &BatchLayout::num_pages)
      .def_property_readonly("num_new_tokens", &BatchLayout::num_new_tokens)
      .def("__repr__",
           [](const BatchLayout& l) {
             return "BatchLayout(group=" + std::to_string(l.group) +
                    ", block_size=" + std::to_string(l.block_size) +
                    ", batch_size=" + std::to_string(l.batch_size()) +
                    ", num_pages=" + std::to_string(l.num_pages()) +
                    ", num_new_tokens=" + std::to_string(l.num_new_tokens()) + ")";
           })
      .def_property_readonly(
          "page_indptr",
          [](py::object self) {
            return VectorView(self.cast<const BatchLayout&>().page_indptr, self);
          },
          "[B + 1] pages of entry b are page_indices[page_indptr[b]:page_indptr[b + 1]]")
      .def_property_readonly(
          "page_indices",
          [](py::object self) {
            return VectorView(self.cast<const BatchLayout&>().page_indices, self);
          },
          "[nnz] block ids in token order")
      .def_property_readonly(
          "last_page_len",
          [](py::object self) {
            return VectorView(self.cast<const BatchLayout&>().last_page_len, self);
          },
          "[B] tokens in each entry's last page (0 for an entry with no pages)")
      .def_property_readonly(
          "first_page_token",
          [](py::object self) {
            return VectorView(self.cast<const BatchLayout&>().first_page_token, self);
          },
          "[B] token index at which the first listed page starts (sliding windows)")
      .def_property_readonly(
          "query_indptr",
          [](py::object self) {
            return VectorView(self.cast<const BatchLayout&>().query_indptr, self);
          },
          "[B + 1] new tokens of entry b are slot_mapping[query_indptr[b]:query_indptr[b + 1]]")
      .def_property_readonly(
          "slot_mapping",
          [](py::object self) {
            return VectorView(self.cast<const BatchLayout&>().slot_mapping, self);
          },
          "[T] int64 slot of each new token (block_id * block_size + offset; < 0 = skip)");
}

}  // namespace pagedkv::python
