// ServiceCore without a transport: sessions and the model description, every op and its error
// codes (each failure leaves the state unchanged), isolation between sessions, quotas and
// prefix-cache namespaces. Leases, quarantine and concurrency: service_session_test.cc.
#include "service/internal/service_core.h"

#include "absl/strings/str_replace.h"
#include "tests/service/core_fixture.h"

namespace pagedkv::service::internal {
namespace {

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

}  // namespace
}  // namespace pagedkv::service::internal
