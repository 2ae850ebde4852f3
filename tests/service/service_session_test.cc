// ServiceCore's sessions over time: leases renewed and expired on a fake clock, the quarantine
// of what a dead client's last step named (its pages are not handed out until it ends), close,
// draining, the session limit, and a multi-threaded stress run with invariant checks (the
// ThreadSanitizer build runs it too).
#include <algorithm>
#include <random>
#include <thread>

#include "absl/container/flat_hash_set.h"
#include "tests/service/core_fixture.h"

namespace pagedkv::service::internal {
namespace {

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
