// ServiceCore: the pagedkv.v1 service without a transport. Every RPC is one method taking and
// filling the protocol's messages and returning an absl::Status (the gRPC layer maps it to the
// same code and message). Owns the models, the session registry and the lease clock; Reap() is
// the reaper's one pass. Thread-safe: each model's lock makes its Steps atomic; no lock is held
// while a message travels.
//
//   PAGEDKV_ASSIGN_OR_RETURN(auto core, ServiceCore::Create(options));
//   PAGEDKV_RETURN_IF_ERROR(core->Step(request, deadline, &response));
#ifndef PAGEDKV_SERVICE_INTERNAL_SERVICE_CORE_H_
#define PAGEDKV_SERVICE_INTERNAL_SERVICE_CORE_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "pagedkv/service/server.h"
#include "pagedkv/v1/kvcache.pb.h"
#include "service/internal/model_host.h"
#include "service/internal/session_registry.h"

namespace pagedkv::service::internal {

using Deadline = std::chrono::steady_clock::time_point;

class ServiceCore {
 public:
  // Builds every model (InvalidArgument for no model or a duplicate name; BlockManager::Create's
  // and MemoryPool::Create's errors).
  static absl::StatusOr<std::unique_ptr<ServiceCore>> Create(const ServerOptions& options);

  // Told to sessions in OpenSessionResponse (set once the pool socket is bound).
  void set_pool_socket_path(std::string path) { pool_socket_path_ = std::move(path); }

  absl::Status OpenSession(const v1::OpenSessionRequest& request,
                           v1::OpenSessionResponse* response);
  absl::Status Step(const v1::StepRequest& request, Deadline deadline, v1::StepResponse* response);
  absl::Status KeepAlive(const v1::KeepAliveRequest& request, v1::KeepAliveResponse* response);
  absl::Status CloseSession(const v1::CloseSessionRequest& request, Deadline deadline,
                            v1::CloseSessionResponse* response);
  absl::Status Stats(const v1::StatsRequest& request, Deadline deadline,
                     v1::StatsResponse* response);
  absl::Status DescribeModel(const v1::DescribeModelRequest& request,
                             v1::DescribeModelResponse* response) const;
  // The pool socket's answer: the session's model's pools and the descriptors they name.
  absl::Status PoolHandles(const v1::PoolHandlesRequest& request, v1::PoolHandles* handles,
                           std::vector<int>* fds) const;

  // Expires sessions whose lease ran out and frees quarantined sequences that are due.
  void Reap();
  // After SIGTERM: OpenSession answers UNAVAILABLE; everything else keeps working.
  void StartDraining() { draining_.store(true); }
  bool draining() const { return draining_.load(); }

  int64_t NowNs() const;
  const SessionLimits& limits() const { return limits_; }

 private:
  ServiceCore() = default;
  absl::StatusOr<ModelHost*> FindModel(const std::string& name) const;
  // Renews and returns the session `ref` names (NotFound otherwise).
  absl::StatusOr<std::shared_ptr<Session>> Touch(const v1::SessionRef& ref);
  // Releases the session's sequences (quarantining the last step's when `expired`), with its
  // model's lock held; false when it was no longer open (or was renewed, for an expiry).
  bool Release(Session& session, bool expired, int64_t now_ns, int64_t* freed,
               int64_t* quarantined);

  std::vector<std::unique_ptr<ModelHost>> models_;
  SessionRegistry registry_;
  SessionLimits limits_;
  std::string pool_socket_path_;
  int64_t testing_step_delay_ms_ = 0;
  std::function<int64_t()> clock_ns_;
  std::atomic<bool> draining_{false};
};

}  // namespace pagedkv::service::internal

#endif  // PAGEDKV_SERVICE_INTERNAL_SERVICE_CORE_H_
