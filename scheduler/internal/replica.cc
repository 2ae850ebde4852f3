#include "internal/replica.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "pagedkv/core/absl_compat.h"
#include "pagedkv/core/status.h"

namespace pagedkv::internal {
namespace {

// Token ids for generated tokens: a function of (sequence, position) only, so runs are
// reproducible and no two sequences produce equal generated blocks by accident.
TokenId GeneratedToken(SeqId seq, size_t position) {
  uint64_t x =
      seq * 0x9E3779B97F4A7C15ull + position * 0xC2B2AE3D27D4EB4Full + 0x165667B19E3779F9ull;
  x ^= x >> 31;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 29;
  return static_cast<TokenId>(x & 0x7FFFFFFFu);
}

double Ratio(int64_t part, int64_t whole) {
  return whole > 0 ? static_cast<double>(part) / static_cast<double>(whole) : 0.0;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Replica>> Replica::Create(int32_t id, const SimulatorConfig& config,
                                                         const SimulatorSizing& sizing,
                                                         Shared shared) {
  PolicyConfig pc;
  pc.kind = config.policy;
  pc.model = config.model;
  pc.block_size_tokens = config.block_size_tokens;
  pc.capacity_tokens = sizing.capacity_tokens;
  pc.host_capacity_tokens =
      config.scheduler.preemption_mode == PreemptionMode::kSwap
          ? static_cast<int64_t>(config.swap_space_bytes / sizing.kv_bytes_per_token)
          : 0;
  pc.max_model_len = sizing.max_model_len;
  pc.max_new_tokens = sizing.max_new_tokens;
  pc.extent_allocator = config.extent_allocator;
  pc.watermark = config.watermark;
  pc.enable_prefix_caching = config.enable_prefix_caching;
  pc.remote_store = shared.remote;
  PAGEDKV_ASSIGN_OR_RETURN(std::unique_ptr<KvCachePolicy> policy, MakeKvCachePolicy(pc));
  SimulatorConfig resolved = config;
  resolved.max_model_len = sizing.max_model_len;
  resolved.max_new_tokens = sizing.max_new_tokens;
  return std::unique_ptr<Replica>(new Replica(id, resolved, shared, std::move(policy)));
}

Replica::Replica(int32_t id, const SimulatorConfig& config, Shared shared,
                 std::unique_ptr<KvCachePolicy> policy)
    : id_(id),
      config_(config),
      shared_(shared),
      policy_(std::move(policy)),
      sched_(std::make_unique<Scheduler>(config.scheduler, policy_.get())),
      time_model_(config.gpu, config.compute),
      metrics_(config.max_timeline_rows),
      rng_(config.seed + static_cast<uint64_t>(id) * 0x9E3779B97F4A7C15ull) {
  last_counters_ = policy_->counters();
  last_row_.capacity_tokens = policy_->MemoryStats(nullptr).capacity_tokens;
}

absl::Status Replica::Enqueue(size_t record) {
  const Request& r = shared_.workload->requests[record];
  RequestRecord& rec = (*shared_.records)[record];
  rec.replica = id_;
  SchedulerRequest sr;
  sr.request_id = r.request_id;
  sr.max_output_tokens = r.output_tokens;
  sr.num_samples = r.num_samples;
  sr.beam_width = r.beam_width;
  // Lazy: a waiting request holds no token ids (an overloaded run queues most of the workload).
  sr.prompt_len = r.prompt_tokens;
  sr.prompt_source = [request = &r, block_size = config_.block_size_tokens] {
    return PromptTokenIds(*request, block_size);
  };
  if (shared_.remote != nullptr) remote_pending_.insert(r.request_id);
  const bool was_idle = !sched_->HasWork() || blocked_;
  PAGEDKV_RETURN_IF_ERROR(sched_->AddRequest(std::move(sr)));
  index_[r.request_id] = record;
  routed_.push_back(r.request_id);
  ++outstanding_;
  if (!started_) {
    now_ = r.arrival_time_s;
    started_ = true;
  } else if (was_idle) {
    now_ = std::max(now_, r.arrival_time_s);
  }
  blocked_ = false;
  return absl::OkStatus();
}

absl::StatusOr<Replica::StepResult> Replica::Step(bool more_arrivals) {
  PAGEDKV_ASSIGN_OR_RETURN(SchedulerOutput out, sched_->Step());
  std::vector<RequestRecord>& records = *shared_.records;
  for (size_t i = 0; i < out.rejected_requests.size(); ++i) {
    const uint64_t id = out.rejected_requests[i];
    RequestRecord& rec = records[index_.at(id)];
    rec.rejected = true;
    rec.reject_cause = out.rejection_causes[i];
    rec.rejected_too_long = rec.reject_cause == RejectCause::kTooLong;
    remote_pending_.erase(id);
    --outstanding_;
    ++done_;
  }
  if (out.empty()) {
    // Only preemptions or rejections happened, or nothing fits until more work arrives.
    if (out.preempted_requests.empty() && out.rejected_requests.empty()) {
      if (more_arrivals) {
        blocked_ = true;
        return StepResult::kBlocked;
      }
      if (++empty_steps_ > 3) {
        return absl::InternalError(
            absl::StrCat("policy ", AbslView(PolicyKindName(config_.policy)), ", replica ", id_,
                         ": scheduler stalled at t=", now_, "s with ", sched_->num_waiting(),
                         " waiting, ", sched_->num_running(), " running, ", sched_->num_swapped(),
                         " swapped requests and nothing schedulable"));
      }
    }
    if (!sched_->HasWork()) {
      last_row_ = TimelineRow{.capacity_tokens = last_row_.capacity_tokens};
      last_batch_ = 0;
    }
    return StepResult::kNoop;
  }
  empty_steps_ = 0;

  double tokens = 0;
  double pairs = 0;
  double touched = 0;
  for (const ScheduledSeq& e : out.scheduled) {
    const double q = e.num_query_tokens;
    const double c = e.num_context_tokens;
    tokens += q;
    pairs += q * c + q * (q + 1) / 2.0;
    touched += c + q;
    // A request's first appearance is its first admission: its context is the cached prefix.
    if (e.is_prefill) {
      RequestRecord& rec = records[index_.at(e.request_id)];
      if (rec.prefix_cached_tokens < 0) rec.prefix_cached_tokens = e.num_context_tokens;
    }
  }
  prompt_tokens_computed_ += out.num_prefill_tokens;
  const StepCost cost =
      time_model_.CostFromTotals(tokens, pairs, touched, {out.copy_bytes, out.swap_bytes});
  // Loads from the remote tier: serialized with the step, one round trip for all of them.
  const KvPolicyCounters counters = policy_->counters();
  double remote_s = 0;
  if (counters.remote_loads > last_counters_.remote_loads) {
    remote_s = shared_.remote_config.latency_s +
               static_cast<double>(counters.remote_load_bytes - last_counters_.remote_load_bytes) /
                   shared_.remote_config.bandwidth_bytes_per_s;
  }
  last_counters_ = counters;
  const double step_s = cost.total_s + remote_s;
  const double end = now_ + step_s;

  const KvMemoryStats mem = policy_->MemoryStats(sched_->NextAdmission());
  TimelineRow& row = last_row_;
  row.step = static_cast<int64_t>(out.step);
  row.time_s = end;
  row.running = sched_->num_running_seqs();
  row.waiting = sched_->num_waiting();
  row.swapped = sched_->num_swapped();
  row.batch_tokens = out.num_batched_tokens;
  row.capacity_tokens = mem.capacity_tokens;
  row.used_tokens = mem.used_tokens;
  row.reserved_unused_tokens = mem.reserved_unused_tokens;
  row.internal_frag_tokens = mem.internal_frag_tokens;
  row.external_frag_tokens = mem.external_frag_tokens;
  row.rounding_tokens = mem.rounding_tokens;
  row.shared_saved_tokens = mem.shared_saved_tokens;
  row.preemptions_total = sched_->total_preemptions();
  last_batch_ = static_cast<int64_t>(out.scheduled.size());
  metrics_.AddStep(row, last_batch_, step_s);

  // Sample: synthetic token ids; random parents for beam-search requests that decoded.
  samples_.tokens.clear();
  samples_.beams.clear();
  for (size_t i = 0; i < out.scheduled.size(); ++i) {
    const ScheduledSeq& e = out.scheduled[i];
    const size_t pos = static_cast<size_t>(e.num_context_tokens + e.num_query_tokens);
    for (int32_t k = 0; k < e.num_samples; ++k) {
      samples_.tokens.push_back(GeneratedToken(e.seq_id + static_cast<SeqId>(k), pos));
    }
    if (!e.is_prefill && (i == 0 || out.scheduled[i - 1].request_id != e.request_id)) {
      const Request& r = shared_.workload->requests[index_.at(e.request_id)];
      if (r.beam_width > 1) {
        size_t width = 0;
        while (i + width < out.scheduled.size() &&
               out.scheduled[i + width].request_id == e.request_id) {
          ++width;
        }
        BeamChoice choice;
        choice.request_id = e.request_id;
        for (size_t b = 0; b < width; ++b) {
          choice.parent_index.push_back(static_cast<int32_t>(rng_() % width));
        }
        samples_.beams.push_back(std::move(choice));
      }
    }
  }
  PAGEDKV_ASSIGN_OR_RETURN(StepCompletion done, sched_->CompleteStep(out, samples_));
  now_ = end;
  for (uint64_t id : done.first_token_requests) {
    RequestRecord& rec = records[index_.at(id)];
    if (rec.first_token_s < 0) rec.first_token_s = now_;
    // The prompt's pages are computed: written to the remote tier (asynchronously).
    if (remote_pending_.erase(id) > 0) {
      shared_.remote->Insert(
          PromptTokenIds(shared_.workload->requests[index_.at(id)], config_.block_size_tokens));
    }
  }
  for (uint64_t id : done.finished_requests) {
    RequestRecord& rec = records[index_.at(id)];
    rec.finish_s = now_;
    rec.preemptions = sched_->NumPreemptions(id);
    --outstanding_;
    ++done_;
  }
  if (!sched_->HasWork()) {
    last_row_ = TimelineRow{.capacity_tokens = row.capacity_tokens};
    last_batch_ = 0;
  }
  return StepResult::kStepped;
}

void Replica::FinishRecords() {
  for (uint64_t id : routed_) {
    RequestRecord& rec = (*shared_.records)[index_.at(id)];
    if (!rec.completed()) rec.preemptions = sched_->NumPreemptions(id);
  }
}

void Replica::FillCounters(PolicySummary& s) const {
  const KvPolicyCounters c = policy_->counters();
  s.prefix_hit_rate = Ratio(c.prefix_hit_tokens, c.prefix_query_tokens);
  s.remote_hit_rate = Ratio(c.remote_hit_tokens, c.prefix_query_tokens);
  s.remote_load_bytes = c.remote_load_bytes;
  s.preemptions = sched_->total_preemptions();
  s.swap_bytes = c.swap_out_bytes + c.swap_in_bytes;
  s.copy_bytes = c.copy_bytes;
  s.capacity_tokens = policy_->MemoryStats(nullptr).capacity_tokens;
  s.prompt_tokens_computed = prompt_tokens_computed_;
}

PolicySummary Replica::Summarize(absl::Span<const RequestRecord> records) const {
  PolicySummary s;
  s.policy = std::string(PolicyKindName(config_.policy));
  s.block_size = config_.policy == PolicyKind::kPaged ? config_.block_size_tokens : 0;
  SummarizeRequests(records, s);
  metrics_.FillSummary(s);
  FillCounters(s);
  return s;
}

}  // namespace pagedkv::internal
