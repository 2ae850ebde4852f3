// DataHarness operations: each draws its arguments from the OpSource, calls the manager, checks
// the outcome against the reference model and updates it (data_harness.h).
#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "pagedkv/core/status.h"
#include "tests/block_manager/data_harness.h"

namespace pagedkv::testing {
namespace {

absl::Status Violation(const std::string& what) { return absl::InternalError(what); }

}  // namespace

absl::Status DataHarness::OpAdd(OpSource& src) {
  if (static_cast<int32_t>(ids_.size()) >= opt_.max_live_seqs) return OpFree(src);
  ++counters_.adds;
  RefSeq r;
  r.tokens = MakePrompt(src);
  r.extra_key = src.Next(4) == 0 ? 7 : 0;
  // Two encoder inputs on the cross model: requests with the same decoder prompt share pages only
  // under the same one (values depend on it, so sharing across them would be caught).
  if (opt_.model == HarnessModel::kCross) r.encoder_key = 1 + src.Next(2);
  const EvictionPriority priority =
      src.Next(4) == 0 ? EvictionPriority::kLow : EvictionPriority::kNormal;
  return Admit(next_id_++, std::move(r), priority);
}

absl::Status DataHarness::Admit(SeqId id, RefSeq r, EvictionPriority priority) {
  SequenceOptions so;
  so.extra_key = r.extra_key;
  so.priority = priority;
  if (r.encoder_key != 0) so.encoder_key = r.encoder_key;
  const AdmitInfo predicted = bm_->CanAdmit(r.tokens, so);
  const BlockManagerStats before = bm_->stats();
  if (!(before == bm_->stats())) return Violation("CanAdmit changed the stats");
  absl::StatusOr<AdmitInfo> info = bm_->AddSequence(id, r.tokens, so);
  if (!info.ok()) {
    PAGEDKV_RETURN_IF_ERROR(ExpectFailure(info.status(), {absl::StatusCode::kResourceExhausted},
                                          before, "AddSequence"));
    if (predicted.can_admit) return Violation("CanAdmit said yes, AddSequence failed");
    return absl::OkStatus();
  }
  // CanAdmit asks no remote store: its pages come on top of the local hits it predicts.
  if (!predicted.can_admit ||
      predicted.num_cached_tokens != info->num_cached_tokens - info->num_remote_hit_pages * bs_ ||
      predicted.num_host_hit_pages != info->num_host_hit_pages ||
      (store_ == nullptr && info->num_remote_hit_pages != 0)) {
    return Violation(absl::StrCat("CanAdmit predicted can_admit=", predicted.can_admit,
                                  " cached=", predicted.num_cached_tokens, ", AddSequence took ",
                                  info->num_cached_tokens));
  }
  if (!bm_->prefix_caching_enabled() && info->num_cached_tokens != 0) {
    return Violation("prefix hit with prefix caching off");
  }
  Recompute(r, 0);
  // Prefix-cache pages already hold their K/V; the rest is computed in the steps that follow.
  r.written = info->num_cached_tokens;
  r.swapped = false;
  r.has_cross = false;
  r.encoder_tokens = 0;
  r.cross_written = true;
  ref_.emplace(id, std::move(r));
  ids_.push_back(id);
  ++counters_.ok;
  return absl::OkStatus();
}

absl::Status DataHarness::OpReadmit(OpSource& src) {
  bool found;
  const SeqId id = PickLive(src, false, &found);
  if (!found) return OpAdd(src);
  ++counters_.readmits;
  // The scheduler's recompute preemption: free, later admit prompt + generated tokens again. The
  // new sequence must hit only pages whose K/V was computed.
  RefSeq r = ref_[id];
  PAGEDKV_RETURN_IF_ERROR(bm_->Free(id));
  ref_.erase(id);
  ids_.erase(std::find(ids_.begin(), ids_.end(), id));
  return Admit(next_id_++, std::move(r), EvictionPriority::kNormal);
}

absl::Status DataHarness::OpAppend(OpSource& src) {
  bool found;
  const SeqId id = PickLive(src, true, &found);
  if (!found) return OpAdd(src);
  if (static_cast<int32_t>(ref_[id].tokens.size()) > 2 * max_prompt_) return OpRewind(src);
  PAGEDKV_RETURN_IF_ERROR(CompleteCompute(id));
  RefSeq& r = ref_[id];
  ++counters_.appends;
  const int32_t n = src.Next(2) == 0 ? 1 : 1 + static_cast<int32_t>(src.Next(bs_ + 3));
  std::vector<TokenId> tokens(n);
  for (TokenId& t : tokens) t = static_cast<TokenId>(src.Next(1000));
  const bool can = bm_->CanAppend(id, n);
  const BlockManagerStats before = bm_->stats();
  const absl::Status st = bm_->AppendTokens(id, tokens);
  if (can != st.ok())
    return Violation(absl::StrCat("CanAppend said ", can, ", AppendTokens ", st.ToString()));
  if (!st.ok()) {
    return ExpectFailure(
        st,
        {r.swapped ? absl::StatusCode::kFailedPrecondition : absl::StatusCode::kResourceExhausted},
        before, "AppendTokens");
  }
  const int32_t from = static_cast<int32_t>(r.tokens.size());
  r.tokens.insert(r.tokens.end(), tokens.begin(), tokens.end());
  Recompute(r, from);
  ++counters_.ok;
  return absl::OkStatus();
}

absl::Status DataHarness::OpAppendBatch(OpSource& src) {
  std::vector<SeqId> seqs;
  for (SeqId id : ids_) {
    const RefSeq& r = ref_[id];
    // Decoding sequences only: an engine finishes a prefill before it decodes.
    if (!r.swapped && r.written == static_cast<int32_t>(r.tokens.size()) &&
        static_cast<int32_t>(r.tokens.size()) <= 2 * max_prompt_ && src.Next(3) != 0) {
      seqs.push_back(id);
    }
  }
  if (seqs.empty()) return OpAdd(src);
  ++counters_.batch_appends;
  std::vector<TokenId> tokens(seqs.size());
  for (TokenId& t : tokens) t = static_cast<TokenId>(src.Next(1000));
  const BlockManagerStats before = bm_->stats();
  const absl::Status st = bm_->AppendTokenBatch(seqs, tokens);
  if (!st.ok()) {
    return ExpectFailure(st, {absl::StatusCode::kResourceExhausted}, before, "AppendTokenBatch");
  }
  for (size_t i = 0; i < seqs.size(); ++i) {
    RefSeq& r = ref_[seqs[i]];
    r.tokens.push_back(tokens[i]);
    Recompute(r, static_cast<int32_t>(r.tokens.size()) - 1);
  }
  ++counters_.ok;
  return absl::OkStatus();
}

absl::Status DataHarness::OpFork(OpSource& src) {
  if (static_cast<int32_t>(ids_.size()) >= opt_.max_live_seqs) return OpFree(src);
  bool found;
  const SeqId parent = PickLive(src, true, &found);
  if (!found) return OpAdd(src);
  ++counters_.forks;
  const SeqId child = next_id_++;
  const BlockManagerStats before = bm_->stats();
  const absl::Status st = bm_->Fork(parent, child);
  const RefSeq& p = ref_[parent];
  if (!st.ok()) {
    return ExpectFailure(
        st, {p.swapped ? absl::StatusCode::kFailedPrecondition : absl::StatusCode::kUnknown},
        before, "Fork");
  }
  RefSeq c = p;
  ref_.emplace(child, std::move(c));
  ids_.push_back(child);
  ++counters_.ok;
  return absl::OkStatus();
}

absl::Status DataHarness::OpReorder(OpSource& src) {
  if (ids_.size() < 2) return OpFork(src);
  ++counters_.reorders;
  const int32_t k = 2 + static_cast<int32_t>(src.Next(std::min<uint32_t>(4, ids_.size() - 1)));
  std::vector<SeqId> pool = ids_;
  std::vector<SeqId> beams;
  bool any_swapped = false;
  for (int32_t i = 0; i < k && !pool.empty(); ++i) {
    const size_t j = src.Next(static_cast<uint32_t>(pool.size()));
    beams.push_back(pool[j]);
    any_swapped |= ref_[pool[j]].swapped;
    pool.erase(pool.begin() + j);
  }
  std::vector<int32_t> parents(beams.size());
  for (int32_t& p : parents)
    p = static_cast<int32_t>(src.Next(static_cast<uint32_t>(beams.size())));
  const BlockManagerStats before = bm_->stats();
  const absl::Status st = bm_->ReorderBeams(beams, parents);
  if (!st.ok()) {
    return ExpectFailure(
        st, {any_swapped ? absl::StatusCode::kFailedPrecondition : absl::StatusCode::kUnknown},
        before, "ReorderBeams");
  }
  std::vector<RefSeq> snap;
  for (SeqId b : beams) snap.push_back(ref_[b]);
  for (size_t i = 0; i < beams.size(); ++i) ref_[beams[i]] = snap[parents[i]];
  ++counters_.ok;
  return absl::OkStatus();
}

absl::Status DataHarness::OpRewind(OpSource& src) {
  bool found;
  const SeqId id = PickLive(src, true, &found);
  if (!found) return OpAdd(src);
  ++counters_.rewinds;
  RefSeq& r = ref_[id];
  const int32_t len = static_cast<int32_t>(r.tokens.size());
  int32_t n = src.Next(4) == 0 ? len - static_cast<int32_t>(src.Next(3))
                               : static_cast<int32_t>(src.Next(static_cast<uint32_t>(len) + 1));
  n = std::max(n, 0);
  if (src.Next(16) == 0) n = len + 1;  // past the end
  // Predict the outcome.
  absl::StatusCode want = absl::StatusCode::kOk;
  if (r.swapped) {
    want = absl::StatusCode::kFailedPrecondition;
  } else if (n > len) {
    want = absl::StatusCode::kInvalidArgument;
  } else if (n > 0) {
    for (int32_t g = 0; g < bm_->num_groups(); ++g) {
      const KvGroup& kg = bm_->group_info(g).group;
      if (kg.kind != AttentionKind::kSliding) continue;
      PAGEDKV_ASSIGN_OR_RETURN(const BlockTable* t, bm_->GetBlockTable(id, g));
      if (static_cast<int64_t>(t->first_live_page()) * bs_ >
          std::max<int64_t>(0, static_cast<int64_t>(n) + 1 - kg.window_tokens)) {
        want = absl::StatusCode::kFailedPrecondition;
      }
    }
  }
  const BlockManagerStats before = bm_->stats();
  const absl::Status st = bm_->Rewind(id, n);
  if (want != absl::StatusCode::kOk) return ExpectFailure(st, {want}, before, "Rewind");
  if (!st.ok()) return Violation(absl::StrCat("Rewind to ", n, " of ", len, ": ", st.ToString()));
  r.tokens.resize(n);
  r.values.resize(n);
  r.written = std::min(r.written, n);
  ++counters_.ok;
  return absl::OkStatus();
}

absl::Status DataHarness::OpFree(OpSource& src) {
  bool found;
  const SeqId id = PickLive(src, false, &found);
  if (!found) return OpAdd(src);
  ++counters_.frees;
  PAGEDKV_RETURN_IF_ERROR(bm_->Free(id));
  ref_.erase(id);
  ids_.erase(std::find(ids_.begin(), ids_.end(), id));
  ++counters_.ok;
  return absl::OkStatus();
}

absl::Status DataHarness::OpSwapOut(OpSource& src) {
  if (ids_.empty()) return OpAdd(src);
  ++counters_.swap_outs;
  std::vector<SeqId> seqs;
  bool any_swapped = false;
  const int32_t k = 1 + static_cast<int32_t>(src.Next(3));
  for (int32_t i = 0; i < k; ++i) {
    const SeqId id = ids_[src.Next(static_cast<uint32_t>(ids_.size()))];
    if (std::find(seqs.begin(), seqs.end(), id) != seqs.end()) continue;
    seqs.push_back(id);
    any_swapped |= ref_[id].swapped;
  }
  const BlockManagerStats before = bm_->stats();
  const absl::Status st = bm_->SwapOut(seqs);
  if (!st.ok()) {
    // FailedPrecondition also covers a page still awaiting its swap-in in the pending CacheOps.
    if (!bm_->has_host_tier() || any_swapped) {
      return ExpectFailure(st, {absl::StatusCode::kFailedPrecondition}, before, "SwapOut");
    }
    return ExpectFailure(
        st, {absl::StatusCode::kResourceExhausted, absl::StatusCode::kFailedPrecondition}, before,
        "SwapOut");
  }
  if (!bm_->has_host_tier() || any_swapped) return Violation("SwapOut succeeded unexpectedly");
  for (SeqId id : seqs) ref_[id].swapped = true;
  ++counters_.ok;
  return absl::OkStatus();
}

absl::Status DataHarness::OpSwapIn(OpSource& src) {
  std::vector<SeqId> seqs;
  bool any_resident = false;
  for (SeqId id : ids_) {
    if (ref_[id].swapped && src.Next(2) == 0) seqs.push_back(id);
  }
  if (seqs.empty() && !ids_.empty() && src.Next(4) == 0) {
    seqs.push_back(ids_[src.Next(static_cast<uint32_t>(ids_.size()))]);
    any_resident = !ref_[seqs[0]].swapped;
  }
  if (seqs.empty()) return OpSwapOut(src);
  ++counters_.swap_ins;
  const bool can = bm_->CanSwapIn(seqs);
  const BlockManagerStats before = bm_->stats();
  const absl::Status st = bm_->SwapIn(seqs);
  if (can != st.ok())
    return Violation(absl::StrCat("CanSwapIn said ", can, ", SwapIn ", st.ToString()));
  if (!st.ok()) {
    return ExpectFailure(st,
                         {any_resident ? absl::StatusCode::kFailedPrecondition
                                       : absl::StatusCode::kResourceExhausted},
                         before, "SwapIn");
  }
  for (SeqId id : seqs) ref_[id].swapped = false;
  ++counters_.ok;
  return absl::OkStatus();
}

absl::Status DataHarness::OpCross(OpSource& src) {
  if (opt_.model != HarnessModel::kCross) return OpAppend(src);
  bool found;
  const SeqId id = PickLive(src, true, &found);
  if (!found) return OpAdd(src);
  ++counters_.crosses;
  RefSeq& r = ref_[id];
  const int32_t enc = static_cast<int32_t>(src.Next(static_cast<uint32_t>(max_prompt_) + 1));
  const BlockManagerStats before = bm_->stats();
  const absl::Status st = bm_->SetCrossAttention(id, enc);
  if (!st.ok()) {
    if (r.swapped || r.has_cross) {
      return ExpectFailure(st, {absl::StatusCode::kFailedPrecondition}, before,
                           "SetCrossAttention");
    }
    return ExpectFailure(st, {absl::StatusCode::kResourceExhausted}, before, "SetCrossAttention");
  }
  if (r.swapped || r.has_cross) return Violation("SetCrossAttention succeeded unexpectedly");
  r.has_cross = true;
  r.encoder_tokens = enc;
  r.encoder_seed = src.Next(1u << 16) * 65537u + 1;
  r.cross_written = false;
  ++counters_.ok;
  return absl::OkStatus();
}

absl::Status DataHarness::OpRemoteFault(OpSource& src) {
  ++counters_.remote_faults;
  std::vector<std::string> keys = store_->Keys();
  std::sort(keys.begin(), keys.end());  // hash-map order is not seeded: keep replays exact
  const std::string key = keys.empty() ? std::string() : keys[src.Next(keys.size())];
  switch (src.Next(5)) {
    case 0:
      store_->TEST_Corrupt(key);
      break;
    case 1:
      store_->TEST_Truncate(key, src.Next(200));
      break;
    case 2:
      // A value that is a valid page, but of another page (another chain hash): a page of another
      // model or prefix under this key.
      if (keys.size() >= 2) {
        const std::string& other = keys[src.Next(keys.size())];
        if (other != key) {
          store_->TEST_Put(key, store_->Get(other));
        }
      }
      break;
    case 3:
      store_->TEST_SetDown(true);
      store_fault_ops_ = 1 + static_cast<int32_t>(src.Next(4));
      break;
    default:
      store_->TEST_SetDelay(absl::Milliseconds(3));  // longer than the 2 ms deadline
      store_fault_ops_ = 1;
      break;
  }
  return absl::OkStatus();
}

absl::Status DataHarness::OpBadInput(OpSource& src) {
  ++counters_.bad_inputs;
  const SeqId unknown = next_id_ + 1000000;
  bool found;
  const SeqId live = PickLive(src, false, &found);
  const BlockManagerStats before = bm_->stats();
  using C = absl::StatusCode;
  const TokenId tok[2] = {1, 2};
  const bool swapped = found && ref_[live].swapped;
  switch (src.Next(16)) {
    case 0:
      return ExpectFailure(bm_->AppendTokens(unknown, tok), {C::kNotFound}, before, "Append?");
    case 1:
      return ExpectFailure(bm_->Fork(unknown, next_id_++), {C::kNotFound}, before, "Fork?");
    case 2:
      return ExpectFailure(bm_->Free(unknown), {C::kNotFound}, before, "Free?");
    case 3:
      return ExpectFailure(bm_->Rewind(unknown, 0), {C::kNotFound}, before, "Rewind?");
    case 4:
      return ExpectFailure(bm_->SwapIn(unknown), {C::kNotFound}, before, "SwapIn?");
    case 5:
      if (!found) return absl::OkStatus();
      return ExpectFailure(bm_->AddSequence(live, tok).status(), {C::kAlreadyExists}, before,
                           "AddSequence dup");
    case 6:
      if (!found) return absl::OkStatus();
      return ExpectFailure(bm_->Fork(ids_[0], live),
                           {ids_[0] == live ? C::kInvalidArgument : C::kAlreadyExists}, before,
                           "Fork into existing");
    case 7: {
      if (!found) return absl::OkStatus();
      const SeqId beams[2] = {live, live};
      const int32_t parents[2] = {0, 0};
      return ExpectFailure(bm_->ReorderBeams(beams, parents), {C::kInvalidArgument}, before,
                           "ReorderBeams dup");
    }
    case 8: {
      if (!found) return absl::OkStatus();
      const SeqId beams[1] = {live};
      const int32_t parents[1] = {src.Next(2) == 0 ? 1 : -1};
      return ExpectFailure(bm_->ReorderBeams(beams, parents), {C::kInvalidArgument}, before,
                           "ReorderBeams index");
    }
    case 9:
      return ExpectFailure(bm_->MarkComputed(unknown, 0), {C::kNotFound}, before, "Mark?");
    case 10: {
      if (!found) return absl::OkStatus();
      const int64_t len = static_cast<int64_t>(ref_[live].tokens.size());
      return ExpectFailure(bm_->MarkComputed(live, len + 1 + src.Next(3)),
                           {swapped ? C::kFailedPrecondition : C::kInvalidArgument}, before,
                           "MarkComputed past end");
    }
    case 11: {
      if (!found || ref_[live].written == 0) return absl::OkStatus();
      return ExpectFailure(bm_->MarkComputed(live, ref_[live].written - 1),
                           {swapped ? C::kFailedPrecondition : C::kInvalidArgument}, before,
                           "MarkComputed backwards");
    }
    case 12: {
      if (!found) return absl::OkStatus();
      const SeqId seqs[2] = {live, live};
      const int64_t counts[2] = {ref_[live].written, ref_[live].written};
      return ExpectFailure(bm_->MarkComputedBatch(seqs, counts),
                           {swapped ? C::kFailedPrecondition : C::kInvalidArgument}, before,
                           "MarkComputedBatch dup");
    }
    case 13: {
      const SeqId seqs[1] = {found ? live : unknown};
      const int64_t counts[2] = {0, 0};
      return ExpectFailure(bm_->MarkComputedBatch(seqs, counts), {C::kInvalidArgument}, before,
                           "MarkComputedBatch sizes");
    }
    case 14: {
      // A cross-attention model with prefix caching needs the encoder input's identity.
      if (opt_.model != HarnessModel::kCross || !bm_->prefix_caching_enabled()) {
        return absl::OkStatus();
      }
      if (bm_->CanAdmit(tok).can_admit) return Violation("CanAdmit without encoder_key said yes");
      return ExpectFailure(bm_->AddSequence(next_id_++, tok).status(), {C::kInvalidArgument},
                           before, "AddSequence without encoder_key");
    }
    default: {
      if (!found) return absl::OkStatus();
      const int32_t len = static_cast<int32_t>(ref_[live].tokens.size());
      return ExpectFailure(bm_->Rewind(live, len + 1 + static_cast<int32_t>(src.Next(5))),
                           {ref_[live].swapped ? C::kFailedPrecondition : C::kInvalidArgument},
                           before, "Rewind past end");
    }
  }
}

}  // namespace pagedkv::testing
