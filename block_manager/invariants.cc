// BlockManager::CheckInvariants: the reference accounting of every pool (allocator ref == table
// entries + pins), the hash chain of hashed pages, table shapes and the sequence records.
#include <numeric>
#include <vector>

#include "block_manager/internal/block_hasher.h"
#include "block_manager/internal/manager_state.h"
#include "pagedkv/core/status.h"

namespace pagedkv {

using internal::HashPage;
using internal::kRootHash;
using internal::PoolState;

absl::Status BlockManager::CheckInvariants() const {
  const Impl& s = *impl_;
  int64_t swapped = 0;
  for (int32_t g = 0; g < s.num_groups(); ++g) {
    const Impl::GroupState& G = s.groups[g];
    for (const PoolState* pool : {&G.gpu, &G.host}) {
      if (!pool->valid()) continue;
      const bool is_gpu = pool == &G.gpu;
      const char* tier = is_gpu ? "GPU" : "host";
      PAGEDKV_RETURN_IF_ERROR(pool->alloc->CheckInvariants());
      const uint32_t n = pool->alloc->num_blocks();
      std::vector<uint32_t> expected(pool->pins.begin(), pool->pins.end());
      std::vector<uint8_t> computed_by_a_table(G.hashed ? n : 0, 0);
      std::vector<uint8_t> publisher_names(G.hashed ? n : 0, 0);
      if (pool->pinned.size() !=
          static_cast<size_t>(std::accumulate(pool->pins.begin(), pool->pins.end(), uint64_t{0}))) {
        return absl::InternalError(absl::StrCat("group ", g, " ", tier, ": pin list has ",
                                                pool->pinned.size(),
                                                " entries, pin counts differ"));
      }
      for (const auto& [id, rec] : s.seqs) {
        if (rec->swapped == is_gpu) continue;
        const BlockTable& t = rec->tables[g];
        PAGEDKV_RETURN_IF_ERROR(t.CheckInvariants(s.bs, n));
        if (t.tier_ != (is_gpu ? Tier::kGpu : Tier::kHost)) {
          return absl::InternalError(absl::StrCat("sequence ", id, " group ", g,
                                                  ": table tier does not match its residency"));
        }
        for (int32_t k = t.first_live_page_; k < t.num_pages(); ++k) ++expected[t.blocks_[k]];
        if (!G.hashed) continue;
        // Hash chain of the hashed pages (computed full pages), on either tier.
        BlockHash parent = kRootHash;
        for (int32_t k = 0; k < rec->num_hashed_pages; ++k) {
          const BlockId b = t.blocks_[k];
          const BlockHash h = HashPage(
              parent, absl::MakeConstSpan(&pool->tokens[static_cast<size_t>(b) * s.bs], s.bs),
              rec->hash_key);
          if (!(h == pool->hashes[b])) {
            return absl::InternalError(absl::StrCat("sequence ", id, " page ", k, " (block ", b,
                                                    "): stored hash does not match its tokens"));
          }
          parent = h;
        }
        // Pages this table has computed (its own rewound last page keeps the hash of what it
        // held, published until an append writes into it).
        for (int32_t k = t.first_live_page_; k < t.num_pages(); ++k) {
          const bool rewound_last =
              k == rec->num_hashed_pages && k == t.num_pages() - 1 && t.num_tokens_ % s.bs != 0;
          if (k < rec->num_hashed_pages || rewound_last) computed_by_a_table[t.blocks_[k]] = 1;
        }
        for (int32_t k = t.first_live_page_; k < t.num_pages(); ++k) {
          if (pool->publisher[t.blocks_[k]] == rec->serial) publisher_names[t.blocks_[k]] = 1;
        }
        // A table may also name published pages it has not computed (a fork's child, when the
        // parent computed them after the fork): its engine will write them again, which is only
        // harmless when the table's chain through the page equals the page's hash.
        const int32_t full_pages = t.num_tokens_ / s.bs;
        for (int32_t k = rec->num_hashed_pages; k < full_pages && k >= t.first_live_page_; ++k) {
          const BlockId b = t.blocks_[k];
          parent = HashPage(parent,
                            absl::MakeConstSpan(&pool->tokens[static_cast<size_t>(b) * s.bs], s.bs),
                            rec->hash_key);
          if (pool->alloc->is_hashed(b) && !(parent == pool->hashes[b])) {
            return absl::InternalError(absl::StrCat(
                "sequence ", id, " page ", k, " (block ", b,
                ") is published under another prefix than this table's, which has not computed "
                "it"));
          }
        }
      }
      // Commit on compute: a published page that tables name was computed by one of them, or by
      // its publisher, which names it no more (freed, or reordered away as a beam).
      for (BlockId b = 0; b < n && G.hashed; ++b) {
        if (expected[b] > pool->pins[b] && pool->alloc->is_hashed(b) && !computed_by_a_table[b] &&
            (pool->publisher[b] == 0 || publisher_names[b])) {
          return absl::InternalError(absl::StrCat("group ", g, " ", tier, " block ", b,
                                                  " is published but no table naming it has "
                                                  "computed it"));
        }
      }
      for (BlockId b = 0; b < n; ++b) {
        if (pool->alloc->ref_count(b) != expected[b]) {
          return absl::InternalError(absl::StrCat(
              "group ", g, " ", tier, " block ", b, ": ref ", pool->alloc->ref_count(b), " but ",
              expected[b] - pool->pins[b], " table entries + ", pool->pins[b], " pins"));
        }
        if (G.hashed && pool->alloc->is_hashed(b) && !(*pool->alloc->hash(b) == pool->hashes[b])) {
          return absl::InternalError(absl::StrCat("group ", g, " ", tier, " block ", b,
                                                  ": allocator hash differs from the page's hash"));
        }
      }
      if (is_gpu) {
        size_t marked = 0;
        for (BlockId b = 0; b < n; ++b) marked += G.gpu.copy_src[b] != kInvalidBlockId;
        if (marked != G.ops.copies.size()) {
          return absl::InternalError(absl::StrCat("group ", g, ": ", marked,
                                                  " copy destinations marked, ",
                                                  G.ops.copies.size(), " pending copies"));
        }
      }
    }
  }
  for (const auto& [id, rec] : s.seqs) {
    if (rec->id != id)
      return absl::InternalError(absl::StrCat("record of ", id, " says ", rec->id));
    swapped += rec->swapped;
    if (static_cast<int32_t>(rec->tables.size()) != s.num_groups()) {
      return absl::InternalError(
          absl::StrCat("sequence ", id, " has ", rec->tables.size(), " tables"));
    }
    if (rec->num_computed < 0 || rec->num_computed > rec->num_tokens ||
        rec->num_hashed_pages != (s.prefix_caching ? rec->num_computed / s.bs : 0)) {
      return absl::InternalError(absl::StrCat("sequence ", id, ": ", rec->num_computed,
                                              " computed of ", rec->num_tokens, " tokens, ",
                                              rec->num_hashed_pages, " hashed pages"));
    }
    for (int32_t g = 0; g < s.num_groups(); ++g) {
      if (!s.groups[g].cross && rec->tables[g].num_tokens_ != rec->num_tokens) {
        return absl::InternalError(absl::StrCat("sequence ", id, " group ", g, " table has ",
                                                rec->tables[g].num_tokens_, " tokens, sequence ",
                                                rec->num_tokens));
      }
    }
  }
  if (swapped != s.num_swapped) {
    return absl::InternalError(
        absl::StrCat(swapped, " swapped sequences, counter says ", s.num_swapped));
  }
  if (s.records.num_live() != s.seqs.size()) {
    return absl::InternalError(
        absl::StrCat(s.records.num_live(), " records for ", s.seqs.size(), " sequences"));
  }
  return absl::OkStatus();
}

}  // namespace pagedkv
