// Sequence tables: growth (append, batch append) with copy-on-write of a shared last page, forks,
// beam reorder, rewind and free. Every call plans and checks first, then mutates.
#include <algorithm>
#include <limits>
#include <utility>
#include <vector>

#include "block_manager/internal/manager_state.h"
#include "pagedkv/core/logging.h"
#include "pagedkv/core/status.h"

namespace pagedkv {

using internal::CeilDiv;
using internal::SeqRecord;

// ---- Append planning and copy-on-write ----------------------------------------------------------

void BlockManager::Impl::PlanAppendGroup(const GroupState& G, const BlockTable& t, int32_t n,
                                         int64_t* need, int64_t* freed) const {
  if (n == 0) return;
  const int32_t len = t.num_tokens_;
  const int32_t release_to = WindowReleasePages(G, len);
  for (int32_t k = t.first_live_page_; k < release_to && k < t.num_pages(); ++k) {
    if (G.gpu.alloc->ref_count(t.blocks_[k]) == 1) ++*freed;
  }
  int32_t page, off;
  SplitPos(len, &page, &off);
  if (off != 0 && G.gpu.table_refs(t.blocks_[page]) > 1) ++*need;
  *need += NewPages(len, n);
}

void BlockManager::Impl::PlanDecodeBatch(int32_t g, int64_t* need, int64_t* freed) {
  const GroupState& G = groups[g];
  shared_last.clear();
  shared_window.clear();
  for (const SeqRecord* rec : scratch_recs) {
    const BlockTable& t = rec->tables[g];
    const int32_t len = t.num_tokens_;
    const int32_t release_to = std::min(WindowReleasePages(G, len), t.num_pages());
    for (int32_t k = t.first_live_page_; k < release_to; ++k) {
      const BlockId b = t.blocks_[k];
      if (G.gpu.alloc->ref_count(b) == 1) {
        ++*freed;
      } else {
        ++shared_window[b];
      }
    }
    int32_t page, off;
    SplitPos(len, &page, &off);
    if (off == 0) {
      ++*need;  // a new page
    } else if (G.gpu.table_refs(t.blocks_[page]) > 1) {
      ++shared_last[t.blocks_[page]];
    }
  }
  // Appended one after another, m batch tables sharing a partial last page with r tables in all
  // copy it m times when r > m (a sharer outside the batch keeps it), m - 1 times when r == m.
  for (const auto& [b, m] : shared_last) {
    *need += G.gpu.table_refs(b) > static_cast<uint32_t>(m) ? m : m - 1;
  }
  // A window page is freed once every one of its references was a released batch table's.
  for (const auto& [b, k] : shared_window) {
    if (G.gpu.alloc->ref_count(b) == static_cast<uint32_t>(k)) ++*freed;
  }
}

void BlockManager::Impl::GrowGroup(int32_t g, const SeqRecord& rec, BlockTable& t,
                                   absl::Span<const TokenId> tokens) {
  GroupState& G = groups[g];
  const int32_t n = static_cast<int32_t>(tokens.size());
  if (n == 0) return;
  const int32_t len = t.num_tokens_;
  int32_t page, off;
  SplitPos(len, &page, &off);
  if (off != 0) {
    const BlockId last = t.blocks_[page];
    if (G.gpu.table_refs(last) > 1) {
      BlockId copy;
      AllocateGpu(g, absl::MakeSpan(&copy, 1));
      RecordCopy(g, last, copy);
      CopyMeta(G, G.gpu, last, G.gpu, copy);
      Release(G.gpu, last, rec.priority);
      t.blocks_[page] = copy;
      PAGEDKV_LOG_TRACE("cow seq={} group={} page={} src={} dst={}", rec.id, g, page, last, copy);
    } else if (G.hashed && G.gpu.alloc->is_hashed(last)) {
      // A rewound full page is about to be overwritten: it no longer holds its hashed content.
      absl::Status s = G.gpu.alloc->Unhash(last);
      PAGEDKV_CHECK_MSG(s.ok(), "unhash of a hashed in-use block");
    }
  }
  const int32_t new_pages = NewPages(len, n);
  if (new_pages > 0) {
    const size_t old = t.blocks_.size();
    t.blocks_.resize(old + new_pages);
    AllocateGpu(g, absl::MakeSpan(t.blocks_.data() + old, new_pages));
  }
  WriteTokens(G, t, len, tokens);
  t.num_tokens_ = len + n;
}

absl::Status BlockManager::Impl::CheckAppendCapacity(SeqId seq, int32_t n,
                                                     absl::Span<const int64_t> need,
                                                     absl::Span<const int64_t> freed) const {
  for (int32_t g = 0; g < num_groups(); ++g) {
    const int64_t avail = groups[g].gpu.alloc->num_available() + freed[g];
    if (need[g] > avail) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "sequence ", seq, ": cannot append ", n, " tokens, group ", g, " has ", avail,
          " free + cached blocks < ", need[g], " needed; free, rewind or swap out a sequence"));
    }
  }
  return absl::OkStatus();
}

