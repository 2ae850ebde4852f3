// The Scheduler and the prefix cache together: the scheduler reports each step's computed tokens
// (MarkComputed), so a request preempted mid-prefill resumes only from tokens that were computed;
// and sliding-window models admit long prompts chunk by chunk, holding window + chunk pages.
#include <map>
#include <memory>
#include <vector>

#include "gtest/gtest.h"
#include "pagedkv/block_manager/block_manager.h"
#include "pagedkv/scheduler/policy.h"
#include "pagedkv/scheduler/scheduler.h"
#include "test_util.h"

namespace pagedkv {
namespace {

using ::pagedkv::testing::TinyModel;

std::unique_ptr<KvCachePolicy> Paged(ModelSpec model, int64_t capacity_tokens, int32_t block_size,
                                     bool prefix_caching) {
  PolicyConfig c;
  c.kind = PolicyKind::kPaged;
  c.model = std::move(model);
  c.block_size_tokens = block_size;
  c.capacity_tokens = capacity_tokens;
  c.max_model_len = 4096;
  c.max_new_tokens = 64;
  c.watermark = 0.0;
  c.enable_prefix_caching = prefix_caching;
  absl::StatusOr<std::unique_ptr<KvCachePolicy>> p = MakeKvCachePolicy(c);
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *std::move(p) : nullptr;
}

SchedulerRequest Req(uint64_t id, int32_t prompt_tokens, int32_t output_tokens) {
  SchedulerRequest r;
  r.request_id = id;
  for (int32_t i = 0; i < prompt_tokens; ++i) {
    r.prompt.push_back(static_cast<TokenId>(id * 1000 + static_cast<uint64_t>(i)));
  }
  r.max_output_tokens = output_tokens;
  return r;
}

// Runs the scheduler to completion like an engine. For every request it tracks the longest prefix
// whose K/V some forward pass computed, and checks that no step starts a prefill chunk beyond it
// (a resumed request may skip only tokens that were computed, by it or earlier).
struct RunResult {
  int64_t steps = 0;
  int64_t preemptions = 0;
  int64_t resumed_with_hits = 0;  // re-admissions after a preemption that start past token 0
  std::map<uint64_t, int32_t> generated;
};

RunResult RunToCompletion(Scheduler& sched, int64_t max_steps) {
  RunResult run;
  std::map<uint64_t, int32_t> computed_prefix;
  std::map<uint64_t, bool> awaiting_resume;
  TokenId next = 1;
  while (sched.HasWork() && run.steps < max_steps) {
    absl::StatusOr<SchedulerOutput> out = sched.Step();
    EXPECT_TRUE(out.ok()) << out.status();
    if (!out.ok()) break;
    ++run.steps;
    EXPECT_TRUE(sched.CheckInvariants().ok()) << sched.CheckInvariants();
    for (uint64_t r : out->preempted_requests) {
      awaiting_resume[r] = true;
      ++run.preemptions;
    }
    StepSamples samples;
    for (const ScheduledSeq& e : out->scheduled) {
      if (e.is_prefill) {
        EXPECT_LE(e.num_context_tokens, computed_prefix[e.request_id])
            << "step " << out->step << ": request " << e.request_id << " starts a chunk at token "
            << e.num_context_tokens << " but only " << computed_prefix[e.request_id]
            << " of its tokens were ever computed";
        if (awaiting_resume[e.request_id]) {
          awaiting_resume[e.request_id] = false;
          run.resumed_with_hits += e.num_context_tokens > 0;
        }
      }
      computed_prefix[e.request_id] =
          std::max(computed_prefix[e.request_id], e.num_context_tokens + e.num_query_tokens);
      for (int32_t k = 0; k < e.num_samples; ++k) samples.tokens.push_back(next++);
      run.generated[e.request_id] += e.num_samples;
    }
    absl::StatusOr<StepCompletion> done = sched.CompleteStep(*out, samples);
    EXPECT_TRUE(done.ok()) << done.status();
  }
  EXPECT_FALSE(sched.HasWork()) << "not done after " << max_steps << " steps";
  return run;
}

// Regression: chunked prefill + prefix caching + recompute preemption, a 48-token pool and a token
// budget of 4: the 33-token request is preempted mid-prefill and must resume only from its
// computed pages (it used to resume at token 32 when 24 had been computed).
TEST(CommitOnComputeScheduling, PreemptedPrefillResumesFromComputedTokensOnly) {
  auto policy = Paged(TinyModel(), /*capacity_tokens=*/48, /*block_size=*/4, /*prefix=*/true);
  SchedulerConfig cfg;
  cfg.max_num_batched_tokens = 4;
  cfg.enable_chunked_prefill = true;
  cfg.preemption_mode = PreemptionMode::kRecompute;
  Scheduler sched(cfg, policy.get());
  ASSERT_TRUE(sched.AddRequest(Req(1, 5, 9)).ok());
  ASSERT_TRUE(sched.AddRequest(Req(2, 33, 4)).ok());
  const RunResult run = RunToCompletion(sched, 2000);
  EXPECT_GT(sched.NumPreemptions(2), 0) << "the scenario must preempt the long prefill";
  EXPECT_GT(run.resumed_with_hits, 0) << "the resumed prefill should reuse its computed pages";
  EXPECT_EQ(run.generated.at(1), 9);
  EXPECT_EQ(run.generated.at(2), 4);
  BlockManager* bm = policy->block_manager();
  ASSERT_NE(bm, nullptr);
  EXPECT_EQ(bm->num_sequences(), 0);
  EXPECT_EQ(bm->gpu_allocator(0).num_in_use(), 0u);
}

// A 192-token prompt on a sliding:64 model with a 9-page pool: chunk by chunk it never holds more
// than its window plus one chunk (5 pages of 16 tokens), so the scheduler admits and finishes it.
TEST(SlidingWindowAdmission, LongPromptIsAdmittedChunkByChunk) {
  ModelSpec model = TinyModel();
  model.name = "sliding64";
  model.layers = {LayerSpec::Sliding(64)};
  auto policy = Paged(model, /*capacity_tokens=*/9 * 16, /*block_size=*/16, /*prefix=*/false);
  ASSERT_TRUE(policy->AllocatesPrefillByChunk());
  BlockManager* bm = policy->block_manager();
  // The whole prompt at once does not fit, and admission says so (they agree).
  const SchedulerRequest req = Req(1, 192, 8);
  EXPECT_FALSE(bm->CanAdmit(req.prompt).can_admit);
  EXPECT_EQ(bm->AddSequence(99, req.prompt).status().code(), absl::StatusCode::kResourceExhausted);

  SchedulerConfig cfg;
  cfg.max_num_batched_tokens = 16;
  cfg.enable_chunked_prefill = true;
  Scheduler sched(cfg, policy.get());
  ASSERT_TRUE(sched.AddRequest(req).ok());
  uint32_t peak_in_use = 0;
  TokenId next = 1;
  int64_t steps = 0;
  int32_t generated = 0;
  while (sched.HasWork() && steps < 200) {
    absl::StatusOr<SchedulerOutput> out = sched.Step();
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_TRUE(out->rejected_requests.empty());
    ++steps;
    peak_in_use = std::max(peak_in_use, bm->gpu_allocator(0).num_in_use());
    StepSamples samples;
    for (const ScheduledSeq& e : out->scheduled) {
      for (int32_t k = 0; k < e.num_samples; ++k) samples.tokens.push_back(next++);
      generated += e.num_samples;
    }
    ASSERT_TRUE(sched.CompleteStep(*out, samples).ok());
    ASSERT_TRUE(sched.CheckInvariants().ok()) << sched.CheckInvariants();
  }
  EXPECT_FALSE(sched.HasWork());
  EXPECT_EQ(generated, 8);
  EXPECT_LE(peak_in_use, 5u);
  EXPECT_EQ(bm->gpu_allocator(0).num_in_use(), 0u);
}

// Without chunked prefill the whole prompt is materialized at once: the same request can never
// fit and is rejected up front (admission and allocation still agree).
TEST(SlidingWindowAdmission, WithoutChunkingTheWholePromptMustFit) {
  ModelSpec model = TinyModel();
  model.layers = {LayerSpec::Sliding(64)};
  auto policy = Paged(model, 9 * 16, 16, false);
  SchedulerConfig cfg;
  cfg.max_num_batched_tokens = 256;
  cfg.enable_chunked_prefill = false;
  Scheduler sched(cfg, policy.get());
  ASSERT_TRUE(sched.AddRequest(Req(1, 192, 8)).ok());
  absl::StatusOr<SchedulerOutput> out = sched.Step();
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->rejected_requests, std::vector<uint64_t>{1});
}

}  // namespace
}  // namespace pagedkv
