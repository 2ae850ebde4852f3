// Private to scheduler/: the Scheduler's per-request state (Scheduler::Seq and Scheduler::Group),
// shared by scheduler.cc (planning a step) and scheduler_completion.cc (applying its samples).
#ifndef PAGEDKV_SCHEDULER_INTERNAL_SCHEDULER_STATE_H_
#define PAGEDKV_SCHEDULER_INTERNAL_SCHEDULER_STATE_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "pagedkv/scheduler/scheduler.h"

namespace pagedkv {

// A sequence's tokens are prompt + generated. Slots exist in the policy for the first num_stored
// of them; the first num_computed have K/V written (reported to the policy with MarkComputed after
// each step). Decoding: num_stored == num_computed == tokens.size() - 1 before the step appends
// the newest token's slot. Prefill: num_computed < the group's prefill_target; num_stored is the
// target, or (policies that allocate a prefill by chunk) the end of the chunks given slots so far.
struct Scheduler::Seq {
  SeqId id = 0;
  std::vector<TokenId> tokens;
  int32_t num_computed = 0;
  int32_t num_stored = 0;
  bool live = false;  // known to the policy (admitted or forked)
};

// One request (a group of width max(n, beams) sequences). A request added with a prompt_source
// holds no token ids while it waits: seqs[0].tokens stays empty until its admission is first
// considered (Scheduler::EnsurePrompt), so a long queue costs a few dozen bytes per request.
struct Scheduler::Group {
  enum class State : uint8_t { kWaiting, kRunning, kSwapped, kFinished };
  uint64_t request_id = 0;
  uint64_t arrival = 0;  // FCFS rank
  int32_t prompt_len = 0;
  int32_t max_output = 1;
  int32_t num_samples = 1;
  int32_t beam_width = 1;
  std::vector<Seq> seqs;      // width of them; seqs[k].id == seqs[0].id + k
  int32_t num_generated = 0;  // per live sequence
  bool forked = false;        // seqs[1..] are live
  bool first_token_done = false;
  // The prompt is in seqs[0].tokens. False only while a lazily added request waits.
  bool prompt_materialized = true;
  std::function<std::vector<TokenId>()> prompt_source;  // set until the prompt is materialized
  int32_t num_preemptions = 0;
  // Tokens the current admission's prefill computes: the prompt, plus the generated tokens after
  // a recompute preemption (seqs[0].tokens.size() when admitted).
  int32_t prefill_target = 0;
  State state = State::kWaiting;

  int32_t num_live() const { return forked ? static_cast<int32_t>(seqs.size()) : 1; }
  // Prefill: the admitted tokens are not all computed yet.
  bool in_prefill() const { return !forked && seqs[0].num_computed < prefill_target; }
  // Tokens seqs[0] holds or will hold once materialized.
  int32_t stored_len() const {
    return prompt_materialized ? static_cast<int32_t>(seqs[0].tokens.size()) : prompt_len;
  }
};

}  // namespace pagedkv

#endif  // PAGEDKV_SCHEDULER_INTERNAL_SCHEDULER_STATE_H_
