// pagedkv::client: the C++ client of `pagedkv serve` (the pagedkv.v1 KvCache service). A Client
// is one channel (Unix socket or TCP with a bearer token); a Session is one engine's session on
// one model; StepBuilder assembles a Step's ops and batch; MapPools maps the shared pools.
//
//   PAGEDKV_ASSIGN_OR_RETURN(auto client, Client::Connect({.target = "unix:/tmp/kv.sock"}));
//   v1::OpenSessionRequest open;  open.set_client_name("engine");
//   PAGEDKV_ASSIGN_OR_RETURN(auto session, Session::Open(*client, open));
//   StepBuilder step;
//   step.Add(/*seq=*/1, prompt).Batch(1, /*num_new_tokens=*/prompt.size());
//   PAGEDKV_ASSIGN_OR_RETURN(StepResult r, session->Step(step));
//   // r.ops: the CacheOps to run now; r.layouts[g]: page table and slot mapping of group g
#ifndef PAGEDKV_SERVICE_CLIENT_H_
#define PAGEDKV_SERVICE_CLIENT_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "pagedkv/block_manager/batch_layout.h"
#include "pagedkv/block_manager/cache_ops.h"
#include "pagedkv/core/types.h"
#include "pagedkv/service/mapped_pool.h"
#include "pagedkv/v1/kvcache.pb.h"

namespace grpc {
class Channel;
class ClientContext;
}  // namespace grpc

namespace pagedkv::client {

struct ClientOptions {
  std::string target;                    // "unix:/path/serve.sock" or "host:port"
  std::string token;                     // bearer token for TCP; "" = none
  double timeout_seconds = 10.0;         // deadline of each call
  int64_t max_message_bytes = 64 << 20;  // largest request or response
};

// A Step's answer unpacked into the library's own structs.
struct StepResult {
  std::vector<absl::Status> op_status;  // one per op, in order
  std::vector<v1::OpResult> op_results;
  CacheOps ops;  // the step's block moves
  // true: the server already ran `ops` on the shared pools (host-memory pools); the engine must
  // not run them again. false: the engine runs them before its forward pass.
  bool ops_executed_by_server = false;
  absl::Status batch_status;         // building the page tables
  std::vector<BatchLayout> layouts;  // one per requested group (all groups by default)
  uint64_t step = 0;
  // OK when every op and the batch succeeded, else the first failure.
  absl::Status FirstError() const;
};

// Assembles one Step request. Ids are the session's own.
class StepBuilder {
 public:
  // encoder_key: identity of the encoder input (required on encoder-decoder models with prefix
  // caching).
  StepBuilder& Add(uint64_t seq, absl::Span<const TokenId> prompt, uint64_t extra_key = 0,
                   std::optional<uint64_t> encoder_key = std::nullopt);
  StepBuilder& Append(uint64_t seq, absl::Span<const TokenId> tokens);
  StepBuilder& AppendBatch(absl::Span<const uint64_t> seqs, absl::Span<const TokenId> tokens);
  StepBuilder& MarkComputed(absl::Span<const uint64_t> seqs,
                            absl::Span<const int64_t> num_computed_tokens);
  StepBuilder& Fork(uint64_t parent, uint64_t child);
  StepBuilder& ReorderBeams(absl::Span<const uint64_t> beams,
                            absl::Span<const int32_t> parent_indices);
  StepBuilder& Rewind(uint64_t seq, int32_t num_tokens);
  StepBuilder& Free(absl::Span<const uint64_t> seqs);
  StepBuilder& SwapOut(absl::Span<const uint64_t> seqs);
  StepBuilder& SwapIn(absl::Span<const uint64_t> seqs);
  StepBuilder& SetCrossAttention(uint64_t seq, int32_t encoder_tokens);
  // One batch entry; num_context_tokens -1 = every token.
  StepBuilder& Batch(uint64_t seq, int32_t num_new_tokens = 1, int32_t num_context_tokens = -1);
  StepBuilder& Groups(absl::Span<const int32_t> groups);
  StepBuilder& StopAtFirstError(bool stop = true);

  v1::StepRequest& request() { return request_; }
  const v1::StepRequest& request() const { return request_; }
  void Clear() { request_.Clear(); }

 private:
  v1::StepRequest request_;
};

class Client {
 public:
  // Creates the channel (no I/O yet). InvalidArgument for an empty target.
  static absl::StatusOr<std::unique_ptr<Client>> Connect(ClientOptions options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Each call: the server's status (same code and message), or DeadlineExceeded / Unavailable
  // from the transport.
  absl::StatusOr<v1::OpenSessionResponse> OpenSession(const v1::OpenSessionRequest& request);
  absl::Status Step(const v1::StepRequest& request, v1::StepResponse* response);
  absl::StatusOr<v1::KeepAliveResponse> KeepAlive(const v1::SessionRef& session);
  absl::StatusOr<v1::CloseSessionResponse> CloseSession(const v1::SessionRef& session);
  absl::StatusOr<v1::StatsResponse> Stats(const v1::StatsRequest& request);
  absl::StatusOr<v1::DescribeModelResponse> DescribeModel(const std::string& model = "");

  const ClientOptions& options() const { return options_; }

 private:
  Client(ClientOptions options, std::shared_ptr<grpc::Channel> channel);
  void Prepare(grpc::ClientContext& context) const;

  ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  struct Stub;
  std::unique_ptr<Stub> stub_;
};

class Session {
 public:
  // OpenSession through `client` (which must outlive the session).
  static absl::StatusOr<std::unique_ptr<Session>> Open(Client& client,
                                                       const v1::OpenSessionRequest& request);

  // Sends the builder's request with this session's credentials and unpacks the answer. The
  // RPC's own failure (unknown session, malformed request) is the returned status; op failures
  // are in StepResult::op_status.
  absl::StatusOr<StepResult> Step(StepBuilder& step);
  // Same, leaving the raw response in *response (reused across steps: no allocation).
  absl::Status StepRaw(v1::StepRequest& request, v1::StepResponse* response);
  absl::Status KeepAlive();
  // Frees every sequence and ends the session; the number of sequences freed.
  absl::StatusOr<int64_t> Close();
  absl::StatusOr<v1::StatsResponse> Stats(bool check_invariants = false);
  // Maps the model's shared pools (memfd) through the pool socket.
  absl::StatusOr<SharedPools> MapPools() const;

  const v1::SessionRef& ref() const { return info_.session(); }
  const v1::OpenSessionResponse& info() const { return info_; }
  const v1::ModelDescription& model() const { return info_.model(); }

 private:
  Session(Client& client, v1::OpenSessionResponse info) : client_(client), info_(std::move(info)) {}
  Client& client_;
  v1::OpenSessionResponse info_;
};

// Unpacks a Step response (statuses, CacheOps, layouts).
absl::StatusOr<StepResult> UnpackStep(const v1::StepResponse& response);

}  // namespace pagedkv::client

#endif  // PAGEDKV_SERVICE_CLIENT_H_
