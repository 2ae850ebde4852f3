// StepRunner: one Step's ops, CacheOps and page tables, in the session's ids.
#include "service/internal/step_runner.h"

#include <algorithm>
#include <limits>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "pagedkv/core/absl_compat.h"
#include "pagedkv/core/check.h"
#include "pagedkv/core/status.h"
#include "pagedkv/service/wire.h"

namespace pagedkv::service::internal {
namespace {

uint64_t Mix64(uint64_t x) {  // splitmix64's finalizer
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

uint64_t SaltedExtraKey(uint64_t cache_salt, uint64_t extra_key) {
  return Mix64(cache_salt ^ Mix64(extra_key));
}

uint64_t NamespaceSalt(std::string_view cache_namespace, uint64_t session_id) {
  if (cache_namespace.empty()) return Mix64(0x70726976617465ull ^ Mix64(session_id));  // "private"
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a over the name, then mixed
  for (unsigned char c : cache_namespace) h = (h ^ c) * 0x100000001b3ull;
  return Mix64(h);
}

std::string RewriteSeqIds(std::string_view message,
                          absl::Span<const std::pair<SeqId, uint64_t>> names) {
  std::string out;
  out.reserve(message.size());
  size_t i = 0;
  while (i < message.size()) {
    if (message[i] < '0' || message[i] > '9') {
      out.push_back(message[i++]);
      continue;
    }
    size_t j = i;
    uint64_t value = 0;
    bool overflow = false;
    while (j < message.size() && message[j] >= '0' && message[j] <= '9') {
      const uint64_t digit = static_cast<uint64_t>(message[j] - '0');
      if (value > (std::numeric_limits<uint64_t>::max() - digit) / 10) overflow = true;
      value = value * 10 + digit;
      ++j;
    }
    const std::string_view digits = message.substr(i, j - i);
    if (overflow || value < kFirstManagerSeqId || value >= (SeqId{1} << 62)) {
      out.append(digits);
    } else {
      auto it =
          std::find_if(names.begin(), names.end(), [&](const auto& n) { return n.first == value; });
      if (it != names.end()) {
        absl::StrAppend(&out, it->second);
      } else {
        out.append("(another sequence)");
      }
    }
    i = j;
  }
  return out;
}

absl::Status StepRunner::Validate(const v1::StepRequest& request) const {
  if (request.ops_size() > limits_.max_ops_per_step) {
    return absl::InvalidArgumentError(absl::StrCat("step: ", request.ops_size(), " ops; at most ",
                                                   limits_.max_ops_per_step,
                                                   " per step: split them over several steps"));
  }
  if (request.batch_size() > limits_.max_batch_entries) {
    return absl::InvalidArgumentError(absl::StrCat(
        "step: ", request.batch_size(), " batch entries; at most ", limits_.max_batch_entries));
  }
  absl::flat_hash_set<int32_t> seen;
  for (int i = 0; i < request.groups_size(); ++i) {
    const int32_t g = request.groups(i);
    if (g < 0 || g >= host_.num_groups()) {
      return absl::InvalidArgumentError(absl::StrCat("step: groups[", i, "] = ", g,
                                                     " is outside [0, ", host_.num_groups(),
                                                     "); DescribeModel lists the groups"));
    }
    if (!seen.insert(g).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("step: group ", g, " is listed twice in groups; list each once"));
    }
  }
  for (int i = 0; i < request.ops_size(); ++i) {
    if (request.ops(i).kind_case() == v1::Op::KIND_NOT_SET) {
      return absl::InvalidArgumentError(
          absl::StrCat("step: ops[", i, "] sets no operation; set one of add, append, ..."));
    }
  }
  return absl::OkStatus();
}

void StepRunner::Run(const v1::StepRequest& request, v1::StepResponse* response) {
  touched_.clear();
  bool failed = false;
  for (const v1::Op& op : request.ops()) {
    v1::OpResult* result = response->add_results();
    absl::Status status;
    if (failed && request.stop_at_first_error()) {
      status = absl::AbortedError("not run: an earlier op of this step failed");
    } else {
      names_.clear();
      status = RunOp(op, result);
    }
    if (!status.ok()) {
      failed = true;
      ++host_.counters().failed_ops;
    }
    ToProto(status, result->mutable_status());
  }
  host_.counters().ops += static_cast<uint64_t>(request.ops_size());
  ++host_.counters().steps;
  CacheOps ops;
  bm_.TakeCacheOps(&ops);
  if (host_.executes_cache_ops() && !ops.empty()) {
    absl::Status executed = host_.ExecuteCacheOps(ops);
    PAGEDKV_CHECK_MSG(executed.ok(), "running the manager's own CacheOps failed");
  }
  response->set_cache_ops_executed(host_.executes_cache_ops());
  PackCacheOps(ops, response);
  names_.clear();
  ToProto(BuildLayouts(request, response), response->mutable_batch_status());
  // What a dead client may still be writing: the sequences this step named that still exist.
  session_.last_step_seqs.clear();
  for (SeqId seq : touched_) {
    if (bm_.Contains(seq)) session_.last_step_seqs.push_back(seq);
  }
  std::sort(session_.last_step_seqs.begin(), session_.last_step_seqs.end());
  session_.last_step_seqs.erase(
      std::unique(session_.last_step_seqs.begin(), session_.last_step_seqs.end()),
      session_.last_step_seqs.end());
  response->set_step(++session_.steps);
}

absl::Status StepRunner::RunOp(const v1::Op& op, v1::OpResult* result) {
  switch (op.kind_case()) {
    case v1::Op::kAdd:
      return Add(op.add(), result);
    case v1::Op::kAppend:
      return Append(op.append());
    case v1::Op::kAppendBatch:
      return AppendBatch(op.append_batch());
    case v1::Op::kMarkComputed:
      return MarkComputed(op.mark_computed());
    case v1::Op::kFork:
      return Fork(op.fork());
    case v1::Op::kReorderBeams:
      return ReorderBeams(op.reorder_beams());
    case v1::Op::kRewind:
      return Rewind(op.rewind());
    case v1::Op::kFree:
      return Free(op.free());
    case v1::Op::kSwapOut:
      return SwapOut(op.swap_out());
    case v1::Op::kSwapIn:
      return SwapIn(op.swap_in());
    case v1::Op::kSetCrossAttention:
      return SetCrossAttention(op.set_cross_attention());
    case v1::Op::KIND_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError("op sets no operation");
}

// ---- Ids, quotas, messages ----------------------------------------------------------------------

absl::StatusOr<SeqId> StepRunner::Resolve(uint64_t client, const char* op) {
  auto it = session_.seqs.find(client);
  if (it == session_.seqs.end()) {
    return absl::NotFoundError(absl::StrCat(op, ": sequence ", client,
                                            " is not known in this session; add or fork it first"));
  }
  names_.emplace_back(it->second, client);
  Touch(it->second);
  return it->second;
}

absl::Status StepRunner::ResolveList(absl::Span<const uint64_t> clients, const char* op,
                                     std::vector<SeqId>* out) {
  out->clear();
  out->reserve(clients.size());
  absl::flat_hash_set<uint64_t> seen;
  for (uint64_t client : clients) {
    if (!seen.insert(client).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(op, ": sequence ", client, " is listed twice; list each once"));
    }
    PAGEDKV_ASSIGN_OR_RETURN(SeqId seq, Resolve(client, op));
    out->push_back(seq);
  }
  return absl::OkStatus();
}

absl::Status StepRunner::CheckQuota(Tier tier, int64_t need, const char* op) const {
  const uint32_t quota = tier == Tier::kGpu ? session_.gpu_quota : session_.host_quota;
  const uint32_t used = session_.ledger.used(tier);
  if (need <= 0 || used + need <= static_cast<int64_t>(quota)) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
      op, ": needs up to ", need, " more ", AbslView(TierName(tier)), " blocks but session ",
      session_.id, " holds ", used, " of its ", AbslView(TierName(tier)), " quota of ", quota,
      "; free, rewind or swap out sequences, or open the session with a larger ",
      AbslView(TierName(tier)), "_block_quota"));
}

