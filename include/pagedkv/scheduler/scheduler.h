// Scheduler: FCFS continuous batching over a KvCachePolicy (a BlockManager for `paged`). Each
// Step() picks the batch (decodes and prefill chunks within the token budget), admits waiting
// requests whose memory fits above the watermark, and preempts the newest requests (recompute or
// swap) when running ones cannot grow. Deterministic: no clock, no threads.
//
//   Scheduler sched(config, policy.get());
//   sched.AddRequest({.request_id = 7, .prompt = ids, .max_output_tokens = 128});
//   while (sched.HasWork()) {
//     PAGEDKV_ASSIGN_OR_RETURN(SchedulerOutput out, sched.Step());
//     ... run the model on out.scheduled, execute out.cache_ops ...
//     PAGEDKV_ASSIGN_OR_RETURN(StepCompletion done, sched.CompleteStep(out, samples));
//   }
#ifndef PAGEDKV_SCHEDULER_SCHEDULER_H_
#define PAGEDKV_SCHEDULER_SCHEDULER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "pagedkv/block_manager/cache_ops.h"
#include "pagedkv/core/types.h"
#include "pagedkv/scheduler/policy.h"

namespace pagedkv {

enum class PreemptionMode : uint8_t {
  kRecompute = 0,  // free the pages; the request re-runs its prompt and generated tokens later
  kSwap = 1,       // move the pages to host memory; falls back to recompute without host space
};
std::string_view PreemptionModeName(PreemptionMode mode);  // "recompute", "swap"
absl::StatusOr<PreemptionMode> ParsePreemptionMode(std::string_view name);

struct SchedulerConfig {
  int32_t max_num_seqs = 256;             // sequences in the running batch (a group counts n)
  int32_t max_num_batched_tokens = 8192;  // query tokens per step (prefill chunks + decodes)
  bool enable_chunked_prefill = true;     // split prompts over steps to fill the token budget
  PreemptionMode preemption_mode = PreemptionMode::kRecompute;

