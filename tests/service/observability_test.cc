// The server's metrics page and KV events in-process, with concurrency (so the ThreadSanitizer
// step covers the HTTP workers and the publisher thread): clients step while /metrics is scraped
// and a ZeroMQ subscriber receives the batches; the sequence numbers have no gap, a replay returns
// every batch from a start on, and /metrics counts what happened.
#include <httplib.h>
#include <zmq.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pagedkv/service/client.h"
#include "pagedkv/service/server.h"
#include "tests/service/test_util.h"

namespace pagedkv::testing {
namespace {

using ::testing::HasSubstr;

uint64_t BigEndian(const std::string& bytes) {
  uint64_t v = 0;
  for (char c : bytes) v = (v << 8) | static_cast<uint8_t>(c);
  return v;
}

// Receives one multi-part message (up to 1 s); empty when none came.
std::vector<std::string> Receive(void* socket) {
  zmq_pollitem_t item = {socket, 0, ZMQ_POLLIN, 0};
  if (zmq_poll(&item, 1, 1000) <= 0) return {};
  std::vector<std::string> frames;
  int more = 1;
  while (more) {
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    if (zmq_msg_recv(&msg, socket, 0) < 0) {
      zmq_msg_close(&msg);
      return {};
    }
    frames.emplace_back(static_cast<const char*>(zmq_msg_data(&msg)), zmq_msg_size(&msg));
    more = zmq_msg_more(&msg);
    zmq_msg_close(&msg);
  }
  return frames;
}

TEST(ObservabilityTest, MetricsAndEventsWhileClientsStep) {
  TempDir dir;
  service::ServerOptions o = ToyServerOptions();
  o.socket_path = dir.File("kv.sock");
  o.metrics_address = "127.0.0.1:0";
  o.events.endpoint = "tcp://127.0.0.1:0";
  o.events.replay_endpoint = "tcp://127.0.0.1:0";
  o.events.topic = "kv@test@{model}";
  auto server = service::Server::Start(o);
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_GT((*server)->metrics_port(), 0);
  ASSERT_EQ((*server)->event_endpoints().size(), 1u);

  void* ctx = zmq_ctx_new();
  void* sub = zmq_socket(ctx, ZMQ_SUB);
  zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "", 0);
  ASSERT_EQ(zmq_connect(sub, (*server)->event_endpoints()[0].c_str()), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the slow joiner

  const std::string target = "unix:" + (*server)->socket_path();
  constexpr int kClients = 3, kSteps = 40;
  std::atomic<bool> done{false};
  std::atomic<int> scrapes{0};
  std::thread scraper([&] {
    httplib::Client http("127.0.0.1", (*server)->metrics_port());
    while (!done.load()) {
      auto res = http.Get("/metrics");
      if (res && res->status == 200) scrapes.fetch_add(1);
    }
  });
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      auto cl = client::Client::Connect({.target = target});
      ASSERT_TRUE(cl.ok());
      v1::OpenSessionRequest open;
      open.set_cache_namespace("shared");
      auto session = client::Session::Open(**cl, open);
      ASSERT_TRUE(session.ok()) << session.status();
      for (int s = 0; s < kSteps; ++s) {
        const uint64_t seq = static_cast<uint64_t>(s + 1);
        // Two full pages of their own (published, later evicted) and a partial third.
        const TokenId u = static_cast<TokenId>(1000 * (c + 1) + 10 * s);
        const std::vector<TokenId> prompt = {u, u + 1, u + 2, u + 3, u + 4, u + 5, u + 6, u + 7, 1};
        client::StepBuilder add;
        add.Add(seq, prompt).Batch(seq, static_cast<int32_t>(prompt.size()));
        ASSERT_TRUE((*session)->Step(add).ok());
        client::StepBuilder computed;
        const std::vector<uint64_t> seqs = {seq};
        const std::vector<int64_t> tokens = {static_cast<int64_t>(prompt.size())};
        computed.MarkComputed(seqs, tokens).Free(seqs);
        ASSERT_TRUE((*session)->Step(computed).ok());
      }
      EXPECT_TRUE((*session)->Close().ok());
    });
  }
  for (std::thread& t : clients) t.join();

  // The subscriber saw consecutive batches, all on the model's topic: from 1 on, or from 0 when it
  // joined before the first (AllBlocksCleared, published at start).
  uint64_t expected = ~uint64_t{0};
  int stored = 0, removed = 0;
  for (std::vector<std::string> m = Receive(sub); !m.empty(); m = Receive(sub)) {
    ASSERT_EQ(m.size(), 3u);
    EXPECT_EQ(m[0], "kv@test@toy");
    if (expected == ~uint64_t{0}) {
      expected = BigEndian(m[1]);
      EXPECT_LE(expected, 1u);
    }
    EXPECT_EQ(BigEndian(m[1]), expected++);
    if (m[2].find("BlockStored") != std::string::npos) ++stored;
    if (m[2].find("BlockRemoved") != std::string::npos) ++removed;
  }
  EXPECT_GT(expected, 10u);
  EXPECT_GT(stored, 0);
  EXPECT_GT(removed, 0);  // 240 published pages in 64 GPU and 32 host blocks: evictions

  // A replay from 1 returns batches 1 .. expected - 1, then the end marker.
  void* dealer = zmq_socket(ctx, ZMQ_DEALER);
  ASSERT_EQ(zmq_connect(dealer, (*server)->replay_endpoints()[0].c_str()), 0);
  const char start[8] = {0, 0, 0, 0, 0, 0, 0, 1};
  zmq_send(dealer, "", 0, ZMQ_SNDMORE);
  zmq_send(dealer, start, sizeof(start), 0);
  uint64_t replayed = 0;
  for (std::vector<std::string> m = Receive(dealer);; m = Receive(dealer)) {
    ASSERT_EQ(m.size(), 3u);
    if (m[1] == std::string(8, '\xff')) break;
    EXPECT_EQ(BigEndian(m[1]), 1 + replayed++);
  }
  EXPECT_EQ(replayed, expected - 1);

  done = true;
  scraper.join();
  EXPECT_GT(scrapes.load(), 0);
  httplib::Client http("127.0.0.1", (*server)->metrics_port());
  auto res = http.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_THAT(res->body, HasSubstr("pagedkv_steps_total{model=\"toy\"} " +
                                   std::to_string(2 * kClients * kSteps) + "\n"));
  EXPECT_THAT(res->body, HasSubstr("pagedkv_kv_event_replay_requests_total{model=\"toy\"} 1\n"));
  EXPECT_EQ(http.Get("/other")->status, 404);

  zmq_close(dealer);
  zmq_close(sub);
  zmq_ctx_term(ctx);
  (*server)->Shutdown(1.0);
}

}  // namespace
}  // namespace pagedkv::testing
