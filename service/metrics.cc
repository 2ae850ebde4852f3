// Service metrics: histograms, RPC counters and the Prometheus text exposition.
#include "service/internal/metrics.h"

#include <cmath>
#include <initializer_list>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "pagedkv/core/absl_compat.h"

namespace pagedkv::service::internal {
namespace {

using Labels = std::initializer_list<std::pair<std::string_view, std::string_view>>;

// Writes families of samples; every family gets its HELP and TYPE lines before its samples.
class Writer {
 public:
  void Family(std::string_view name, std::string_view type, std::string_view help) {
    absl::StrAppend(&out_, "# HELP ", AbslView(name), " ", AbslView(help), "\n# TYPE ",
                    AbslView(name), " ", AbslView(type), "\n");
  }
  void Sample(std::string_view name, Labels labels, double value) {
    out_.append(name.data(), name.size());
    AppendLabels(labels, "");
    absl::StrAppend(&out_, " ", Number(value), "\n");
  }
  void HistogramSamples(std::string_view name, Labels labels, const Histogram::Snapshot& h) {
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= kLatencyBounds.size(); ++i) {
      cumulative += h.buckets[i];
      const std::string le = i < kLatencyBounds.size() ? Number(kLatencyBounds[i]) : "+Inf";
      absl::StrAppend(&out_, AbslView(name), "_bucket");
      AppendLabels(labels, le);
      absl::StrAppend(&out_, " ", cumulative, "\n");
    }
    absl::StrAppend(&out_, AbslView(name), "_sum");
    AppendLabels(labels, "");
    absl::StrAppend(&out_, " ", Number(h.sum), "\n", AbslView(name), "_count");
    AppendLabels(labels, "");
    absl::StrAppend(&out_, " ", h.count, "\n");
  }
  std::string Take() { return std::move(out_); }

