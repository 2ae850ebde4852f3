// Real Redis servers for the `redis` tests: redis-server processes on 127.0.0.1 (never another
// address) in a temporary directory, one standalone server or a 3-master / 3-replica cluster made
// with `redis-cli --cluster create`, killed with SIGKILL when the test ends. Every wait is bounded.
//
//   RedisServers servers;
//   if (auto why = RedisServers::MissingBinaries()) GTEST_SKIP() << *why;
//   absl::StatusOr<int> port = servers.StartStandalone();
#ifndef PAGEDKV_TESTS_REMOTE_REDIS_SERVERS_H_
#define PAGEDKV_TESTS_REMOTE_REDIS_SERVERS_H_

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace pagedkv::testing {

class RedisServers {
 public:
  // Why the tests cannot run here (redis-server or redis-cli not on PATH), or nullopt.
  static std::optional<std::string> MissingBinaries();

  RedisServers();
  ~RedisServers();  // SIGKILLs every server it started and removes its directory
  RedisServers(const RedisServers&) = delete;
  RedisServers& operator=(const RedisServers&) = delete;

  // A standalone server on a free port; returns the port once it answers PING.
  absl::StatusOr<int> StartStandalone();
  // Starts a server on `port` (cluster mode when `cluster`), waiting until it answers PING.
  absl::Status StartOn(int port, bool cluster);
  // Six cluster-mode servers joined as 3 masters with a replica each (node timeout 1 s, so a
  // killed master fails over within seconds); returns their ports once the cluster is ok.
  absl::StatusOr<std::vector<int>> StartCluster();
  // A port with nothing listening on it (and, for cluster mode, its bus port free too).
  static int FreePort();

  void Kill(int port);  // SIGKILL; no-op for a port it did not start
  // Until every live node of the cluster reports cluster_state:ok, at most `timeout`.
  absl::Status WaitClusterOk(absl::Duration timeout);
  // Runs one command on a server and returns the reply as text ("" for nil), for test setup.
  static absl::StatusOr<std::string> Command(int port, const std::vector<std::string>& args);
  // The port of the master that serves `key` (CLUSTER SLOTS asked of `any_port`).
  static absl::StatusOr<int> MasterOf(int any_port, const std::string& key);

 private:
  std::string dir_;
  std::map<int, pid_t> pids_;
};

}  // namespace pagedkv::testing

#endif  // PAGEDKV_TESTS_REMOTE_REDIS_SERVERS_H_
