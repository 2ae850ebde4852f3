// The cost of the service: one 64-sequence decode step (append_batch of 64 tokens + the batch's
// page table and slot mapping) as a Step round trip over the Unix socket, side by side with the
// same ops in-process, with 1, 8 and 32 concurrent clients (each its own session and 64
// sequences). llama-3-8b shape, block size 16, 1024-token prompts, metadata-only pools (kVirtual).
//
//   BM_InProcessManager        the library: AppendTokenBatch + TakeCacheOps + BuildBatch
//   BM_InProcessServiceCore/N  the service without a transport (sessions, ids, quotas, packing)
//   BM_UnixSocketStep/N        pagedkv::client -> gRPC over a Unix socket -> the same core
//
// Counters: p50_us / p99_us per step (client side), steps_per_s (all clients), leaked_blocks
// (GPU blocks still in use after every session closed: must be 0). docs/performance.md has the
// figures and the command; build with PAGEDKV_DEBUG_LEVEL=0 for real figures (level 2 checks
// every invariant after every mutation, so there prompts, steps and the rewind period shrink 16x
// and each client decodes 16 sequences, for the CTest smoke run).
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "benchmark/benchmark.h"
#include "pagedkv/block_manager/block_manager.h"
#include "pagedkv/service/client.h"
#include "pagedkv/service/server.h"
#include "service/internal/service_core.h"

