// Layer kinds beyond plain full attention: sliding-window groups release the pages no later query
// can see, cross-attention groups hold encoder tokens written once per request, and shares(j)
// layers resolve to layer j's storage.
#include <algorithm>

#include "block_manager/internal/manager_state.h"
#include "pagedkv/core/logging.h"
#include "pagedkv/core/status.h"

namespace pagedkv {

using internal::CeilDiv;
using internal::SeqRecord;

// ---- Sliding windows ----------------------------------------------------------------------------

int32_t BlockManager::Impl::WindowReleasePages(const GroupState& G, int32_t len) const {
  if (G.window_tokens <= 0) return 0;
  const int64_t first_needed = static_cast<int64_t>(len) + 1 - G.window_tokens;
  if (first_needed <= 0) return 0;
  return static_cast<int32_t>(first_needed / bs);
}

void BlockManager::Impl::ReleaseWindow(GroupState& G, const SeqRecord& rec, BlockTable& t) {
  const int32_t release_to = std::min(WindowReleasePages(G, t.num_tokens_), t.num_pages());
  for (int32_t k = t.first_live_page_; k < release_to; ++k) {
    Release(G.gpu, t.blocks_[k], rec.priority);
    t.blocks_[k] = kInvalidBlockId;
  }
  if (release_to > t.first_live_page_) {
    PAGEDKV_LOG_TRACE("window release seq={} group={} pages=[{},{})", rec.id, G.info.group.group_id,
                      t.first_live_page_, release_to);
    t.first_live_page_ = release_to;
  }
}

// ---- Cross-layer sharing ------------------------------------------------------------------------

absl::StatusOr<LayerLocation> BlockManager::LocateLayer(int32_t layer) const {
  if (layer < 0 || layer >= static_cast<int32_t>(impl_->layer_locations.size())) {
    return absl::InvalidArgumentError(
        absl::StrCat("layer ", layer, " outside [0, ", impl_->layer_locations.size(), ")"));
  }
  return impl_->layer_locations[layer];
}

// ---- Encoder-decoder ----------------------------------------------------------------------------

absl::Status BlockManager::SetCrossAttention(SeqId seq, int32_t encoder_tokens) {
  Impl& s = *impl_;
  if (s.cross_group < 0) {
    return absl::FailedPreconditionError(absl::StrCat("SetCrossAttention: sequence ", seq,
                                                      ": model ", s.spec.name,
                                                      " has no cross-attention layers"));
  }
  SeqRecord* rec = s.Find(seq);
  if (rec == nullptr) return Impl::NotFound(seq, "SetCrossAttention");
  if (encoder_tokens < 0) {
    return absl::InvalidArgumentError(absl::StrCat("SetCrossAttention: sequence ", seq,
                                                   ": encoder_tokens ", encoder_tokens, " < 0"));
  }
  if (rec->swapped) return Impl::Swapped(seq, "SetCrossAttention");
  if (rec->has_cross) {
    return absl::FailedPreconditionError(
        absl::StrCat("SetCrossAttention: sequence ", seq, " already has ",
                     rec->tables[s.cross_group].num_tokens(),
                     " encoder tokens; it is written once per request"));
  }
  const int32_t g = s.cross_group;
  const int32_t pages = CeilDiv(encoder_tokens, s.bs);
  const uint32_t avail = s.groups[g].gpu.alloc->num_available();
  if (static_cast<uint32_t>(pages) > avail) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "SetCrossAttention: sequence ", seq, ": ", encoder_tokens, " encoder tokens need ", pages,
        " blocks in group ", g, ", ", avail, " available; free or swap out a sequence"));
  }
  BlockTable& t = rec->tables[g];
  t.blocks_.resize(pages);
  s.AllocateGpu(g, absl::MakeSpan(t.blocks_));
  t.num_tokens_ = encoder_tokens;
  rec->has_cross = true;
  PAGEDKV_LOG_TRACE("cross seq={} encoder_tokens={} pages={}", seq, encoder_tokens, pages);
  PAGEDKV_DCHECK_OK_EXPENSIVE(CheckInvariants());
  return absl::OkStatus();
}

}  // namespace pagedkv
