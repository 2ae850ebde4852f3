// GrpcService: authorization and deadlines around ServiceCore, one method per RPC.
#include "service/internal/grpc_service.h"

#include <chrono>

#include "pagedkv/core/logging.h"
#include "pagedkv/service/wire.h"
#include "service/internal/session_registry.h"

namespace pagedkv::service::internal {
namespace {

constexpr std::string_view kBearer = "Bearer ";

}  // namespace

Deadline CallDeadline(const grpc::ServerContext& context) {
  const auto deadline = context.deadline();
  const auto now_system = std::chrono::system_clock::now();
  const auto now_steady = std::chrono::steady_clock::now();
  if (deadline >= now_system + std::chrono::hours(24 * 365)) return Deadline::max();
  return now_steady +
         std::chrono::duration_cast<std::chrono::steady_clock::duration>(deadline - now_system);
}

absl::Status GrpcService::Authorize(const grpc::ServerContext& context) const {
  if (token_.empty()) return absl::OkStatus();
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) {
    return absl::UnauthenticatedError(
        "this TCP endpoint needs a bearer token: send the metadata 'authorization: Bearer "
        "<token>' with the token of the server's --token-file");
  }
  const std::string_view value(it->second.data(), it->second.size());
  if (value.substr(0, kBearer.size()) != kBearer ||
      !ConstantTimeEquals(value.substr(kBearer.size()), token_)) {
    return absl::UnauthenticatedError(
        "the bearer token does not match the server's --token-file; send 'authorization: Bearer "
        "<token>' with the right token");
  }
  return absl::OkStatus();
}

grpc::Status GrpcService::OpenSession(grpc::ServerContext* context,
                                      const v1::OpenSessionRequest* request,
                                      v1::OpenSessionResponse* response) {
  if (absl::Status s = Authorize(*context); !s.ok()) return ToGrpcStatus(s);
  return ToGrpcStatus(core_.OpenSession(*request, response));
}

grpc::Status GrpcService::Step(grpc::ServerContext* context, const v1::StepRequest* request,
                               v1::StepResponse* response) {
  if (absl::Status s = Authorize(*context); !s.ok()) return ToGrpcStatus(s);
  return ToGrpcStatus(core_.Step(*request, CallDeadline(*context), response));
}

grpc::Status GrpcService::KeepAlive(grpc::ServerContext* context,
                                    const v1::KeepAliveRequest* request,
                                    v1::KeepAliveResponse* response) {
  if (absl::Status s = Authorize(*context); !s.ok()) return ToGrpcStatus(s);
  return ToGrpcStatus(core_.KeepAlive(*request, response));
}

grpc::Status GrpcService::CloseSession(grpc::ServerContext* context,
                                       const v1::CloseSessionRequest* request,
                                       v1::CloseSessionResponse* response) {
  if (absl::Status s = Authorize(*context); !s.ok()) return ToGrpcStatus(s);
  return ToGrpcStatus(core_.CloseSession(*request, CallDeadline(*context), response));
}

grpc::Status GrpcService::Stats(grpc::ServerContext* context, const v1::StatsRequest* request,
                                v1::StatsResponse* response) {
  if (absl::Status s = Authorize(*context); !s.ok()) return ToGrpcStatus(s);
  return ToGrpcStatus(core_.Stats(*request, CallDeadline(*context), response));
}

grpc::Status GrpcService::DescribeModel(grpc::ServerContext* context,
                                        const v1::DescribeModelRequest* request,
                                        v1::DescribeModelResponse* response) {
  if (absl::Status s = Authorize(*context); !s.ok()) return ToGrpcStatus(s);
  return ToGrpcStatus(core_.DescribeModel(*request, response));
}

}  // namespace pagedkv::service::internal
