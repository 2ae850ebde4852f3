// BuildBatch: the kernel-facing arrays of one step for one KV group (CSR page table, last-page
// lengths, query offsets and the slot mapping where the step writes its new K/V).
#include <algorithm>

#include "block_manager/internal/manager_state.h"
#include "pagedkv/core/status.h"

namespace pagedkv {

using internal::SeqRecord;

absl::Status BlockManager::BuildBatch(absl::Span<const BatchEntry> entries, int32_t group,
                                      BatchLayout* layout) const {
  const Impl& s = *impl_;
  if (group < 0 || group >= s.num_groups()) {
    return absl::InvalidArgumentError(
        absl::StrCat("BuildBatch: group ", group, " outside [0, ", s.num_groups(), ")"));
  }
  const int32_t bs = s.bs;
  layout->clear();
  layout->group = group;
  layout->block_size = bs;
  layout->page_indptr.push_back(0);
  layout->query_indptr.push_back(0);
  const uint64_t stamp = ++s.stamp;
  for (const BatchEntry& e : entries) {
    const SeqRecord* rec = s.Find(e.seq_id);
    if (rec == nullptr) return Impl::NotFound(e.seq_id, "BuildBatch");
    if (rec->swapped) return Impl::Swapped(e.seq_id, "BuildBatch");
    // One entry per sequence: a second would write the same slots twice in one step.
    if (rec->stamp == stamp) {
      return absl::InvalidArgumentError(
          absl::StrCat("BuildBatch: sequence ", e.seq_id, " is listed twice; list each once"));
    }
    rec->stamp = stamp;
    if (e.num_context_tokens < -1) {
      return absl::InvalidArgumentError(absl::StrCat("BuildBatch: sequence ", e.seq_id,
                                                     ": num_context_tokens ", e.num_context_tokens,
                                                     " must be >= 0, or -1 for all tokens"));
    }
    const BlockTable& t = rec->tables[group];
    const int32_t ctx = e.num_context_tokens < 0 ? t.num_tokens_ : e.num_context_tokens;
    if (ctx > t.num_tokens_ || e.num_new_tokens < 0 || e.num_new_tokens > ctx) {
      return absl::InvalidArgumentError(absl::StrCat(
          "BuildBatch: sequence ", e.seq_id, " group ", group, " holds ", t.num_tokens_,
          " tokens; num_context_tokens ", e.num_context_tokens, " / num_new_tokens ",
          e.num_new_tokens, " must satisfy 0 <= new <= context <= ", t.num_tokens_));
    }
    const int32_t first_page = t.first_live_page_;
    if (ctx == 0) {
      layout->page_indptr.push_back(layout->page_indptr.back());
      layout->last_page_len.push_back(0);
      layout->first_page_token.push_back(0);
      layout->query_indptr.push_back(layout->query_indptr.back());
      continue;
    }
    const int32_t last_page = (ctx - 1) / bs;
    const int32_t first_new = ctx - e.num_new_tokens;
    if (last_page < first_page || (e.num_new_tokens > 0 && first_new / bs < first_page)) {
      return absl::InvalidArgumentError(
          absl::StrCat("BuildBatch: sequence ", e.seq_id, " group ", group, ": tokens from ",
                       std::min(first_new, ctx - 1),
                       " lie in pages released by the sliding window (first held "
                       "token ",
                       first_page * bs, ")"));
    }
    const BlockId* blocks = t.blocks_.data();
    layout->page_indices.insert(layout->page_indices.end(), blocks + first_page,
                                blocks + last_page + 1);
    layout->page_indptr.push_back(static_cast<int32_t>(layout->page_indices.size()));
    layout->last_page_len.push_back(ctx - last_page * bs);
    layout->first_page_token.push_back(first_page * bs);
    for (int32_t p = first_new; p < ctx; ++p) {
      const int32_t page = p / bs;
      layout->slot_mapping.push_back(static_cast<int64_t>(blocks[page]) * bs + (p - page * bs));
    }
    layout->query_indptr.push_back(static_cast<int32_t>(layout->slot_mapping.size()));
  }
  return absl::OkStatus();
}

absl::StatusOr<const BatchLayout*> BlockManager::BuildBatch(absl::Span<const BatchEntry> entries,
                                                            int32_t group) {
  if (group < 0 || group >= impl_->num_groups()) {
    return absl::InvalidArgumentError(
        absl::StrCat("BuildBatch: group ", group, " outside [0, ", impl_->num_groups(), ")"));
  }
  BatchLayout* layout = &impl_->groups[group].layout;
  PAGEDKV_RETURN_IF_ERROR(BuildBatch(entries, group, layout));
  return layout;
}

}  // namespace pagedkv
