// Tests of the Scheduler (scheduler.h) over the paged and contiguous policies: admission limits,
// chunked prefill, both preemption modes, n > 1 and beam search sharing pages, token
// conservation, FCFS without starvation, rejection and determinism.
#include "pagedkv/scheduler/scheduler.h"

#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "pagedkv/block_manager/block_manager.h"
#include "pagedkv/core/model_spec.h"
#include "pagedkv/scheduler/policy.h"
#include "test_util.h"

namespace pagedkv {
namespace {

using ::pagedkv::testing::TinyModel;

PolicyConfig Config(PolicyKind kind, int64_t capacity_tokens, int32_t block_size = 4) {
  PolicyConfig c;
  c.kind = kind;
  c.model = TinyModel();
  c.block_size_tokens = block_size;
  c.capacity_tokens = capacity_tokens;
  c.max_model_len = 1024;
  c.max_new_tokens = 64;
  c.watermark = 0.0;
  c.enable_prefix_caching = false;
  return c;
}

std::unique_ptr<KvCachePolicy> MakePolicy(const PolicyConfig& c) {
  absl::StatusOr<std::unique_ptr<KvCachePolicy>> p = MakeKvCachePolicy(c);
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *std::move(p) : nullptr;
}

// Prompt ids unique to the request (no accidental prefix sharing).
SchedulerRequest Req(uint64_t id, int32_t prompt_tokens, int32_t output_tokens, int32_t n = 1,
                     int32_t beams = 1) {
  SchedulerRequest r;
  r.request_id = id;
  for (int32_t i = 0; i < prompt_tokens; ++i) {
    r.prompt.push_back(static_cast<TokenId>(id * 100000 + static_cast<uint64_t>(i)));
  }
  r.max_output_tokens = output_tokens;
  r.num_samples = n;
  r.beam_width = beams;
  return r;
}

// Drives a scheduler like an engine: samples deterministic tokens, optionally picks beam parents,
// checks invariants after every step, and records what happened.
struct Driver {
  explicit Driver(Scheduler* s, uint64_t seed = 7) : sched(s), rng(seed) {}

  SchedulerOutput Step() {
    absl::StatusOr<SchedulerOutput> out = sched->Step();
    EXPECT_TRUE(out.ok()) << out.status();
    if (!out.ok()) return {};
    EXPECT_TRUE(sched->CheckInvariants().ok()) << sched->CheckInvariants();
    EXPECT_LE(out->num_batched_tokens, sched->config().max_num_batched_tokens);
    EXPECT_LE(sched->num_running_seqs(), sched->config().max_num_seqs);
    StepSamples samples;
    for (size_t i = 0; i < out->scheduled.size(); ++i) {
      const ScheduledSeq& e = out->scheduled[i];
      if (!first_scheduled.contains(e.request_id)) {
        first_scheduled.insert(e.request_id);
        admission_order.push_back(e.request_id);
      }
      for (int32_t k = 0; k < e.num_samples; ++k) {
        samples.tokens.push_back(static_cast<TokenId>(next_token++));
        ++sampled[e.request_id];
      }
      const bool first_of_request = i == 0 || out->scheduled[i - 1].request_id != e.request_id;
      if (choose_beams && !e.is_prefill && first_of_request &&
          beam_requests.contains(e.request_id)) {
        size_t width = 0;
        while (i + width < out->scheduled.size() &&
               out->scheduled[i + width].request_id == e.request_id) {
          ++width;
        }
        BeamChoice c;
        c.request_id = e.request_id;
        for (size_t b = 0; b < width; ++b)
          c.parent_index.push_back(static_cast<int32_t>(rng() % width));
        samples.beams.push_back(c);
      }
    }
    absl::StatusOr<StepCompletion> done = sched->CompleteStep(*out, samples);
    EXPECT_TRUE(done.ok()) << done.status();
    if (done.ok()) {
      tokens_generated += done->tokens_generated;
      for (uint64_t id : done->finished_requests) finished.push_back(id);
    }
    for (uint64_t id : out->rejected_requests) rejected.push_back(id);
    for (uint64_t id : out->preempted_requests) preempted.push_back(id);
    EXPECT_TRUE(sched->CheckInvariants().ok()) << sched->CheckInvariants();
    return *std::move(out);
  }

