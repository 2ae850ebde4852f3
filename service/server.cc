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
#include "service/internal/kv_events.h"
#include "service/internal/metrics_http.h"
#include "service/internal/pool_socket.h"
#include "service/internal/service_core.h"

namespace pagedkv::service {

using internal::GrpcService;
using internal::KvEventPublisher;
using internal::MetricsServer;
using internal::PoolSocket;
using internal::ServiceCore;

namespace {

std::string HostName() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

// The topic of one model's events: {host} and {model} replaced.
std::string ExpandTopic(std::string_view pattern, const std::string& host,
                        const std::string& model) {
  std::string out;
  for (size_t i = 0; i < pattern.size();) {
    if (pattern.substr(i, 6) == "{host}") {
      out += host;
      i += 6;
    } else if (pattern.substr(i, 7) == "{model}") {
      out += model;
      i += 7;
    } else {
      out.push_back(pattern[i++]);
    }
  }
  return out;
}

// The addresses, metrics and events options that Check and Start both refuse.
absl::Status ValidateObservability(const ServerOptions& o) {
  if (!o.listen_address.empty()) {
    std::string host;
    int port;
    PAGEDKV_RETURN_IF_ERROR(internal::ParseHostPort(o.listen_address, "--listen", &host, &port));
  }
  if (!o.metrics_address.empty()) {
    std::string host;
    int port;
    PAGEDKV_RETURN_IF_ERROR(
        internal::ParseHostPort(o.metrics_address, "metrics address", &host, &port));
  }
  const KvEventsOptions& e = o.events;
  if (e.endpoint.empty() && !e.replay_endpoint.empty()) {
    return absl::InvalidArgumentError(
        "events: a replay endpoint without an event endpoint; set the event endpoint too");
  }
  if (e.endpoint.empty()) return absl::OkStatus();
  for (size_t i = 0; i < o.models.size(); ++i) {
    PAGEDKV_RETURN_IF_ERROR(internal::ModelEndpoint(e.endpoint, static_cast<int>(i)).status());
    if (!e.replay_endpoint.empty()) {
      PAGEDKV_RETURN_IF_ERROR(
          internal::ModelEndpoint(e.replay_endpoint, static_cast<int>(i)).status());
    }
  }
  if (e.buffer_batches < 1 || e.max_queue_batches < 1 || e.high_water_mark < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "events: buffer_batches (", e.buffer_batches, ") and max_queue_batches (",
        e.max_queue_batches, ") must be >= 1 and high_water_mark (", e.high_water_mark, ") >= 0"));
  }
  return absl::OkStatus();
}

}  // namespace

