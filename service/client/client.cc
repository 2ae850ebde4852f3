// pagedkv::client: channel, calls with deadlines and the bearer token, Step packing/unpacking.
#include "pagedkv/service/client.h"

#include <chrono>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "pagedkv/core/status.h"
#include "pagedkv/service/wire.h"
#include "pagedkv/v1/kvcache.grpc.pb.h"

namespace pagedkv::client {

using service::FromGrpcStatus;
using service::FromProto;

struct Client::Stub {
  std::unique_ptr<v1::KvCache::Stub> stub;
};

absl::Status StepResult::FirstError() const {
  for (const absl::Status& s : op_status) {
    if (!s.ok()) return s;
  }
  return batch_status;
}

// ---- StepBuilder --------------------------------------------------------------------------------

StepBuilder& StepBuilder::Add(uint64_t seq, absl::Span<const TokenId> prompt, uint64_t extra_key,
                              std::optional<uint64_t> encoder_key) {
  v1::AddOp* op = request_.add_ops()->mutable_add();
  op->set_seq(seq);
  op->mutable_prompt()->Add(prompt.begin(), prompt.end());
  op->set_extra_key(extra_key);
  if (encoder_key.has_value()) op->set_encoder_key(*encoder_key);
  return *this;
}

StepBuilder& StepBuilder::Append(uint64_t seq, absl::Span<const TokenId> tokens) {
  v1::AppendOp* op = request_.add_ops()->mutable_append();
  op->set_seq(seq);
  op->mutable_tokens()->Add(tokens.begin(), tokens.end());
  return *this;
}

StepBuilder& StepBuilder::AppendBatch(absl::Span<const uint64_t> seqs,
                                      absl::Span<const TokenId> tokens) {
  v1::AppendBatchOp* op = request_.add_ops()->mutable_append_batch();
  op->mutable_seqs()->Add(seqs.begin(), seqs.end());
  op->mutable_tokens()->Add(tokens.begin(), tokens.end());
  return *this;
}

StepBuilder& StepBuilder::MarkComputed(absl::Span<const uint64_t> seqs,
                                       absl::Span<const int64_t> num_computed_tokens) {
  v1::MarkComputedOp* op = request_.add_ops()->mutable_mark_computed();
  op->mutable_seqs()->Add(seqs.begin(), seqs.end());
  op->mutable_num_computed_tokens()->Add(num_computed_tokens.begin(), num_computed_tokens.end());
  return *this;
}

StepBuilder& StepBuilder::Fork(uint64_t parent, uint64_t child) {
  v1::ForkOp* op = request_.add_ops()->mutable_fork();
  op->set_parent(parent);
  op->set_child(child);
  return *this;
}

StepBuilder& StepBuilder::ReorderBeams(absl::Span<const uint64_t> beams,
                                       absl::Span<const int32_t> parent_indices) {
  v1::ReorderBeamsOp* op = request_.add_ops()->mutable_reorder_beams();
  op->mutable_beams()->Add(beams.begin(), beams.end());
  op->mutable_parent_indices()->Add(parent_indices.begin(), parent_indices.end());
  return *this;
}

StepBuilder& StepBuilder::Rewind(uint64_t seq, int32_t num_tokens) {
  v1::RewindOp* op = request_.add_ops()->mutable_rewind();
  op->set_seq(seq);
  op->set_num_tokens(num_tokens);
  return *this;
}

StepBuilder& StepBuilder::Free(absl::Span<const uint64_t> seqs) {
  request_.add_ops()->mutable_free()->mutable_seqs()->Add(seqs.begin(), seqs.end());
  return *this;
}

StepBuilder& StepBuilder::SwapOut(absl::Span<const uint64_t> seqs) {
  request_.add_ops()->mutable_swap_out()->mutable_seqs()->Add(seqs.begin(), seqs.end());
  return *this;
}

StepBuilder& StepBuilder::SwapIn(absl::Span<const uint64_t> seqs) {
  request_.add_ops()->mutable_swap_in()->mutable_seqs()->Add(seqs.begin(), seqs.end());
  return *this;
}

StepBuilder& StepBuilder::SetCrossAttention(uint64_t seq, int32_t encoder_tokens) {
  v1::SetCrossAttentionOp* op = request_.add_ops()->mutable_set_cross_attention();
  op->set_seq(seq);
  op->set_encoder_tokens(encoder_tokens);
  return *this;
}

StepBuilder& StepBuilder::Batch(uint64_t seq, int32_t num_new_tokens, int32_t num_context_tokens) {
  v1::BatchEntry* e = request_.add_batch();
  e->set_seq(seq);
  e->set_num_new_tokens(num_new_tokens);
  if (num_context_tokens >= 0) e->set_num_context_tokens(num_context_tokens);
  return *this;
}

StepBuilder& StepBuilder::Groups(absl::Span<const int32_t> groups) {
  request_.mutable_groups()->Add(groups.begin(), groups.end());
  return *this;
}

StepBuilder& StepBuilder::StopAtFirstError(bool stop) {
  request_.set_stop_at_first_error(stop);
  return *this;
}

absl::StatusOr<StepResult> UnpackStep(const v1::StepResponse& response) {
  StepResult r;
  r.op_status.reserve(response.results_size());
  for (const v1::OpResult& op : response.results()) {
    r.op_status.push_back(FromProto(op.status()));
    r.op_results.push_back(op);
  }
  PAGEDKV_ASSIGN_OR_RETURN(r.ops, service::UnpackCacheOps(response));
  r.ops_executed_by_server = response.cache_ops_executed();
  r.batch_status = FromProto(response.batch_status());
  for (const v1::BatchLayout& layout : response.layouts()) {
    PAGEDKV_ASSIGN_OR_RETURN(BatchLayout unpacked, service::UnpackLayout(layout));
    r.layouts.push_back(std::move(unpacked));
  }
  r.step = response.step();
  return r;
}

// ---- Client -------------------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(ClientOptions options) {
  if (options.target.empty()) {
    return absl::InvalidArgumentError(
        "client: empty target; give 'unix:/path/to/serve.sock' or 'host:port'");
  }
  if (!(options.timeout_seconds > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("client: timeout_seconds must be > 0, got ", options.timeout_seconds));
  }
  grpc::ChannelArguments args;
  const int max_bytes = static_cast<int>(
      std::min<int64_t>(options.max_message_bytes, std::numeric_limits<int>::max()));
  args.SetMaxReceiveMessageSize(max_bytes);
  args.SetMaxSendMessageSize(max_bytes);
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(options.target, grpc::InsecureChannelCredentials(), args);
  return std::unique_ptr<Client>(new Client(std::move(options), std::move(channel)));
}