// ---- Growth -------------------------------------------------------------------------------------

absl::Status BlockManager::AppendTokens(SeqId seq, absl::Span<const TokenId> tokens) {
  Impl& s = *impl_;
  SeqRecord* rec = s.Find(seq);
  if (rec == nullptr) return Impl::NotFound(seq, "AppendTokens");
  if (rec->swapped) return Impl::Swapped(seq, "AppendTokens");
  const int32_t n = static_cast<int32_t>(tokens.size());
  if (tokens.size() > static_cast<size_t>(kMaxSequenceTokens - rec->num_tokens)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "AppendTokens: sequence ", seq, " of ", rec->num_tokens, " tokens: appending ",
        tokens.size(), " would pass the limit of ", kMaxSequenceTokens, " tokens per sequence"));
  }
  if (n == 0) return absl::OkStatus();
  s.scratch_need.assign(s.num_groups(), 0);
  s.scratch_freed.assign(s.num_groups(), 0);
  for (int32_t g = 0; g < s.num_groups(); ++g) {
    if (s.groups[g].cross) continue;
    s.PlanAppendGroup(s.groups[g], rec->tables[g], n, &s.scratch_need[g], &s.scratch_freed[g]);
  }
  PAGEDKV_RETURN_IF_ERROR(s.CheckAppendCapacity(seq, n, s.scratch_need, s.scratch_freed));
  for (int32_t g = 0; g < s.num_groups(); ++g) {
    if (s.groups[g].cross) continue;
    s.ReleaseWindow(s.groups[g], *rec, rec->tables[g]);
  }
  for (int32_t g = 0; g < s.num_groups(); ++g) {
    if (s.groups[g].cross) continue;
    s.GrowGroup(g, *rec, rec->tables[g], tokens);
  }
  rec->num_tokens += n;
  PAGEDKV_LOG_TRACE("append seq={} tokens={} total={} new_blocks={}", seq, n, rec->num_tokens,
                    s.scratch_need[0]);
  PAGEDKV_DCHECK_OK_EXPENSIVE(CheckInvariants());
  return absl::OkStatus();
}

