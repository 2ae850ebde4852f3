// Tests of what the scheduler and the simulator refuse or report (issue 19): CompleteStep of a
// completed, stale or altered output, lazy prompts that stay unmade while waiting, the cause of
// every rejection, absurd widths, invalid workloads and cancelled simulations.
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pagedkv/scheduler/cluster.h"
#include "pagedkv/scheduler/policy.h"
#include "pagedkv/scheduler/scheduler.h"
#include "pagedkv/scheduler/simulator.h"
#include "pagedkv/scheduler/workload.h"
#include "test_util.h"

namespace pagedkv {
namespace {

using ::pagedkv::testing::TinyModel;
using ::testing::HasSubstr;

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

std::unique_ptr<KvCachePolicy> Paged(int64_t capacity_tokens, double watermark = 0.0,
                                     int32_t max_model_len = 1024) {
  PolicyConfig c;
  c.kind = PolicyKind::kPaged;
  c.model = TinyModel();
  c.block_size_tokens = 4;
  c.capacity_tokens = capacity_tokens;
  c.max_model_len = max_model_len;
  c.max_new_tokens = 64;
  c.watermark = watermark;
  c.enable_prefix_caching = false;
  absl::StatusOr<std::unique_ptr<KvCachePolicy>> p = MakeKvCachePolicy(c);
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *std::move(p) : nullptr;
}

SchedulerRequest Req(uint64_t id, int32_t prompt_tokens, int32_t output_tokens, int32_t n = 1) {
  SchedulerRequest r;
  r.request_id = id;
  for (int32_t i = 0; i < prompt_tokens; ++i)
    r.prompt.push_back(static_cast<TokenId>(id * 1000 + i));
  r.max_output_tokens = output_tokens;
  r.num_samples = n;
  return r;
}

StepSamples SamplesFor(const SchedulerOutput& out) {
  StepSamples s;
  for (const ScheduledSeq& e : out.scheduled) {
    for (int32_t k = 0; k < e.num_samples; ++k) s.tokens.push_back(7);
  }
  return s;
}

TEST(CompleteStepTest, RefusesACompletedOutputAndChangesNothing) {
  auto policy = Paged(256);
  Scheduler s({}, policy.get());
  ASSERT_TRUE(s.AddRequest(Req(1, 8, 3)).ok());
  absl::StatusOr<SchedulerOutput> prefill = s.Step();
  ASSERT_TRUE(prefill.ok());
  ASSERT_TRUE(s.CompleteStep(*prefill, SamplesFor(*prefill)).ok());
  absl::StatusOr<SchedulerOutput> decode = s.Step();
  ASSERT_TRUE(decode.ok());
  ASSERT_TRUE(s.CompleteStep(*decode, SamplesFor(*decode)).ok());
  const std::vector<TokenId> before = *s.SequenceTokens(decode->scheduled[0].seq_id);
  // The same output again: it used to append a second token and finish the request early.
  absl::StatusOr<StepCompletion> again = s.CompleteStep(*decode, SamplesFor(*decode));
  EXPECT_EQ(again.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(again.status()), HasSubstr("was already completed"));
  EXPECT_EQ(*s.SequenceTokens(decode->scheduled[0].seq_id), before);
  EXPECT_TRUE(s.CheckInvariants().ok());
  EXPECT_EQ(s.num_running(), 1);
  // An older output is stale.
  absl::StatusOr<StepCompletion> stale = s.CompleteStep(*prefill, SamplesFor(*prefill));
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(stale.status()), HasSubstr("is stale; the last Step() was step 1"));
  // The request still finishes after exactly 3 tokens.
  absl::StatusOr<SchedulerOutput> last = s.Step();
  ASSERT_TRUE(last.ok());
  absl::StatusOr<StepCompletion> done = s.CompleteStep(*last, SamplesFor(*last));
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->finished_requests, std::vector<uint64_t>{1});
  EXPECT_FALSE(s.HasWork());
}