 private:
  static std::string Number(double v) {
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    if (std::isnan(v)) return "NaN";
    if (v == std::floor(v) && std::fabs(v) < 1e15) return absl::StrFormat("%.0f", v);
    return absl::StrFormat("%.9g", v);
  }
  void AppendLabels(Labels labels, std::string_view le) {
    if (labels.size() == 0 && le.empty()) return;
    out_.push_back('{');
    bool first = true;
    const auto one = [&](std::string_view key, std::string_view value) {
      if (!first) out_.push_back(',');
      first = false;
      absl::StrAppend(&out_, AbslView(key), "=\"");
      for (char c : value) {
        if (c == '\\' || c == '"') {
          out_.push_back('\\');
          out_.push_back(c);
        } else if (c == '\n') {
          out_.append("\\n");
        } else {
          out_.push_back(c);
        }
      }
      out_.push_back('"');
    };
    for (const auto& [k, v] : labels) one(k, v);
    if (!le.empty()) one("le", le);
    out_.push_back('}');
  }
  std::string out_;
};

std::string_view TierLabel(bool host) { return host ? "host" : "gpu"; }

// One sample per model of a per-model value.
template <typename F>
void PerModel(Writer& w, const MetricsSnapshot& s, std::string_view name, std::string_view type,
              std::string_view help, F value) {
  w.Family(name, type, help);
  for (const ModelMetrics& m : s.models) {
    w.Sample(name, {{"model", m.name}}, static_cast<double>(value(m)));
  }
}

void RenderPools(Writer& w, const MetricsSnapshot& s) {
  w.Family("pagedkv_blocks", "gauge",
           "KV blocks of a pool by state: free (on the free list), cached (prefix-cache pages "
           "nobody references, evictable) and used (referenced by sequences or pending moves).");
  for (const ModelMetrics& m : s.models) {
    for (const GroupPoolStats& g : m.pools.groups) {
      const std::string group = absl::StrCat(g.group);
      for (bool host : {false, true}) {
        if (host && g.host_num_blocks == 0) continue;
        const std::string_view tier = TierLabel(host);
        const uint32_t free = host ? g.host_free_blocks : g.gpu_free_blocks;
        const uint32_t cached = host ? g.host_cached_blocks : g.gpu_cached_blocks;
        const uint32_t used = host ? g.host_in_use_blocks : g.gpu_in_use_blocks;
        w.Sample("pagedkv_blocks",
                 {{"model", m.name}, {"group", group}, {"tier", tier}, {"state", "free"}}, free);
        w.Sample("pagedkv_blocks",
                 {{"model", m.name}, {"group", group}, {"tier", tier}, {"state", "cached"}},
                 cached);
        w.Sample("pagedkv_blocks",
                 {{"model", m.name}, {"group", group}, {"tier", tier}, {"state", "used"}}, used);
      }
    }
  }
  w.Family("pagedkv_pool_capacity_blocks", "gauge", "KV blocks a pool holds.");
  for (const ModelMetrics& m : s.models) {
    for (const GroupPoolStats& g : m.pools.groups) {
      const std::string group = absl::StrCat(g.group);
      w.Sample("pagedkv_pool_capacity_blocks",
               {{"model", m.name}, {"group", group}, {"tier", "gpu"}}, g.gpu_num_blocks);
      if (g.host_num_blocks > 0) {
        w.Sample("pagedkv_pool_capacity_blocks",
                 {{"model", m.name}, {"group", group}, {"tier", "host"}}, g.host_num_blocks);
      }
    }
  }
  w.Family("pagedkv_pool_capacity_bytes", "gauge",
           "Bytes of K/V a pool holds (blocks x bytes per block).");
  for (const ModelMetrics& m : s.models) {
    for (const GroupPoolStats& g : m.pools.groups) {
      const std::string group = absl::StrCat(g.group);
      const double bpb = static_cast<double>(m.bytes_per_block[g.group]);
      w.Sample("pagedkv_pool_capacity_bytes",
               {{"model", m.name}, {"group", group}, {"tier", "gpu"}}, bpb * g.gpu_num_blocks);
      if (g.host_num_blocks > 0) {
        w.Sample("pagedkv_pool_capacity_bytes",
                 {{"model", m.name}, {"group", group}, {"tier", "host"}}, bpb * g.host_num_blocks);
      }
    }
  }
  w.Family("pagedkv_block_usage_ratio", "gauge",
           "Used blocks over all blocks of a tier (every KV group), 0 to 1; cached blocks count as "
           "available.");
  for (const ModelMetrics& m : s.models) {
    for (bool host : {false, true}) {
      double used = 0, total = 0;
      for (const GroupPoolStats& g : m.pools.groups) {
        used += host ? g.host_in_use_blocks : g.gpu_in_use_blocks;
        total += host ? g.host_num_blocks : g.gpu_num_blocks;
      }
      if (total > 0)
        w.Sample("pagedkv_block_usage_ratio", {{"model", m.name}, {"tier", TierLabel(host)}},
                 used / total);
    }
  }
}

void RenderModelCounters(Writer& w, const MetricsSnapshot& s) {
  PerModel(w, s, "pagedkv_sequences", "gauge",
           "Sequences in the model's manager (quarantined ones included).",
           [](const ModelMetrics& m) { return m.pools.num_sequences; });
  PerModel(w, s, "pagedkv_swapped_sequences", "gauge",
           "Sequences whose pages are in the host tier.",
           [](const ModelMetrics& m) { return m.pools.num_swapped_sequences; });
  PerModel(w, s, "pagedkv_prefix_cache_query_pages_total", "counter",
           "Full prompt pages looked up in the prefix cache at admission.",
           [](const ModelMetrics& m) { return m.pools.prefix_query_pages; });
  w.Family("pagedkv_prefix_cache_hit_pages_total", "counter",
           "Prompt pages served by the prefix cache, by where the page was found (gpu, host tier, "
           "remote tier).");
  for (const ModelMetrics& m : s.models) {
    const uint64_t host = m.pools.prefix_host_hit_pages, remote = m.pools.prefix_remote_hit_pages;
    const uint64_t gpu = m.pools.prefix_hit_pages - host - remote;
    w.Sample("pagedkv_prefix_cache_hit_pages_total", {{"model", m.name}, {"source", "gpu"}}, gpu);
    w.Sample("pagedkv_prefix_cache_hit_pages_total", {{"model", m.name}, {"source", "host"}}, host);
    w.Sample("pagedkv_prefix_cache_hit_pages_total", {{"model", m.name}, {"source", "remote"}},
             remote);
  }
  PerModel(w, s, "pagedkv_swap_out_bytes_total", "counter",
           "Bytes of GPU-to-host moves the steps produced (swap-outs and offloads of evicted "
           "prefix pages).",
           [](const ModelMetrics& m) { return m.pools.swap_out_bytes; });
  PerModel(w, s, "pagedkv_swap_in_bytes_total", "counter",
           "Bytes of host-to-GPU moves the steps produced (swap-ins, host and remote prefix hits).",
           [](const ModelMetrics& m) { return m.pools.swap_in_bytes; });
  PerModel(w, s, "pagedkv_copy_on_write_bytes_total", "counter",
           "Bytes of copy-on-write page copies.",
           [](const ModelMetrics& m) { return m.pools.copy_bytes; });
  PerModel(w, s, "pagedkv_cache_op_executed_bytes_total", "counter",
           "Bytes the server moved itself (cache_ops_executed).",
           [](const ModelMetrics& m) { return m.counters.executed_cache_op_bytes; });
  PerModel(w, s, "pagedkv_swap_out_sequences_total", "counter",
           "Sequences moved to the host tier by swap_out ops: preemptions by swap (a preemption "
           "by recompute is a free the service cannot tell apart).",
           [](const ModelMetrics& m) { return m.counters.swapped_out_sequences; });
  PerModel(w, s, "pagedkv_steps_total", "counter", "Step calls run on the model.",
           [](const ModelMetrics& m) { return m.counters.steps; });
  PerModel(w, s, "pagedkv_ops_total", "counter", "Ops run by those steps.",
           [](const ModelMetrics& m) { return m.counters.ops; });
  w.Family("pagedkv_op_errors_total", "counter",
           "Ops that failed, by status code (the op changed nothing).");
  for (const ModelMetrics& m : s.models) {
    for (size_t c = 1; c < kNumStatusCodes; ++c) {
      if (m.counters.failed_ops_by_code[c] == 0) continue;
      w.Sample("pagedkv_op_errors_total",
               {{"model", m.name}, {"code", StatusCodeName(static_cast<int>(c))}},
               m.counters.failed_ops_by_code[c]);
    }
  }
  PerModel(w, s, "pagedkv_sessions", "gauge", "Open sessions on the model.",
           [](const ModelMetrics& m) { return m.open_sessions; });
  PerModel(w, s, "pagedkv_quarantined_sequences", "gauge",
           "Sequences of expired sessions held until their quarantine ends.",
           [](const ModelMetrics& m) { return m.quarantined_sequences; });
  w.Family("pagedkv_quarantined_blocks", "gauge",
           "Distinct blocks the quarantined sequences hold, per tier.");
  for (const ModelMetrics& m : s.models) {
    w.Sample("pagedkv_quarantined_blocks", {{"model", m.name}, {"tier", "gpu"}},
             m.quarantined_gpu_blocks);
    w.Sample("pagedkv_quarantined_blocks", {{"model", m.name}, {"tier", "host"}},
             m.quarantined_host_blocks);
  }
  PerModel(w, s, "pagedkv_quarantined_sequences_total", "counter",
           "Sequences ever moved to the quarantine (named by an expired session's last step).",
           [](const ModelMetrics& m) { return m.counters.quarantined_total; });
  w.Family("pagedkv_model_lock_wait_seconds", "histogram",
           "Time calls waited for the model's lock (every Step, CloseSession and Stats).");
  for (const ModelMetrics& m : s.models) {
    w.HistogramSamples("pagedkv_model_lock_wait_seconds", {{"model", m.name}}, m.lock_wait);
  }
}

void RenderRemote(Writer& w, const MetricsSnapshot& s) {
  bool any = false;
  for (const ModelMetrics& m : s.models) any = any || m.has_remote;
  if (!any) return;
  const auto counter = [&](std::string_view name, std::string_view help, auto field) {
    w.Family(name, "counter", help);
    for (const ModelMetrics& m : s.models) {
      if (m.has_remote) w.Sample(name, {{"model", m.name}}, static_cast<double>(m.remote.*field));
    }
  };
  counter("pagedkv_remote_lookups_total",
          "Remote-tier lookups (one round trip per node for a prompt).", &RemoteTierStats::lookups);
  counter("pagedkv_remote_lookups_skipped_total",
          "Prompts not looked up: fewer pages left after the local hits than min_hit_pages.",
          &RemoteTierStats::lookups_skipped);
  counter("pagedkv_remote_lookup_pages_total", "Pages asked of the remote tier.",
          &RemoteTierStats::lookup_pages);
  counter("pagedkv_remote_hit_pages_total", "Pages found in the remote tier, verified and loaded.",
          &RemoteTierStats::hit_pages);
  w.Family(
      "pagedkv_remote_misses_total", "counter",
      "Remote pages not served, by cause: missing key, timeout, store error, corrupt (checksum "
      "or format), foreign (another model's or geometry's page).");
  for (const ModelMetrics& m : s.models) {
    if (!m.has_remote) continue;
    const std::pair<std::string_view, uint64_t> causes[] = {{"missing", m.remote.miss_missing},
                                                            {"timeout", m.remote.miss_timeout},
                                                            {"error", m.remote.miss_error},
                                                            {"corrupt", m.remote.miss_corrupt},
                                                            {"foreign", m.remote.miss_foreign}};
    for (const auto& [cause, n] : causes) {
      w.Sample("pagedkv_remote_misses_total", {{"model", m.name}, {"cause", cause}}, n);
    }
  }
  counter("pagedkv_remote_checksum_failures_total",
          "Remote values refused by their checksum or format (the corrupt misses).",
          &RemoteTierStats::miss_corrupt);
  counter("pagedkv_remote_read_bytes_total", "K/V bytes of the remote pages loaded.",
          &RemoteTierStats::bytes_read);
  counter("pagedkv_remote_written_bytes_total", "K/V bytes the remote store acknowledged.",
          &RemoteTierStats::bytes_written);
  counter("pagedkv_remote_writes_queued_total", "Pages accepted by the remote write queue.",
          &RemoteTierStats::writes_queued);
  counter("pagedkv_remote_writes_done_total", "Pages the remote store acknowledged.",
          &RemoteTierStats::writes_done);
  counter("pagedkv_remote_writes_dropped_total", "Pages dropped because the write queue was full.",
          &RemoteTierStats::writes_dropped);
  counter("pagedkv_remote_write_errors_total",
          "Pages lost to a failed write (store down, timeout).", &RemoteTierStats::write_errors);
  w.Family("pagedkv_remote_queue_bytes", "gauge", "Bytes waiting in the remote write queue.");
  for (const ModelMetrics& m : s.models) {
    if (m.has_remote)
      w.Sample("pagedkv_remote_queue_bytes", {{"model", m.name}}, m.remote.queue_bytes);
  }
}

void RenderEvents(Writer& w, const MetricsSnapshot& s) {
  bool any = false;
  for (const ModelMetrics& m : s.models) any = any || m.has_events;
  if (!any) return;
  const auto counter = [&](std::string_view name, std::string_view help, auto field) {
    w.Family(name, "counter", help);
    for (const ModelMetrics& m : s.models) {
      if (m.has_events) w.Sample(name, {{"model", m.name}}, static_cast<double>(m.events.*field));
    }
  };
  counter("pagedkv_kv_event_batches_total", "KV event batches published.",
          &KvEventPublisherCounters::batches);
  counter("pagedkv_kv_events_total", "KV events in the batches published.",
          &KvEventPublisherCounters::events);
  counter("pagedkv_kv_event_batches_dropped_total",
          "KV event batches dropped because the publisher's queue was full.",
          &KvEventPublisherCounters::dropped_batches);
  counter("pagedkv_kv_event_replay_requests_total", "Replay requests served.",
          &KvEventPublisherCounters::replay_requests);
  counter("pagedkv_kv_event_replayed_batches_total", "Batches sent again by replays.",
          &KvEventPublisherCounters::replayed_batches);
}

}  // namespace

