#include "pagedkv/scheduler/simulator.h"

#include <algorithm>
#include <random>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "pagedkv/core/absl_compat.h"
#include "pagedkv/core/status.h"

namespace pagedkv {
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

}  // namespace

absl::StatusOr<SimulatorSizing> ComputeSizing(const Workload& workload,
                                              const SimulatorConfig& config) {
  SimulatorSizing s;
  s.kv_bytes_per_token =
      config.model.BytesPerTokenPerLayer() * static_cast<uint64_t>(config.model.NumStorageLayers());
  if (s.kv_bytes_per_token == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("model '", config.model.name, "' stores no KV per token"));
  }
  if (config.kv_budget_bytes > 0) {
    s.kv_budget_bytes = config.kv_budget_bytes;
  } else {
    const uint64_t mem =
        config.gpu_memory_bytes > 0 ? config.gpu_memory_bytes : config.gpu.memory_bytes;
    const double usable = static_cast<double>(mem) * config.gpu_memory_fraction;
    const double weights = static_cast<double>(config.compute.weight_bytes);
    if (usable <= weights) {
      return absl::InvalidArgumentError(absl::StrCat(
          "no KV memory: ", config.gpu_memory_fraction, " of ", mem,
          " GPU bytes = ", static_cast<uint64_t>(usable), " <= ", config.compute.weight_bytes,
          " bytes of weights; use a larger GPU (--gpu-mem) or smaller weights (--weights)"));
    }
    s.kv_budget_bytes = static_cast<uint64_t>(usable - weights);
  }
  s.capacity_tokens = static_cast<int64_t>(s.kv_budget_bytes / s.kv_bytes_per_token);
  int64_t longest = 1;
  int64_t longest_out = 1;
  for (const Request& r : workload.requests) {
    longest = std::max<int64_t>(longest, static_cast<int64_t>(r.prompt_tokens) + r.output_tokens);
    longest_out = std::max<int64_t>(longest_out, r.output_tokens);
  }
  s.max_model_len = config.max_model_len > 0 ? config.max_model_len : static_cast<int32_t>(longest);
  s.max_new_tokens =
      config.max_new_tokens > 0 ? config.max_new_tokens : static_cast<int32_t>(longest_out);
  return s;
}

