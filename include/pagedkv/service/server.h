// Server: `pagedkv serve` as a library. One block manager per configured model, exposed as the
// pagedkv.v1 KvCache gRPC service on a Unix socket (mode 0600) and, with a bearer token, on TCP;
// a second Unix socket (the pool socket) hands the shared pools' descriptors to sessions; a
// reaper thread expires silent sessions and ends quarantines. tools/serve_command.cc is its
// command line; tests and benchmarks start it in-process. docs/service.md describes the protocol.
//
//   ServerOptions o;
//   o.models.push_back({.name = "toy", .spec = spec, .cache = cache});
//   o.socket_path = "/run/user/1000/pagedkv/serve.sock";
//   PAGEDKV_ASSIGN_OR_RETURN(std::unique_ptr<Server> server, Server::Start(std::move(o)));
//   server->Shutdown(/*drain_seconds=*/10);  // on SIGTERM: finish in-flight RPCs, then stop
#ifndef PAGEDKV_SERVICE_SERVER_H_
#define PAGEDKV_SERVICE_SERVER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "pagedkv/core/cache_config.h"
#include "pagedkv/core/model_spec.h"

namespace pagedkv::service {

namespace internal {
class ServiceCore;
}  // namespace internal

struct ModelOptions {
  std::string name;  // the name sessions ask for; "" = spec.name
  ModelSpec spec;
  // Block size, GPU / host blocks (gpu_num_blocks or gpu_budget_bytes is required), prefix
  // caching, watermark. cache.gpu_tier kVirtual serves metadata only (no pool memory).
  CacheConfig cache;
  // Host-memory pools (the host tier, and a GPU tier that fell back to host memory) in memfd
  // segments that sessions map through the pool socket.
  bool share_pools = true;
};

// Leases, quarantine and per-request limits.
struct SessionLimits {
  double default_lease_seconds = 30.0;  // for OpenSession with lease_seconds 0
  double min_lease_seconds = 0.1;
  double max_lease_seconds = 3600.0;
  // After a session expires, the sequences its last Step named (and every page they hold) stay
  // allocated this long, so a dead client's late writes land in no one else's page.
  double quarantine_seconds = 10.0;
  int64_t max_sessions = 1024;
  int64_t max_ops_per_step = 65536;
  int64_t max_batch_entries = 65536;
};

struct ServerOptions {
  std::vector<ModelOptions> models;
  std::string socket_path;     // gRPC over this Unix socket (created 0600); "" = none
  std::string listen_address;  // "host:port" for gRPC over TCP (port 0 = any); "" = none
  std::string token;           // bearer token TCP clients must send; required with TCP
  SessionLimits limits;
  int64_t max_message_bytes = 64 << 20;  // largest request or response, either transport
  double reap_interval_seconds = 0.05;   // how often leases and quarantines are checked
  // Test hooks: a pause inside every Step (with the model lock held), and the clock of leases
  // (nanoseconds, monotonic; default steady_clock).
  int64_t testing_step_delay_ms = 0;
  std::function<int64_t()> clock_ns;
};

class Server {
 public:
  // Builds every model's manager and pools, binds the sockets and starts serving.
  // InvalidArgument for bad options (no model, duplicate names, TCP without a token, a socket
  // path that is too long); the model's own errors from BlockManager::Create; Unavailable when a
  // socket cannot be bound.
  static absl::StatusOr<std::unique_ptr<Server>> Start(ServerOptions options);
  // Builds every model's manager and pools as Start would, binds nothing, and describes what
  // would be served (one line per model and pool). The errors of Start except Unavailable.
  static absl::StatusOr<std::string> Check(const ServerOptions& options);
  ~Server();  // Shutdown(0) unless done
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  const std::string& socket_path() const;  // "" without a Unix socket
  std::string pool_socket_path() const;    // "" without a Unix socket
  int tcp_port() const;                    // 0 without TCP

  // Stops taking new sessions and RPCs, lets in-flight RPCs finish for up to drain_seconds
  // (then cancels them), stops the reaper and the pool socket and removes the socket files.
  // Idempotent; returns when done.
  void Shutdown(double drain_seconds);

  // The transport-independent service (tests; the benchmark's in-process comparison).
  internal::ServiceCore& core();

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pagedkv::service

#endif  // PAGEDKV_SERVICE_SERVER_H_
