#include "pagedkv/scheduler/scheduler.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "internal/scheduler_state.h"
#include "pagedkv/core/absl_compat.h"
#include "pagedkv/core/check.h"
#include "pagedkv/core/status.h"

namespace pagedkv {

std::string_view PreemptionModeName(PreemptionMode mode) {
  return mode == PreemptionMode::kSwap ? "swap" : "recompute";
}

absl::StatusOr<PreemptionMode> ParsePreemptionMode(std::string_view name) {
  const std::string lower = absl::AsciiStrToLower(AbslView(name));
  if (lower == "recompute") return PreemptionMode::kRecompute;
  if (lower == "swap") return PreemptionMode::kSwap;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown preemption mode '", AbslView(name), "'; use recompute or swap"));
}

std::string_view RejectCauseName(RejectCause cause) {
  switch (cause) {
    case RejectCause::kTooLong:
      return "too_long";
    case RejectCause::kMemory:
      return "memory";
    case RejectCause::kWatermark:
      return "watermark";
    case RejectCause::kTokenBudget:
      return "token_budget";
    case RejectCause::kMaxNumSeqs:
      return "max_num_seqs";
  }
  return "unknown";
}

absl::Status SchedulerConfig::Validate() const {
  if (max_num_seqs < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("scheduler: max_num_seqs must be >= 1, got ", max_num_seqs));
  }
  if (max_num_batched_tokens < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "scheduler: max_num_batched_tokens must be >= 1, got ", max_num_batched_tokens));
  }
  return absl::OkStatus();
}

Scheduler::Scheduler(SchedulerConfig config, KvCachePolicy* policy)
    : config_(config), policy_(policy) {
  PAGEDKV_CHECK(policy != nullptr);
  last_counters_ = policy_->counters();
}

Scheduler::~Scheduler() = default;

int32_t Scheduler::Width(const Group& g) const { return std::max(g.num_samples, g.beam_width); }

absl::Status Scheduler::AddRequest(SchedulerRequest request) {
  const bool lazy = request.prompt.empty() && request.prompt_source != nullptr;
  const int64_t prompt_len =
      lazy ? request.prompt_len : static_cast<int64_t>(request.prompt.size());
  if (prompt_len < 1 || request.max_output_tokens < 1 || request.num_samples < 1 ||
      request.beam_width < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("request ", request.request_id, ": need a prompt (got ", prompt_len,
                     " tokens), max_output_tokens >= 1 (got ", request.max_output_tokens,
                     "), num_samples >= 1 (got ", request.num_samples,
                     ") and beam_width >= 1 (got ", request.beam_width, ")"));
  }
  if (prompt_len > kMaxPromptTokens) {
    return absl::InvalidArgumentError(absl::StrCat("request ", request.request_id, ": prompt of ",
                                                   prompt_len, " tokens exceeds the limit of ",
                                                   kMaxPromptTokens, " tokens"));
  }
  if (request.num_samples > kMaxGroupWidth || request.beam_width > kMaxGroupWidth) {
    return absl::InvalidArgumentError(
        absl::StrCat("request ", request.request_id, ": num_samples ", request.num_samples,
                     " and beam_width ", request.beam_width, " must be at most ", kMaxGroupWidth));
  }
  if (request.num_samples > 1 && request.beam_width > 1) {
    return absl::InvalidArgumentError(absl::StrCat("request ", request.request_id,
                                                   ": use either num_samples > 1 or "
                                                   "beam_width > 1, not both"));
  }
  if (groups_.contains(request.request_id)) {
    return absl::AlreadyExistsError(
        absl::StrCat("request ", request.request_id, " was already added"));
  }
  auto g = std::make_unique<Group>();
  g->request_id = request.request_id;
  g->arrival = next_arrival_++;
  g->prompt_len = static_cast<int32_t>(prompt_len);
  g->max_output = request.max_output_tokens;
  g->num_samples = request.num_samples;
  g->beam_width = request.beam_width;
  const int32_t width = Width(*g);
  g->seqs.resize(static_cast<size_t>(width));
  for (int32_t k = 0; k < width; ++k) g->seqs[k].id = next_seq_id_ + static_cast<uint64_t>(k);
  next_seq_id_ += static_cast<uint64_t>(width);
  if (lazy) {
    g->prompt_materialized = false;
    g->prompt_source = std::move(request.prompt_source);
  } else {
    g->seqs[0].tokens = std::move(request.prompt);
  }
  waiting_.push_back(g.get());
  groups_.emplace(request.request_id, std::move(g));
  return absl::OkStatus();
}