absl::Status StepRunner::Translate(const absl::Status& status) const {
  if (status.ok()) return status;
  return absl::Status(status.code(), RewriteSeqIds(StdView(status.message()), names_));
}

// ---- Ops ----------------------------------------------------------------------------------------

absl::Status StepRunner::Add(const v1::AddOp& op, v1::OpResult* result) {
  if (session_.seqs.contains(op.seq())) {
    return absl::AlreadyExistsError(absl::StrCat("add: sequence ", op.seq(),
                                                 " already exists in this session; free it "
                                                 "first or pick a new id"));
  }
  const int64_t pool_tokens = int64_t{host_.gpu_blocks()} * host_.block_size();
  if (op.prompt_size() > pool_tokens) {
    return absl::InvalidArgumentError(
        absl::StrCat("add: sequence ", op.seq(), ": a prompt of ", op.prompt_size(),
                     " tokens can never fit: the GPU pool holds ", pool_tokens, " tokens (",
                     host_.gpu_blocks(), " blocks of ", host_.block_size(), ")"));
  }
  int64_t self_groups = 0;
  for (const v1::KvGroupDescription& g : host_.description().groups()) {
    self_groups += g.kind() != "cross";
  }
  PAGEDKV_RETURN_IF_ERROR(
      CheckQuota(Tier::kGpu, self_groups * CeilDiv(op.prompt_size(), host_.block_size()), "add"));
  const SeqId seq = host_.NewSeqId();
  names_.emplace_back(seq, op.seq());
  SequenceOptions options;
  options.extra_key = SaltedExtraKey(session_.cache_salt, op.extra_key());
  if (op.has_encoder_key()) options.encoder_key = op.encoder_key();
  absl::StatusOr<AdmitInfo> info = bm_.AddSequence(seq, op.prompt(), options);
  if (!info.ok()) return Translate(info.status());
  session_.seqs.emplace(op.seq(), seq);
  session_.ledger.Sync(bm_, seq);
  Touch(seq);
  result->set_num_cached_tokens(info->num_cached_tokens);
  result->set_num_new_blocks(info->num_new_blocks);
  return absl::OkStatus();
}