std::string_view RpcMethodName(RpcMethod method) {
  switch (method) {
    case RpcMethod::kOpenSession:
      return "OpenSession";
    case RpcMethod::kStep:
      return "Step";
    case RpcMethod::kKeepAlive:
      return "KeepAlive";
    case RpcMethod::kCloseSession:
      return "CloseSession";
    case RpcMethod::kStats:
      return "Stats";
    case RpcMethod::kDescribeModel:
      return "DescribeModel";
    case RpcMethod::kPoolHandles:
      return "PoolHandles";
  }
  return "unknown";
}

std::string_view StatusCodeName(int code) {
  static constexpr std::string_view kNames[kNumStatusCodes] = {"OK",
                                                               "CANCELLED",
                                                               "UNKNOWN",
                                                               "INVALID_ARGUMENT",
                                                               "DEADLINE_EXCEEDED",
                                                               "NOT_FOUND",
                                                               "ALREADY_EXISTS",
                                                               "PERMISSION_DENIED",
                                                               "RESOURCE_EXHAUSTED",
                                                               "FAILED_PRECONDITION",
                                                               "ABORTED",
                                                               "OUT_OF_RANGE",
                                                               "UNIMPLEMENTED",
                                                               "INTERNAL",
                                                               "UNAVAILABLE",
                                                               "DATA_LOSS",
                                                               "UNAUTHENTICATED"};
  return code >= 0 && code < static_cast<int>(kNumStatusCodes) ? kNames[code] : "UNKNOWN";
}

