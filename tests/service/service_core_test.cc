// ServiceCore without a transport: every op and its error codes, isolation between sessions,
// quotas, prefix-cache namespaces, leases and quarantine on a fake clock, and a multi-threaded
// stress run (the ThreadSanitizer build runs it too).
#include "service/internal/service_core.h"

#include <algorithm>
#include <atomic>
#include <random>
#include <thread>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pagedkv/service/client.h"
#include "pagedkv/service/wire.h"
#include "service/internal/step_runner.h"
#include "tests/service/test_util.h"

namespace pagedkv::service::internal {
namespace {

using client::StepBuilder;
using client::StepResult;
using ::testing::HasSubstr;
using testing::ToyServerOptions;

constexpr int64_t kSecond = 1'000'000'000;

Deadline Far() { return std::chrono::steady_clock::now() + std::chrono::seconds(30); }

// Nothing in a message may be a manager id (>= 2^40): sessions only ever see their own ids.
void ExpectNoManagerIds(absl::string_view message) {
  for (absl::string_view word : absl::StrSplit(message, absl::ByAnyChar(" ,;:()[]'"))) {
    uint64_t value = 0;
    if (absl::SimpleAtoi(word, &value)) {
      EXPECT_LT(value, kFirstManagerSeqId) << "manager id leaked in: " << message;
    }
  }
}

class CoreTest : public ::testing::Test {
 protected:
  void SetUp() override { Make(ToyServerOptions(&now_)); }

  void Make(const ServerOptions& options) {
    absl::StatusOr<std::unique_ptr<ServiceCore>> core = ServiceCore::Create(options);
    ASSERT_TRUE(core.ok()) << core.status();
    core_ = std::move(*core);
  }

  v1::SessionRef Open(const std::string& name, uint32_t gpu_quota = 0,
                      const std::string& cache_namespace = "", double lease_seconds = 0,
                      uint32_t host_quota = 0) {
    v1::OpenSessionRequest request;
    request.set_client_name(name);
    request.set_gpu_block_quota(gpu_quota);
    request.set_host_block_quota(host_quota);
    request.set_cache_namespace(cache_namespace);
    request.set_lease_seconds(lease_seconds);
    v1::OpenSessionResponse response;
    absl::Status s = core_->OpenSession(request, &response);
    EXPECT_TRUE(s.ok()) << s;
    return response.session();
  }

  // One Step; the RPC itself must succeed.
  StepResult Step(const v1::SessionRef& session, StepBuilder& step) {
    *step.request().mutable_session() = session;
    v1::StepResponse response;
    absl::Status s = core_->Step(step.request(), Far(), &response);
    EXPECT_TRUE(s.ok()) << s;
    last_response_ = response;
    absl::StatusOr<StepResult> r = client::UnpackStep(response);
    EXPECT_TRUE(r.ok()) << r.status();
    for (const absl::Status& st : r->op_status) ExpectNoManagerIds(st.message());
    ExpectNoManagerIds(r->batch_status.message());
    step.Clear();
    return *r;
  }

  // A single-op Step's op status.
  absl::Status Op(const v1::SessionRef& session, StepBuilder& step) {
    StepResult r = Step(session, step);
    EXPECT_EQ(r.op_status.size(), 1u);
    return r.op_status.empty() ? absl::InternalError("no result") : r.op_status[0];
  }

  v1::StatsResponse Stats(const v1::SessionRef* session = nullptr) {
    v1::StatsRequest request;
    request.set_check_invariants(true);
    if (session != nullptr) *request.mutable_session() = *session;
    v1::StatsResponse response;
    absl::Status s = core_->Stats(request, Far(), &response);
    EXPECT_TRUE(s.ok()) << s;
    EXPECT_EQ(response.invariants().code(), 0) << response.invariants().message();
    return response;
  }

  // What must not change when an op fails: pools, sequences, every counter but steps/ops.
  std::string Snapshot(const v1::SessionRef& session) {
    v1::StatsResponse s = Stats(&session);
    for (v1::ModelStats& m : *s.mutable_models()) {
      m.clear_steps();
      m.clear_ops();
      m.clear_failed_ops();
    }
    s.mutable_session()->clear_steps();
    s.mutable_session()->clear_seconds_until_expiry();
    return s.DebugString();
  }

