// Service metrics for Prometheus: lock-free latency histograms and error counters per RPC
// (recorded by the transports), and the text exposition of a snapshot of everything `/metrics`
// shows (pools, prefix cache, swap, remote tier, sessions, leases, quarantine, events).
// docs/service.md#metrics lists every metric.
//
//   core.metrics().RecordRpc(RpcMethod::kStep, status.code(), seconds);
//   MetricsSnapshot snap = core.SnapshotMetrics(deadline);   // takes each model's lock briefly
//   std::string text = RenderPrometheus(snap);                // no lock held
#ifndef PAGEDKV_SERVICE_INTERNAL_METRICS_H_
#define PAGEDKV_SERVICE_INTERNAL_METRICS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "pagedkv/block_manager/block_manager_stats.h"
#include "pagedkv/remote/remote_tier.h"
#include "service/internal/kv_events.h"

namespace pagedkv::service::internal {

enum class RpcMethod : uint8_t {
  kOpenSession,
  kStep,
  kKeepAlive,
  kCloseSession,
  kStats,
  kDescribeModel,
  kPoolHandles,  // the pool socket's one request
};
inline constexpr size_t kNumRpcMethods = 7;
std::string_view RpcMethodName(RpcMethod method);

// absl / gRPC status codes 0..16.
inline constexpr size_t kNumStatusCodes = 17;
std::string_view StatusCodeName(int code);

// Seconds, from 10 us to 10 s (a Step in-process takes about 10 us; a call waiting for a busy
// model up to its deadline).
inline constexpr std::array<double, 16> kLatencyBounds = {
    1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 10};

class Histogram {
 public:
  struct Snapshot {
    std::array<uint64_t, kLatencyBounds.size() + 1> buckets{};  // per bucket (not cumulative)
    uint64_t count = 0;
    double sum = 0;  // seconds
  };
  void Observe(double seconds);
  Snapshot snapshot() const;

 private:
  std::array<std::atomic<uint64_t>, kLatencyBounds.size() + 1> buckets_{};  // last: +Inf
  std::atomic<uint64_t> sum_ns_{0};
};

class ServiceMetrics {
 public:
  void RecordRpc(RpcMethod method, absl::StatusCode code, double seconds);
  Histogram::Snapshot latency(RpcMethod method) const;
  uint64_t errors(RpcMethod method, int code) const;

 private:
  std::array<Histogram, kNumRpcMethods> latency_;
  std::array<std::array<std::atomic<uint64_t>, kNumStatusCodes>, kNumRpcMethods> errors_{};
};

// Counters a model keeps under its lock (ModelHost::counters()).
struct ModelCounters {
  uint64_t steps = 0;
  uint64_t ops = 0;
  uint64_t failed_ops = 0;
  std::array<uint64_t, kNumStatusCodes> failed_ops_by_code{};
  uint64_t quarantined_total = 0;  // sequences ever quarantined
  uint64_t executed_cache_op_bytes = 0;
  uint64_t swapped_out_sequences = 0;  // by swap_out ops (preemption by swap)
};

// One model at one instant.
struct ModelMetrics {
  std::string name;
  BlockManagerStats pools;                // per group: blocks free / cached / in use, both tiers
  std::vector<uint64_t> bytes_per_block;  // [group]
  bool has_remote = false;
  RemoteTierStats remote;
  ModelCounters counters;
  int64_t open_sessions = 0;
  int64_t quarantined_sequences = 0;
  uint32_t quarantined_gpu_blocks = 0;
  uint32_t quarantined_host_blocks = 0;
  Histogram::Snapshot lock_wait;
  bool has_events = false;
  KvEventPublisherCounters events;
};

struct MetricsSnapshot {
  std::vector<ModelMetrics> models;
  int64_t open_sessions = 0;
  uint64_t sessions_opened = 0;
  uint64_t sessions_closed = 0;
  uint64_t sessions_expired = 0;  // lease expiries
  uint64_t quarantines_released = 0;
  bool draining = false;
  std::array<Histogram::Snapshot, kNumRpcMethods> rpc_latency;
  std::array<std::array<uint64_t, kNumStatusCodes>, kNumRpcMethods> rpc_errors{};
};

// The Prometheus text exposition format (version 0.0.4) of `snapshot`.
std::string RenderPrometheus(const MetricsSnapshot& snapshot);

}  // namespace pagedkv::service::internal

#endif  // PAGEDKV_SERVICE_INTERNAL_METRICS_H_