absl::Status Scheduler::EnsurePrompt(Group* g) {
  if (g->prompt_materialized) return absl::OkStatus();
  std::vector<TokenId> prompt = g->prompt_source();
  if (static_cast<int64_t>(prompt.size()) != g->prompt_len) {
    return absl::InternalError(absl::StrCat("request ", g->request_id, ": prompt_source returned ",
                                            prompt.size(), " tokens, prompt_len is ",
                                            g->prompt_len));
  }
  g->seqs[0].tokens = std::move(prompt);
  g->prompt_source = nullptr;
  g->prompt_materialized = true;
  return absl::OkStatus();
}

void Scheduler::RejectHead(SchedulerOutput& out, RejectCause cause) {
  Group* g = waiting_.front();
  waiting_.pop_front();
  g->state = Group::State::kFinished;
  out.rejected_requests.push_back(g->request_id);
  out.rejection_causes.push_back(cause);
  for (Seq& seq : g->seqs) std::vector<TokenId>().swap(seq.tokens);
  g->prompt_source = nullptr;
}

AdmitRequest Scheduler::MakeAdmitRequest(const Group& g) const {
  AdmitRequest r;
  r.prompt_tokens = g.prompt_len;
  r.output_tokens = g.max_output;
  r.stored_tokens = g.stored_len();
  r.num_seqs = Width(g);
  r.max_chunk_tokens = config_.enable_chunked_prefill ? config_.max_num_batched_tokens : 0;
  return r;
}

const AdmitRequest* Scheduler::NextAdmission() const {
  if (waiting_.empty()) return nullptr;
  next_admission_ = MakeAdmitRequest(*waiting_.front());
  return &next_admission_;
}

void Scheduler::InsertByArrival(std::deque<Group*>& queue, Group* g) {
  auto it = std::upper_bound(queue.begin(), queue.end(), g, [](const Group* a, const Group* b) {
    return a->arrival < b->arrival;
  });
  queue.insert(it, g);
}

void Scheduler::RemoveRunning(Group* g) {
  auto it = std::find(running_.begin(), running_.end(), g);
  PAGEDKV_DCHECK(it != running_.end());
  running_.erase(it);
  running_seqs_ -= Width(*g);
}

absl::Status Scheduler::FreeGroup(Group* g) {
  for (Seq& s : g->seqs) {
    absl::Status st = policy_->Free(s.id);
    // Ids that were never admitted or forked are unknown to a paged policy.
    if (!st.ok() && !absl::IsNotFound(st)) return st;
    s.live = false;
    s.num_computed = 0;
    s.num_stored = 0;
  }
  return absl::OkStatus();
}

void Scheduler::TakeCacheOps(SchedulerOutput& out) {
  policy_->TakeCacheOps(&pending_ops_);
  if (out.cache_ops.groups.size() < pending_ops_.groups.size()) {
    out.cache_ops.groups.resize(pending_ops_.groups.size());
  }
  for (size_t g = 0; g < pending_ops_.groups.size(); ++g) {
    GroupCacheOps& dst = out.cache_ops.groups[g];
    const GroupCacheOps& src = pending_ops_.groups[g];
    dst.group = src.group;
    dst.bytes_per_block = src.bytes_per_block;
    dst.swap_out.insert(dst.swap_out.end(), src.swap_out.begin(), src.swap_out.end());
    dst.swap_in.insert(dst.swap_in.end(), src.swap_in.begin(), src.swap_in.end());
    dst.copies.insert(dst.copies.end(), src.copies.begin(), src.copies.end());
  }
}