absl::Status StepRunner::Append(const v1::AppendOp& op) {
  PAGEDKV_ASSIGN_OR_RETURN(const SeqId seq, Resolve(op.seq(), "append"));
  if (op.tokens_size() > 0) {
    absl::StatusOr<int32_t> need = bm_.BlocksToAppend(seq, op.tokens_size());
    if (need.ok()) PAGEDKV_RETURN_IF_ERROR(CheckQuota(Tier::kGpu, *need, "append"));
  }
  PAGEDKV_RETURN_IF_ERROR(Translate(bm_.AppendTokens(seq, op.tokens())));
  session_.ledger.Sync(bm_, seq);
  return absl::OkStatus();
}

absl::Status StepRunner::AppendBatch(const v1::AppendBatchOp& op) {
  if (op.seqs_size() != op.tokens_size()) {
    return absl::InvalidArgumentError(absl::StrCat("append_batch: ", op.seqs_size(),
                                                   " sequences but ", op.tokens_size(),
                                                   " tokens; give one token per sequence"));
  }
  PAGEDKV_RETURN_IF_ERROR(ResolveList(op.seqs(), "append_batch", &scratch_));
  int64_t need = 0;
  for (SeqId seq : scratch_) {
    absl::StatusOr<int32_t> n = bm_.BlocksToAppend(seq, 1);
    if (n.ok()) need += *n;
  }
  PAGEDKV_RETURN_IF_ERROR(CheckQuota(Tier::kGpu, need, "append_batch"));
  PAGEDKV_RETURN_IF_ERROR(Translate(bm_.AppendTokenBatch(scratch_, op.tokens())));
  for (SeqId seq : scratch_) session_.ledger.Sync(bm_, seq);
  return absl::OkStatus();
}

absl::Status StepRunner::MarkComputed(const v1::MarkComputedOp& op) {
  if (op.seqs_size() != op.num_computed_tokens_size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "mark_computed: ", op.seqs_size(), " sequences but ", op.num_computed_tokens_size(),
        " counts; give one num_computed_tokens per sequence"));
  }
  PAGEDKV_RETURN_IF_ERROR(ResolveList(op.seqs(), "mark_computed", &scratch_));
  return Translate(bm_.MarkComputedBatch(scratch_, op.num_computed_tokens()));
}

absl::Status StepRunner::Fork(const v1::ForkOp& op) {
  if (op.parent() == op.child()) {
    return absl::InvalidArgumentError(
        absl::StrCat("fork: parent and child are both sequence ", op.parent(), "; pick a new id"));
  }
  PAGEDKV_ASSIGN_OR_RETURN(const SeqId parent, Resolve(op.parent(), "fork"));
  if (session_.seqs.contains(op.child())) {
    return absl::AlreadyExistsError(absl::StrCat("fork: child sequence ", op.child(),
                                                 " already exists in this session; free it "
                                                 "first or pick a new id"));
  }
  const SeqId child = host_.NewSeqId();
  names_.emplace_back(child, op.child());
  PAGEDKV_RETURN_IF_ERROR(Translate(bm_.Fork(parent, child)));
  session_.seqs.emplace(op.child(), child);
  session_.ledger.Sync(bm_, child);
  Touch(child);
  return absl::OkStatus();
}

absl::Status StepRunner::ReorderBeams(const v1::ReorderBeamsOp& op) {
  PAGEDKV_RETURN_IF_ERROR(ResolveList(op.beams(), "reorder_beams", &scratch_));
  PAGEDKV_RETURN_IF_ERROR(Translate(bm_.ReorderBeams(scratch_, op.parent_indices())));
  for (SeqId seq : scratch_) session_.ledger.Sync(bm_, seq);
  return absl::OkStatus();
}

