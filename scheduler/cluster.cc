// The cluster driver: routes each request at its arrival time to one of N Replicas and steps the
// replica whose clock is earliest, so every routing decision sees the replicas as they are at
// that time. One replica is the plain Simulator (simulator.cc calls this with N = 1).
#include "pagedkv/scheduler/cluster.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "internal/remote_tier.h"
#include "internal/replica.h"
#include "pagedkv/core/absl_compat.h"
#include "pagedkv/core/status.h"

namespace pagedkv {
namespace {

using internal::Replica;

constexpr std::pair<RouterKind, std::string_view> kRouterNames[] = {
    {RouterKind::kRoundRobin, "round-robin"},
    {RouterKind::kLeastLoaded, "least-loaded"},
    {RouterKind::kPrefixAware, "prefix-aware"},
};

double Ratio(double part, double whole) { return whole > 0 ? part / whole : 0.0; }

// Picks the replica for one request. Replicas are compared by (their criterion, load, index).
class Router {
 public:
  Router(const ClusterConfig& config) : config_(config) {}

  // `request`'s prompt is made (PromptTokenIds at `block_size`) only for prefix-aware routing.
  size_t Route(const std::vector<std::unique_ptr<Replica>>& replicas, const Request& request,
               int32_t block_size) {
    const size_t n = replicas.size();
    if (n == 1) return 0;
    switch (config_.router) {
      case RouterKind::kRoundRobin:
        return next_++ % n;
      case RouterKind::kLeastLoaded:
        return LeastLoaded(replicas);
      case RouterKind::kPrefixAware:
        break;
    }
    int64_t min_load = std::numeric_limits<int64_t>::max();
    for (const auto& r : replicas) min_load = std::min(min_load, r->outstanding());
    const double bound = static_cast<double>(min_load) * config_.prefix_balance_factor +
                         static_cast<double>(config_.prefix_balance_slack);
    size_t best = LeastLoaded(replicas);
    int32_t best_cached = 0;
    const std::vector<TokenId> prompt = PromptTokenIds(request, block_size);
    for (size_t i = 0; i < n; ++i) {
      const int64_t load = replicas[i]->outstanding();
      if (static_cast<double>(load) > bound) continue;
      const int32_t cached = replicas[i]->CachedPrefixTokens(prompt);
      if (cached > best_cached ||
          (cached == best_cached && cached > 0 && load < replicas[best]->outstanding())) {
        best = i;
        best_cached = cached;
      }
    }
    return best;
  }

 private:
  // The fewest unfinished requests; ties go to the first replica at or after a cursor that moves
  // on every call, so equally loaded replicas take turns (a fixed tie order would favour
  // replica 0 whenever the cluster is lightly loaded).
  size_t LeastLoaded(const std::vector<std::unique_ptr<Replica>>& replicas) {
    const size_t n = replicas.size();
    const size_t start = tie_cursor_++ % n;
    size_t best = start;
    for (size_t k = 1; k < n; ++k) {
      const size_t i = (start + k) % n;
      if (replicas[i]->outstanding() < replicas[best]->outstanding()) best = i;
    }
    return best;
  }

  const ClusterConfig& config_;
  uint64_t next_ = 0;        // round-robin
  uint64_t tie_cursor_ = 0;  // least-loaded ties
};

// The cluster's memory over time: the sum of every replica's state during its latest step,
// sampled whenever a replica steps (an idle replica contributes its capacity only).
class ClusterTimeline {
 public:
  explicit ClusterTimeline(int64_t max_rows) : metrics_(max_rows) {}

  // The sums held over [last sample, t): recorded with weight t - last, then the caller steps.
  void Sample(const std::vector<std::unique_ptr<Replica>>& replicas, double t) {
    if (!started_) {
      started_ = true;
      last_t_ = t;
      return;
    }
    if (t <= last_t_) return;
    TimelineRow sum;
    int64_t batch = 0;
    for (const auto& r : replicas) {
      const TimelineRow& row = r->last_row();
      sum.running += row.running;
      sum.waiting += row.waiting;
      sum.swapped += row.swapped;
      sum.batch_tokens += row.batch_tokens;
      sum.capacity_tokens += row.capacity_tokens;
      sum.used_tokens += row.used_tokens;
      sum.reserved_unused_tokens += row.reserved_unused_tokens;
      sum.internal_frag_tokens += row.internal_frag_tokens;
      sum.external_frag_tokens += row.external_frag_tokens;
      sum.rounding_tokens += row.rounding_tokens;
      sum.shared_saved_tokens += row.shared_saved_tokens;
      sum.preemptions_total += row.preemptions_total;
      batch += r->last_batch();
    }
    sum.step = samples_++;
    sum.time_s = t;
    metrics_.AddStep(sum, batch, t - last_t_);
    last_t_ = t;
  }
  const MetricsCollector& metrics() const { return metrics_; }

