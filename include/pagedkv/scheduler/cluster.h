// Cluster simulation: N replicas (each one Scheduler + KvCachePolicy on its own virtual clock)
// behind a router, optionally sharing a remote prefix tier modelled by capacity, bandwidth and
// latency. Requests are routed in arrival order, each against the replicas' state at its arrival
// time. Deterministic for a fixed config.
//
//   ClusterConfig c;  c.replica = simulator_config;  c.num_replicas = 8;
//   c.router = RouterKind::kPrefixAware;
//   PAGEDKV_ASSIGN_OR_RETURN(PolicyRunResult r, SimulateCluster(workload, c));
//   // r.summary: the whole cluster; r.replicas[i]: replica i
#ifndef PAGEDKV_SCHEDULER_CLUSTER_H_
#define PAGEDKV_SCHEDULER_CLUSTER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "pagedkv/scheduler/metrics.h"
#include "pagedkv/scheduler/simulator.h"
#include "pagedkv/scheduler/workload.h"

namespace pagedkv {

enum class RouterKind : uint8_t {
  kRoundRobin = 0,   // replica (request index mod N)
  kLeastLoaded = 1,  // fewest unfinished requests; equally loaded replicas take turns
  // The replica whose prefix cache holds the longest prefix of the prompt; ties by load. A
  // replica whose load exceeds the least loaded one's by more than the balance bound is skipped,
  // as KV-aware routers bound their imbalance (ClusterConfig::prefix_balance_*).
  kPrefixAware = 2,
};
std::string_view RouterKindName(RouterKind kind);  // "round-robin", "least-loaded", "prefix-aware"
// InvalidArgument listing the names for anything else.
absl::StatusOr<RouterKind> ParseRouterKind(std::string_view name);
std::vector<std::string> RouterKindNames();

// The shared remote tier (the Redis tier of issue 13) as the simulator models it: full prompt
// pages are written after their prefill (asynchronously: no time charged); a prefix lookup
// continues there after a replica's local hits, and a step that loads pages takes
// latency + bytes / bandwidth longer.
struct RemoteTierConfig {
  uint64_t capacity_bytes = 0;            // 0 = no remote tier
  double bandwidth_bytes_per_s = 12.5e9;  // one 100 Gb/s link per replica
  double latency_s = 500e-6;              // one pipelined round trip per loading step
};

struct ClusterConfig {
  SimulatorConfig replica;  // every replica's model, GPU, policy, scheduler and KV sizing
  int32_t num_replicas = 1;
  RouterKind router = RouterKind::kRoundRobin;
  RemoteTierConfig remote;
  // prefix-aware: a replica is a candidate only while its load <= min load * factor + slack.
  double prefix_balance_factor = 2.0;
  int64_t prefix_balance_slack = 16;
};

// Everything SimulateCluster checks before its first step, without running anything: the
// workload (Workload::Validate), replicas, router and remote settings, scheduler limits, the KV
// sizing and one replica's policy (a watermark out of range, a block larger than the KV
// capacity). Call it for every configuration before running any of them.
absl::Status CheckSimulation(const Workload& workload, const ClusterConfig& config);

// CheckSimulation's errors, then runs. The summary aggregates all replicas (latencies over every
// request; memory shares over the summed timeline); `replicas` holds one summary per replica (its
// routed requests) when num_replicas > 1.
absl::StatusOr<PolicyRunResult> SimulateCluster(const Workload& workload,
                                                const ClusterConfig& config);

}  // namespace pagedkv

#endif  // PAGEDKV_SCHEDULER_CLUSTER_H_