namespace pagedkv {
namespace {

#if PAGEDKV_DEBUG_LEVEL >= 2
constexpr int kShrink = 16;
#else
constexpr int kShrink = 1;
#endif
constexpr int kSeqs = kShrink > 1 ? 16 : 64;  // per client
constexpr int kPromptTokens = 1024 / kShrink;
constexpr int kRewindEvery = 256 / kShrink;  // steps; keeps every sequence near the prompt length
constexpr int kBlockSize = 16;
using Clock = std::chrono::steady_clock;

ModelSpec Llama3() {
  absl::StatusOr<ModelSpec> spec = ModelSpec::Preset("llama-3-8b");
  if (!spec.ok()) std::abort();
  return *spec;
}

int64_t GpuBlocks(int clients) {
  return int64_t{clients} * kSeqs * ((kPromptTokens + kRewindEvery) / kBlockSize + 2);
}

service::ServerOptions Options(int clients) {
  service::ServerOptions o;
  service::ModelOptions m;
  m.name = "llama-3-8b";
  m.spec = Llama3();
  m.cache.block_size_tokens = kBlockSize;
  m.cache.gpu_tier = Tier::kVirtual;
  m.cache.gpu_num_blocks = GpuBlocks(clients);
  m.cache.watermark = 0.0;
  o.models.push_back(m);
  return o;
}

std::vector<TokenId> Prompt(int client, int seq) {
  std::vector<TokenId> t(kPromptTokens);
  for (int i = 0; i < kPromptTokens; ++i) t[i] = (client * 1000003 + seq * 7919 + i * 31) % 128000;
  return t;
}

struct Latencies {
  std::mutex mu;
  std::vector<double> us;
  void Add(const std::vector<double>& v) {
    std::lock_guard lock(mu);
    us.insert(us.end(), v.begin(), v.end());
  }
};

void Report(benchmark::State& state, Latencies& lat, double seconds, uint32_t leaked) {
  std::sort(lat.us.begin(), lat.us.end());
  const auto at = [&](double q) {
    return lat.us.empty() ? 0.0 : lat.us[static_cast<size_t>(q * (lat.us.size() - 1))];
  };
  state.counters["p50_us"] = at(0.50);
  state.counters["p99_us"] = at(0.99);
  state.counters["steps_per_s"] = static_cast<double>(lat.us.size()) / seconds;
  state.counters["leaked_blocks"] = leaked;
  if (leaked != 0) state.SkipWithError("blocks leaked after every session closed");
}

// One client's loop on a Step function: admit 64 sequences, wait until every client has (so that
// no admission runs while steps are timed), then `steps` decode steps (timed), rewinding to the
// prompt every kRewindEvery steps (untimed). Returns the decode phase's wall time in seconds.
template <typename StepFn>
double ClientLoop(int client, int steps, StepFn step_fn, std::barrier<>& admitted,
                  std::vector<double>* us) {
  client::StepBuilder admit;
  std::vector<uint64_t> ids(kSeqs);
  for (int s = 0; s < kSeqs; ++s) {
    ids[s] = s + 1;
    admit.Add(ids[s], Prompt(client, s));
  }
  if (!step_fn(admit.request()).ok()) std::abort();
  client::StepBuilder decode;
  decode.AppendBatch(ids, std::vector<TokenId>(kSeqs, 42));
  for (uint64_t id : ids) decode.Batch(id, 1);
  client::StepBuilder rewind;
  for (uint64_t id : ids) rewind.Rewind(id, kPromptTokens);
  us->reserve(steps);
  admitted.arrive_and_wait();
  const auto start = Clock::now();
  for (int i = 0; i < steps; ++i) {
    if (i > 0 && i % kRewindEvery == 0 && !step_fn(rewind.request()).ok()) std::abort();
    const auto t0 = Clock::now();
    if (!step_fn(decode.request()).ok()) std::abort();
    us->push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The longest decode phase of all clients (the run's wall time for throughput).
struct Phase {
  std::mutex mu;
  double seconds = 0;
  void Add(double s) {
    std::lock_guard lock(mu);
    seconds = std::max(seconds, s);
  }
};

// ---- The library alone ---------------------------------------------------------------------

void BM_InProcessManager(benchmark::State& state) {
  const int steps = static_cast<int>(state.range(0));
  CacheConfig cfg = Options(1).models[0].cache;
  for (auto _ : state) {
    auto bm = BlockManager::Create(Llama3(), cfg);
    if (!bm.ok()) std::abort();
    std::vector<SeqId> ids(kSeqs);
    std::vector<BatchEntry> entries(kSeqs);
    for (int s = 0; s < kSeqs; ++s) {
      ids[s] = s + 1;
      entries[s].seq_id = ids[s];
      if (!(*bm)->AddSequence(ids[s], Prompt(0, s)).ok()) std::abort();
    }
    const std::vector<TokenId> tokens(kSeqs, 42);
    CacheOps ops;
    BatchLayout layout;
    Latencies lat;
    std::vector<double> us;
    const auto start = Clock::now();
    for (int i = 0; i < steps; ++i) {
      if (i > 0 && i % kRewindEvery == 0) {
        for (SeqId id : ids) {
          if (!(*bm)->Rewind(id, kPromptTokens).ok()) std::abort();
        }
      }
      const auto t0 = Clock::now();
      if (!(*bm)->AppendTokenBatch(ids, tokens).ok()) std::abort();
      (*bm)->TakeCacheOps(&ops);
      if (!(*bm)->BuildBatch(entries, 0, &layout).ok()) std::abort();
      benchmark::DoNotOptimize(layout.slot_mapping.data());
      us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    for (SeqId id : ids) {
      if (!(*bm)->Free(id).ok()) std::abort();
    }
    lat.Add(us);
    state.SetIterationTime(seconds);
    Report(state, lat, seconds, (*bm)->stats().groups[0].gpu_in_use_blocks);
  }
}

// ---- The service without a transport --------------------------------------------------------

void BM_InProcessServiceCore(benchmark::State& state) {
  const int clients = static_cast<int>(state.range(0));
  const int steps = static_cast<int>(state.range(1));
  for (auto _ : state) {
    auto core = service::internal::ServiceCore::Create(Options(clients));
    if (!core.ok()) std::abort();
    Latencies lat;
    Phase phase;
    std::barrier admitted(clients);
    std::vector<std::thread> threads;
    for (int c = 0; c < clients; ++c) {
      threads.emplace_back([&, c] {
        v1::OpenSessionRequest open;
        v1::OpenSessionResponse opened;
        if (!(*core)->OpenSession(open, &opened).ok()) std::abort();
        v1::StepResponse response;
        std::vector<double> us;
        phase.Add(ClientLoop(
            c, steps,
            [&](v1::StepRequest& r) {
              *r.mutable_session() = opened.session();
              response.Clear();
              return (*core)->Step(r, Clock::now() + std::chrono::seconds(60), &response);
            },
            admitted, &us));
        v1::CloseSessionRequest close;
        *close.mutable_session() = opened.session();
        v1::CloseSessionResponse closed;
        if (!(*core)->CloseSession(close, Clock::now() + std::chrono::seconds(60), &closed).ok()) {
          std::abort();
        }
        lat.Add(us);
      });
    }
    for (std::thread& t : threads) t.join();
    const double seconds = phase.seconds;
    v1::StatsRequest request;
    request.set_check_invariants(true);
    v1::StatsResponse stats;
    if (!(*core)->Stats(request, Clock::now() + std::chrono::seconds(60), &stats).ok() ||
        stats.invariants().code() != 0) {
      state.SkipWithError("invariants failed after the run");
    }
    state.SetIterationTime(seconds);
    Report(state, lat, seconds, stats.models(0).pools(0).gpu_in_use_blocks());
  }
}

// ---- Over the Unix socket ------------------------------------------------------------------

void BM_UnixSocketStep(benchmark::State& state) {
  const int clients = static_cast<int>(state.range(0));
  const int steps = static_cast<int>(state.range(1));
  for (auto _ : state) {
    service::ServerOptions o = Options(clients);
    o.socket_path = "/tmp/pagedkv-bench-" + std::to_string(getpid()) + ".sock";
    auto server = service::Server::Start(std::move(o));
    if (!server.ok()) {
      state.SkipWithError(std::string(server.status().message()).c_str());
      return;
    }
    const std::string target = "unix:" + (*server)->socket_path();
    Latencies lat;
    Phase phase;
    std::barrier admitted(clients);
    std::vector<std::thread> threads;
    for (int c = 0; c < clients; ++c) {
      threads.emplace_back([&, c] {
        auto cl = client::Client::Connect({.target = target, .timeout_seconds = 60});
        if (!cl.ok()) std::abort();
        v1::OpenSessionRequest open;
        auto session = client::Session::Open(**cl, open);
        if (!session.ok()) std::abort();
        v1::StepResponse response;
        std::vector<double> us;
        phase.Add(ClientLoop(
            c, steps, [&](v1::StepRequest& r) { return (*session)->StepRaw(r, &response); },
            admitted, &us));
        if (!(*session)->Close().ok()) std::abort();
        lat.Add(us);
      });
    }
    for (std::thread& t : threads) t.join();
    const double seconds = phase.seconds;
    auto cl = client::Client::Connect({.target = target});
    v1::StatsRequest request;
    request.set_check_invariants(true);
    auto stats = (*cl)->Stats(request);
    if (!stats.ok() || stats->invariants().code() != 0) {
      state.SkipWithError("invariants failed after the run");
    }
    state.SetIterationTime(seconds);
    Report(state, lat, seconds, stats.ok() ? stats->models(0).pools(0).gpu_in_use_blocks() : 1);
    (*server)->Shutdown(5);
  }
}

// {clients, steps per client}: about 3000 timed steps per row.
BENCHMARK(BM_InProcessManager)
    ->Arg(3000 / kShrink)
    ->UseManualTime()
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);
void ClientRows(benchmark::internal::Benchmark* b) {
  b->Args({1, 3000 / kShrink})
      ->Args({8, 400 / kShrink})
      ->Args({32, 100 / kShrink})
      ->UseManualTime()
      ->Iterations(1)
      ->Unit(benchmark::kMillisecond);
}
BENCHMARK(BM_InProcessServiceCore)->Apply(ClientRows);
BENCHMARK(BM_UnixSocketStep)->Apply(ClientRows);

}  // namespace
}  // namespace pagedkv

BENCHMARK_MAIN();