absl::Status Scheduler::Preempt(Group* g, SchedulerOutput& out, bool allow_swap) {
  RemoveRunning(g);
  ++g->num_preemptions;
  ++total_preemptions_;
  out.preempted_requests.push_back(g->request_id);
  std::vector<SeqId> ids;
  for (int32_t k = 0; k < g->num_live(); ++k) ids.push_back(g->seqs[k].id);
  out.preempted_seqs.insert(out.preempted_seqs.end(), ids.begin(), ids.end());
  if (allow_swap && config_.preemption_mode == PreemptionMode::kSwap && policy_->SupportsSwap() &&
      policy_->CanSwapOut(ids)) {
    absl::Status st = policy_->SwapOut(ids);
    if (st.ok()) {
      g->state = Group::State::kSwapped;
      InsertByArrival(swapped_, g);
      // The swapped-out pages stay pinned until their swap_out is taken. The engine runs every
      // swap_out of a step before anything writes, so taking them now frees the pages for the
      // appends of this same step.
      TakeCacheOps(out);
      return absl::OkStatus();
    }
    if (!absl::IsResourceExhausted(st)) return st;
  }
  // Recompute: the request re-runs prompt + generated tokens as a prefill when re-admitted. A
  // forked group restarts from its prompt (its sequences would otherwise need re-forking).
  PAGEDKV_RETURN_IF_ERROR(FreeGroup(g));
  if (g->forked) {
    g->seqs[0].tokens.resize(static_cast<size_t>(g->prompt_len));
    for (size_t k = 1; k < g->seqs.size(); ++k) g->seqs[k].tokens.clear();
    g->forked = false;
    g->num_generated = 0;
  }
  g->state = Group::State::kWaiting;
  InsertByArrival(waiting_, g);
  return absl::OkStatus();
}

absl::Status Scheduler::StoreTokens(Group* g, Seq& s, int32_t end, SchedulerOutput& out,
                                    bool& preempted_any, bool& self_preempted) {
  while (s.num_stored < end) {
    absl::Status st = policy_->Append(
        s.id, absl::MakeConstSpan(s.tokens).subspan(static_cast<size_t>(s.num_stored),
                                                    static_cast<size_t>(end - s.num_stored)));
    if (st.ok()) {
      s.num_stored = end;
      break;
    }
    if (!absl::IsResourceExhausted(st)) return st;
    Group* victim = running_.back();
    // A group preempting itself may hold copy-on-write pages written by this step's pending
    // copies, which an engine runs after every swap_out: recompute it instead of swapping.
    PAGEDKV_RETURN_IF_ERROR(Preempt(victim, out, /*allow_swap=*/victim != g));
    preempted_any = true;
    if (victim == g) {
      self_preempted = true;
      break;
    }
  }
  return absl::OkStatus();
}

absl::Status Scheduler::ScheduleRunning(SchedulerOutput& out, int32_t& budget,
                                        bool& preempted_any) {
  size_t i = 0;
  while (i < running_.size()) {
    Group* g = running_[i];
    if (g->in_prefill()) {
      Seq& s = g->seqs[0];
      const int32_t remaining = g->prefill_target - s.num_computed;
      const int32_t chunk = std::min(remaining, budget);
      if (chunk > 0) {
        // Slots for the chunk, when the policy allocates a prefill chunk by chunk; preempt the
        // newest running request while memory is short (possibly this one).
        bool self_preempted = false;
        PAGEDKV_RETURN_IF_ERROR(
            StoreTokens(g, s, s.num_computed + chunk, out, preempted_any, self_preempted));
        if (self_preempted) break;  // g was the last running group
        out.scheduled.push_back(
            {s.id, g->request_id, chunk, s.num_computed, true, chunk == remaining ? Width(*g) : 0});
        budget -= chunk;
        out.num_prefill_tokens += chunk;
      }
      ++i;
      continue;
    }
    const int32_t live = g->num_live();
    if (budget < live) {
      ++i;
      continue;
    }
    // Give every live sequence the slot of its newest token, preempting the newest running
    // request while memory is short (possibly this one).
    bool self_preempted = false;
    for (int32_t k = 0; k < live && !self_preempted; ++k) {
      Seq& s = g->seqs[k];
      PAGEDKV_RETURN_IF_ERROR(StoreTokens(g, s, static_cast<int32_t>(s.tokens.size()), out,
                                          preempted_any, self_preempted));
    }
    if (self_preempted) break;  // g was the last running group
    for (int32_t k = 0; k < live; ++k) {
      const Seq& s = g->seqs[k];
      out.scheduled.push_back({s.id, g->request_id, 1, s.num_computed, false, 1});
    }
    budget -= live;
    out.num_decode_tokens += live;
    ++i;
  }
  return absl::OkStatus();
}

