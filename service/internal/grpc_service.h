// GrpcService: the pagedkv.v1 KvCache gRPC service over a ServiceCore. One instance per
// transport: the Unix-socket one trusts the socket's file mode; the TCP one requires
// `authorization: Bearer <token>` metadata on every call (compared in constant time).
//
//   GrpcService unix_service(core, /*token=*/"");
//   GrpcService tcp_service(core, token);
#ifndef PAGEDKV_SERVICE_INTERNAL_GRPC_SERVICE_H_
#define PAGEDKV_SERVICE_INTERNAL_GRPC_SERVICE_H_

#include <string>

#include "absl/status/status.h"
#include "grpcpp/grpcpp.h"
#include "pagedkv/v1/kvcache.grpc.pb.h"
#include "service/internal/service_core.h"

namespace pagedkv::service::internal {

class GrpcService final : public v1::KvCache::Service {
 public:
  // token "" = no token required (the Unix socket).
  GrpcService(ServiceCore& core, std::string token) : core_(core), token_(std::move(token)) {}

  grpc::Status OpenSession(grpc::ServerContext* context, const v1::OpenSessionRequest* request,
                           v1::OpenSessionResponse* response) override;
  grpc::Status Step(grpc::ServerContext* context, const v1::StepRequest* request,
                    v1::StepResponse* response) override;
  grpc::Status KeepAlive(grpc::ServerContext* context, const v1::KeepAliveRequest* request,
                         v1::KeepAliveResponse* response) override;
  grpc::Status CloseSession(grpc::ServerContext* context, const v1::CloseSessionRequest* request,
                            v1::CloseSessionResponse* response) override;
  grpc::Status Stats(grpc::ServerContext* context, const v1::StatsRequest* request,
                     v1::StatsResponse* response) override;
  grpc::Status DescribeModel(grpc::ServerContext* context, const v1::DescribeModelRequest* request,
                             v1::DescribeModelResponse* response) override;

 private:
  // Unauthenticated without the right bearer token (TCP only).
  absl::Status Authorize(const grpc::ServerContext& context) const;

  ServiceCore& core_;
  const std::string token_;
};

// The steady-clock deadline of a call (its client's deadline, or far away without one).
Deadline CallDeadline(const grpc::ServerContext& context);

}  // namespace pagedkv::service::internal

#endif  // PAGEDKV_SERVICE_INTERNAL_GRPC_SERVICE_H_
