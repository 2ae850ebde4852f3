// Server: binds the transports around one ServiceCore and runs the lease reaper.
#include "pagedkv/service/server.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "pagedkv/core/logging.h"
#include "pagedkv/core/status.h"
#include "service/internal/grpc_service.h"
#include "service/internal/pool_socket.h"
#include "service/internal/service_core.h"

namespace pagedkv::service {

using internal::GrpcService;
using internal::PoolSocket;
using internal::ServiceCore;

struct Server::Impl {
  ServerOptions options;
  std::unique_ptr<ServiceCore> core;
  std::unique_ptr<GrpcService> unix_service, tcp_service;
  std::unique_ptr<grpc::Server> unix_server, tcp_server;
  std::unique_ptr<PoolSocket> pool_socket;
  int tcp_port = 0;

  std::mutex reaper_mu;
  std::condition_variable reaper_cv;
  bool stop_reaper = false;  // guarded by reaper_mu
  std::thread reaper;

  std::mutex shutdown_mu;
  bool shut_down = false;  // guarded by shutdown_mu

  void ConfigureBuilder(grpc::ServerBuilder& builder) const {
    const int max_bytes = static_cast<int>(
        std::min<int64_t>(options.max_message_bytes, std::numeric_limits<int>::max()));
    builder.SetMaxReceiveMessageSize(max_bytes);
    builder.SetMaxSendMessageSize(max_bytes);
  }
};

absl::StatusOr<std::unique_ptr<Server>> Server::Start(ServerOptions options) {
  if (options.socket_path.empty() && options.listen_address.empty()) {
    return absl::InvalidArgumentError("no transport: give a Unix socket path or a TCP address");
  }
  if (!options.listen_address.empty() && options.token.empty()) {
    return absl::InvalidArgumentError(
        "TCP (--listen) needs a bearer token: give --token-file with a non-empty token");
  }
  if (options.max_message_bytes < 4096) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_message_bytes must be >= 4096, got ", options.max_message_bytes));
  }
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  const ServerOptions& o = impl->options;
  PAGEDKV_ASSIGN_OR_RETURN(impl->core, ServiceCore::Create(o));