absl::Status Scheduler::ScheduleSwapped(SchedulerOutput& out, int32_t& budget) {
  std::vector<SeqId> ids;
  while (!swapped_.empty()) {
    Group* g = swapped_.front();
    const int32_t live = g->num_live();
    if (running_seqs_ + Width(*g) > config_.max_num_seqs || budget < live) break;
    ids.clear();
    for (int32_t k = 0; k < live; ++k) ids.push_back(g->seqs[k].id);
    if (!policy_->CanSwapIn(ids)) break;
    PAGEDKV_RETURN_IF_ERROR(policy_->SwapIn(ids));
    swapped_.pop_front();
    g->state = Group::State::kRunning;
    running_.insert(
        std::upper_bound(running_.begin(), running_.end(), g,
                         [](const Group* a, const Group* b) { return a->arrival < b->arrival; }),
        g);
    running_seqs_ += Width(*g);
    out.swapped_in_requests.push_back(g->request_id);
    if (g->in_prefill()) continue;  // its next chunk runs next step
    // Decode now when the slots fit; otherwise the running pass of the next step handles it.
    bool all = true;
    for (int32_t k = 0; k < live && all; ++k) {
      Seq& s = g->seqs[k];
      if (s.num_stored < static_cast<int32_t>(s.tokens.size())) {
        absl::Status st = policy_->Append(
            s.id, absl::MakeConstSpan(s.tokens).subspan(static_cast<size_t>(s.num_stored)));
        if (st.ok()) {
          s.num_stored = static_cast<int32_t>(s.tokens.size());
        } else if (absl::IsResourceExhausted(st)) {
          all = false;
        } else {
          return st;
        }
      }
    }
    if (!all) continue;
    for (int32_t k = 0; k < live; ++k) {
      const Seq& s = g->seqs[k];
      out.scheduled.push_back({s.id, g->request_id, 1, s.num_computed, false, 1});
    }
    budget -= live;
    out.num_decode_tokens += live;
  }
  return absl::OkStatus();
}