  // Runs a single-op step that must fail with `code`, leaving the state unchanged.
  void ExpectFails(const v1::SessionRef& session, StepBuilder& step, absl::StatusCode code,
                   const std::string& message_part) {
    const std::string before = Snapshot(session);
    absl::Status s = Op(session, step);
    EXPECT_EQ(s.code(), code) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr(message_part));
    EXPECT_EQ(Snapshot(session), before) << "a failed op changed the state: " << s;
  }

  uint32_t GpuInUse() {
    v1::StatsResponse s = Stats();
    uint32_t n = 0;
    for (const v1::PoolStats& p : s.models(0).pools()) n += p.gpu_in_use_blocks();
    return n;
  }

  std::atomic<int64_t> now_{1000 * kSecond};
  std::unique_ptr<ServiceCore> core_;
  v1::StepResponse last_response_;
};

std::vector<TokenId> Tokens(int n, int base = 100) {
  std::vector<TokenId> t(n);
  for (int i = 0; i < n; ++i) t[i] = base + i;
  return t;
}

// ---- Sessions and description --------------------------------------------------------------

TEST_F(CoreTest, OpenSessionGrantsLeaseQuotasAndDescribesTheModel) {
  v1::OpenSessionRequest request;
  request.set_client_name("engine-a");
  request.set_lease_seconds(1e9);  // clamped to the maximum
  v1::OpenSessionResponse response;
  PAGEDKV_ASSERT_OK(core_->OpenSession(request, &response));
  EXPECT_EQ(response.session().secret().size(), kSecretBytes);
  EXPECT_EQ(response.lease_seconds(), core_->limits().max_lease_seconds);
  EXPECT_EQ(response.gpu_block_quota(), 64u);
  EXPECT_EQ(response.host_block_quota(), 32u);
  const v1::ModelDescription& m = response.model();
  EXPECT_EQ(m.name(), "toy");
  EXPECT_EQ(m.block_size(), 4);
  EXPECT_EQ(m.num_kv_heads(), 2);
  EXPECT_EQ(m.head_dim(), 16);
  EXPECT_EQ(m.kv_dtype(), "fp32");
  ASSERT_EQ(m.groups_size(), 1);
  EXPECT_EQ(m.groups(0).kind(), "full");
  EXPECT_EQ(m.groups(0).bytes_per_block(), 2u * 2 * 2 * 4 * 16 * 4);
  ASSERT_EQ(m.pools_size(), 2);
  EXPECT_EQ(m.pools(0).tier(), "gpu");
  EXPECT_EQ(m.pools(0).kind(), v1::POOL_KIND_MEMFD);
  EXPECT_EQ(m.pools(0).num_blocks(), 64u);
  EXPECT_EQ(m.pools(1).tier(), "host");
  EXPECT_EQ(m.pools(1).layout().num_layers(), 2);
  ASSERT_EQ(m.layers_size(), 2);
  EXPECT_EQ(m.layers(1).layer_in_group(), 1);

  v1::DescribeModelResponse described;
  PAGEDKV_ASSERT_OK(core_->DescribeModel({}, &described));
  EXPECT_EQ(described.model().DebugString(), m.DebugString());
  EXPECT_THAT(described.served_models(), ::testing::ElementsAre("toy"));
}

TEST_F(CoreTest, UnknownModelAndBadLeaseAreRejected) {
  v1::OpenSessionRequest request;
  request.set_model("nope");
  v1::OpenSessionResponse response;
  absl::Status s = core_->OpenSession(request, &response);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(s.message()), HasSubstr("served: toy"));
  request.set_model("");
  request.set_lease_seconds(-1);
  EXPECT_EQ(core_->OpenSession(request, &response).code(), absl::StatusCode::kInvalidArgument);
  v1::DescribeModelRequest describe;
  describe.set_model("nope");
  v1::DescribeModelResponse described;
  EXPECT_EQ(core_->DescribeModel(describe, &described).code(), absl::StatusCode::kNotFound);
}

TEST_F(CoreTest, UnknownSessionAndWrongSecretGetTheSameNotFound) {
  v1::SessionRef real = Open("a");
  v1::SessionRef unknown = real;
  unknown.set_session_id(real.session_id() + 100);
  v1::SessionRef wrong = real;
  wrong.set_secret(std::string(kSecretBytes, 'x'));
  v1::SessionRef missing = real;
  missing.clear_secret();
  for (const v1::SessionRef& ref : {unknown, wrong, missing}) {
    v1::StepRequest request;
    *request.mutable_session() = ref;
    v1::StepResponse response;
    absl::Status s = core_->Step(request, Far(), &response);
    EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr("no open session with this id and secret"));
    v1::KeepAliveRequest keep;
    *keep.mutable_session() = ref;
    v1::KeepAliveResponse kept;
    EXPECT_EQ(core_->KeepAlive(keep, &kept).code(), absl::StatusCode::kNotFound);
  }
}