  // InvalidArgument for values < 1.
  absl::Status Validate() const;
};

// A request as the scheduler sees it. Generation stops after max_output_tokens per sequence.
struct SchedulerRequest {
  uint64_t request_id = 0;
  std::vector<TokenId> prompt;    // >= 1 token (or empty with prompt_source)
  int32_t max_output_tokens = 1;  // >= 1
  int32_t num_samples = 1;        // n: parallel sampling, sequences fork after the prompt
  int32_t beam_width = 1;         // beam search: the beams fork after the prompt and reorder
  // A lazy prompt instead of `prompt` (left empty): prompt_len tokens that prompt_source() returns
  // when the scheduler first considers admitting the request. Until then the request holds no
  // token ids, so a long waiting queue (an overloaded simulation) stays small. prompt_source must
  // return the same prompt_len tokens on every call.
  int32_t prompt_len = 0;
  std::function<std::vector<TokenId>()> prompt_source;
};

// Why a request was rejected (it can never run).
enum class RejectCause : uint8_t {
  kTooLong = 0,      // prompt + output > max_model_len
  kMemory = 1,       // larger than the whole KV memory (its pages or its reservation)
  kWatermark = 2,    // fits the KV memory, but not with the watermark kept free
  kTokenBudget = 3,  // prompt (chunked prefill off) or group width > max_num_batched_tokens
  kMaxNumSeqs = 4,   // group width (n or beams) > max_num_seqs
};
// "too_long", "memory", "watermark", "token_budget", "max_num_seqs".
std::string_view RejectCauseName(RejectCause cause);

// One sequence's share of a step.
struct ScheduledSeq {
  SeqId seq_id = 0;
  uint64_t request_id = 0;
  int32_t num_query_tokens = 0;    // tokens computed this step (prefill chunk or 1)
  int32_t num_context_tokens = 0;  // tokens already computed before this step
  bool is_prefill = false;
  // Tokens the engine samples for this entry: 0 (a prefill chunk that does not end the prompt),
  // 1, or the group's width when the prompt ends and the group then forks (n > 1, beams).
  int32_t num_samples = 0;
};

// What one step runs and what memory it moves.
struct SchedulerOutput {
  uint64_t step = 0;
  std::vector<ScheduledSeq> scheduled;  // running requests in FCFS order, then new admissions
  CacheOps cache_ops;                   // swaps and copies to execute before the model runs
  std::vector<SeqId> preempted_seqs;    // preempted in this step
  std::vector<uint64_t> preempted_requests;
  std::vector<uint64_t> swapped_in_requests;
  // Requests dropped because they can never fit (prompt larger than the KV memory, or larger
  // than max_num_batched_tokens without chunked prefill), and why (same order).
  std::vector<uint64_t> rejected_requests;
  std::vector<RejectCause> rejection_causes;
  // Requests finished by the previous CompleteStep (their sequences are freed).
  std::vector<uint64_t> finished_requests;
  int32_t num_batched_tokens = 0;
  int32_t num_prefill_tokens = 0;
  int32_t num_decode_tokens = 0;
  int32_t num_cached_prompt_tokens = 0;  // prompt tokens of this step's admissions hit in cache
  // Bytes the policy moved for this step (device copies, swaps), from its counters.
  uint64_t copy_bytes = 0;
  uint64_t swap_bytes = 0;
  bool empty() const { return scheduled.empty(); }
};

// Beam search: new beam i of `request_id` continues old beam parent_index[i].
struct BeamChoice {
  uint64_t request_id = 0;
  std::vector<int32_t> parent_index;
};

// What the engine sampled for a step.
struct StepSamples {
  // out.scheduled[i].num_samples tokens per entry, flattened in order.
  std::vector<TokenId> tokens;
  // One per beam-search request that decoded in the step (missing = every beam keeps itself).
  std::vector<BeamChoice> beams;
};

struct StepCompletion {
  std::vector<uint64_t> first_token_requests;  // produced their first token in this step
  std::vector<uint64_t> finished_requests;     // done; their sequences are freed
  int64_t tokens_generated = 0;                // tokens appended to sequences in this step
};

// Request (group) lifecycle, one state at a time:
//   waiting   arrived or preempted by recompute; holds no memory      -> running (admitted)
//   running   holds memory; decodes or runs prefill chunks            -> finished (all tokens),
//             -> waiting (recompute preemption), -> swapped (swap preemption)
//   swapped   pages in host memory                                    -> running (swap in)
//   finished  freed, reported once in StepCompletion / SchedulerOutput
// Invariants: running is sorted by arrival; sum of running groups' widths <= max_num_seqs after
// each Step(); a group's live sequences all have the same number of generated tokens.
class Scheduler {
 public:
  // `policy` is not owned and must outlive the scheduler.
  Scheduler(SchedulerConfig config, KvCachePolicy* policy);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a request (FCFS by call order). InvalidArgument for an empty prompt (and no
  // prompt_source with prompt_len >= 1), a prompt longer than kMaxPromptTokens, widths outside
  // [1, kMaxGroupWidth], or both n > 1 and beams; AlreadyExists for a known request id.
  absl::Status AddRequest(SchedulerRequest request);
  // Longest prompt AddRequest accepts (the block manager's longest sequence), and the widest
  // group (num_samples or beam_width).
  static constexpr int32_t kMaxPromptTokens = (1 << 30) - 1;
  static constexpr int32_t kMaxGroupWidth = 1024;

  // Plans the next step. Fails only on an internal inconsistency (a policy call that its own
  // Can* check allowed), or when a lazy prompt_source returns the wrong number of tokens.
  absl::StatusOr<SchedulerOutput> Step();
  // Applies the sampled tokens of `out`, which must be the output of the last Step(), completed
  // once. InvalidArgument (nothing changes) for an output already completed, an older (stale) or
  // altered one, or when the token count or a beam choice does not match `out`.
  absl::StatusOr<StepCompletion> CompleteStep(const SchedulerOutput& out,
                                              const StepSamples& samples);

  bool HasWork() const { return !waiting_.empty() || !running_.empty() || !swapped_.empty(); }
  int64_t num_waiting() const { return static_cast<int64_t>(waiting_.size()); }
  int64_t num_running() const { return static_cast<int64_t>(running_.size()); }
  int64_t num_swapped() const { return static_cast<int64_t>(swapped_.size()); }
  int32_t num_running_seqs() const { return running_seqs_; }
  int64_t total_preemptions() const { return total_preemptions_; }
  // The head of the waiting queue as an admission request (for fragmentation probes), or null.
  const AdmitRequest* NextAdmission() const;

  // Per-request facts (NotFound after the request finished and was forgotten: never, here).
  int32_t NumPreemptions(uint64_t request_id) const;
  // The tokens of a live sequence (prompt + generated), or NotFound.
  absl::StatusOr<std::vector<TokenId>> SequenceTokens(SeqId seq) const;
  // The sequence ids of a request (index 0 = the first; forks follow), or NotFound.
  absl::StatusOr<std::vector<SeqId>> RequestSeqIds(uint64_t request_id) const;

  const SchedulerConfig& config() const { return config_; }
  KvCachePolicy* policy() const { return policy_; }

  // Queue membership and sorting, running width <= max_num_seqs, token counts per sequence.
  absl::Status CheckInvariants() const;

 private:
  struct Seq;
  struct Group;

  absl::Status ScheduleRunning(SchedulerOutput& out, int32_t& budget, bool& preempted_any);
  // Gives s.tokens[num_stored, end) slots, preempting the newest running group while memory is
  // short; self_preempted when that was g itself.
  absl::Status StoreTokens(Group* g, Seq& s, int32_t end, SchedulerOutput& out, bool& preempted_any,
                           bool& self_preempted);
  absl::Status ScheduleSwapped(SchedulerOutput& out, int32_t& budget);
  absl::Status ScheduleWaiting(SchedulerOutput& out, int32_t& budget);
  // Rejects the head of the waiting queue (it can never run).
  void RejectHead(SchedulerOutput& out, RejectCause cause);
  // Fills seqs[0].tokens of a lazily added request from its prompt_source.
  absl::Status EnsurePrompt(Group* g);
  // InvalidArgument unless `out` is the last Step()'s output, not yet completed, unaltered.
  absl::Status CheckCompletable(const SchedulerOutput& out, const StepSamples& samples) const;
  // Swap (when allowed, configured and possible) or recompute.
  absl::Status Preempt(Group* g, SchedulerOutput& out, bool allow_swap);
  // Moves the policy's pending cache operations into out.cache_ops (appending).
  void TakeCacheOps(SchedulerOutput& out);
  absl::Status FreeGroup(Group* g);
  AdmitRequest MakeAdmitRequest(const Group& g) const;
  void InsertByArrival(std::deque<Group*>& queue, Group* g);
  void RemoveRunning(Group* g);
  int32_t Width(const Group& g) const;

  SchedulerConfig config_;
  KvCachePolicy* policy_;
  absl::flat_hash_map<uint64_t, std::unique_ptr<Group>> groups_;
  std::deque<Group*> waiting_;   // arrival order
  std::vector<Group*> running_;  // arrival order
  std::deque<Group*> swapped_;   // arrival order
  std::vector<uint64_t> finished_since_step_;
  int32_t running_seqs_ = 0;
  uint64_t next_seq_id_ = 1;
  uint64_t next_arrival_ = 0;
  uint64_t step_ = 0;
  int64_t total_preemptions_ = 0;
  // The last Step()'s output as CompleteStep must see it: (seq, query tokens, samples) per entry.
  struct IssuedEntry {
    SeqId seq_id;
    int32_t num_query_tokens;
    int32_t num_samples;
    bool operator==(const IssuedEntry&) const = default;
  };
  std::vector<IssuedEntry> issued_;
  bool issued_completed_ = true;  // no Step() yet, or its output was completed
  KvPolicyCounters last_counters_;
  CacheOps pending_ops_;  // scratch of TakeCacheOps
  mutable AdmitRequest next_admission_;
};

}  // namespace pagedkv

#endif  // PAGEDKV_SCHEDULER_SCHEDULER_H_