  // Steps until no work is left (bounded so that a stall fails instead of hanging).
  int RunToCompletion(int max_steps = 100000) {
    int steps = 0;
    while (sched->HasWork() && steps < max_steps) {
      Step();
      ++steps;
    }
    EXPECT_FALSE(sched->HasWork()) << "scheduler stalled after " << steps << " steps";
    return steps;
  }

  Scheduler* sched;
  std::mt19937_64 rng;
  int64_t next_token = 1;
  int64_t tokens_generated = 0;
  bool choose_beams = true;
  std::set<uint64_t> beam_requests;
  std::set<uint64_t> first_scheduled;
  std::vector<uint64_t> admission_order;
  std::map<uint64_t, int64_t> sampled;
  std::vector<uint64_t> finished;
  std::vector<uint64_t> rejected;
  std::vector<uint64_t> preempted;
};

TEST(SchedulerConfigTest, RejectsBadLimitsAndParsesModes) {
  SchedulerConfig c;
  EXPECT_TRUE(c.Validate().ok());
  c.max_num_seqs = 0;
  EXPECT_EQ(c.Validate().code(), absl::StatusCode::kInvalidArgument);
  c.max_num_seqs = 1;
  c.max_num_batched_tokens = 0;
  EXPECT_EQ(c.Validate().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*ParsePreemptionMode("SWAP"), PreemptionMode::kSwap);
  EXPECT_EQ(*ParsePreemptionMode("recompute"), PreemptionMode::kRecompute);
  EXPECT_FALSE(ParsePreemptionMode("evict").ok());
}

TEST(SchedulerTest, AddRequestValidates) {
  auto policy = MakePolicy(Config(PolicyKind::kPaged, 1024));
  Scheduler s({}, policy.get());
  EXPECT_EQ(s.AddRequest(Req(1, 0, 4)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.AddRequest(Req(1, 4, 0)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.AddRequest(Req(1, 4, 4, /*n=*/2, /*beams=*/2)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(s.AddRequest(Req(1, 4, 4)).ok());
  EXPECT_EQ(s.AddRequest(Req(1, 4, 4)).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(s.num_waiting(), 1);
}

TEST(SchedulerTest, MaxNumSeqsLimitsTheRunningBatch) {
  auto policy = MakePolicy(Config(PolicyKind::kPaged, 4096));
  SchedulerConfig sc;
  sc.max_num_seqs = 3;
  Scheduler s(sc, policy.get());
  for (uint64_t id = 0; id < 10; ++id) ASSERT_TRUE(s.AddRequest(Req(id, 4, 5)).ok());
  Driver d(&s);
  SchedulerOutput first = d.Step();
  ASSERT_EQ(first.scheduled.size(), 3u);
  EXPECT_EQ(first.scheduled[0].request_id, 0u);
  EXPECT_EQ(first.scheduled[2].request_id, 2u);
  EXPECT_EQ(s.num_running_seqs(), 3);
  EXPECT_EQ(s.num_waiting(), 7);
  d.RunToCompletion();
  EXPECT_EQ(d.finished.size(), 10u);
}

TEST(SchedulerTest, MaxNumBatchedTokensWithAndWithoutChunking) {
  for (bool chunked : {true, false}) {
    SCOPED_TRACE(chunked ? "chunked" : "unchunked");
    auto policy = MakePolicy(Config(PolicyKind::kPaged, 4096));
    SchedulerConfig sc;
    sc.max_num_batched_tokens = 10;
    sc.enable_chunked_prefill = chunked;
    Scheduler s(sc, policy.get());
    for (uint64_t id = 0; id < 3; ++id) ASSERT_TRUE(s.AddRequest(Req(id, 4, 3)).ok());
    Driver d(&s);
    SchedulerOutput out = d.Step();
    if (chunked) {
      // 4 + 4 + a chunk of 2 of the third prompt.
      ASSERT_EQ(out.scheduled.size(), 3u);
      EXPECT_EQ(out.num_batched_tokens, 10);
      EXPECT_EQ(out.scheduled[2].num_query_tokens, 2);
      EXPECT_EQ(out.scheduled[2].num_samples, 0);  // the prompt is not done: nothing sampled
    } else {
      ASSERT_EQ(out.scheduled.size(), 2u);
      EXPECT_EQ(out.num_batched_tokens, 8);
      EXPECT_EQ(s.num_waiting(), 1);
    }
    d.RunToCompletion();
    EXPECT_EQ(d.finished.size(), 3u);
  }
}

TEST(SchedulerTest, ChunkedPrefillSplitsALongPrompt) {
  auto policy = MakePolicy(Config(PolicyKind::kPaged, 4096));
  SchedulerConfig sc;
  sc.max_num_batched_tokens = 32;
  Scheduler s(sc, policy.get());
  ASSERT_TRUE(s.AddRequest(Req(1, 100, 2)).ok());
  Driver d(&s);
  const int expected_context[] = {0, 32, 64, 96};
  const int expected_query[] = {32, 32, 32, 4};
  for (int i = 0; i < 4; ++i) {
    SchedulerOutput out = d.Step();
    ASSERT_EQ(out.scheduled.size(), 1u);
    EXPECT_TRUE(out.scheduled[0].is_prefill);
    EXPECT_EQ(out.scheduled[0].num_context_tokens, expected_context[i]);
    EXPECT_EQ(out.scheduled[0].num_query_tokens, expected_query[i]);
    EXPECT_EQ(out.scheduled[0].num_samples, i == 3 ? 1 : 0);
  }
  EXPECT_EQ(d.sampled[1], 1);
  SchedulerOutput decode = d.Step();
  ASSERT_EQ(decode.scheduled.size(), 1u);
  EXPECT_FALSE(decode.scheduled[0].is_prefill);
  EXPECT_EQ(decode.scheduled[0].num_context_tokens, 100);
  EXPECT_EQ(decode.scheduled[0].num_query_tokens, 1);
  EXPECT_FALSE(s.HasWork());
  EXPECT_EQ(d.finished, std::vector<uint64_t>{1});
}

TEST(SchedulerTest, DecodesComeBeforeNewPrefillsWithinTheBudget) {
  auto policy = MakePolicy(Config(PolicyKind::kPaged, 4096));
  SchedulerConfig sc;
  sc.max_num_batched_tokens = 8;
  Scheduler s(sc, policy.get());
  ASSERT_TRUE(s.AddRequest(Req(1, 8, 10)).ok());
  Driver d(&s);
  d.Step();  // request 1's whole prompt
  ASSERT_TRUE(s.AddRequest(Req(2, 20, 2)).ok());
  SchedulerOutput out = d.Step();
  ASSERT_EQ(out.scheduled.size(), 2u);
  EXPECT_EQ(out.scheduled[0].request_id, 1u);  // the decode first
  EXPECT_EQ(out.scheduled[0].num_query_tokens, 1);
  EXPECT_EQ(out.scheduled[1].request_id, 2u);
  EXPECT_EQ(out.scheduled[1].num_query_tokens, 7);  // the rest of the budget
}

TEST(SchedulerTest, AdmissionWaitsForMemory) {
  // 10 pages of 4 tokens; each prompt takes 4 pages.
  auto policy = MakePolicy(Config(PolicyKind::kPaged, 40));
  Scheduler s({}, policy.get());
  for (uint64_t id = 0; id < 3; ++id) ASSERT_TRUE(s.AddRequest(Req(id, 16, 2)).ok());
  Driver d(&s);
  SchedulerOutput out = d.Step();
  EXPECT_EQ(out.scheduled.size(), 2u);
  EXPECT_EQ(s.num_waiting(), 1);
  d.RunToCompletion();
  EXPECT_EQ(d.finished.size(), 3u);
  EXPECT_TRUE(d.preempted.empty());
}

TEST(SchedulerTest, WatermarkKeepsPagesFreeAtAdmission) {
  PolicyConfig c = Config(PolicyKind::kPaged, 40);
  c.watermark = 0.25;  // 2.5 of 10 pages stay free at admission
  auto policy = MakePolicy(c);
  Scheduler s({}, policy.get());
  for (uint64_t id = 0; id < 2; ++id) ASSERT_TRUE(s.AddRequest(Req(id, 16, 2)).ok());
  Driver d(&s);
  SchedulerOutput out = d.Step();
  EXPECT_EQ(out.scheduled.size(), 1u);  // 4 + 4 pages would leave 2 < the watermark
  d.RunToCompletion();
  EXPECT_EQ(d.finished.size(), 2u);
}

TEST(SchedulerTest, PrefixCacheHitsSkipComputeAtAdmission) {
  PolicyConfig c = Config(PolicyKind::kPaged, 1024, /*block_size=*/16);
  c.enable_prefix_caching = true;
  auto policy = MakePolicy(c);
  Scheduler s({}, policy.get());
  SchedulerRequest a = Req(1, 40, 10);  // still running when b arrives
  SchedulerRequest b = Req(2, 40, 2);
  std::copy(a.prompt.begin(), a.prompt.begin() + 32, b.prompt.begin());  // 2 shared pages
  ASSERT_TRUE(s.AddRequest(a).ok());
  Driver d(&s);
  d.Step();  // a's prompt: its two full pages are hashed
  ASSERT_TRUE(s.AddRequest(b).ok());
  SchedulerOutput out = d.Step();
  ASSERT_EQ(out.scheduled.size(), 2u);
  const ScheduledSeq& e = out.scheduled[1];
  EXPECT_EQ(e.request_id, 2u);
  EXPECT_TRUE(e.is_prefill);
  EXPECT_EQ(e.num_context_tokens, 32);  // served by the cache
  EXPECT_EQ(e.num_query_tokens, 8);
  EXPECT_EQ(out.num_cached_prompt_tokens, 32);
  EXPECT_EQ(policy->counters().prefix_hit_tokens, 32);
  // The two hit pages are named by both tables (a's pages are shared, not copied).
  EXPECT_EQ(policy->MemoryStats(nullptr).shared_saved_tokens, 32);
  // A prompt that is entirely cached still computes its last page (the page holding the last
  // token, whose logits give the first output token, is never a hit).
  ASSERT_TRUE(s.AddRequest([&] {
                 SchedulerRequest r = Req(3, 32, 1);
                 r.prompt.assign(a.prompt.begin(), a.prompt.begin() + 32);
                 return r;
               }())
                  .ok());
  out = d.Step();
  ASSERT_FALSE(out.scheduled.empty());
  EXPECT_EQ(out.scheduled.back().request_id, 3u);
  EXPECT_EQ(out.scheduled.back().num_context_tokens, 16);
  EXPECT_EQ(out.scheduled.back().num_query_tokens, 16);
  d.RunToCompletion();
  EXPECT_EQ(d.finished.size(), 3u);
}

TEST(SchedulerTest, RejectsRequestsThatCanNeverFit) {
  auto policy = MakePolicy(Config(PolicyKind::kPaged, 40));
  Scheduler s({}, policy.get());
  ASSERT_TRUE(s.AddRequest(Req(1, 64, 2)).ok());  // 16 pages > 10
  ASSERT_TRUE(s.AddRequest(Req(2, 8, 40)).ok());  // grows to 12 pages > 10
  ASSERT_TRUE(s.AddRequest(Req(3, 8, 2)).ok());
  Driver d(&s);
  d.RunToCompletion();
  EXPECT_EQ(d.rejected, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(d.finished, std::vector<uint64_t>{3});
}

TEST(SchedulerTest, RecomputePreemptsTheNewestAndKeepsItsTokens) {
  // 6 pages of 4 tokens: two requests of 8-token prompts (2 pages each) growing by 8 tokens
  // cannot both finish at once.
  auto policy = MakePolicy(Config(PolicyKind::kPaged, 24));
  Scheduler s({}, policy.get());
  ASSERT_TRUE(s.AddRequest(Req(1, 8, 9)).ok());
  ASSERT_TRUE(s.AddRequest(Req(2, 8, 9)).ok());
  Driver d(&s);
  std::vector<TokenId> before;
  bool seen = false;
  while (s.HasWork()) {
    absl::StatusOr<std::vector<TokenId>> tokens = s.SequenceTokens(2);  // request 2's sequence
    SchedulerOutput out = d.Step();
    if (!out.preempted_requests.empty() && !seen) {
      seen = true;
      EXPECT_EQ(out.preempted_requests, std::vector<uint64_t>{2});  // the newest
      EXPECT_EQ(s.num_waiting(), 1);
      ASSERT_TRUE(tokens.ok());
      before = *tokens;
      absl::StatusOr<std::vector<TokenId>> after = s.SequenceTokens(2);
      ASSERT_TRUE(after.ok());
      EXPECT_EQ(*after, before);  // prompt + generated tokens survive for the recompute
      EXPECT_FALSE(policy->block_manager()->Contains(2));  // its pages are freed
    }
  }
  EXPECT_TRUE(seen);
  EXPECT_EQ(s.NumPreemptions(2), static_cast<int32_t>(d.preempted.size()));
  EXPECT_EQ(d.finished.size(), 2u);
  // Nothing was generated twice: recompute re-runs the tokens as a prefill without sampling.
  EXPECT_EQ(d.sampled[1], 9);
  EXPECT_EQ(d.sampled[2], 9);
  EXPECT_EQ(d.tokens_generated, 18);
}

TEST(SchedulerTest, SwapPreemptionResumesWithIdenticalTokens) {
  PolicyConfig c = Config(PolicyKind::kPaged, 24);
  c.host_capacity_tokens = 64;
  auto policy = MakePolicy(c);
  SchedulerConfig sc;
  sc.preemption_mode = PreemptionMode::kSwap;
  Scheduler s(sc, policy.get());
  ASSERT_TRUE(s.AddRequest(Req(1, 8, 9)).ok());
  ASSERT_TRUE(s.AddRequest(Req(2, 8, 9)).ok());
  Driver d(&s);
  std::vector<TokenId> at_swap_out;
  bool swapped_out = false;
  bool swapped_in = false;
  while (s.HasWork()) {
    SchedulerOutput out = d.Step();
    if (!out.preempted_requests.empty() && !swapped_out) {
      swapped_out = true;
      EXPECT_EQ(out.preempted_requests, std::vector<uint64_t>{2});
      EXPECT_EQ(s.num_swapped(), 1);
      EXPECT_GT(out.cache_ops.swap_out_bytes(), 0u);
      EXPECT_GT(out.swap_bytes, 0u);
      absl::StatusOr<std::vector<TokenId>> t = s.SequenceTokens(2);
      ASSERT_TRUE(t.ok());
      at_swap_out = *t;
      absl::StatusOr<SequenceStats> st = policy->block_manager()->GetSequenceStats(2);
      ASSERT_TRUE(st.ok());
      EXPECT_TRUE(st->swapped_out);
    }
    if (!out.swapped_in_requests.empty() && !swapped_in) {
      swapped_in = true;
      EXPECT_EQ(out.swapped_in_requests, std::vector<uint64_t>{2});
      EXPECT_GT(out.cache_ops.swap_in_bytes(), 0u);
      absl::StatusOr<std::vector<TokenId>> t = s.SequenceTokens(2);
      ASSERT_TRUE(t.ok());
      // The decode of this step appended at most one more sampled token.
      ASSERT_GE(t->size(), at_swap_out.size());
      EXPECT_TRUE(std::equal(at_swap_out.begin(), at_swap_out.end(), t->begin()));
      // The pages came back holding every stored token.
      EXPECT_EQ(*policy->block_manager()->NumTokens(2), static_cast<int32_t>(at_swap_out.size()));
    }
  }
  EXPECT_TRUE(swapped_out);
  EXPECT_TRUE(swapped_in);
  EXPECT_EQ(d.finished.size(), 2u);
  EXPECT_EQ(d.tokens_generated, 18);
}

TEST(SchedulerTest, SwapFallsBackToRecomputeWithoutHostSpace) {
  auto policy = MakePolicy(Config(PolicyKind::kPaged, 24));  // no host tier
  SchedulerConfig sc;
  sc.preemption_mode = PreemptionMode::kSwap;
  Scheduler s(sc, policy.get());
  ASSERT_TRUE(s.AddRequest(Req(1, 8, 9)).ok());
  ASSERT_TRUE(s.AddRequest(Req(2, 8, 9)).ok());
  Driver d(&s);
  d.RunToCompletion();
  EXPECT_FALSE(d.preempted.empty());
  EXPECT_EQ(d.finished.size(), 2u);
}

TEST(SchedulerTest, ParallelSamplesSharePromptPages) {
  auto policy = MakePolicy(Config(PolicyKind::kPaged, 1024, /*block_size=*/16));
  Scheduler s({}, policy.get());
  ASSERT_TRUE(s.AddRequest(Req(1, 32, 3, /*n=*/4)).ok());
  Driver d(&s);
  SchedulerOutput prefill = d.Step();
  ASSERT_EQ(prefill.scheduled.size(), 1u);
  EXPECT_EQ(prefill.scheduled[0].num_samples, 4);  // one token per sample
  EXPECT_EQ(s.num_running_seqs(), 4);
  std::vector<SeqId> ids = *s.RequestSeqIds(1);
  ASSERT_EQ(ids.size(), 4u);
  BlockManager* bm = policy->block_manager();
  const BlockTable* t0 = *bm->GetBlockTable(ids[0], 0);
  for (SeqId id : ids) {
    const BlockTable* t = *bm->GetBlockTable(id, 0);
    ASSERT_EQ(t->num_pages(), 2);
    EXPECT_EQ(t->blocks()[0], t0->blocks()[0]);
    EXPECT_EQ(t->blocks()[1], t0->blocks()[1]);
  }
  EXPECT_EQ(policy->MemoryStats(nullptr).shared_saved_tokens, 3 * 2 * 16);
  SchedulerOutput decode = d.Step();
  EXPECT_EQ(decode.scheduled.size(), 4u);
  // Each sample wrote its own page 2; the prompt pages stay shared.
  for (SeqId id : ids) {
    const BlockTable* t = *bm->GetBlockTable(id, 0);
    ASSERT_EQ(t->num_pages(), 3);
    EXPECT_EQ(t->blocks()[0], t0->blocks()[0]);
  }
  EXPECT_EQ(bm->gpu_allocator(0).num_in_use(), 2u + 4u);
  d.RunToCompletion();
  EXPECT_EQ(d.sampled[1], 4 * 3);
  EXPECT_EQ(d.tokens_generated, 12);
  EXPECT_EQ(bm->gpu_allocator(0).num_in_use(), 0u);
}

TEST(SchedulerTest, BeamSearchReordersBySharingPages) {
  auto policy = MakePolicy(Config(PolicyKind::kPaged, 1024, /*block_size=*/4));
  Scheduler s({}, policy.get());
  ASSERT_TRUE(s.AddRequest(Req(1, 6, 6, /*n=*/1, /*beams=*/3)).ok());
  Driver d(&s);
  d.choose_beams = false;
  d.Step();  // prefill: 3 beams forked, one token each
  std::vector<SeqId> ids = *s.RequestSeqIds(1);
  ASSERT_EQ(ids.size(), 3u);
  // Decode by hand: every beam continues beam 0.
  SchedulerOutput out = *s.Step();
  ASSERT_EQ(out.scheduled.size(), 3u);
  std::vector<TokenId> parent = *s.SequenceTokens(ids[0]);
  StepSamples samples;
  samples.tokens = {501, 502, 503};
  samples.beams.push_back({1, {0, 0, 0}});
  ASSERT_TRUE(s.CompleteStep(out, samples).ok());
  ASSERT_TRUE(s.CheckInvariants().ok()) << s.CheckInvariants();
  BlockManager* bm = policy->block_manager();
  const BlockTable* t0 = *bm->GetBlockTable(ids[0], 0);
  for (size_t b = 0; b < 3; ++b) {
    std::vector<TokenId> expected = parent;
    expected.push_back(501 + static_cast<TokenId>(b));
    EXPECT_EQ(*s.SequenceTokens(ids[b]), expected);
    // Beam b now names beam 0's pages: nothing was copied.
    const BlockTable* t = *bm->GetBlockTable(ids[b], 0);
    ASSERT_EQ(t->num_pages(), t0->num_pages());
    for (int32_t p = 0; p < t->num_pages(); ++p) EXPECT_EQ(t->blocks()[p], t0->blocks()[p]);
  }
  d.choose_beams = true;
  d.beam_requests.insert(1);
  d.RunToCompletion();
  EXPECT_EQ(d.finished, std::vector<uint64_t>{1});
  EXPECT_EQ(bm->gpu_allocator(0).num_in_use(), 0u);
}

TEST(SchedulerTest, RandomWorkloadConservesTokensAndServesInArrivalOrder) {
  for (PreemptionMode mode : {PreemptionMode::kRecompute, PreemptionMode::kSwap}) {
    SCOPED_TRACE(std::string(PreemptionModeName(mode)));
    PolicyConfig c = Config(PolicyKind::kPaged, 256, /*block_size=*/4);
    c.host_capacity_tokens = mode == PreemptionMode::kSwap ? 512 : 0;
    auto policy = MakePolicy(c);
    SchedulerConfig sc;
    sc.max_num_seqs = 8;
    sc.max_num_batched_tokens = 48;
    sc.preemption_mode = mode;
    Scheduler s(sc, policy.get());
    std::mt19937_64 rng(42);
    int64_t expected_tokens = 0;
    std::map<uint64_t, int64_t> expected;
    for (uint64_t id = 0; id < 60; ++id) {
      const int32_t prompt = 1 + static_cast<int32_t>(rng() % 60);
      const int32_t output = 1 + static_cast<int32_t>(rng() % 40);
      ASSERT_TRUE(s.AddRequest(Req(id, prompt, output)).ok());
      expected[id] = output;
      expected_tokens += output;
    }
    Driver d(&s);
    d.RunToCompletion();
    EXPECT_EQ(d.finished.size(), 60u);
    EXPECT_TRUE(d.rejected.empty());
    EXPECT_FALSE(d.preempted.empty()) << "the test should run under memory pressure";
    EXPECT_EQ(d.tokens_generated, expected_tokens);
    EXPECT_EQ(d.sampled, expected);  // every token sampled exactly once
    // FCFS: requests are first scheduled in arrival order, so none waits behind a newer one.
    std::vector<uint64_t> sorted = d.admission_order;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(d.admission_order, sorted);
    EXPECT_EQ(policy->block_manager()->gpu_allocator(0).num_in_use(), 0u);
  }
}

TEST(SchedulerTest, DeterministicForTheSameInput) {
  auto run = [] {
    auto policy = MakePolicy(Config(PolicyKind::kPaged, 200, /*block_size=*/3));
    SchedulerConfig sc;
    sc.max_num_batched_tokens = 40;
    Scheduler s(sc, policy.get());
    std::mt19937_64 rng(9);
    for (uint64_t id = 0; id < 40; ++id) {
      const int32_t width = id % 7 == 0 ? 2 : 1;
      EXPECT_TRUE(s.AddRequest(Req(id, 1 + static_cast<int32_t>(rng() % 50),
                                   1 + static_cast<int32_t>(rng() % 30), width))
                      .ok());
    }
    Driver d(&s);
    std::vector<std::string> trace;
    while (s.HasWork()) {
      SchedulerOutput out = d.Step();
      std::string line;
      for (const ScheduledSeq& e : out.scheduled) {
        line += std::to_string(e.seq_id) + ":" + std::to_string(e.num_query_tokens) + ",";
      }
      for (uint64_t p : out.preempted_requests) line += "p" + std::to_string(p);
      trace.push_back(line);
    }
    return trace;
  };
  EXPECT_EQ(run(), run());
}

// Every policy runs the same mixed workload (n > 1 and beams included) to completion.
class SchedulerPolicyTest : public ::testing::TestWithParam<PolicyKind> {};

TEST_P(SchedulerPolicyTest, MixedWorkloadCompletes) {
  PolicyConfig c = Config(GetParam(), 2048, /*block_size=*/16);
  c.max_model_len = 160;
  c.max_new_tokens = 64;
  auto policy = MakePolicy(c);
  SchedulerConfig sc;
  sc.max_num_seqs = 16;
  sc.max_num_batched_tokens = 128;
  Scheduler s(sc, policy.get());
  std::mt19937_64 rng(5);
  Driver d(&s);
  int64_t expected = 0;
  for (uint64_t id = 0; id < 40; ++id) {
    const int32_t prompt = 1 + static_cast<int32_t>(rng() % 90);
    const int32_t output = 1 + static_cast<int32_t>(rng() % 64);
    const int32_t n = id % 10 == 3 ? 3 : 1;
    const int32_t beams = id % 10 == 7 ? 2 : 1;
    if (beams > 1) d.beam_requests.insert(id);
    ASSERT_TRUE(s.AddRequest(Req(id, prompt, output, n, beams)).ok());
    expected += static_cast<int64_t>(output) * std::max(n, beams);
  }
  d.RunToCompletion();
  EXPECT_EQ(d.finished.size() + d.rejected.size(), 40u);
  EXPECT_TRUE(d.rejected.empty());
  if (d.preempted.empty()) {
    EXPECT_EQ(d.tokens_generated, expected);
  }
  const KvMemoryStats m = policy->MemoryStats(nullptr);
  EXPECT_EQ(m.used_tokens, 0);
  EXPECT_EQ(m.reserved_unused_tokens, 0);
  EXPECT_TRUE(policy->CheckInvariants().ok());
}

INSTANTIATE_TEST_SUITE_P(AllPolicies, SchedulerPolicyTest, ::pagedkv::testing::AllPolicyKinds(),
                         ::pagedkv::testing::PolicyKindParamName);

// Paged under pressure at every block size: invariants after every step, all tokens once.
class SchedulerBlockSizeTest : public ::testing::TestWithParam<int32_t> {};

TEST_P(SchedulerBlockSizeTest, PressureRunCompletes) {
  const int32_t bs = GetParam();
  PolicyConfig c = Config(PolicyKind::kPaged, std::max(300, 6 * bs), bs);
  auto policy = MakePolicy(c);
  SchedulerConfig sc;
  sc.max_num_seqs = 12;
  sc.max_num_batched_tokens = 64;
  Scheduler s(sc, policy.get());
  std::mt19937_64 rng(static_cast<uint64_t>(bs));
  int64_t expected = 0;
  for (uint64_t id = 0; id < 50; ++id) {
    const int32_t output = 1 + static_cast<int32_t>(rng() % 30);
    // Prompts that cross page boundaries at every block size, so that sequences grow into new
    // pages and the pool runs out.
    const int32_t prompt = 1 + static_cast<int32_t>(rng() % std::max(70, 2 * bs));
    ASSERT_TRUE(s.AddRequest(Req(id, prompt, output)).ok());
    expected += output;
  }
  Driver d(&s);
  d.RunToCompletion();
  EXPECT_EQ(d.finished.size() + d.rejected.size(), 50u);
  EXPECT_FALSE(d.preempted.empty()) << "the test should run under memory pressure";
  EXPECT_EQ(policy->block_manager()->gpu_allocator(0).num_in_use(), 0u);
  if (d.rejected.empty()) {
    EXPECT_EQ(d.tokens_generated, expected);
  }
}

INSTANTIATE_TEST_SUITE_P(BlockSizes, SchedulerBlockSizeTest, ::testing::Values(1, 3, 16, 17, 128));

}  // namespace
}  // namespace pagedkv