// ---- Every op ------------------------------------------------------------------------------

TEST_F(CoreTest, AddAndDecodeStepReturnPageTablesAndSlots) {
  v1::SessionRef s = Open("a");
  StepBuilder step;
  step.Add(1, Tokens(6)).Add(2, Tokens(3, 500)).Batch(1, 6).Batch(2, 3);
  StepResult r = Step(s, step);
  PAGEDKV_ASSERT_OK(r.FirstError());
  EXPECT_EQ(r.step, 1u);
  ASSERT_EQ(r.layouts.size(), 1u);
  const BatchLayout& l = r.layouts[0];
  EXPECT_EQ(l.block_size, 4);
  EXPECT_EQ(l.page_indptr, (std::vector<int32_t>{0, 2, 3}));
  EXPECT_EQ(l.last_page_len, (std::vector<int32_t>{2, 3}));
  EXPECT_EQ(l.query_indptr, (std::vector<int32_t>{0, 6, 9}));
  ASSERT_EQ(l.slot_mapping.size(), 9u);
  for (int t = 0; t < 6; ++t) {
    EXPECT_EQ(l.slot_mapping[t], int64_t{l.page_indices[t / 4]} * 4 + t % 4);
  }
  ASSERT_EQ(r.ops.groups.size(), 1u);
  EXPECT_TRUE(r.ops.empty());

  const std::vector<uint64_t> seqs = {1, 2};
  const std::vector<TokenId> next = {7, 8};
  step.AppendBatch(seqs, next).Batch(1).Batch(2);
  r = Step(s, step);
  PAGEDKV_ASSERT_OK(r.FirstError());
  EXPECT_EQ(r.layouts[0].last_page_len, (std::vector<int32_t>{3, 4}));
  EXPECT_EQ(r.layouts[0].slot_mapping.size(), 2u);
  EXPECT_EQ(r.step, 2u);
  v1::StatsResponse stats = Stats(&s);
  EXPECT_EQ(stats.session().num_sequences(), 2);
  EXPECT_EQ(stats.session().gpu_blocks_used(), 3u);
}

TEST_F(CoreTest, ForkCopyOnWriteReorderRewindFreeSwap) {
  v1::SessionRef s = Open("a");
  StepBuilder step;
  step.Add(1, Tokens(6));
  PAGEDKV_ASSERT_OK(Step(s, step).FirstError());
  step.Fork(1, 2);
  PAGEDKV_ASSERT_OK(Op(s, step));
  EXPECT_EQ(Stats(&s).session().gpu_blocks_used(), 2u);  // shared pages count once
  const std::vector<TokenId> tok = {9};
  step.Append(2, tok);
  StepResult r = Step(s, step);
  PAGEDKV_ASSERT_OK(r.FirstError());
  ASSERT_EQ(r.ops.groups[0].copies.size(), 1u);  // copy-on-write of the shared last page
  EXPECT_EQ(Stats(&s).session().gpu_blocks_used(), 3u);

  const std::vector<uint64_t> beams = {1, 2};
  const std::vector<int32_t> parents = {1, 1};
  step.Rewind(2, 6);  // back to the fork point: both beams are 6 tokens
  PAGEDKV_ASSERT_OK(Op(s, step));
  step.ReorderBeams(beams, parents);
  PAGEDKV_ASSERT_OK(Op(s, step));

  const std::vector<uint64_t> one = {1};
  step.SwapOut(one);
  r = Step(s, step);
  PAGEDKV_ASSERT_OK(r.FirstError());
  EXPECT_FALSE(r.ops.groups[0].swap_out.empty());
  EXPECT_GT(Stats(&s).session().host_blocks_used(), 0u);
  step.SwapIn(one);
  r = Step(s, step);
  PAGEDKV_ASSERT_OK(r.FirstError());
  EXPECT_FALSE(r.ops.groups[0].swap_in.empty());
  EXPECT_EQ(Stats(&s).session().host_blocks_used(), 0u);

  const std::vector<uint64_t> both = {1, 2};
  step.Free(both);
  PAGEDKV_ASSERT_OK(Op(s, step));
  v1::StatsResponse stats = Stats(&s);
  EXPECT_EQ(stats.session().num_sequences(), 0);
  EXPECT_EQ(stats.session().gpu_blocks_used(), 0u);
  EXPECT_EQ(GpuInUse(), 0u);
}