TEST(CompleteStepTest, RefusesAStaleOutputAfterALaterStep) {
  auto policy = Paged(256);
  Scheduler s({}, policy.get());
  ASSERT_TRUE(s.AddRequest(Req(1, 8, 4)).ok());
  absl::StatusOr<SchedulerOutput> first = s.Step();
  ASSERT_TRUE(first.ok());
  absl::StatusOr<SchedulerOutput> second = s.Step();  // planned before completing the first
  ASSERT_TRUE(second.ok());
  absl::StatusOr<StepCompletion> stale = s.CompleteStep(*first, SamplesFor(*first));
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(stale.status()), HasSubstr("stale"));
  EXPECT_TRUE(s.CheckInvariants().ok());
}

TEST(CompleteStepTest, RefusesAnAlteredOutputAndBadBeamChoicesBeforeChangingAnything) {
  auto policy = Paged(256);
  Scheduler s({}, policy.get());
  SchedulerRequest beams = Req(1, 8, 4);
  beams.beam_width = 2;
  ASSERT_TRUE(s.AddRequest(beams).ok());
  ASSERT_TRUE(s.AddRequest(Req(2, 8, 4)).ok());
  absl::StatusOr<SchedulerOutput> prefill = s.Step();
  ASSERT_TRUE(prefill.ok());
  SchedulerOutput altered = *prefill;
  altered.scheduled[0].num_query_tokens += 1;
  EXPECT_THAT(Msg(s.CompleteStep(altered, SamplesFor(altered)).status()),
              HasSubstr("differ from what Step() returned"));
  ASSERT_TRUE(s.CompleteStep(*prefill, SamplesFor(*prefill)).ok());
  absl::StatusOr<SchedulerOutput> decode = s.Step();
  ASSERT_TRUE(decode.ok());
  StepSamples bad = SamplesFor(*decode);
  bad.beams.push_back({1, {0, 5}});  // parent 5 of 2 beams
  const std::vector<TokenId> before = *s.SequenceTokens(decode->scheduled.back().seq_id);
  EXPECT_THAT(Msg(s.CompleteStep(*decode, bad).status()), HasSubstr("parent_index[1] = 5"));
  bad.beams = {{2, {0}}};  // request 2 has no beams
  EXPECT_THAT(Msg(s.CompleteStep(*decode, bad).status()), HasSubstr("does not decode beams"));
  bad.beams = {{1, {0, 1}}, {1, {1, 0}}};
  EXPECT_THAT(Msg(s.CompleteStep(*decode, bad).status()), HasSubstr("two beam choices"));
  // Nothing was applied by the refused calls: the request 2 tokens are unchanged and the step
  // still completes.
  EXPECT_EQ(*s.SequenceTokens(decode->scheduled.back().seq_id), before);
  bad.beams = {{1, {1, 1}}};
  EXPECT_TRUE(s.CompleteStep(*decode, bad).ok());
  EXPECT_TRUE(s.CheckInvariants().ok());
}

TEST(LazyPromptTest, AWaitingRequestHoldsNoTokensUntilItsAdmissionIsConsidered) {
  auto policy = Paged(16);  // 4 pages: one request of 12 + 3 tokens at a time
  Scheduler s({}, policy.get());
  std::vector<int> made(3, 0);
  for (uint64_t id = 0; id < 3; ++id) {
    SchedulerRequest r;
    r.request_id = id;
    r.prompt_len = 12;
    r.prompt_source = [&made, id] {
      ++made[id];
      return std::vector<TokenId>(12, static_cast<TokenId>(id + 1));
    };
    r.max_output_tokens = 3;
    ASSERT_TRUE(s.AddRequest(std::move(r)).ok());
  }
  EXPECT_EQ(made, (std::vector<int>{0, 0, 0}));
  absl::StatusOr<SchedulerOutput> out = s.Step();
  ASSERT_TRUE(out.ok());
  ASSERT_EQ(out->scheduled.size(), 1u);
  // The admitted head and the next head (considered, did not fit) are made; the third is not.
  EXPECT_EQ(made, (std::vector<int>{1, 1, 0}));
  EXPECT_EQ(*s.SequenceTokens(out->scheduled[0].seq_id), std::vector<TokenId>(12, 1));
  while (s.HasWork()) {
    absl::StatusOr<SchedulerOutput> o = s.Step();
    ASSERT_TRUE(o.ok());
    ASSERT_TRUE(s.CompleteStep(*o, SamplesFor(*o)).ok());
  }
  EXPECT_EQ(made, (std::vector<int>{1, 1, 1}));
}