absl::Status BlockManager::AppendTokenBatch(absl::Span<const SeqId> seqs,
                                            absl::Span<const TokenId> tokens) {
  Impl& s = *impl_;
  if (seqs.size() != tokens.size()) {
    return absl::InvalidArgumentError(absl::StrCat("AppendTokenBatch: ", seqs.size(),
                                                   " sequences but ", tokens.size(),
                                                   " tokens; pass one token per sequence"));
  }
  const uint64_t stamp = ++s.stamp;
  s.scratch_recs.clear();
  s.scratch_need.assign(s.num_groups(), 0);
  s.scratch_freed.assign(s.num_groups(), 0);
  for (SeqId seq : seqs) {
    SeqRecord* rec = s.Find(seq);
    if (rec == nullptr) return Impl::NotFound(seq, "AppendTokenBatch");
    if (rec->swapped) return Impl::Swapped(seq, "AppendTokenBatch");
    if (rec->stamp == stamp) {
      return absl::InvalidArgumentError(
          absl::StrCat("AppendTokenBatch: sequence ", seq, " is listed twice; list each once"));
    }
    rec->stamp = stamp;
    s.scratch_recs.push_back(rec);
  }
  for (int32_t g = 0; g < s.num_groups(); ++g) {
    if (!s.groups[g].cross) s.PlanDecodeBatch(g, &s.scratch_need[g], &s.scratch_freed[g]);
  }
  if (!seqs.empty()) {
    PAGEDKV_RETURN_IF_ERROR(s.CheckAppendCapacity(seqs[0], 1, s.scratch_need, s.scratch_freed));
  }
  // Window releases first, so that every block they free is available to every allocation.
  for (SeqRecord* rec : s.scratch_recs) {
    for (int32_t g = 0; g < s.num_groups(); ++g) {
      if (s.groups[g].window_tokens > 0) s.ReleaseWindow(s.groups[g], *rec, rec->tables[g]);
    }
  }
  for (size_t i = 0; i < s.scratch_recs.size(); ++i) {
    SeqRecord* rec = s.scratch_recs[i];
    for (int32_t g = 0; g < s.num_groups(); ++g) {
      if (s.groups[g].cross) continue;
      s.GrowGroup(g, *rec, rec->tables[g], tokens.subspan(i, 1));
    }
    ++rec->num_tokens;
  }
  // Remembered for MarkComputedBatch of the same step (valid until a record is deleted).
  s.last_batch.swap(s.scratch_recs);
  s.last_batch_epoch = s.records_epoch;
  PAGEDKV_LOG_TRACE("append_batch seqs={} new_blocks={}", seqs.size(), s.scratch_need[0]);
  PAGEDKV_DCHECK_OK_EXPENSIVE(CheckInvariants());
  return absl::OkStatus();
}

absl::StatusOr<int32_t> BlockManager::BlocksToAppend(SeqId seq, int32_t num_tokens) const {
  const Impl& s = *impl_;
  const SeqRecord* rec = s.Find(seq);
  if (rec == nullptr) return Impl::NotFound(seq, "BlocksToAppend");
  if (rec->swapped) return Impl::Swapped(seq, "BlocksToAppend");
  if (num_tokens < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("BlocksToAppend: num_tokens ", num_tokens, " < 0"));
  }
  int64_t need = 0, freed = 0;
  for (int32_t g = 0; g < s.num_groups(); ++g) {
    if (s.groups[g].cross) continue;
    s.PlanAppendGroup(s.groups[g], rec->tables[g], num_tokens, &need, &freed);
  }
  return static_cast<int32_t>(need);
}

bool BlockManager::CanAppend(SeqId seq, int32_t num_tokens) const {
  const Impl& s = *impl_;
  const SeqRecord* rec = s.Find(seq);
  if (rec == nullptr || rec->swapped || num_tokens < 0) return false;
  for (int32_t g = 0; g < s.num_groups(); ++g) {
    if (s.groups[g].cross) continue;
    int64_t need = 0, freed = 0;
    s.PlanAppendGroup(s.groups[g], rec->tables[g], num_tokens, &need, &freed);
    if (need > s.groups[g].gpu.alloc->num_available() + freed) return false;
  }
  return true;
}

// ---- Sharing ------------------------------------------------------------------------------------

absl::Status BlockManager::Fork(SeqId parent, SeqId child) {
  Impl& s = *impl_;
  if (parent == child) {
    return absl::InvalidArgumentError(
        absl::StrCat("Fork: parent and child are both sequence ", parent, "; pick a new child id"));
  }
  SeqRecord* p = s.Find(parent);
  if (p == nullptr) return Impl::NotFound(parent, "Fork");
  if (s.seqs.contains(child)) {
    return absl::AlreadyExistsError(absl::StrCat("Fork: child sequence ", child, " of ", parent,
                                                 " already exists; Free it or pick a new id"));
  }
  if (p->swapped) return Impl::Swapped(parent, "Fork");
  SeqRecord* c = s.records.New(*p);
  c->id = child;
  c->serial = ++s.last_serial;
  c->stamp = 0;
  int32_t pages = 0;
  for (int32_t g = 0; g < s.num_groups(); ++g) {
    const BlockTable& t = c->tables[g];
    absl::Status st = s.groups[g].gpu.alloc->AddRef(t.live_blocks());
    PAGEDKV_CHECK_MSG(st.ok(), "fork of a free block");
    pages += t.num_live_pages();
  }
  s.seqs.emplace(child, c);
  PAGEDKV_LOG_TRACE("fork parent={} child={} tokens={} shared_pages={}", parent, child,
                    c->num_tokens, pages);
  PAGEDKV_DCHECK_OK_EXPENSIVE(CheckInvariants());
  return absl::OkStatus();
}