Client::Client(ClientOptions options, std::shared_ptr<grpc::Channel> channel)
    : options_(std::move(options)), channel_(std::move(channel)), stub_(new Stub) {
  stub_->stub = v1::KvCache::NewStub(channel_);
}

Client::~Client() = default;

void Client::Prepare(grpc::ClientContext& context) const {
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::duration_cast<std::chrono::system_clock::duration>(
                           std::chrono::duration<double>(options_.timeout_seconds)));
  if (!options_.token.empty()) context.AddMetadata("authorization", "Bearer " + options_.token);
}

absl::StatusOr<v1::OpenSessionResponse> Client::OpenSession(const v1::OpenSessionRequest& request) {
  grpc::ClientContext context;
  Prepare(context);
  v1::OpenSessionResponse response;
  PAGEDKV_RETURN_IF_ERROR(FromGrpcStatus(stub_->stub->OpenSession(&context, request, &response)));
  return response;
}

absl::Status Client::Step(const v1::StepRequest& request, v1::StepResponse* response) {
  grpc::ClientContext context;
  Prepare(context);
  return FromGrpcStatus(stub_->stub->Step(&context, request, response));
}

absl::StatusOr<v1::KeepAliveResponse> Client::KeepAlive(const v1::SessionRef& session) {
  grpc::ClientContext context;
  Prepare(context);
  v1::KeepAliveRequest request;
  *request.mutable_session() = session;
  v1::KeepAliveResponse response;
  PAGEDKV_RETURN_IF_ERROR(FromGrpcStatus(stub_->stub->KeepAlive(&context, request, &response)));
  return response;
}

absl::StatusOr<v1::CloseSessionResponse> Client::CloseSession(const v1::SessionRef& session) {
  grpc::ClientContext context;
  Prepare(context);
  v1::CloseSessionRequest request;
  *request.mutable_session() = session;
  v1::CloseSessionResponse response;
  PAGEDKV_RETURN_IF_ERROR(FromGrpcStatus(stub_->stub->CloseSession(&context, request, &response)));
  return response;
}

absl::StatusOr<v1::StatsResponse> Client::Stats(const v1::StatsRequest& request) {
  grpc::ClientContext context;
  Prepare(context);
  v1::StatsResponse response;
  PAGEDKV_RETURN_IF_ERROR(FromGrpcStatus(stub_->stub->Stats(&context, request, &response)));
  return response;
}

absl::StatusOr<v1::DescribeModelResponse> Client::DescribeModel(const std::string& model) {
  grpc::ClientContext context;
  Prepare(context);
  v1::DescribeModelRequest request;
  request.set_model(model);
  v1::DescribeModelResponse response;
  PAGEDKV_RETURN_IF_ERROR(FromGrpcStatus(stub_->stub->DescribeModel(&context, request, &response)));
  return response;
}

// ---- Session ------------------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<Session>> Session::Open(Client& client,
                                                       const v1::OpenSessionRequest& request) {
  PAGEDKV_ASSIGN_OR_RETURN(v1::OpenSessionResponse info, client.OpenSession(request));
  return std::unique_ptr<Session>(new Session(client, std::move(info)));
}

absl::Status Session::StepRaw(v1::StepRequest& request, v1::StepResponse* response) {
  *request.mutable_session() = ref();
  response->Clear();
  return client_.Step(request, response);
}

absl::StatusOr<StepResult> Session::Step(StepBuilder& step) {
  v1::StepResponse response;
  PAGEDKV_RETURN_IF_ERROR(StepRaw(step.request(), &response));
  return UnpackStep(response);
}

absl::Status Session::KeepAlive() { return client_.KeepAlive(ref()).status(); }

absl::StatusOr<int64_t> Session::Close() {
  PAGEDKV_ASSIGN_OR_RETURN(v1::CloseSessionResponse response, client_.CloseSession(ref()));
  return response.freed_sequences();
}

absl::StatusOr<v1::StatsResponse> Session::Stats(bool check_invariants) {
  v1::StatsRequest request;
  *request.mutable_session() = ref();
  request.set_check_invariants(check_invariants);
  request.set_model(model().name());
  return client_.Stats(request);
}

absl::StatusOr<SharedPools> Session::MapPools() const {
  if (info_.pool_socket().empty()) {
    return absl::FailedPreconditionError(
        "this server has no pool socket (it serves TCP only); shared pools need the Unix "
        "socket on the same machine");
  }
  return FetchSharedPools(info_.pool_socket(), ref());
}

}  // namespace pagedkv::client