absl::Status StepRunner::Rewind(const v1::RewindOp& op) {
  PAGEDKV_ASSIGN_OR_RETURN(const SeqId seq, Resolve(op.seq(), "rewind"));
  PAGEDKV_RETURN_IF_ERROR(Translate(bm_.Rewind(seq, op.num_tokens())));
  session_.ledger.Sync(bm_, seq);
  return absl::OkStatus();
}

absl::Status StepRunner::Free(const v1::FreeOp& op) {
  PAGEDKV_RETURN_IF_ERROR(ResolveList(op.seqs(), "free", &scratch_));
  for (int i = 0; i < op.seqs_size(); ++i) {
    // Every id was resolved above, so Free cannot fail: the op is all or nothing.
    absl::Status s = bm_.Free(scratch_[i]);
    PAGEDKV_CHECK_MSG(s.ok(), "free of a resolved sequence failed");
    session_.ledger.Drop(scratch_[i]);
    session_.seqs.erase(op.seqs(i));
  }
  return absl::OkStatus();
}

absl::Status StepRunner::SwapOut(const v1::SwapOutOp& op) {
  PAGEDKV_RETURN_IF_ERROR(ResolveList(op.seqs(), "swap_out", &scratch_));
  int64_t need = 0;
  for (SeqId seq : scratch_) need += session_.ledger.LivePages(seq, Tier::kGpu);
  PAGEDKV_RETURN_IF_ERROR(CheckQuota(Tier::kHost, need, "swap_out"));
  PAGEDKV_RETURN_IF_ERROR(Translate(bm_.SwapOut(scratch_)));
  for (SeqId seq : scratch_) session_.ledger.Sync(bm_, seq);
  return absl::OkStatus();
}

absl::Status StepRunner::SwapIn(const v1::SwapInOp& op) {
  PAGEDKV_RETURN_IF_ERROR(ResolveList(op.seqs(), "swap_in", &scratch_));
  int64_t need = 0;
  for (SeqId seq : scratch_) need += session_.ledger.LivePages(seq, Tier::kHost);
  PAGEDKV_RETURN_IF_ERROR(CheckQuota(Tier::kGpu, need, "swap_in"));
  PAGEDKV_RETURN_IF_ERROR(Translate(bm_.SwapIn(scratch_)));
  for (SeqId seq : scratch_) session_.ledger.Sync(bm_, seq);
  return absl::OkStatus();
}

absl::Status StepRunner::SetCrossAttention(const v1::SetCrossAttentionOp& op) {
  PAGEDKV_ASSIGN_OR_RETURN(const SeqId seq, Resolve(op.seq(), "set_cross_attention"));
  if (op.encoder_tokens() > 0) {
    PAGEDKV_RETURN_IF_ERROR(CheckQuota(Tier::kGpu, CeilDiv(op.encoder_tokens(), host_.block_size()),
                                       "set_cross_attention"));
  }
  PAGEDKV_RETURN_IF_ERROR(Translate(bm_.SetCrossAttention(seq, op.encoder_tokens())));
  session_.ledger.Sync(bm_, seq);
  return absl::OkStatus();
}

// ---- Page tables --------------------------------------------------------------------------------

absl::Status StepRunner::BuildLayouts(const v1::StepRequest& request, v1::StepResponse* response) {
  if (request.batch_size() == 0) return absl::OkStatus();
  entries_.clear();
  entries_.reserve(request.batch_size());
  for (const v1::BatchEntry& e : request.batch()) {
    PAGEDKV_ASSIGN_OR_RETURN(const SeqId seq, Resolve(e.seq(), "batch"));
    BatchEntry entry;
    entry.seq_id = seq;
    entry.num_new_tokens = e.has_num_new_tokens() ? e.num_new_tokens() : 1;
    entry.num_context_tokens = e.has_num_context_tokens() ? e.num_context_tokens() : -1;
    entries_.push_back(entry);
  }
  const auto build = [&](int32_t group) -> absl::Status {
    absl::StatusOr<const BatchLayout*> layout = bm_.BuildBatch(entries_, group);
    if (!layout.ok()) return Translate(layout.status());
    PackLayout(**layout, response->add_layouts());
    return absl::OkStatus();
  };
  absl::Status status;
  if (request.groups_size() == 0) {
    for (int32_t g = 0; g < host_.num_groups() && status.ok(); ++g) status = build(g);
  } else {
    for (int32_t g : request.groups()) {
      if (!status.ok()) break;
      status = build(g);
    }
  }
  if (!status.ok()) response->clear_layouts();
  return status;
}

}  // namespace pagedkv::service::internal