struct Server::Impl {
  ServerOptions options;
  std::unique_ptr<ServiceCore> core;
  std::unique_ptr<GrpcService> unix_service, tcp_service;
  std::unique_ptr<grpc::Server> unix_server, tcp_server;
  std::unique_ptr<PoolSocket> pool_socket;
  int tcp_port = 0;
  // Declared after `core`, so destroyed before it: the models point to the publishers, the
  // metrics page reads the core.
  std::vector<std::unique_ptr<KvEventPublisher>> publishers;  // [model] when events are on
  std::unique_ptr<MetricsServer> metrics;

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
    // gRPC sets SO_REUSEPORT by default: a second server on a busy port would start and share
    // its connections with the first. Binding a taken port must fail instead.
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
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
  PAGEDKV_RETURN_IF_ERROR(ValidateObservability(options));
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  const ServerOptions& o = impl->options;
  PAGEDKV_ASSIGN_OR_RETURN(impl->core, ServiceCore::Create(o));
  // Events before the first call: a model's first batch (AllBlocksCleared) precedes any Step's.
  if (!o.events.endpoint.empty()) {
    const std::string host_name = HostName();
    for (size_t i = 0; i < impl->core->num_models(); ++i) {
      internal::ModelHost& model = impl->core->model(i);
      const int index = static_cast<int>(i);
      PAGEDKV_ASSIGN_OR_RETURN(std::string endpoint,
                               internal::ModelEndpoint(o.events.endpoint, index));
      std::string replay;
      if (!o.events.replay_endpoint.empty()) {
        PAGEDKV_ASSIGN_OR_RETURN(replay, internal::ModelEndpoint(o.events.replay_endpoint, index));
      }
      PAGEDKV_ASSIGN_OR_RETURN(
          std::unique_ptr<KvEventPublisher> publisher,
          KvEventPublisher::Start(endpoint, replay,
                                  ExpandTopic(o.events.topic, host_name, model.name()),
                                  model.block_size(), o.events));
      {
        std::lock_guard lock(model.mu());
        model.EnableEvents(publisher.get());
      }
      PAGEDKV_LOG_INFO("serve kv_events model={} endpoint={} replay={} topic={}", model.name(),
                       publisher->endpoint(),
                       publisher->replay_endpoint().empty() ? "-" : publisher->replay_endpoint(),
                       publisher->topic());
      impl->publishers.push_back(std::move(publisher));
    }
  }
  if (!o.metrics_address.empty()) {
    ServiceCore* core = impl->core.get();
    PAGEDKV_ASSIGN_OR_RETURN(
        impl->metrics,
        MetricsServer::Start(o.metrics_address, [core]() -> absl::StatusOr<std::string> {
          PAGEDKV_ASSIGN_OR_RETURN(
              internal::MetricsSnapshot snapshot,
              core->SnapshotMetrics(std::chrono::steady_clock::now() + std::chrono::seconds(5)));
          return internal::RenderPrometheus(snapshot);
        }));
    PAGEDKV_LOG_INFO("serve metrics url=http://{}/metrics port={}", o.metrics_address,
                     impl->metrics->port());
  }

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
  PAGEDKV_RETURN_IF_ERROR(ValidateObservability(options));
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
                      p.backend(),
                      p.kind() == v1::POOL_KIND_MEMFD      ? " (shared with engines)"
                      : p.kind() == v1::POOL_KIND_CUDA_IPC ? " (shared with engines by CUDA IPC)"
                                                           : "",
                      "\n");
    }
    if (!m.cache.remote.url.empty()) {
      absl::StrAppend(&text, "  remote tier ", m.cache.remote.url, ", timeout ",
                      m.cache.remote.timeout_us, " us, ttl ", m.cache.remote.ttl_seconds,
                      " s, admitted after ", m.cache.remote.admit_hits, " hit(s)\n");
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
  absl::StrAppend(&text, "metrics ",
                  options.metrics_address.empty()
                      ? "off"
                      : absl::StrCat("http://", options.metrics_address, "/metrics"),
                  ", kv events ", options.events.endpoint.empty() ? "off" : options.events.endpoint,
                  options.events.replay_endpoint.empty()
                      ? ""
                      : absl::StrCat(" (replay ", options.events.replay_endpoint, ")"),
                  "\n");
  return text;
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() { Shutdown(0); }

const std::string& Server::socket_path() const { return impl_->options.socket_path; }

std::string Server::pool_socket_path() const {
  return impl_->pool_socket ? impl_->pool_socket->path() : "";
}

int Server::tcp_port() const { return impl_->tcp_port; }

int Server::metrics_port() const { return impl_->metrics ? impl_->metrics->port() : 0; }

std::vector<std::string> Server::event_endpoints() const {
  std::vector<std::string> out;
  for (const auto& p : impl_->publishers) out.push_back(p->endpoint());
  return out;
}

std::vector<std::string> Server::replay_endpoints() const {
  std::vector<std::string> out;
  for (const auto& p : impl_->publishers) out.push_back(p->replay_endpoint());
  return out;
}

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
  if (impl_->metrics) impl_->metrics->Stop();
  // No call runs any more: the last batches go out, then the sockets close.
  for (size_t i = 0; i < impl_->publishers.size(); ++i) {
    internal::ModelHost& model = impl_->core->model(i);
    {
      std::lock_guard lock(model.mu());
      model.EnableEvents(nullptr);
    }
    impl_->publishers[i]->Stop(drain_seconds);
  }
  if (impl_->unix_server) {
    impl_->unix_server->Wait();
    unlink(impl_->options.socket_path.c_str());
  }
  if (impl_->tcp_server) impl_->tcp_server->Wait();
  PAGEDKV_LOG_INFO("serve stopped");
}

}  // namespace pagedkv::service