void Histogram::Observe(double seconds) {
  size_t i = 0;
  while (i < kLatencyBounds.size() && seconds > kLatencyBounds[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(static_cast<uint64_t>(std::max(0.0, seconds) * 1e9), std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  for (size_t i = 0; i < buckets_.size(); ++i) {
    s.buckets[i] = buckets_[i].load(std::memory_order_relaxed);
    s.count += s.buckets[i];
  }
  s.sum = static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) * 1e-9;
  return s;
}

void ServiceMetrics::RecordRpc(RpcMethod method, absl::StatusCode code, double seconds) {
  const auto m = static_cast<size_t>(method);
  latency_[m].Observe(seconds);
  const auto c = static_cast<size_t>(code);
  if (c != 0) errors_[m][c < kNumStatusCodes ? c : 2].fetch_add(1, std::memory_order_relaxed);
}

Histogram::Snapshot ServiceMetrics::latency(RpcMethod method) const {
  return latency_[static_cast<size_t>(method)].snapshot();
}

uint64_t ServiceMetrics::errors(RpcMethod method, int code) const {
  return errors_[static_cast<size_t>(method)][static_cast<size_t>(code)].load(
      std::memory_order_relaxed);
}

std::string RenderPrometheus(const MetricsSnapshot& s) {
  Writer w;
  w.Family("pagedkv_open_sessions", "gauge", "Open sessions on the server (all models).");
  w.Sample("pagedkv_open_sessions", {}, static_cast<double>(s.open_sessions));
  w.Family("pagedkv_sessions_opened_total", "counter", "Sessions opened.");
  w.Sample("pagedkv_sessions_opened_total", {}, s.sessions_opened);
  w.Family("pagedkv_sessions_closed_total", "counter", "Sessions closed by their client.");
  w.Sample("pagedkv_sessions_closed_total", {}, s.sessions_closed);
  w.Family("pagedkv_lease_expiries_total", "counter",
           "Sessions expired because their lease ran out (a client that stopped calling).");
  w.Sample("pagedkv_lease_expiries_total", {}, s.sessions_expired);
  w.Family("pagedkv_quarantine_releases_total", "counter",
           "Quarantined sequences freed at the end of their quarantine.");
  w.Sample("pagedkv_quarantine_releases_total", {}, s.quarantines_released);
  w.Family("pagedkv_draining", "gauge", "1 once SIGTERM was received (no new sessions).");
  w.Sample("pagedkv_draining", {}, s.draining ? 1 : 0);
  w.Family("pagedkv_rpc_duration_seconds", "histogram",
           "Time the server spent on each call, from arrival to answer, by method.");
  for (size_t m = 0; m < kNumRpcMethods; ++m) {
    w.HistogramSamples("pagedkv_rpc_duration_seconds",
                       {{"method", RpcMethodName(static_cast<RpcMethod>(m))}}, s.rpc_latency[m]);
  }
  w.Family("pagedkv_rpc_errors_total", "counter", "Calls that failed, by method and status code.");
  for (size_t m = 0; m < kNumRpcMethods; ++m) {
    for (size_t c = 1; c < kNumStatusCodes; ++c) {
      if (s.rpc_errors[m][c] == 0) continue;
      w.Sample("pagedkv_rpc_errors_total",
               {{"method", RpcMethodName(static_cast<RpcMethod>(m))},
                {"code", StatusCodeName(static_cast<int>(c))}},
               s.rpc_errors[m][c]);
    }
  }
  RenderPools(w, s);
  RenderModelCounters(w, s);
  RenderRemote(w, s);
  RenderEvents(w, s);
  return w.Take();
}

}  // namespace pagedkv::service::internal
