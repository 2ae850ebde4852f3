// Scheduler::CompleteStep (applying one step's samples: forks, beam reorders, finished
// requests) and the scheduler's queries and invariant checker. Step() planning is in
// scheduler.cc; the per-request state both use is in internal/scheduler_state.h.
#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "internal/scheduler_state.h"
#include "pagedkv/core/check.h"
#include "pagedkv/core/status.h"
#include "pagedkv/scheduler/scheduler.h"

namespace pagedkv {

absl::Status Scheduler::CheckCompletable(const SchedulerOutput& out,
                                         const StepSamples& samples) const {
  if (step_ == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("CompleteStep: step ", out.step, " was never planned; call Step() first"));
  }
  const uint64_t last = step_ - 1;
  if (out.step != last) {
    return absl::InvalidArgumentError(absl::StrCat(
        "CompleteStep: the output of step ", out.step, " is stale; the last Step() was step ", last,
        ". Complete each step's output once, before the next Step()"));
  }
  if (issued_completed_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "CompleteStep: step ", out.step, " was already completed; call Step() for the next one"));
  }
  bool same = out.scheduled.size() == issued_.size();
  for (size_t i = 0; same && i < issued_.size(); ++i) {
    const ScheduledSeq& e = out.scheduled[i];
    same = IssuedEntry{e.seq_id, e.num_query_tokens, e.num_samples} == issued_[i];
  }
  if (!same) {
    return absl::InvalidArgumentError(
        absl::StrCat("CompleteStep: the scheduled entries of step ", out.step,
                     " differ from what Step() returned; pass its output unchanged"));
  }
  size_t expected = 0;
  for (const ScheduledSeq& e : out.scheduled) expected += static_cast<size_t>(e.num_samples);
  if (samples.tokens.size() != expected) {
    return absl::InvalidArgumentError(absl::StrCat("step ", out.step, ": expected ", expected,
                                                   " sampled tokens, got ", samples.tokens.size()));
  }
  // Beam choices: one per beam-search request that decodes in this step, one parent per beam,
  // each an index into the request's beams.
  absl::flat_hash_set<uint64_t> chosen;
  for (const BeamChoice& b : samples.beams) {
    size_t first = out.scheduled.size(), n = 0;
    for (size_t i = 0; i < out.scheduled.size(); ++i) {
      const ScheduledSeq& e = out.scheduled[i];
      if (e.request_id != b.request_id || e.is_prefill) continue;
      first = std::min(first, i);
      ++n;
    }
    auto git = groups_.find(b.request_id);
    if (n == 0 || git == groups_.end() || git->second->beam_width <= 1) {
      return absl::InvalidArgumentError(absl::StrCat("step ", out.step,
                                                     ": beam choice for request ", b.request_id,
                                                     ", which does not decode beams in this step"));
    }
    if (!chosen.insert(b.request_id).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("step ", out.step, ": two beam choices for request ", b.request_id));
    }
    if (b.parent_index.size() != n || n != git->second->seqs.size()) {
      return absl::InvalidArgumentError(absl::StrCat("request ", b.request_id, ": beam choice has ",
                                                     b.parent_index.size(), " parents for ", n,
                                                     " decoding beams"));
    }
    for (size_t k = 0; k < n; ++k) {
      if (b.parent_index[k] < 0 || static_cast<size_t>(b.parent_index[k]) >= n) {
        return absl::InvalidArgumentError(absl::StrCat("request ", b.request_id, ": parent_index[",
                                                       k, "] = ", b.parent_index[k],
                                                       " is not a beam index in [0, ", n, ")"));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<StepCompletion> Scheduler::CompleteStep(const SchedulerOutput& out,
                                                       const StepSamples& samples) {
  // Everything the caller can get wrong is checked first: a failed call changes nothing.
  PAGEDKV_RETURN_IF_ERROR(CheckCompletable(out, samples));
  issued_completed_ = true;
  StepCompletion done;
  size_t tok = 0;
  const auto& sched = out.scheduled;
  for (size_t i = 0; i < sched.size();) {
    size_t j = i;
    while (j < sched.size() && sched[j].request_id == sched[i].request_id) ++j;
    auto git = groups_.find(sched[i].request_id);
    // CheckCompletable matched `out` to the last Step(): its requests are running.
    PAGEDKV_CHECK(git != groups_.end() && git->second->state == Group::State::kRunning);
    Group* g = git->second.get();
    bool sampled = false;
    if (sched[i].is_prefill) {
      const ScheduledSeq& e = sched[i];
      Seq& s0 = g->seqs[0];
      s0.num_computed += e.num_query_tokens;
      // The forward pass wrote the chunk's K/V: its full pages may serve later prompts.
      PAGEDKV_RETURN_IF_ERROR(policy_->MarkComputed(s0.id, s0.num_computed));
      if (e.num_samples > 0) {
        sampled = true;
        if (e.num_samples > 1) {
          // The prompt is done: fork the other samples / beams; they share its pages.
          for (size_t k = 1; k < g->seqs.size(); ++k) {
            PAGEDKV_RETURN_IF_ERROR(policy_->Fork(s0.id, g->seqs[k].id));
            Seq& c = g->seqs[k];
            c.tokens = s0.tokens;
            c.num_computed = s0.num_computed;
            c.num_stored = s0.num_stored;
            c.live = true;
          }
          g->forked = true;
        }
        for (int32_t k = 0; k < e.num_samples; ++k)
          g->seqs[k].tokens.push_back(samples.tokens[tok++]);
        done.tokens_generated += e.num_samples;
        if (!g->first_token_done) {
          g->first_token_done = true;
          done.first_token_requests.push_back(g->request_id);
        }
      }
    } else {
      sampled = true;
      const size_t n = j - i;
      const BeamChoice* choice = nullptr;
      if (g->beam_width > 1) {
        for (const BeamChoice& b : samples.beams) {
          if (b.request_id == g->request_id) choice = &b;
        }
      }
      if (choice != nullptr) {
        std::vector<SeqId> ids;
        for (const Seq& s : g->seqs) ids.push_back(s.id);
        PAGEDKV_RETURN_IF_ERROR(policy_->ReorderBeams(ids, choice->parent_index));
        std::vector<std::vector<TokenId>> old(n);
        for (size_t k = 0; k < n; ++k) old[k] = g->seqs[k].tokens;
        for (size_t k = 0; k < n; ++k) g->seqs[k].tokens = old[choice->parent_index[k]];
      }
      for (size_t k = i; k < j; ++k) {
        Seq& s = g->seqs[sched[k].seq_id - g->seqs[0].id];
        s.num_computed += 1;
        PAGEDKV_RETURN_IF_ERROR(policy_->MarkComputed(s.id, s.num_computed));
        s.tokens.push_back(samples.tokens[tok++]);
      }
      done.tokens_generated += static_cast<int64_t>(n);
    }
    if (sampled && ++g->num_generated >= g->max_output) {
      PAGEDKV_RETURN_IF_ERROR(FreeGroup(g));
      RemoveRunning(g);
      g->state = Group::State::kFinished;
      for (Seq& s : g->seqs) std::vector<TokenId>().swap(s.tokens);
      done.finished_requests.push_back(g->request_id);
      finished_since_step_.push_back(g->request_id);
    }
    i = j;
  }
  return done;
}

int32_t Scheduler::NumPreemptions(uint64_t request_id) const {
  auto it = groups_.find(request_id);
  return it == groups_.end() ? 0 : it->second->num_preemptions;
}

absl::StatusOr<std::vector<TokenId>> Scheduler::SequenceTokens(SeqId seq) const {
  for (const auto& [id, g] : groups_) {
    if (g->state == Group::State::kFinished || seq < g->seqs[0].id ||
        seq >= g->seqs[0].id + g->seqs.size()) {
      continue;
    }
    if (!g->prompt_materialized && seq == g->seqs[0].id) return g->prompt_source();
    return g->seqs[seq - g->seqs[0].id].tokens;
  }
  return absl::NotFoundError(absl::StrCat("sequence ", seq, " is not live"));
}

absl::StatusOr<std::vector<SeqId>> Scheduler::RequestSeqIds(uint64_t request_id) const {
  auto it = groups_.find(request_id);
  if (it == groups_.end()) {
    return absl::NotFoundError(absl::StrCat("unknown request ", request_id));
  }
  std::vector<SeqId> ids;
  for (const Seq& s : it->second->seqs) ids.push_back(s.id);
  return ids;
}

absl::Status Scheduler::CheckInvariants() const {
  int32_t width = 0;
  for (size_t i = 0; i < running_.size(); ++i) {
    const Group* g = running_[i];
    if (g->state != Group::State::kRunning) {
      return absl::InternalError(absl::StrCat("request ", g->request_id, " in running queue"));
    }
    if (i > 0 && running_[i - 1]->arrival >= g->arrival) {
      return absl::InternalError("running queue not sorted by arrival");
    }
    width += Width(*g);
    for (int32_t k = 0; k < g->num_live(); ++k) {
      const Seq& s = g->seqs[k];
      if (s.num_computed > s.num_stored || s.num_stored > static_cast<int32_t>(s.tokens.size())) {
        return absl::InternalError(absl::StrCat("sequence ", s.id, ": computed ", s.num_computed,
                                                " stored ", s.num_stored, " tokens ",
                                                s.tokens.size()));
      }
      if (g->forked && static_cast<int32_t>(s.tokens.size()) != g->prompt_len + g->num_generated) {
        return absl::InternalError(absl::StrCat("sequence ", s.id, " has ", s.tokens.size(),
                                                " tokens; expected prompt ", g->prompt_len,
                                                " + generated ", g->num_generated));
      }
    }
  }
  if (width != running_seqs_) {
    return absl::InternalError(
        absl::StrCat("running width ", width, " != counter ", running_seqs_));
  }
  if (running_seqs_ > config_.max_num_seqs) {
    return absl::InternalError(
        absl::StrCat("running width ", running_seqs_, " > max_num_seqs ", config_.max_num_seqs));
  }
  for (const Group* g : waiting_) {
    if (g->state != Group::State::kWaiting) return absl::InternalError("bad waiting state");
  }
  for (const Group* g : swapped_) {
    if (g->state != Group::State::kSwapped) return absl::InternalError("bad swapped state");
  }
  return policy_->CheckInvariants();
}

}  // namespace pagedkv
