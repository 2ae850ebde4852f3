// MetricsServer: GET /metrics (the Prometheus text exposition) on a loopback or LAN address, over
// Debian's cpp-httplib, with two worker threads. Everything else answers 404.
//
//   PAGEDKV_ASSIGN_OR_RETURN(auto http, MetricsServer::Start("127.0.0.1:9400", render));
//   http->port();   // the bound port (useful with port 0)
//   http->Stop();
#ifndef PAGEDKV_SERVICE_INTERNAL_METRICS_HTTP_H_
#define PAGEDKV_SERVICE_INTERNAL_METRICS_HTTP_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace pagedkv::service::internal {

class MetricsServer {
 public:
  // `render` produces the page (called on an HTTP worker thread, once per scrape). `address` is
  // HOST:PORT (port 0 = any). InvalidArgument for a malformed address, Unavailable when it cannot
  // be bound.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      const std::string& address, std::function<absl::StatusOr<std::string>()> render);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  int port() const { return port_; }
  // Stops listening and waits for the scrapes in flight. Idempotent.
  void Stop();

 private:
  struct Impl;
  explicit MetricsServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

// Splits HOST:PORT ([V6]:PORT too). InvalidArgument naming `what` otherwise.
absl::Status ParseHostPort(const std::string& address, const char* what, std::string* host,
                           int* port);

}  // namespace pagedkv::service::internal

#endif  // PAGEDKV_SERVICE_INTERNAL_METRICS_HTTP_H_