absl::StatusOr<PolicyRunResult> Simulate(const Workload& workload, const SimulatorConfig& config) {
  PAGEDKV_RETURN_IF_ERROR(config.scheduler.Validate());
  PAGEDKV_ASSIGN_OR_RETURN(SimulatorSizing sizing, ComputeSizing(workload, config));
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
  pc.watermark = config.watermark;
  pc.enable_prefix_caching = config.enable_prefix_caching;
  PAGEDKV_ASSIGN_OR_RETURN(std::unique_ptr<KvCachePolicy> policy, MakeKvCachePolicy(pc));
  Scheduler sched(config.scheduler, policy.get());
  const StepTimeModel time_model(config.gpu, config.compute);

  PolicyRunResult result;
  result.requests.resize(workload.requests.size());
  absl::flat_hash_map<uint64_t, size_t> index;
  index.reserve(workload.requests.size());
  for (size_t i = 0; i < workload.requests.size(); ++i) {
    const Request& r = workload.requests[i];
    RequestRecord& rec = result.requests[i];
    rec.request_id = r.request_id;
    rec.arrival_s = r.arrival_time_s;
    rec.prompt_tokens = r.prompt_tokens;
    rec.output_tokens = r.output_tokens;
    rec.num_seqs = std::max(r.num_samples, r.beam_width);
    index[r.request_id] = i;
  }

  MetricsCollector metrics(config.max_timeline_rows);
  std::mt19937_64 rng(config.seed);
  StepSamples samples;
  const size_t n = workload.requests.size();
  size_t next = 0;
  size_t done_requests = 0;
  size_t last_progress = 0;
  double now = n > 0 ? workload.requests[0].arrival_time_s : 0;
  int empty_steps = 0;
  while (next < n || sched.HasWork()) {
    while (next < n && workload.requests[next].arrival_time_s <= now) {
      const Request& r = workload.requests[next];
      SchedulerRequest sr;
      sr.request_id = r.request_id;
      sr.prompt = PromptTokenIds(r, config.block_size_tokens);
      sr.max_output_tokens = r.output_tokens;
      sr.num_samples = r.num_samples;
      sr.beam_width = r.beam_width;
      PAGEDKV_RETURN_IF_ERROR(sched.AddRequest(std::move(sr)));
      ++next;
    }
    if (!sched.HasWork()) {
      now = std::max(now, workload.requests[next].arrival_time_s);
      continue;
    }
    PAGEDKV_ASSIGN_OR_RETURN(SchedulerOutput out, sched.Step());
    for (uint64_t id : out.rejected_requests) {
      result.requests[index[id]].rejected = true;
      ++done_requests;
    }
    if (out.empty()) {
      // Only preemptions or rejections happened, or nothing fits until more work arrives.
      if (out.preempted_requests.empty() && out.rejected_requests.empty()) {
        if (next < n) {
          now = std::max(now, workload.requests[next].arrival_time_s);
          continue;
        }
        if (++empty_steps > 3) {
          return absl::InternalError(absl::StrCat(
              "policy ", AbslView(PolicyKindName(config.policy)), ": scheduler stalled at t=", now,
              "s with ", sched.num_waiting(), " waiting, ", sched.num_running(), " running, ",
              sched.num_swapped(), " swapped requests and nothing schedulable"));
        }
      }
      continue;
    }
    empty_steps = 0;

    double tokens = 0;
    double pairs = 0;
    double touched = 0;
    size_t num_samples = 0;
    for (const ScheduledSeq& e : out.scheduled) {
      const double q = e.num_query_tokens;
      const double c = e.num_context_tokens;
      tokens += q;
      pairs += q * c + q * (q + 1) / 2.0;
      touched += c + q;
      num_samples += static_cast<size_t>(e.num_samples);
    }
    const StepCost cost =
        time_model.CostFromTotals(tokens, pairs, touched, {out.copy_bytes, out.swap_bytes});
    const double end = now + cost.total_s;

    const KvMemoryStats mem = policy->MemoryStats(sched.NextAdmission());
    TimelineRow row;
    row.step = static_cast<int64_t>(out.step);
    row.time_s = end;
    row.running = sched.num_running_seqs();
    row.waiting = sched.num_waiting();
    row.swapped = sched.num_swapped();
    row.batch_tokens = out.num_batched_tokens;
    row.capacity_tokens = mem.capacity_tokens;
    row.used_tokens = mem.used_tokens;
    row.reserved_unused_tokens = mem.reserved_unused_tokens;
    row.internal_frag_tokens = mem.internal_frag_tokens;
    row.external_frag_tokens = mem.external_frag_tokens;
    row.shared_saved_tokens = mem.shared_saved_tokens;
    row.preemptions_total = sched.total_preemptions();
    metrics.AddStep(row, static_cast<int64_t>(out.scheduled.size()), cost.total_s);

    // Sample: synthetic token ids; random parents for beam-search requests that decoded.
    samples.tokens.clear();
    samples.beams.clear();
    for (size_t i = 0; i < out.scheduled.size(); ++i) {
      const ScheduledSeq& e = out.scheduled[i];
      const size_t pos = static_cast<size_t>(e.num_context_tokens + e.num_query_tokens);
      for (int32_t k = 0; k < e.num_samples; ++k) {
        samples.tokens.push_back(GeneratedToken(e.seq_id + static_cast<SeqId>(k), pos));
      }
      if (!e.is_prefill && (i == 0 || out.scheduled[i - 1].request_id != e.request_id)) {
        const Request& r = workload.requests[index[e.request_id]];
        if (r.beam_width > 1) {
          size_t width = 0;
          while (i + width < out.scheduled.size() &&
                 out.scheduled[i + width].request_id == e.request_id) {
            ++width;
          }
          BeamChoice choice;
          choice.request_id = e.request_id;
          for (size_t b = 0; b < width; ++b) {
            choice.parent_index.push_back(static_cast<int32_t>(rng() % width));
          }
          samples.beams.push_back(std::move(choice));
        }
      }
    }
    (void)num_samples;
    PAGEDKV_ASSIGN_OR_RETURN(StepCompletion done, sched.CompleteStep(out, samples));
    now = end;
    for (uint64_t id : done.first_token_requests) {
      RequestRecord& rec = result.requests[index[id]];
      if (rec.first_token_s < 0) rec.first_token_s = now;
    }
    for (uint64_t id : done.finished_requests) {
      RequestRecord& rec = result.requests[index[id]];
      rec.finish_s = now;
      rec.preemptions = sched.NumPreemptions(id);
      ++done_requests;
    }
    if (config.progress && n > 0 && done_requests - last_progress >= std::max<size_t>(n / 200, 1)) {
      last_progress = done_requests;
      config.progress(static_cast<double>(done_requests) / static_cast<double>(n));
    }
  }
  for (RequestRecord& rec : result.requests) {
    if (!rec.completed()) rec.preemptions = sched.NumPreemptions(rec.request_id);
  }
  if (config.progress) config.progress(1.0);

  PolicySummary& s = result.summary;
  s.policy = std::string(PolicyKindName(config.policy));
  s.block_size = config.policy == PolicyKind::kPaged ? config.block_size_tokens : 0;
  SummarizeRequests(result.requests, s);
  metrics.FillSummary(s);
  const KvPolicyCounters c = policy->counters();
  s.prefix_hit_rate = c.prefix_query_tokens > 0 ? static_cast<double>(c.prefix_hit_tokens) /
                                                      static_cast<double>(c.prefix_query_tokens)
                                                : 0.0;
  s.preemptions = sched.total_preemptions();
  s.swap_bytes = c.swap_out_bytes + c.swap_in_bytes;
  s.copy_bytes = c.copy_bytes;
  s.capacity_tokens = policy->MemoryStats(nullptr).capacity_tokens;
  result.timeline = metrics.timeline();
  return result;
}

}  // namespace pagedkv