TEST_F(CoreTest, CrossAttentionOnAnEncoderDecoderModel) {
  ServerOptions o = ToyServerOptions(&now_);
  o.models[0].spec = testing::ToyCrossSpec();
  Make(o);
  v1::SessionRef s = Open("a");
  StepBuilder step;
  step.Add(1, Tokens(3));  // prefix caching on an encoder-decoder model needs the encoder key
  ExpectFails(s, step, absl::StatusCode::kInvalidArgument, "encoder");
  step.Add(1, Tokens(3), 0, /*encoder_key=*/77)
      .SetCrossAttention(1, 10)
      .Batch(1, 10)
      .Groups(std::vector<int32_t>{1});
  StepResult r = Step(s, step);
  PAGEDKV_ASSERT_OK(r.FirstError());
  ASSERT_EQ(r.layouts.size(), 1u);
  EXPECT_EQ(r.layouts[0].group, 1);
  EXPECT_EQ(r.layouts[0].slot_mapping.size(), 10u);
  step.SetCrossAttention(1, 10);
  ExpectFails(s, step, absl::StatusCode::kFailedPrecondition, "");
}

TEST_F(CoreTest, MarkComputedPublishesPagesAndIsMonotone) {
  v1::SessionRef s = Open("a");
  StepBuilder step;
  step.Add(1, Tokens(9));
  PAGEDKV_ASSERT_OK(Op(s, step));
  // Not computed yet: a second sequence with the same prompt finds nothing to share.
  step.Add(2, Tokens(9));
  StepResult r = Step(s, step);
  EXPECT_EQ(r.op_results[0].num_cached_tokens(), 0);
  const std::vector<uint64_t> one = {1};
  step.MarkComputed(one, std::vector<int64_t>{9});
  PAGEDKV_ASSERT_OK(Op(s, step));
  step.Add(3, Tokens(9));
  r = Step(s, step);
  EXPECT_EQ(r.op_results[0].num_cached_tokens(), 8);  // two full computed pages
  step.MarkComputed(one, std::vector<int64_t>{4});
  ExpectFails(s, step, absl::StatusCode::kInvalidArgument, "");  // below the computed count
  step.MarkComputed(one, std::vector<int64_t>{10});
  ExpectFails(s, step, absl::StatusCode::kInvalidArgument, "");  // beyond the tokens
  step.MarkComputed(std::vector<uint64_t>{1, 1}, std::vector<int64_t>{9, 9});
  ExpectFails(s, step, absl::StatusCode::kInvalidArgument, "listed twice");
  step.MarkComputed(one, std::vector<int64_t>{9, 9});
  ExpectFails(s, step, absl::StatusCode::kInvalidArgument, "one num_computed_tokens per sequence");
  step.MarkComputed(std::vector<uint64_t>{44}, std::vector<int64_t>{1});
  ExpectFails(s, step, absl::StatusCode::kNotFound, "sequence 44");
  step.SwapOut(std::vector<uint64_t>{2});
  PAGEDKV_ASSERT_OK(Op(s, step));
  step.MarkComputed(std::vector<uint64_t>{2}, std::vector<int64_t>{9});
  ExpectFails(s, step, absl::StatusCode::kFailedPrecondition, "");
}

