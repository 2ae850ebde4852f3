// Chaos and load on loopback: many engine processes (service_data_client) run random operations
// with K/V written and read back through the shared pools while a third of them are SIGKILLed at
// random points and restarted. At the end every surviving client's read-back passed, the killed
// sessions' leases expired and their blocks came back (nothing lost or leaked) and every
// invariant holds. Prints throughput and Step latency.
//
// Sized for CI by default (label load). The full size of issue 12 (32 processes x 2,000
// steps x 64 sequences) runs with PAGEDKV_CHAOS_FULL=1; docs/performance.md has its figures.
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pagedkv/service/client.h"
#include "tests/service/test_util.h"

namespace pagedkv::testing {
namespace {

struct Size {
  int processes, steps, max_seqs;
  // Long enough that a starved survivor (many processes on few cores) keeps its session; the
  // victims' sessions then expire this long after their kill.
  double lease_seconds;
  double max_kill_after_s;  // a victim is killed after a uniform delay in [0.1, this]
};

Size ChosenSize() {
  const char* full = std::getenv("PAGEDKV_CHAOS_FULL");
  if (full != nullptr && std::string(full) == "1") return {32, 2000, 64, 15.0, 20.0};
  return {9, 600, 16, 5.0, 0.6};
}

// "key=value" out of the client's "ok ..." line; -1 when absent.
double Field(const std::string& line, const std::string& key) {
  const size_t at = line.find(" " + key + "=");
  return at == std::string::npos ? -1 : std::atof(line.c_str() + at + key.size() + 2);
}

TEST(ChaosLoadTest, KilledClientsLoseNothingAndSurvivorsReadBackTheirTokens) {
  const Size size = ChosenSize();
  ServeProcess serve;
  const std::string model = WriteToyModel(serve.dir(), ToySpec());
  const int gpu_blocks = size.processes * size.max_seqs * 8;
  PAGEDKV_ASSERT_OK(serve.Start({"--model", model, "--gpu-blocks", std::to_string(gpu_blocks),
                                 "--host-blocks", std::to_string(gpu_blocks / 4), "--block-size",
                                 "4", "--lease-seconds", std::to_string(size.lease_seconds),
                                 "--quarantine-seconds", "0.5", "--max-sessions", "256"}));
  const auto spawn = [&](int seed) {
    auto child = std::make_unique<ChildProcess>();
    const absl::Status s = child->Spawn(
        {SERVICE_DATA_CLIENT_PATH, "--target", serve.target(), "--seed", std::to_string(seed),
         "--steps", std::to_string(size.steps), "--max-seqs", std::to_string(size.max_seqs)});
    EXPECT_TRUE(s.ok()) << s;
    return child;
  };
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::unique_ptr<ChildProcess>> clients;
  for (int p = 0; p < size.processes; ++p) clients.push_back(spawn(100 + p));

  // A third of the clients are victims: each is SIGKILLed after a random delay (mid-step, mid-
  // write or between steps: wherever it is) and replaced by a fresh client.
  std::mt19937 rng(12);
  std::uniform_real_distribution<double> delay(0.1, size.max_kill_after_s);
  std::vector<std::pair<double, int>> kills;  // (seconds after start, client index)
  for (int p = 0; p < size.processes; p += 3) kills.emplace_back(delay(rng), p);
  std::sort(kills.begin(), kills.end());
  int killed = 0;
  std::vector<int> done_code(clients.size(), -2);  // exit code of a client reaped early
  for (const auto& [at, p] : kills) {
    std::this_thread::sleep_until(start + std::chrono::duration<double>(at));
    if (clients[p]->Poll(&done_code[p])) continue;  // already done: nothing to kill
    clients[p]->Signal(SIGKILL);
    EXPECT_EQ(clients[p]->Wait(30), 128 + SIGKILL);
    ++killed;
    clients[p] = spawn(1000 + p);
  }

  std::vector<double> p50s, p99s;
  int64_t steps = 0;
  for (size_t p = 0; p < clients.size(); ++p) {
    ChildProcess* client = clients[p].get();
    absl::StatusOr<std::string> line = client->ReadLine(size.steps * 0.5 + 120);
    const int code = done_code[p] != -2 ? done_code[p] : client->Wait(60);
    ASSERT_TRUE(line.ok()) << line.status();
    EXPECT_EQ(code, 0) << *line;
    EXPECT_THAT(*line, ::testing::StartsWith("ok ")) << *line;
    steps += static_cast<int64_t>(Field(*line, "steps"));
    p50s.push_back(Field(*line, "step_p50_us"));
    p99s.push_back(Field(*line, "step_p99_us"));
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::sort(p50s.begin(), p50s.end());
  std::printf(
      "chaos: %d processes x %d steps x %d sequences, %d killed and restarted: %lld steps of the "
      "survivors in %.1f s = %.0f steps/s; Step latency: median of clients' p50 %.0f us, worst "
      "client's p99 %.0f us\n",
      size.processes, size.steps, size.max_seqs, killed, static_cast<long long>(steps), seconds,
      steps / seconds, p50s[p50s.size() / 2], *std::max_element(p99s.begin(), p99s.end()));
  EXPECT_GE(killed, 1);

  // The victims' leases expire, their sequences sit out the quarantine, then every block is free.
  auto client = client::Client::Connect({.target = serve.target()});
  ASSERT_TRUE(client.ok()) << client.status();
  v1::StatsRequest request;
  request.set_check_invariants(true);
  absl::StatusOr<v1::StatsResponse> stats;
  for (int i = 0; i < 10 * (size.lease_seconds + 20); ++i) {
    stats = (*client)->Stats(request);
    ASSERT_TRUE(stats.ok()) << stats.status();
    if (stats->models(0).num_sequences() == 0 && stats->open_sessions() == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(stats->invariants().code(), 0) << stats->invariants().message();
  EXPECT_EQ(stats->models(0).num_sequences(), 0);
  EXPECT_EQ(stats->models(0).quarantined_sequences(), 0);
  const v1::PoolStats& pools = stats->models(0).pools(0);
  EXPECT_EQ(pools.gpu_in_use_blocks(), 0u);
  EXPECT_EQ(pools.host_in_use_blocks(), 0u);
  EXPECT_EQ(pools.gpu_free_blocks() + pools.gpu_cached_blocks(), pools.gpu_num_blocks());
  EXPECT_EQ(pools.host_free_blocks() + pools.host_cached_blocks(), pools.host_num_blocks());
  // Every session a victim opened expired (one killed before its OpenSession answered has none);
  // every survivor closed its own.
  EXPECT_LE(stats->sessions_expired(), static_cast<uint64_t>(killed));
  EXPECT_EQ(stats->sessions_closed(), static_cast<uint64_t>(size.processes));
  EXPECT_EQ(stats->sessions_opened(), stats->sessions_closed() + stats->sessions_expired());
  EXPECT_EQ(serve.Stop(SIGTERM), 0);
}

}  // namespace
}  // namespace pagedkv::testing
