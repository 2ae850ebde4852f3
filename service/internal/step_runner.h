// StepRunner: executes one Step of one session on its model, with the model lock held: each op in
// order (all-or-nothing, its own status), then TakeCacheOps, then the batch's page tables. Ids in
// requests and in every message are the session's own; the manager's ids never leave.
//
//   StepRunner runner(host, session, limits);
//   PAGEDKV_RETURN_IF_ERROR(runner.Validate(request));   // nothing has run when this fails
//   runner.Run(request, &response);
#ifndef PAGEDKV_SERVICE_INTERNAL_STEP_RUNNER_H_
#define PAGEDKV_SERVICE_INTERNAL_STEP_RUNNER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "pagedkv/block_manager/block_manager.h"
#include "pagedkv/service/server.h"
#include "pagedkv/v1/kvcache.pb.h"
#include "service/internal/model_host.h"
#include "service/internal/session.h"

namespace pagedkv::service::internal {

// The extra_key the manager sees: the session's namespace salt and the client's extra key, mixed
// (64-bit; pages of two namespaces could meet only through a 64-bit hash collision).
uint64_t SaltedExtraKey(uint64_t cache_salt, uint64_t extra_key);
// The salt of a named namespace (same name, same salt) and of a private one (unique per session).
uint64_t NamespaceSalt(std::string_view cache_namespace, uint64_t session_id);

// Replaces each manager SeqId in `message` by the session's id from `names`, and any other
// manager id by "(another sequence)".
std::string RewriteSeqIds(std::string_view message,
                          absl::Span<const std::pair<SeqId, uint64_t>> names);

class StepRunner {
 public:
  StepRunner(ModelHost& host, Session& session, const SessionLimits& limits)
      : host_(host), session_(session), bm_(host.bm()), limits_(limits) {}

  // Whole-request checks (sizes, group indices): InvalidArgument, and nothing runs.
  absl::Status Validate(const v1::StepRequest& request) const;
  // Runs the ops, takes the CacheOps and builds the page tables into *response.
  void Run(const v1::StepRequest& request, v1::StepResponse* response);

 private:
  absl::Status RunOp(const v1::Op& op, v1::OpResult* result);
  absl::Status Add(const v1::AddOp& op, v1::OpResult* result);
  absl::Status Append(const v1::AppendOp& op);
  absl::Status AppendBatch(const v1::AppendBatchOp& op);
  absl::Status MarkComputed(const v1::MarkComputedOp& op);
  absl::Status Fork(const v1::ForkOp& op);
  absl::Status ReorderBeams(const v1::ReorderBeamsOp& op);
  absl::Status Rewind(const v1::RewindOp& op);
  absl::Status Free(const v1::FreeOp& op);
  absl::Status SwapOut(const v1::SwapOutOp& op);
  absl::Status SwapIn(const v1::SwapInOp& op);
  absl::Status SetCrossAttention(const v1::SetCrossAttentionOp& op);
  absl::Status BuildLayouts(const v1::StepRequest& request, v1::StepResponse* response);

  // The manager id of the session's `client` id: NotFound (in the session's terms) otherwise.
  absl::StatusOr<SeqId> Resolve(uint64_t client, const char* op);
  // Resolves a list; InvalidArgument when an id is listed twice.
  absl::Status ResolveList(absl::Span<const uint64_t> clients, const char* op,
                           std::vector<SeqId>* out);
  // ResourceExhausted when `need` more blocks of `tier` would exceed the session's quota.
  absl::Status CheckQuota(Tier tier, int64_t need, const char* op) const;
  // A manager status with the session's ids.
  absl::Status Translate(const absl::Status& status) const;
  void Touch(SeqId seq) { touched_.push_back(seq); }

  ModelHost& host_;
  Session& session_;
  BlockManager& bm_;
  const SessionLimits& limits_;
  std::vector<std::pair<SeqId, uint64_t>> names_;  // of the current op (and batch)
  std::vector<SeqId> touched_;                     // named by this step
  std::vector<SeqId> scratch_;
  std::vector<BatchEntry> entries_;
};

}  // namespace pagedkv::service::internal

#endif  // PAGEDKV_SERVICE_INTERNAL_STEP_RUNNER_H_