 private:
  MetricsCollector metrics_;
  bool started_ = false;
  double last_t_ = 0;
  int64_t samples_ = 0;
};

PolicySummary ClusterSummary(const ClusterConfig& config,
                             const std::vector<std::unique_ptr<Replica>>& replicas,
                             absl::Span<const RequestRecord> records,
                             const ClusterTimeline& timeline) {
  PolicySummary s;
  s.policy = std::string(PolicyKindName(config.replica.policy));
  s.router = std::string(RouterKindName(config.router));
  s.block_size = config.replica.policy == PolicyKind::kPaged ? config.replica.block_size_tokens : 0;
  SummarizeRequests(records, s);
  timeline.metrics().FillSummary(s);
  int64_t queries = 0, hits = 0, remote_hits = 0;
  s.num_steps = 0;
  s.busy_s = 0;
  for (const auto& r : replicas) {
    const KvPolicyCounters c = r->counters();
    queries += c.prefix_query_tokens;
    hits += c.prefix_hit_tokens;
    remote_hits += c.remote_hit_tokens;
    s.remote_load_bytes += c.remote_load_bytes;
    s.swap_bytes += c.swap_out_bytes + c.swap_in_bytes;
    s.copy_bytes += c.copy_bytes;
    s.preemptions += r->total_preemptions();
    s.capacity_tokens += r->capacity_tokens();
    s.prompt_tokens_computed += r->prompt_tokens_computed();
    const PolicySummary own = r->Summarize({});
    s.num_steps += own.num_steps;
    s.busy_s += own.busy_s;
  }
  s.prefix_hit_rate = Ratio(static_cast<double>(hits), static_cast<double>(queries));
  s.remote_hit_rate = Ratio(static_cast<double>(remote_hits), static_cast<double>(queries));
  return s;
}

}  // namespace

std::string_view RouterKindName(RouterKind kind) {
  for (const auto& [k, name] : kRouterNames) {
    if (k == kind) return name;
  }
  return "unknown";
}

absl::StatusOr<RouterKind> ParseRouterKind(std::string_view name) {
  const std::string lower = absl::AsciiStrToLower(AbslView(name));
  for (const auto& [k, n] : kRouterNames) {
    if (n == lower) return k;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown router '", AbslView(name), "'; routers: ", absl::StrJoin(RouterKindNames(), ", ")));
}

std::vector<std::string> RouterKindNames() {
  std::vector<std::string> names;
  for (const auto& [k, n] : kRouterNames) names.emplace_back(n);
  return names;
}

absl::Status CheckSimulation(const Workload& workload, const ClusterConfig& config) {
  const SimulatorConfig& rc = config.replica;
  // A NaN or unsorted arrival would stall the driver loop; lengths beyond the limits would cost
  // memory before being rejected.
  PAGEDKV_RETURN_IF_ERROR(workload.Validate());
  if (config.num_replicas < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("cluster: num_replicas must be >= 1, got ", config.num_replicas));
  }
  if (!(config.prefix_balance_factor >= 1) || !std::isfinite(config.prefix_balance_factor) ||
      config.prefix_balance_slack < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cluster: prefix_balance_factor must be a finite number >= 1 and prefix_balance_slack >= "
        "0, got ",
        config.prefix_balance_factor, " and ", config.prefix_balance_slack));
  }
  if (config.remote.capacity_bytes > 0 &&
      !(config.remote.bandwidth_bytes_per_s > 0 && config.remote.latency_s >= 0 &&
        std::isfinite(config.remote.bandwidth_bytes_per_s) &&
        std::isfinite(config.remote.latency_s))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cluster: the remote tier needs a bandwidth > 0 and a latency >= 0, got ",
        config.remote.bandwidth_bytes_per_s, " bytes/s and ", config.remote.latency_s, " s"));
  }
  PAGEDKV_RETURN_IF_ERROR(rc.scheduler.Validate());
  PAGEDKV_ASSIGN_OR_RETURN(SimulatorSizing sizing, ComputeSizing(workload, rc));
  // One replica's policy, built and dropped: its config errors (a watermark out of range, a
  // block larger than the KV capacity) surface here rather than after earlier runs.
  Replica::Shared shared{&workload, nullptr, nullptr, config.remote};
  PAGEDKV_ASSIGN_OR_RETURN(std::unique_ptr<Replica> probe, Replica::Create(0, rc, sizing, shared));
  return absl::OkStatus();
}

