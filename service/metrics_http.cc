// MetricsServer over cpp-httplib.
#include "service/internal/metrics_http.h"

#include <httplib.h>

#include <chrono>
#include <thread>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "pagedkv/core/logging.h"
#include "pagedkv/core/status.h"

namespace pagedkv::service::internal {

absl::Status ParseHostPort(const std::string& address, const char* what, std::string* host,
                           int* port) {
  const size_t colon = address.rfind(':');
  const auto bad = [&] {
    return absl::InvalidArgumentError(absl::StrCat(what, " '", address,
                                                   "': use HOST:PORT, e.g. 127.0.0.1:9400 "
                                                   "(port 0 = any free port)"));
  };
  if (colon == std::string::npos || colon == 0) return bad();
  *host = address.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  if (!absl::SimpleAtoi(address.substr(colon + 1), port) || *port < 0 || *port > 65535) {
    return bad();
  }
  return absl::OkStatus();
}

struct MetricsServer::Impl {
  httplib::Server http;
  std::thread thread;
  bool stopped = false;
};

MetricsServer::MetricsServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& address, std::function<absl::StatusOr<std::string>()> render) {
  std::string host;
  int port = 0;
  PAGEDKV_RETURN_IF_ERROR(ParseHostPort(address, "--metrics-address", &host, &port));
  auto impl = std::make_unique<Impl>();
  // Two workers: scrapes are rare and short; the default pool would start a thread per core.
  impl->http.new_task_queue = [] { return new httplib::ThreadPool(2); };
  impl->http.Get("/metrics", [render = std::move(render)](const httplib::Request&,
                                                          httplib::Response& res) {
    absl::StatusOr<std::string> page = render();
    if (!page.ok()) {
      res.status = 503;
      res.set_content(absl::StrCat(page.status().ToString(), "\n"), "text/plain; charset=utf-8");
      return;
    }
    res.set_content(std::move(*page), "text/plain; version=0.0.4; charset=utf-8");
  });
  const int bound = port == 0 ? impl->http.bind_to_any_port(host)
                              : (impl->http.bind_to_port(host, port) ? port : -1);
  if (bound <= 0) {
    return absl::UnavailableError(absl::StrCat("cannot serve metrics on ", address,
                                               ": the address is in use or not local; pick "
                                               "another --metrics-address"));
  }
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->http.listen_after_bind(); });
  // Stop() only stops a server that is listening: wait (bounded) until it is.
  for (int i = 0; i < 5000 && !impl->http.is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::unique_ptr<MetricsServer> server(new MetricsServer(std::move(impl)));
  server->port_ = bound;
  return server;
}

MetricsServer::~MetricsServer() { Stop(); }

void MetricsServer::Stop() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  impl_->http.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace pagedkv::service::internal