TEST(LazyPromptTest, ASourceOfTheWrongLengthIsAnErrorAndLimitsAreChecked) {
  auto policy = Paged(256);
  Scheduler s({}, policy.get());
  SchedulerRequest r;
  r.request_id = 1;
  r.prompt_len = 10;
  r.prompt_source = [] { return std::vector<TokenId>(3, 1); };
  ASSERT_TRUE(s.AddRequest(r).ok());
  EXPECT_THAT(Msg(s.Step().status()), HasSubstr("prompt_source returned 3 tokens"));
  SchedulerRequest huge;
  huge.request_id = 2;
  huge.prompt_len = Scheduler::kMaxPromptTokens + 1;
  huge.prompt_source = [] { return std::vector<TokenId>(); };
  EXPECT_THAT(Msg(s.AddRequest(huge)), HasSubstr("exceeds the limit"));
  SchedulerRequest wide = Req(3, 4, 1, /*n=*/Scheduler::kMaxGroupWidth + 1);
  // Refused before it would allocate a sequence record per sample.
  EXPECT_THAT(Msg(s.AddRequest(wide)), HasSubstr("must be at most 1024"));
}

struct CauseCase {
  const char* label;
  int64_t capacity_tokens;
  double watermark;
  SchedulerConfig config;
  SchedulerRequest request;
  RejectCause cause;
};

TEST(RejectionCauseTest, EveryRejectionNamesItsCause) {
  SchedulerConfig no_chunks;
  no_chunks.enable_chunked_prefill = false;
  no_chunks.max_num_batched_tokens = 16;
  SchedulerConfig narrow;
  narrow.max_num_seqs = 2;
  SchedulerConfig tiny_budget;
  tiny_budget.max_num_batched_tokens = 2;
  const std::vector<CauseCase> cases = {
      {"too long", 4096, 0.0, {}, Req(1, 1000, 100), RejectCause::kTooLong},
      {"memory", 40, 0.0, {}, Req(1, 64, 2), RejectCause::kMemory},
      {"watermark", 40, 0.25, {}, Req(1, 36, 2), RejectCause::kWatermark},
      {"token budget", 256, 0.0, no_chunks, Req(1, 32, 2), RejectCause::kTokenBudget},
      {"max_num_seqs", 256, 0.0, narrow, Req(1, 8, 2, /*n=*/4), RejectCause::kMaxNumSeqs},
      {"width over the token budget", 256, 0.0, tiny_budget, Req(1, 8, 2, /*n=*/4),
       RejectCause::kTokenBudget},
  };
  for (const CauseCase& c : cases) {
    SCOPED_TRACE(c.label);
    auto policy = Paged(c.capacity_tokens, c.watermark, /*max_model_len=*/1024);
    Scheduler s(c.config, policy.get());
    ASSERT_TRUE(s.AddRequest(c.request).ok());
    absl::StatusOr<SchedulerOutput> out = s.Step();
    ASSERT_TRUE(out.ok()) << out.status();
    ASSERT_EQ(out->rejected_requests, std::vector<uint64_t>{1});
    ASSERT_EQ(out->rejection_causes.size(), 1u);
    EXPECT_EQ(RejectCauseName(out->rejection_causes[0]), RejectCauseName(c.cause));
  }
}

GpuSpec FlatGpu() {
  GpuSpec g;
  g.name = "flat";
  g.peak_flops_per_s = 1e30;
  g.hbm_bytes_per_s = 1e30;
  g.host_link_bytes_per_s = 1e30;
  g.step_overhead_s = 1e-3;
  return g;
}