absl::StatusOr<PolicyRunResult> SimulateCluster(const Workload& workload,
                                                const ClusterConfig& config) {
  const SimulatorConfig& rc = config.replica;
  PAGEDKV_RETURN_IF_ERROR(CheckSimulation(workload, config));
  const bool remote_on = config.remote.capacity_bytes > 0;
  PAGEDKV_ASSIGN_OR_RETURN(SimulatorSizing sizing, ComputeSizing(workload, rc));

  PolicyRunResult result;
  const size_t n = workload.requests.size();
  result.requests.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const Request& r = workload.requests[i];
    RequestRecord& rec = result.requests[i];
    rec.request_id = r.request_id;
    rec.arrival_s = r.arrival_time_s;
    rec.prompt_tokens = r.prompt_tokens;
    rec.output_tokens = r.output_tokens;
    rec.num_seqs = std::max(r.num_samples, r.beam_width);
  }
  std::unique_ptr<internal::RemotePrefixStore> remote;
  if (remote_on && rc.policy == PolicyKind::kPaged && rc.enable_prefix_caching) {
    const uint64_t page_bytes =
        sizing.kv_bytes_per_token * static_cast<uint64_t>(rc.block_size_tokens);
    remote = std::make_unique<internal::RemotePrefixStore>(
        static_cast<int64_t>(config.remote.capacity_bytes / page_bytes), rc.block_size_tokens);
  }
  Replica::Shared shared{&workload, &result.requests, remote.get(), config.remote};
  std::vector<std::unique_ptr<Replica>> replicas;
  for (int32_t i = 0; i < config.num_replicas; ++i) {
    PAGEDKV_ASSIGN_OR_RETURN(std::unique_ptr<Replica> r, Replica::Create(i, rc, sizing, shared));
    replicas.push_back(std::move(r));
  }

  Router router(config);
  ClusterTimeline timeline(rc.max_timeline_rows);
  const bool cluster = config.num_replicas > 1;
  size_t next = 0;
  int64_t last_progress = 0;
  uint64_t iterations = 0;
  while (true) {
    if (rc.cancel && ++iterations % 256 == 0 && rc.cancel()) {
      return absl::CancelledError(
          absl::StrCat("simulation cancelled after ", next, " of ", n, " requests were routed"));
    }
    // The replica to step: the earliest clock among those with work (blocked ones wait for an
    // arrival while any remains).
    Replica* earliest = nullptr;
    for (const auto& r : replicas) {
      if (!r->HasWork() || (r->blocked() && next < n)) continue;
      if (earliest == nullptr || r->now() < earliest->now()) earliest = r.get();
    }
    if (next < n &&
        (earliest == nullptr || workload.requests[next].arrival_time_s <= earliest->now())) {
      const size_t target = router.Route(replicas, workload.requests[next], rc.block_size_tokens);
      PAGEDKV_RETURN_IF_ERROR(replicas[target]->Enqueue(next));
      ++next;
      continue;
    }
    if (earliest == nullptr) break;
    if (cluster) timeline.Sample(replicas, earliest->now());
    PAGEDKV_ASSIGN_OR_RETURN(Replica::StepResult step, earliest->Step(next < n));
    (void)step;
    if (rc.progress && n > 0) {
      int64_t done = 0;
      for (const auto& r : replicas) done += r->done();
      if (done - last_progress >= std::max<int64_t>(static_cast<int64_t>(n) / 200, 1)) {
        last_progress = done;
        rc.progress(static_cast<double>(done) / static_cast<double>(n));
      }
    }
  }
  for (const auto& r : replicas) r->FinishRecords();
  if (rc.progress) rc.progress(1.0);

  if (!cluster) {
    result.summary = replicas[0]->Summarize(result.requests);
    result.timeline = replicas[0]->timeline();
    return result;
  }
  // Close the timeline at the last completion.
  double end = 0;
  for (const auto& r : replicas) end = std::max(end, r->now());
  timeline.Sample(replicas, end);
  result.summary = ClusterSummary(config, replicas, result.requests, timeline);
  result.timeline = timeline.metrics().timeline();
  std::vector<std::vector<RequestRecord>> routed(replicas.size());
  for (const RequestRecord& rec : result.requests) {
    routed[static_cast<size_t>(rec.replica)].push_back(rec);
  }
  for (size_t i = 0; i < replicas.size(); ++i) {
    PolicySummary s = replicas[i]->Summarize(routed[i]);
    s.replica = static_cast<int32_t>(i);
    s.router = result.summary.router;
    result.replicas.push_back(std::move(s));
  }
  return result;
}

}  // namespace pagedkv