  if (!o.socket_path.empty()) {
    PAGEDKV_RETURN_IF_ERROR(internal::ClearStaleSocket(o.socket_path));
    const std::string pool_path = o.socket_path + ".pools";
    PAGEDKV_ASSIGN_OR_RETURN(
        impl->pool_socket,
        PoolSocket::Start(pool_path,
                          [core = impl->core.get()](const v1::PoolHandlesRequest& r,
                                                    v1::PoolHandles* h, std::vector<int>* fds) {
                            return core->PoolHandles(r, h, fds);
                          }));
    impl->core->set_pool_socket_path(pool_path);
    impl->unix_service = std::make_unique<GrpcService>(*impl->core, "");
    grpc::ServerBuilder builder;
    impl->ConfigureBuilder(builder);
    builder.AddListeningPort("unix:" + o.socket_path, grpc::InsecureServerCredentials());
    builder.RegisterService(impl->unix_service.get());
    // The socket file is created with mode 0600: no window in which other users could connect.
    const mode_t old_mask = umask(0177);
    impl->unix_server = builder.BuildAndStart();
    umask(old_mask);
    if (impl->unix_server == nullptr) {
      return absl::UnavailableError(
          absl::StrCat("cannot serve gRPC on unix:", o.socket_path, " (see the gRPC error above)"));
    }
    chmod(o.socket_path.c_str(), 0600);
  }
  if (!o.listen_address.empty()) {
    impl->tcp_service = std::make_unique<GrpcService>(*impl->core, o.token);
    grpc::ServerBuilder builder;
    impl->ConfigureBuilder(builder);
    builder.AddListeningPort(o.listen_address, grpc::InsecureServerCredentials(), &impl->tcp_port);
    builder.RegisterService(impl->tcp_service.get());
    impl->tcp_server = builder.BuildAndStart();
    if (impl->tcp_server == nullptr || impl->tcp_port == 0) {
      if (impl->unix_server) impl->unix_server->Shutdown();
      return absl::UnavailableError(
          absl::StrCat("cannot listen on ", o.listen_address, " (see the gRPC error above)"));
    }
  }
  Impl* raw = impl.get();
  impl->reaper = std::thread([raw] {
    const auto interval = std::chrono::duration<double>(raw->options.reap_interval_seconds);
    std::unique_lock lock(raw->reaper_mu);
    while (!raw->stop_reaper) {
      raw->reaper_cv.wait_for(lock, interval);
      if (raw->stop_reaper) break;
      lock.unlock();
      raw->core->Reap();
      lock.lock();
    }
  });
  for (const auto& m : o.models) {
    PAGEDKV_LOG_INFO("serve model={} gpu_blocks={} host_blocks={} block_size={}",
                     m.name.empty() ? m.spec.name : m.name, m.cache.gpu_num_blocks,
                     m.cache.host_num_blocks, m.cache.block_size_tokens);
  }
  PAGEDKV_LOG_INFO("serve listening socket={} pool_socket={} tcp_port={}",
                   o.socket_path.empty() ? "-" : o.socket_path,
                   impl->pool_socket ? impl->pool_socket->path() : "-", impl->tcp_port);
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

absl::StatusOr<std::string> Server::Check(const ServerOptions& options) {
  if (!options.listen_address.empty() && options.token.empty()) {
    return absl::InvalidArgumentError(
        "TCP (--listen) needs a bearer token: give --token-file with a non-empty token");
  }
  PAGEDKV_ASSIGN_OR_RETURN(std::unique_ptr<ServiceCore> core, ServiceCore::Create(options));
  std::string text;
  for (const ModelOptions& m : options.models) {
    v1::DescribeModelRequest request;
    request.set_model(m.name.empty() ? m.spec.name : m.name);
    v1::DescribeModelResponse d;
    PAGEDKV_RETURN_IF_ERROR(core->DescribeModel(request, &d));
    absl::StrAppend(&text, "model ", d.model().name(), ": ", d.model().num_layers(), " layers, ",
                    d.model().groups_size(), " KV group(s), block size ", d.model().block_size(),
                    " tokens, prefix caching ", d.model().prefix_caching() ? "on" : "off", "\n");
    for (const v1::PoolHandle& p : d.model().pools()) {
      absl::StrAppend(&text, "  pool group ", p.group(), " ", p.tier(), ": ", p.num_blocks(),
                      " blocks x ", p.bytes_per_block(),
                      " bytes = ", uint64_t{p.num_blocks()} * p.bytes_per_block(), " bytes, ",
                      p.backend(), p.kind() == v1::POOL_KIND_MEMFD ? " (shared with engines)" : "",
                      "\n");
    }
  }
  absl::StrAppend(&text, "socket ", options.socket_path.empty() ? "-" : options.socket_path,
                  ", pool socket ",
                  options.socket_path.empty() ? "-" : options.socket_path + ".pools", ", tcp ",
                  options.listen_address.empty() ? "-" : options.listen_address, "\n");
  absl::StrAppend(&text, "leases ", options.limits.default_lease_seconds, " s (",
                  options.limits.min_lease_seconds, "..", options.limits.max_lease_seconds,
                  "), quarantine ", options.limits.quarantine_seconds, " s, at most ",
                  options.limits.max_sessions, " sessions, messages up to ",
                  options.max_message_bytes, " bytes\n");
  return text;
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() { Shutdown(0); }

const std::string& Server::socket_path() const { return impl_->options.socket_path; }

std::string Server::pool_socket_path() const {
  return impl_->pool_socket ? impl_->pool_socket->path() : "";
}

int Server::tcp_port() const { return impl_->tcp_port; }

internal::ServiceCore& Server::core() { return *impl_->core; }

void Server::Shutdown(double drain_seconds) {
  std::lock_guard guard(impl_->shutdown_mu);
  if (impl_->shut_down) return;
  impl_->shut_down = true;
  impl_->core->StartDraining();
  const auto deadline = std::chrono::system_clock::now() +
                        std::chrono::duration_cast<std::chrono::system_clock::duration>(
                            std::chrono::duration<double>(std::max(0.0, drain_seconds)));
  // Both transports drain at once: each Shutdown stops accepting calls at once and waits (up to
  // the deadline) for the calls in flight.
  std::thread tcp_drain;
  if (impl_->tcp_server) tcp_drain = std::thread([&] { impl_->tcp_server->Shutdown(deadline); });
  if (impl_->unix_server) impl_->unix_server->Shutdown(deadline);
  if (tcp_drain.joinable()) tcp_drain.join();
  {
    std::lock_guard lock(impl_->reaper_mu);
    impl_->stop_reaper = true;
  }
  impl_->reaper_cv.notify_all();
  if (impl_->reaper.joinable()) impl_->reaper.join();
  if (impl_->pool_socket) impl_->pool_socket->Stop();
  if (impl_->unix_server) {
    impl_->unix_server->Wait();
    unlink(impl_->options.socket_path.c_str());
  }
  if (impl_->tcp_server) impl_->tcp_server->Wait();
  PAGEDKV_LOG_INFO("serve stopped");
}

}  // namespace pagedkv::service