absl::Status BlockManager::ReorderBeams(absl::Span<const SeqId> beams,
                                        absl::Span<const int32_t> parent_indices) {
  Impl& s = *impl_;
  const size_t n = beams.size();
  if (parent_indices.size() != n) {
    return absl::InvalidArgumentError(absl::StrCat("ReorderBeams: ", n, " beams but ",
                                                   parent_indices.size(),
                                                   " parent indices; pass one per beam"));
  }
  const uint64_t stamp = ++s.stamp;
  s.scratch_recs.clear();
  for (size_t i = 0; i < n; ++i) {
    SeqRecord* rec = s.Find(beams[i]);
    if (rec == nullptr) return Impl::NotFound(beams[i], "ReorderBeams");
    if (rec->stamp == stamp) {
      return absl::InvalidArgumentError(absl::StrCat("ReorderBeams: beam sequence ", beams[i],
                                                     " is listed twice; list each beam once"));
    }
    rec->stamp = stamp;
    s.scratch_recs.push_back(rec);
  }
  for (size_t i = 0; i < n; ++i) {
    const int32_t p = parent_indices[i];
    if (p < 0 || static_cast<size_t>(p) >= n) {
      return absl::InvalidArgumentError(absl::StrCat("ReorderBeams: parent index ", p, " of beam ",
                                                     i, " (sequence ", beams[i],
                                                     ") is outside [0, ", n, ")"));
    }
  }
  for (size_t i = 0; i < n; ++i) {
    if (s.scratch_recs[i]->swapped) return Impl::Swapped(beams[i], "ReorderBeams");
  }
  // Snapshot the parents' tables of every changed beam, take their references, then drop the
  // replaced tables: no page reaches ref 0 on its way from one beam to another.
  struct NewState {
    size_t beam;
    int32_t num_tokens;
    int32_t num_computed;
    int32_t num_hashed_pages;
    bool has_cross;
    uint64_t extra_key;
    uint64_t hash_key;
    absl::InlinedVector<BlockTable, 2> tables;
  };
  std::vector<NewState> changed;
  for (size_t i = 0; i < n; ++i) {
    const size_t p = static_cast<size_t>(parent_indices[i]);
    if (p == i) continue;
    const SeqRecord* parent = s.scratch_recs[p];
    changed.push_back({i, parent->num_tokens, parent->num_computed, parent->num_hashed_pages,
                       parent->has_cross, parent->extra_key, parent->hash_key, parent->tables});
  }
  for (const NewState& ns : changed) {
    for (int32_t g = 0; g < s.num_groups(); ++g) {
      absl::Status st = s.groups[g].gpu.alloc->AddRef(ns.tables[g].live_blocks());
      PAGEDKV_CHECK_MSG(st.ok(), "beam page is free");
    }
  }
  for (NewState& ns : changed) {
    SeqRecord* rec = s.scratch_recs[ns.beam];
    for (int32_t g = 0; g < s.num_groups(); ++g) {
      s.ReleaseTable(s.groups[g], rec->tables[g], rec->priority);
      rec->tables[g] = std::move(ns.tables[g]);
    }
    rec->num_tokens = ns.num_tokens;
    rec->num_computed = ns.num_computed;
    rec->num_hashed_pages = ns.num_hashed_pages;
    rec->has_cross = ns.has_cross;
    // The pages were computed under the parent's keys (a request's beams share them anyway);
    // keeping them keeps the hash chain of later pages consistent with the inherited ones.
    rec->extra_key = ns.extra_key;
    rec->hash_key = ns.hash_key;
    rec->serial = ++s.last_serial;  // a copy of the parent's tables, as a fork's child
  }
  PAGEDKV_LOG_TRACE("reorder_beams beams={} changed={}", n, changed.size());
  PAGEDKV_DCHECK_OK_EXPENSIVE(CheckInvariants());
  return absl::OkStatus();
}