SimulatorConfig SimConfig(int64_t capacity_tokens) {
  SimulatorConfig c;
  c.model = TinyModel();
  c.gpu = FlatGpu();
  c.compute = ModelCompute::FromParams(c.model, 1.0, 2.0);
  c.block_size_tokens = 4;
  c.kv_budget_bytes = static_cast<uint64_t>(capacity_tokens) * 4;
  c.max_model_len = 1024;
  c.watermark = 0.0;
  return c;
}

Workload Requests(std::vector<double> arrivals, int32_t prompt = 8, int32_t output = 4) {
  Workload w;
  w.name = "test";
  for (size_t i = 0; i < arrivals.size(); ++i) {
    Request r;
    r.request_id = i;
    r.arrival_time_s = arrivals[i];
    r.prompt_tokens = prompt;
    r.output_tokens = output;
    w.requests.push_back(r);
  }
  return w;
}

TEST(SimulateGuardTest, InvalidWorkloadsAreRefusedBeforeRunning) {
  const SimulatorConfig c = SimConfig(1024);
  // A NaN arrival used to loop forever.
  EXPECT_THAT(Msg(Simulate(Requests({0, std::nan(""), 2}), c).status()),
              HasSubstr("arrival_time_s = nan, must be finite and >= 0"));
  EXPECT_THAT(Msg(Simulate(Requests({-1, 0}), c).status()), HasSubstr("finite and >= 0"));
  EXPECT_THAT(Msg(Simulate(Requests({0, 2, 1}), c).status()), HasSubstr("sorted arrivals"));
  EXPECT_THAT(Msg(Simulate(Requests({0, std::numeric_limits<double>::infinity()}), c).status()),
              HasSubstr("finite"));
  EXPECT_THAT(Msg(Simulate(Requests({0}, int32_t{1} << 30, int32_t{1} << 30), c).status()),
              HasSubstr("prompt_tokens + output_tokens = 2147483648, must be <= 16777216"));
  Workload wide = Requests({0});
  wide.requests[0].num_samples = 5000;
  EXPECT_THAT(Msg(Simulate(wide, c).status()),
              HasSubstr("num_samples = 5000, must be in [1, 1024]"));
  EXPECT_TRUE(Simulate(Requests({0, 1, 1}), c).ok());
}

TEST(SimulateGuardTest, CancelStopsTheRun) {
  SimulatorConfig c = SimConfig(64);
  int polls = 0;
  c.cancel = [&polls] { return ++polls >= 3; };
  std::vector<double> arrivals(2000);
  for (size_t i = 0; i < arrivals.size(); ++i) arrivals[i] = 0.001 * static_cast<double>(i);
  absl::StatusOr<PolicyRunResult> r = Simulate(Requests(arrivals), c);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(polls, 3);
  c.cancel = [] { return false; };
  EXPECT_TRUE(Simulate(Requests(arrivals), c).ok());
}

TEST(SimulateGuardTest, CheckSimulationFindsConfigErrorsWithoutRunning) {
  ClusterConfig cluster;
  cluster.replica = SimConfig(64);
  const Workload w = Requests({0, 1});
  EXPECT_TRUE(CheckSimulation(w, cluster).ok());
  cluster.replica.watermark = 1.5;
  EXPECT_THAT(Msg(CheckSimulation(w, cluster)), HasSubstr("watermark"));
  cluster.replica.watermark = 0;
  cluster.replica.block_size_tokens = 128;  // 64 tokens of memory: no block fits
  EXPECT_FALSE(CheckSimulation(w, cluster).ok());
  cluster.replica.block_size_tokens = 4;
  cluster.prefix_balance_factor = std::nan("");
  EXPECT_THAT(Msg(CheckSimulation(w, cluster)), HasSubstr("prefix_balance_factor"));
}

}  // namespace
}  // namespace pagedkv
