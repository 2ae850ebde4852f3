// Data through the tables, across processes: client processes (service_data_client) share the
// server's pools, write token-derived K/V through the slot mappings they receive, run fork, beam
// reorder, rewind, swap and free, and each reads back exactly its own tokens through its page
// tables; paged attention on the shared pool matches fp64. The server's invariants hold after.
#include <signal.h>

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pagedkv/service/client.h"
#include "tests/service/test_util.h"

namespace pagedkv::testing {
namespace {

struct Config {
  const char* name;
  int processes;
  bool prefix_caching;
  int host_blocks;
};

class DataThroughServiceTest : public ::testing::TestWithParam<Config> {};

TEST_P(DataThroughServiceTest, EachProcessReadsBackExactlyItsOwnTokens) {
  const Config& c = GetParam();
  ServeProcess serve;
  const std::string model = WriteToyModel(serve.dir(), ToySpec());
  PAGEDKV_ASSERT_OK(
      serve.Start({"--model", model, "--gpu-blocks", "48", "--host-blocks",
                   std::to_string(c.host_blocks), "--block-size", "3",
                   std::string("--prefix-caching=") + (c.prefix_caching ? "true" : "false")}));
  std::vector<std::unique_ptr<ChildProcess>> clients;
  for (int p = 0; p < c.processes; ++p) {
    clients.push_back(std::make_unique<ChildProcess>());
    PAGEDKV_ASSERT_OK(clients.back()->Spawn({SERVICE_DATA_CLIENT_PATH, "--target", serve.target(),
                                             "--seed", std::to_string(11 + p), "--steps", "600"}));
  }
  for (auto& client : clients) {
    absl::StatusOr<std::string> line = client->ReadLine(300);
    EXPECT_EQ(client->Wait(60), 0) << (line.ok() ? *line : std::string(line.status().message()));
    ASSERT_TRUE(line.ok()) << line.status();
    EXPECT_THAT(*line, ::testing::StartsWith("ok "));
    std::printf("%s: %s\n", c.name, line->c_str());
  }
  auto client = client::Client::Connect({.target = serve.target()});
  ASSERT_TRUE(client.ok());
  v1::StatsRequest request;
  request.set_check_invariants(true);
  absl::StatusOr<v1::StatsResponse> stats = (*client)->Stats(request);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->invariants().code(), 0) << stats->invariants().message();
  EXPECT_EQ(stats->models(0).num_sequences(), 0);
  EXPECT_EQ(stats->models(0).pools(0).gpu_in_use_blocks(), 0u);
  EXPECT_EQ(stats->models(0).pools(0).host_in_use_blocks(), 0u);
  EXPECT_EQ(stats->sessions_closed(), static_cast<uint64_t>(c.processes));
  EXPECT_EQ(serve.Stop(SIGTERM), 0);
}

// Swap alone, the prefix cache alone, and both (evicted prefix pages then move to the host tier
// and come back: moves that one session's step causes on pages other sessions use next, which
// is why the server runs the CacheOps of host-memory pools itself).
INSTANTIATE_TEST_SUITE_P(
    Configs, DataThroughServiceTest,
    ::testing::Values(Config{"two_processes_swap", 2, false, 24},
                      Config{"two_processes_prefix_cache", 2, true, 0},
                      Config{"two_processes_swap_and_prefix_cache", 2, true, 24}),
    [](const ::testing::TestParamInfo<Config>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace pagedkv::testing