absl::Status Scheduler::ScheduleWaiting(SchedulerOutput& out, int32_t& budget) {
  std::vector<SeqId> ids;
  while (!waiting_.empty() && budget > 0) {
    Group* g = waiting_.front();
    const int32_t width = Width(*g);
    if (running_seqs_ + width > config_.max_num_seqs && width <= config_.max_num_seqs) break;
    // A group decodes all its sequences in one step, within both limits.
    if (width > config_.max_num_seqs) {
      RejectHead(out, RejectCause::kMaxNumSeqs);
      continue;
    }
    if (width > config_.max_num_batched_tokens) {
      RejectHead(out, RejectCause::kTokenBudget);
      continue;
    }
    PAGEDKV_RETURN_IF_ERROR(EnsurePrompt(g));
    Seq& s = g->seqs[0];
    const AdmitRequest req = MakeAdmitRequest(*g);
    AdmitCheck check = policy_->CanAdmit(req, s.tokens);
    if (!check.ever_fits) {
      RejectHead(out, check.too_long ? RejectCause::kTooLong : RejectCause::kMemory);
      continue;
    }
    const int32_t stored = req.stored_tokens;
    // At least the last token is computed: its logits give the next token.
    const int32_t hint_cached = std::min(check.cached_tokens, stored - 1);
    // Tokens given slots at admission: all, or the cached prefix and the first chunk when the
    // policy allocates a prefill by chunk (a long prompt on a sliding-window model).
    int32_t admit_len = stored;
    if (config_.enable_chunked_prefill && policy_->AllocatesPrefillByChunk() &&
        hint_cached + budget < stored) {
      admit_len = hint_cached + budget;
      const AdmitCheck first =
          policy_->CanAdmit(req, absl::MakeConstSpan(s.tokens).first(admit_len));
      check.fits = first.fits;
      check.watermark_limited = first.watermark_limited;
    }
    if (!config_.enable_chunked_prefill && stored - hint_cached > config_.max_num_batched_tokens) {
      RejectHead(out, RejectCause::kTokenBudget);
      continue;
    }
    // With no running or swapped request holding memory, what does not fit now never will.
    if (!check.fits && running_.empty() && swapped_.empty()) {
      RejectHead(out, check.watermark_limited ? RejectCause::kWatermark : RejectCause::kMemory);
      continue;
    }
    if (!config_.enable_chunked_prefill && stored - hint_cached > budget) break;
    if (!check.fits) break;
    ids.clear();
    for (const Seq& seq : g->seqs) ids.push_back(seq.id);
    absl::StatusOr<int32_t> cached =
        policy_->Admit(ids, req, absl::MakeConstSpan(s.tokens).first(admit_len));
    if (!cached.ok()) {
      if (absl::IsResourceExhausted(cached.status())) break;
      return cached.status();
    }
    waiting_.pop_front();
    const int32_t hit = std::min(*cached, stored - 1);
    s.live = true;
    s.num_computed = hit;
    s.num_stored = admit_len;
    g->prefill_target = stored;
    const int32_t remaining = stored - hit;
    const int32_t chunk = std::min({remaining, budget, admit_len - hit});
    out.scheduled.push_back(
        {s.id, g->request_id, chunk, hit, true, chunk == remaining ? width : 0});
    budget -= chunk;
    out.num_prefill_tokens += chunk;
    out.num_cached_prompt_tokens += hit;
    g->state = Group::State::kRunning;
    running_.insert(
        std::upper_bound(running_.begin(), running_.end(), g,
                         [](const Group* a, const Group* b) { return a->arrival < b->arrival; }),
        g);
    running_seqs_ += width;
  }
  return absl::OkStatus();
}

absl::StatusOr<SchedulerOutput> Scheduler::Step() {
  SchedulerOutput out;
  out.step = step_++;
  out.finished_requests = std::move(finished_since_step_);
  finished_since_step_.clear();
  int32_t budget = config_.max_num_batched_tokens;
  bool preempted = false;
  PAGEDKV_RETURN_IF_ERROR(ScheduleRunning(out, budget, preempted));
  // FCFS: swapped requests (older) resume before new ones are admitted, and nothing new is
  // admitted in a step that had to preempt.
  if (!preempted) PAGEDKV_RETURN_IF_ERROR(ScheduleSwapped(out, budget));
  if (!preempted && swapped_.empty()) PAGEDKV_RETURN_IF_ERROR(ScheduleWaiting(out, budget));
  out.num_batched_tokens = config_.max_num_batched_tokens - budget;
  TakeCacheOps(out);
  const KvPolicyCounters now = policy_->counters();
  out.copy_bytes = now.copy_bytes - last_counters_.copy_bytes;
  out.swap_bytes = (now.swap_out_bytes - last_counters_.swap_out_bytes) +
                   (now.swap_in_bytes - last_counters_.swap_in_bytes);
  last_counters_ = now;
  issued_.clear();
  for (const ScheduledSeq& e : out.scheduled) {
    issued_.push_back({e.seq_id, e.num_query_tokens, e.num_samples});
  }
  issued_completed_ = false;
  PAGEDKV_DCHECK_OK_EXPENSIVE(CheckInvariants());
  return out;
}

}  // namespace pagedkv