TEST_F(CoreTest, EveryOpErrorHasItsCodeAndLeavesStateUnchanged) {
  v1::SessionRef s = Open("a");
  StepBuilder step;
  step.Add(1, Tokens(5)).Add(2, Tokens(5, 300));
  PAGEDKV_ASSERT_OK(Step(s, step).FirstError());
  const std::vector<uint64_t> dup = {1, 1};
  const std::vector<uint64_t> one = {1};
  const std::vector<TokenId> two_tokens = {1, 2};

  step.Add(1, Tokens(2));
  ExpectFails(s, step, absl::StatusCode::kAlreadyExists, "add: sequence 1 already exists");
  step.Append(99, two_tokens);
  ExpectFails(s, step, absl::StatusCode::kNotFound, "sequence 99 is not known in this session");
  step.AppendBatch(dup, two_tokens);
  ExpectFails(s, step, absl::StatusCode::kInvalidArgument, "sequence 1 is listed twice");
  step.AppendBatch(one, two_tokens);
  ExpectFails(s, step, absl::StatusCode::kInvalidArgument, "1 sequences but 2 tokens");
  step.Fork(1, 2);
  ExpectFails(s, step, absl::StatusCode::kAlreadyExists, "child sequence 2 already exists");
  step.Fork(1, 1);
  ExpectFails(s, step, absl::StatusCode::kInvalidArgument, "parent and child");
  step.Fork(42, 43);
  ExpectFails(s, step, absl::StatusCode::kNotFound, "sequence 42");
  step.ReorderBeams(std::vector<uint64_t>{1, 2}, std::vector<int32_t>{0, 5});
  ExpectFails(s, step, absl::StatusCode::kInvalidArgument, "");
  step.Rewind(1, 6);
  ExpectFails(s, step, absl::StatusCode::kInvalidArgument, "");
  step.Rewind(1, -1);
  ExpectFails(s, step, absl::StatusCode::kInvalidArgument, "");
  step.Free(std::vector<uint64_t>{1, 77});
  ExpectFails(s, step, absl::StatusCode::kNotFound, "sequence 77");
  step.Free(dup);
  ExpectFails(s, step, absl::StatusCode::kInvalidArgument, "listed twice");
  step.SwapIn(one);
  ExpectFails(s, step, absl::StatusCode::kFailedPrecondition, "not swapped out");
  step.SwapOut(one);
  PAGEDKV_ASSERT_OK(Op(s, step));
  step.Append(1, two_tokens);
  ExpectFails(s, step, absl::StatusCode::kFailedPrecondition, "swapped out");
  step.SwapOut(one);
  ExpectFails(s, step, absl::StatusCode::kFailedPrecondition, "already swapped out");
  step.SetCrossAttention(2, 4);
  ExpectFails(s, step, absl::StatusCode::kFailedPrecondition, "");
  // A prompt larger than the whole pool, and one larger than what is free.
  step.Add(3, Tokens(64 * 4 + 1));
  ExpectFails(s, step, absl::StatusCode::kInvalidArgument, "can never fit");
  step.Add(3, Tokens(63 * 4));
  ExpectFails(s, step, absl::StatusCode::kResourceExhausted, "");
  // Batch errors come back as batch_status; the ops before them stay done.
  step.Batch(1);
  StepResult r = Step(s, step);
  EXPECT_EQ(r.batch_status.code(), absl::StatusCode::kFailedPrecondition) << r.batch_status;
  EXPECT_TRUE(r.layouts.empty());
  step.Batch(2, 9);
  r = Step(s, step);
  EXPECT_EQ(r.batch_status.code(), absl::StatusCode::kInvalidArgument) << r.batch_status;
  step.Batch(1000);
  r = Step(s, step);
  EXPECT_EQ(r.batch_status.code(), absl::StatusCode::kNotFound) << r.batch_status;
}

TEST_F(CoreTest, WholeStepChecksRejectBeforeAnyOpRuns) {
  v1::SessionRef s = Open("a");
  const std::string before = Snapshot(s);
  StepBuilder step;
  step.Add(1, Tokens(4)).Groups(std::vector<int32_t>{3});
  *step.request().mutable_session() = s;
  v1::StepResponse response;
  absl::Status st = core_->Step(step.request(), Far(), &response);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("groups[0] = 3 is outside [0, 1)"));
  step.Clear();
  step.request().add_ops();  // an op with no kind
  *step.request().mutable_session() = s;
  st = core_->Step(step.request(), Far(), &response);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Snapshot(s), before);
}