// ---- Shrinking ----------------------------------------------------------------------------------

absl::Status BlockManager::Rewind(SeqId seq, int32_t num_tokens) {
  Impl& s = *impl_;
  SeqRecord* rec = s.Find(seq);
  if (rec == nullptr) return Impl::NotFound(seq, "Rewind");
  if (rec->swapped) return Impl::Swapped(seq, "Rewind");
  if (num_tokens < 0 || num_tokens > rec->num_tokens) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Rewind: sequence ", seq, " has ", rec->num_tokens, " tokens; cannot rewind to ",
        num_tokens, " (valid: 0..", rec->num_tokens, ")"));
  }
  for (int32_t g = 0; g < s.num_groups(); ++g) {
    const Impl::GroupState& G = s.groups[g];
    if (G.window_tokens <= 0 || num_tokens == 0) continue;
    const int64_t first_needed =
        std::max<int64_t>(0, static_cast<int64_t>(num_tokens) + 1 - G.window_tokens);
    const int64_t first_held = static_cast<int64_t>(rec->tables[g].first_live_page_) * s.bs;
    if (first_held > first_needed) {
      return absl::FailedPreconditionError(absl::StrCat(
          "Rewind: sequence ", seq, " to ", num_tokens, " tokens needs tokens from ", first_needed,
          " in sliding group ", g, " (window ", G.window_tokens, "), but pages before token ",
          first_held, " were released; rewind less or recompute the sequence"));
    }
  }
  const int32_t keep_pages = CeilDiv(num_tokens, s.bs);
  int32_t released = 0;
  for (int32_t g = 0; g < s.num_groups(); ++g) {
    Impl::GroupState& G = s.groups[g];
    if (G.cross) continue;
    BlockTable& t = rec->tables[g];
    if (num_tokens == 0) {
      released += t.num_live_pages();
      s.ReleaseTable(G, t, rec->priority);
      continue;
    }
    for (int32_t k = std::max(keep_pages, t.first_live_page_); k < t.num_pages(); ++k) {
      s.Release(G.gpu, t.blocks_[k], rec->priority);
      ++released;
    }
    t.blocks_.resize(keep_pages);
    t.num_tokens_ = num_tokens;
  }
  PAGEDKV_LOG_TRACE("rewind seq={} from={} to={} released_pages={}", seq, rec->num_tokens,
                    num_tokens, released);
  rec->num_tokens = num_tokens;
  rec->num_computed = std::min(rec->num_computed, num_tokens);
  // The page that becomes partial keeps its hash and stays published until an append writes
  // into it (GrowGroup unhashes or copies it first); it is hashed again once recomputed.
  rec->num_hashed_pages = std::min(rec->num_hashed_pages, num_tokens / s.bs);
  PAGEDKV_DCHECK_OK_EXPENSIVE(CheckInvariants());
  return absl::OkStatus();
}

absl::Status BlockManager::Free(SeqId seq) {
  Impl& s = *impl_;
  auto it = s.seqs.find(seq);
  if (it == s.seqs.end()) return Impl::NotFound(seq, "Free");
  SeqRecord* rec = it->second;
  int32_t pages = 0;
  for (int32_t g = 0; g < s.num_groups(); ++g) {
    pages += rec->tables[g].num_live_pages();
    s.ReleaseTable(s.groups[g], rec->tables[g], rec->priority);
  }
  if (rec->swapped) --s.num_swapped;
  PAGEDKV_LOG_TRACE("free seq={} tokens={} pages={} swapped={}", seq, rec->num_tokens, pages,
                    rec->swapped);
  s.seqs.erase(it);
  s.records.Delete(rec);
  ++s.records_epoch;  // invalidates last_batch
  PAGEDKV_DCHECK_OK_EXPENSIVE(CheckInvariants());
  return absl::OkStatus();
}

}  // namespace pagedkv