TEST_F(CoreTest, StopAtFirstErrorAbortsTheRest) {
  v1::SessionRef s = Open("a");
  StepBuilder step;
  step.StopAtFirstError().Append(5, Tokens(1)).Add(1, Tokens(4));
  StepResult r = Step(s, step);
  ASSERT_EQ(r.op_status.size(), 2u);
  EXPECT_EQ(r.op_status[0].code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(r.op_status[1].code(), absl::StatusCode::kAborted);
  EXPECT_EQ(Stats(&s).session().num_sequences(), 0);
}

// ---- Isolation, quotas, namespaces ---------------------------------------------------------

TEST_F(CoreTest, AnotherSessionsIdsAreUnknownAndReusable) {
  v1::SessionRef a = Open("a");
  v1::SessionRef b = Open("b");
  StepBuilder step;
  step.Add(7, Tokens(5));
  PAGEDKV_ASSERT_OK(Op(a, step));
  // b cannot reach a's sequence 7: the same answer as an id nobody uses.
  step.Append(7, Tokens(1));
  absl::Status seen = Op(b, step);
  step.Append(8, Tokens(1));
  absl::Status never = Op(b, step);
  EXPECT_EQ(seen.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(std::string(seen.message()),
            absl::StrReplaceAll(std::string(never.message()), {{"8", "7"}}));
  step.Batch(7);
  EXPECT_EQ(Step(b, step).batch_status.code(), absl::StatusCode::kNotFound);
  // b may use id 7 for its own sequence; a's is untouched.
  step.Add(7, Tokens(9, 900));
  PAGEDKV_ASSERT_OK(Op(b, step));
  step.Free(std::vector<uint64_t>{7});
  PAGEDKV_ASSERT_OK(Op(b, step));
  EXPECT_EQ(Stats(&a).session().num_sequences(), 1);
  EXPECT_EQ(Stats(&a).session().gpu_blocks_used(), 2u);
}

TEST_F(CoreTest, QuotaIsPerSessionAndNamesQuotaAndUse) {
  v1::SessionRef small = Open("small", /*gpu_quota=*/4);
  v1::SessionRef other = Open("other");
  StepBuilder step;
  step.Add(1, Tokens(12));  // 3 blocks
  PAGEDKV_ASSERT_OK(Op(small, step));
  step.Add(2, Tokens(8));  // 2 more: over 4
  ExpectFails(small, step, absl::StatusCode::kResourceExhausted,
              "needs up to 2 more gpu blocks but session");
  step.Add(2, Tokens(8));
  absl::Status st = Op(small, step);
  EXPECT_THAT(std::string(st.message()), HasSubstr("holds 3 of its gpu quota of 4"));
  step.Append(1, Tokens(5));  // crosses into 2 new pages
  ExpectFails(small, step, absl::StatusCode::kResourceExhausted, "gpu_block_quota");
  step.Append(1, Tokens(4));  // exactly one new page: fits
  PAGEDKV_ASSERT_OK(Op(small, step));
  // The other session is unaffected.
  step.Add(1, Tokens(40));
  PAGEDKV_ASSERT_OK(Op(other, step));
  // Host quota on swap out.
  v1::SessionRef host_small = Open("host-small", 0, "", 0, /*host_quota=*/1);
  step.Add(1, Tokens(8));
  PAGEDKV_ASSERT_OK(Op(host_small, step));
  step.SwapOut(std::vector<uint64_t>{1});
  ExpectFails(host_small, step, absl::StatusCode::kResourceExhausted, "host quota of 1");
}

TEST_F(CoreTest, PrefixCacheIsSharedOnlyWithinANamespace) {
  const std::vector<TokenId> prompt = Tokens(13);  // 3 full pages can hit
  v1::SessionRef a = Open("a");
  v1::SessionRef b = Open("b");
  v1::SessionRef c = Open("c", 0, "tenant-1");
  v1::SessionRef d = Open("d", 0, "tenant-1");
  // Admits `prompt` as `seq` with the keys given, reports it computed, returns the cached tokens.
  const auto add = [&](const v1::SessionRef& s, uint64_t seq, uint64_t extra_key = 0) {
    StepBuilder step;
    step.Add(seq, prompt, extra_key);
    StepResult r = Step(s, step);
    EXPECT_TRUE(r.op_status[0].ok()) << r.op_status[0];
    step.MarkComputed(std::vector<uint64_t>{seq}, std::vector<int64_t>{13});
    EXPECT_TRUE(Op(s, step).ok());
    return r.op_results[0].num_cached_tokens();
  };
  EXPECT_EQ(add(a, 1), 0);
  EXPECT_EQ(add(a, 2), 12);  // the same session shares its own prefix
  EXPECT_EQ(add(b, 1), 0);   // a namespace of its own: no hit
  EXPECT_EQ(add(c, 1), 0);
  EXPECT_EQ(add(d, 1), 12);                  // the same named namespace: hit
  EXPECT_EQ(add(d, 2, /*extra_key=*/5), 0);  // another extra key: no hit
}

// ---- Leases and quarantine -----------------------------------------------------------------

TEST_F(CoreTest, KeepAliveRenewsAndSilenceExpires) {
  v1::SessionRef s = Open("a", 0, "", /*lease=*/1.0);
  for (int i = 0; i < 5; ++i) {
    now_ += kSecond / 2;
    v1::KeepAliveRequest keep;
    *keep.mutable_session() = s;
    v1::KeepAliveResponse kept;
    PAGEDKV_ASSERT_OK(core_->KeepAlive(keep, &kept));
    core_->Reap();
  }
  now_ += 2 * kSecond;
  core_->Reap();
  v1::KeepAliveRequest keep;
  *keep.mutable_session() = s;
  v1::KeepAliveResponse kept;
  EXPECT_EQ(core_->KeepAlive(keep, &kept).code(), absl::StatusCode::kNotFound);
  v1::StatsResponse stats = Stats();
  EXPECT_EQ(stats.sessions_expired(), 1u);
  EXPECT_EQ(stats.open_sessions(), 0);
}

TEST_F(CoreTest, ExpiryFreesAtOnceButQuarantinesWhatTheLastStepNamed) {
  v1::SessionRef dead = Open("dead", 0, "", /*lease=*/1.0);
  StepBuilder step;
  step.Add(1, Tokens(8)).Add(2, Tokens(8, 300)).Add(3, Tokens(8, 600));
  PAGEDKV_ASSERT_OK(Step(dead, step).FirstError());
  // The last step names sequence 2 only (its decode batch): pages a dead engine may still write.
  step.Append(2, Tokens(1)).Batch(2);
  StepResult last = Step(dead, step);
  PAGEDKV_ASSERT_OK(last.FirstError());
  const std::vector<int32_t> held(last.layouts[0].page_indices.begin(),
                                  last.layouts[0].page_indices.end());
  ASSERT_EQ(held.size(), 3u);
  EXPECT_EQ(GpuInUse(), 7u);

  now_ += 2 * kSecond;  // past the lease, within the quarantine
  core_->Reap();
  v1::StatsResponse stats = Stats();
  EXPECT_EQ(stats.sessions_expired(), 1u);
  EXPECT_EQ(stats.models(0).quarantined_sequences(), 1);
  EXPECT_EQ(stats.models(0).quarantined_gpu_blocks(), 3u);
  EXPECT_EQ(GpuInUse(), 3u);  // sequences 1 and 3 came back at once

  // Another session takes every block it can: none of the quarantined pages is handed out.
  v1::SessionRef next = Open("next");
  absl::flat_hash_set<int32_t> got;
  for (uint64_t id = 1; id <= 64; ++id) {
    step.Add(id, Tokens(4, static_cast<int>(id) * 10)).Batch(id, 4);
    StepResult r = Step(next, step);
    if (!r.op_status[0].ok()) {
      EXPECT_EQ(r.op_status[0].code(), absl::StatusCode::kResourceExhausted);
      break;
    }
    got.insert(r.layouts[0].page_indices.begin(), r.layouts[0].page_indices.end());
  }
  EXPECT_EQ(got.size(), 61u);
  for (int32_t b : held) EXPECT_FALSE(got.contains(b)) << "quarantined block " << b << " reused";

  now_ += 2 * kSecond;  // the quarantine ends
  core_->Reap();
  stats = Stats();
  EXPECT_EQ(stats.models(0).quarantined_sequences(), 0);
  EXPECT_EQ(stats.quarantines_released(), 1u);
  step.Add(100, Tokens(12, 5000));
  PAGEDKV_ASSERT_OK(Op(next, step));  // the 3 blocks are back
  EXPECT_EQ(GpuInUse(), 64u);
}

TEST_F(CoreTest, CloseFreesEverythingAtOnce) {
  v1::SessionRef s = Open("a");
  StepBuilder step;
  step.Add(1, Tokens(9)).Fork(1, 2).Batch(2);
  PAGEDKV_ASSERT_OK(Step(s, step).FirstError());
  v1::CloseSessionRequest close;
  *close.mutable_session() = s;
  v1::CloseSessionResponse closed;
  PAGEDKV_ASSERT_OK(core_->CloseSession(close, Far(), &closed));
  EXPECT_EQ(closed.freed_sequences(), 2);
  EXPECT_EQ(GpuInUse(), 0u);
  EXPECT_EQ(core_->CloseSession(close, Far(), &closed).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Stats().sessions_closed(), 1u);
}

TEST_F(CoreTest, DrainingRefusesNewSessions) {
  core_->StartDraining();
  v1::OpenSessionRequest request;
  v1::OpenSessionResponse response;
  EXPECT_EQ(core_->OpenSession(request, &response).code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(Stats().draining());
}

TEST_F(CoreTest, SessionLimitIsEnforced) {
  ServerOptions o = ToyServerOptions(&now_);
  o.limits.max_sessions = 2;
  Make(o);
  Open("a");
  Open("b");
  v1::OpenSessionRequest request;
  v1::OpenSessionResponse response;
  EXPECT_EQ(core_->OpenSession(request, &response).code(), absl::StatusCode::kResourceExhausted);
}

// ---- Concurrency ---------------------------------------------------------------------------

// Sessions on several threads run random steps while others read Stats with invariant checks
// and reap; every step is atomic, and nothing leaks at the end.
TEST(ServiceCoreStressTest, ConcurrentSessionsKeepEveryInvariant) {
  absl::StatusOr<std::unique_ptr<ServiceCore>> made = ServiceCore::Create(ToyServerOptions());
  ASSERT_TRUE(made.ok()) << made.status();
  ServiceCore& core = **made;
  constexpr int kThreads = 3;
  constexpr int kSteps = 2000;
  std::atomic<bool> done{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      v1::OpenSessionRequest open;
      open.set_client_name("stress");
      open.set_gpu_block_quota(24);
      open.set_cache_namespace(t % 2 == 0 ? "shared" : "");
      v1::OpenSessionResponse opened;
      if (!core.OpenSession(open, &opened).ok()) {
        ++failures;
        return;
      }
      std::mt19937 rng(t);
      std::vector<uint64_t> live;
      uint64_t next = 1;
      StepBuilder step;
      for (int i = 0; i < kSteps; ++i) {
        const int kind = static_cast<int>(rng() % 6);
        if (kind == 0 || live.empty()) {
          step.Add(next, Tokens(1 + rng() % 12, 10 * static_cast<int>(rng() % 4)));
          live.push_back(next++);
        } else if (kind == 1) {
          std::vector<TokenId> tok(live.size(), 5);
          step.AppendBatch(live, tok);
        } else if (kind == 2) {
          step.Fork(live[rng() % live.size()], next);
          live.push_back(next++);
        } else if (kind == 3) {
          const uint64_t victim = live[rng() % live.size()];
          step.Free(std::vector<uint64_t>{victim});
          live.erase(std::find(live.begin(), live.end(), victim));
        } else if (kind == 4) {
          step.SwapOut(std::vector<uint64_t>{live[rng() % live.size()]});
        } else {
          step.SwapIn(std::vector<uint64_t>{live[rng() % live.size()]});
        }
        *step.request().mutable_session() = opened.session();
        v1::StepResponse response;
        if (!core.Step(step.request(), Far(), &response).ok()) ++failures;
        // Failed adds/forks leave ids that do not exist: drop them from `live`.
        for (int op = 0; op < response.results_size(); ++op) {
          const v1::Op& o = step.request().ops(op);
          if (response.results(op).status().code() != 0) {
            if (o.has_add()) live.erase(std::find(live.begin(), live.end(), o.add().seq()));
            if (o.has_fork()) live.erase(std::find(live.begin(), live.end(), o.fork().child()));
            if (o.has_free()) live.push_back(o.free().seqs(0));
          }
        }
        step.Clear();
      }
      v1::CloseSessionRequest close;
      *close.mutable_session() = opened.session();
      v1::CloseSessionResponse closed;
      if (!core.CloseSession(close, Far(), &closed).ok()) ++failures;
    });
  }
  std::thread checker([&] {
    while (!done.load()) {
      v1::StatsRequest request;
      request.set_check_invariants(true);
      v1::StatsResponse response;
      if (!core.Stats(request, Far(), &response).ok() || response.invariants().code() != 0) {
        ADD_FAILURE() << response.invariants().message();
        ++failures;
      }
      core.Reap();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  for (std::thread& t : threads) t.join();
  done = true;
  checker.join();
  EXPECT_EQ(failures.load(), 0);
  v1::StatsRequest request;
  request.set_check_invariants(true);
  v1::StatsResponse response;
  PAGEDKV_ASSERT_OK(core.Stats(request, Far(), &response));
  EXPECT_EQ(response.invariants().code(), 0) << response.invariants().message();
  EXPECT_EQ(response.models(0).num_sequences(), 0);
  EXPECT_EQ(response.models(0).pools(0).gpu_in_use_blocks(), 0u);
  EXPECT_EQ(response.models(0).pools(0).host_in_use_blocks(), 0u);
}

}  // namespace
}  // namespace pagedkv::service::internal
