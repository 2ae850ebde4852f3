// The real `pagedkv serve` binary on a temporary Unix socket (and TCP loopback with a token),
// driven by the C++ client: every RPC, bad input of every kind, the pool socket, lease expiry
// after a client process is SIGKILLed mid-step, and the SIGTERM drain.
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <future>
#include <thread>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "pagedkv/service/client.h"
#include "pagedkv/service/wire.h"
#include "service/internal/fd_passing.h"
#include "tests/service/test_util.h"

namespace pagedkv::testing {
namespace {

using client::Client;
using client::Session;
using client::StepBuilder;
using client::StepResult;
using ::testing::HasSubstr;

std::vector<TokenId> Tokens(int n, int base = 100) {
  std::vector<TokenId> t(n);
  for (int i = 0; i < n; ++i) t[i] = base + i;
  return t;
}

class ServeTest : public ::testing::Test {
 protected:
  // Starts the binary on the toy model (64 GPU and 32 host blocks of 4 tokens) plus `extra`.
  void StartServe(std::vector<std::string> extra = {}) {
    model_path_ = WriteToyModel(serve_.dir(), ToySpec());
    std::vector<std::string> args = {"--model",       model_path_, "--gpu-blocks", "64",
                                     "--host-blocks", "32",        "--block-size", "4"};
    args.insert(args.end(), extra.begin(), extra.end());
    PAGEDKV_ASSERT_OK(serve_.Start(args));
    absl::StatusOr<std::unique_ptr<Client>> c = Client::Connect({.target = serve_.target()});
    ASSERT_TRUE(c.ok()) << c.status();
    client_ = std::move(*c);
  }

  std::unique_ptr<Session> Open(const std::string& name, double lease = 0) {
    v1::OpenSessionRequest request;
    request.set_client_name(name);
    request.set_lease_seconds(lease);
    absl::StatusOr<std::unique_ptr<Session>> s = Session::Open(*client_, request);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : nullptr;
  }

  v1::StatsResponse Stats() {
    v1::StatsRequest request;
    request.set_check_invariants(true);
    absl::StatusOr<v1::StatsResponse> s = client_->Stats(request);
    EXPECT_TRUE(s.ok()) << s.status();
    EXPECT_EQ(s->invariants().code(), 0) << s->invariants().message();
    return *s;
  }

  // Pools, sequences and session counters: what a rejected request must leave as it was.
  std::string StateSnapshot() {
    v1::StatsResponse s = Stats();
    for (v1::ModelStats& m : *s.mutable_models()) {
      m.clear_steps();
      m.clear_ops();
      m.clear_failed_ops();
    }
    return s.DebugString();
  }

  void TearDown() override {
    client_.reset();
    if (serve_.process().running()) {
      EXPECT_EQ(serve_.Stop(SIGTERM), 0);
    }
  }

  ServeProcess serve_;
  std::string model_path_;
  std::unique_ptr<Client> client_;
};

TEST_F(ServeTest, EveryRpcOverTheUnixSocket) {
  StartServe();
  struct stat st {};
  ASSERT_EQ(stat(serve_.socket().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat(serve_.pool_socket().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  absl::StatusOr<v1::DescribeModelResponse> described = client_->DescribeModel();
  ASSERT_TRUE(described.ok()) << described.status();
  EXPECT_EQ(described->model().name(), "toy");
  EXPECT_EQ(described->model().pools(0).kind(), v1::POOL_KIND_MEMFD);

  std::unique_ptr<Session> a = Open("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->info().pool_socket(), serve_.pool_socket());
  StepBuilder step;
  step.Add(1, Tokens(6)).Batch(1, 6);
  absl::StatusOr<StepResult> r = a->Step(step);
  ASSERT_TRUE(r.ok()) << r.status();
  PAGEDKV_ASSERT_OK(r->FirstError());
  ASSERT_EQ(r->layouts.size(), 1u);
  EXPECT_EQ(r->layouts[0].slot_mapping.size(), 6u);
  PAGEDKV_ASSERT_OK(a->KeepAlive());
  absl::StatusOr<v1::StatsResponse> stats = a->Stats(/*check_invariants=*/true);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->session().num_sequences(), 1);
  EXPECT_EQ(stats->session().gpu_blocks_used(), 2u);
  EXPECT_EQ(stats->invariants().code(), 0);

  // Two sessions map the very same pages: a write through one mapping shows through the other.
  std::unique_ptr<Session> b = Open("b");
  absl::StatusOr<client::SharedPools> pa = a->MapPools();
  absl::StatusOr<client::SharedPools> pb = b->MapPools();
  ASSERT_TRUE(pa.ok()) << pa.status();
  ASSERT_TRUE(pb.ok()) << pb.status();
  ASSERT_EQ(pa->pools.size(), 2u);
  client::MappedPool* ga = pa->Find(0, Tier::kGpu);
  client::MappedPool* gb = pb->Find(0, Tier::kGpu);
  ASSERT_NE(ga, nullptr);
  ASSERT_NE(gb, nullptr);
  EXPECT_NE(ga->base(), gb->base());
  EXPECT_EQ(ga->num_blocks(), 64u);
  const BlockId block = static_cast<BlockId>(r->layouts[0].page_indices[0]);
  std::memset(ga->BlockData(block), 0x5a, ga->bytes_per_block());
  EXPECT_EQ(static_cast<unsigned char>(gb->BlockData(block)[ga->bytes_per_block() - 1]), 0x5a);
  EXPECT_NE(pa->Find(0, Tier::kHost), nullptr);

  absl::StatusOr<int64_t> freed = a->Close();
  ASSERT_TRUE(freed.ok()) << freed.status();
  EXPECT_EQ(*freed, 1);
  step.Clear();
  step.Add(2, Tokens(1));
  EXPECT_EQ(a->Step(step).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(a->MapPools().status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Stats().sessions_closed(), 1u);
}

TEST_F(ServeTest, TcpNeedsTheBearerToken) {
  const std::string token_file = serve_.dir().File("token");
  ASSERT_TRUE(WriteFile(token_file, "s3cret-token\n"));
  chmod(token_file.c_str(), 0600);
  StartServe({"--listen", "127.0.0.1:0", "--token-file", token_file});
  ASSERT_GT(serve_.tcp_port(), 0);
  const std::string tcp = "127.0.0.1:" + std::to_string(serve_.tcp_port());
  for (const std::string& token : {std::string(), std::string("wrong"), std::string("s3cret")}) {
    auto c = Client::Connect({.target = tcp, .token = token});
    ASSERT_TRUE(c.ok());
    absl::StatusOr<v1::DescribeModelResponse> d = (*c)->DescribeModel();
    EXPECT_EQ(d.status().code(), absl::StatusCode::kUnauthenticated) << "token '" << token << "'";
    EXPECT_THAT(std::string(d.status().message()), HasSubstr("bearer token"));
    v1::OpenSessionRequest open;
    EXPECT_EQ((*c)->OpenSession(open).status().code(), absl::StatusCode::kUnauthenticated);
  }
  auto good = Client::Connect({.target = tcp, .token = "s3cret-token"});
  ASSERT_TRUE(good.ok());
  v1::OpenSessionRequest open;
  open.set_client_name("tcp");
  absl::StatusOr<std::unique_ptr<Session>> s = Session::Open(**good, open);
  ASSERT_TRUE(s.ok()) << s.status();
  StepBuilder step;
  step.Add(1, Tokens(3)).Batch(1, 3);
  absl::StatusOr<StepResult> r = (*s)->Step(step);
  ASSERT_TRUE(r.ok()) << r.status();
  PAGEDKV_ASSERT_OK(r->FirstError());
  // The same server answers on its Unix socket without a token.
  EXPECT_EQ(Stats().open_sessions(), 1);
  // A second server on the same TCP port fails (gRPC's default SO_REUSEPORT would let it share
  // the port, and the two would split the clients between them).
  TempDir dir;
  ChildProcess second;
  PAGEDKV_ASSERT_OK(second.Spawn({PagedkvBinary(), "serve", "--model", model_path_, "--gpu-blocks",
                                  "8", "--socket", dir.File("second.sock"), "--listen", tcp,
                                  "--token-file", token_file}));
  EXPECT_EQ(second.Wait(30), 1);
  EXPECT_EQ(Stats().open_sessions(), 1);
}

TEST_F(ServeTest, UsageErrorsExitWithCodeTwo) {
  TempDir dir;
  const std::string token_file = dir.File("token");
  ASSERT_TRUE(WriteFile(token_file, "s3cret-token\n"));
  chmod(token_file.c_str(), 0600);
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"serve", "--model", "llama-3-8b", "--gpu-blocks", "8", "--listen", "127.0.0.1:0"},
       "needs a bearer token"},
      {{"serve", "--model", "llama-3-8b", "--gpu-blocks", "8", "--listen", "localhost",
        "--token-file", token_file},
       "--listen without a port"},
      {{"serve", "--model", "llama-3-8b", "--gpu-blocks", "8", "--listen", "127.0.0.1:99999",
        "--token-file", token_file},
       "--listen port out of range"},
      {{"serve", "--gpu-blocks", "8"}, "missing --model"},
      {{"serve", "--model", "llama-3-8b"}, "missing --gpu-blocks"},
      {{"serve", "--model", "no-such-model", "--gpu-blocks", "8"}, "--model 'no-such-model'"},
      {{"serve", "--config", dir.File("missing.json")}, "cannot be read"},
      {{"serve", "--config", dir.File("missing.json"), "--model", "llama-3-8b"},
       "exclude each other"},
  };
  for (const Case& c : cases) {
    ChildProcess p;
    std::vector<std::string> argv = {PagedkvBinary()};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    argv.push_back("--socket");
    argv.push_back(dir.File("never.sock"));
    PAGEDKV_ASSERT_OK(p.Spawn(argv));
    EXPECT_EQ(p.Wait(20), 2) << c.message;
  }
}

TEST_F(ServeTest, HelpExplainsEveryFlagAndCheckBindsNothing) {
  ChildProcess help;
  PAGEDKV_ASSERT_OK(help.Spawn({PagedkvBinary(), "serve", "--help"}));
  std::string out;
  for (absl::StatusOr<std::string> line = help.ReadLine(20); line.ok(); line = help.ReadLine(20)) {
    out += *line + "\n";
  }
  EXPECT_EQ(help.Wait(20), 0);
  for (const char* flag : {"--model",
                           "--name",
                           "--gpu-blocks",
                           "--host-blocks",
                           "--block-size",
                           "--prefix-caching",
                           "--gpu-tier",
                           "--strict-gpu",
                           "--config",
                           "--socket",
                           "--listen",
                           "--token-file",
                           "--lease-seconds",
                           "--max-lease-seconds",
                           "--quarantine-seconds",
                           "--max-sessions",
                           "--max-ops-per-step",
                           "--max-message-bytes",
                           "--drain-seconds",
                           "--metrics-address",
                           "--events-endpoint",
                           "--events-replay-endpoint",
                           "--events-topic",
                           "--remote",
                           "--check",
                           "--ready-file",
                           "--log-level"}) {
    EXPECT_THAT(out, HasSubstr(flag));
  }
  ChildProcess check;
  const std::string socket = serve_.dir().File("check.sock");
  PAGEDKV_ASSERT_OK(
      check.Spawn({PagedkvBinary(), "serve", "--model", "qwen2.5-1.5b", "--gpu-blocks", "8",
                   "--gpu-tier", "virtual", "--socket", socket, "--check"}));
  absl::StatusOr<std::string> first = check.ReadLine(20);
  EXPECT_EQ(check.Wait(20), 0);
  ASSERT_TRUE(first.ok());
  EXPECT_THAT(*first, HasSubstr("model qwen2.5-1.5b"));
  struct stat st {};
  EXPECT_NE(stat(socket.c_str(), &st), 0) << "--check must not bind the socket";
}

TEST_F(ServeTest, ConfigFileServesSeveralModels) {
  const std::string cfg = serve_.dir().File("serve.json");
  ASSERT_TRUE(WriteFile(cfg, R"({
    "lease_seconds": 3, "quarantine_seconds": 1,
    "models": [
      {"name": "chat", "model": )" +
                                 ToySpec().ToJson() + R"(, "gpu_blocks": 32, "block_size": 4},
      {"name": "asr", "model": )" +
                                 ToyCrossSpec().ToJson() + R"(, "gpu_blocks": 16,
       "host_blocks": 8, "block_size": 8, "prefix_caching": false}
    ]})"));
  PAGEDKV_ASSERT_OK(serve_.Start({"--config", cfg}));
  auto c = Client::Connect({.target = serve_.target()});
  ASSERT_TRUE(c.ok());
  client_ = std::move(*c);
  v1::OpenSessionRequest open;
  EXPECT_EQ(client_->OpenSession(open).status().code(), absl::StatusCode::kInvalidArgument);
  open.set_model("asr");
  absl::StatusOr<v1::OpenSessionResponse> s = client_->OpenSession(open);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->lease_seconds(), 3);
  EXPECT_EQ(s->model().groups_size(), 2);
  EXPECT_EQ(s->model().block_size(), 8);
  EXPECT_FALSE(s->model().prefix_caching());
  absl::StatusOr<v1::DescribeModelResponse> d = client_->DescribeModel("chat");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->model().pools(0).num_blocks(), 32u);
  EXPECT_THAT(d->served_models(), ::testing::ElementsAre("chat", "asr"));
  EXPECT_EQ(Stats().models_size(), 2);
}

TEST_F(ServeTest, MalformedAndOversizedMessagesAreRejectedWithoutEffect) {
  StartServe({"--max-message-bytes", "8192"});
  std::unique_ptr<Session> a = Open("a");
  StepBuilder step;
  step.Add(1, Tokens(5));
  ASSERT_TRUE(a->Step(step).ok());
  const std::string before = StateSnapshot();

  // Bytes that are not a StepRequest.
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(serve_.target(), grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  const std::string garbage = "\xff\xff\xff\xff\x0f not a protobuf \x01\x02";
  grpc::Slice slice(garbage);
  grpc::ByteBuffer request(&slice, 1), response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  std::promise<grpc::Status> done;
  stub.UnaryCall(&context, "/pagedkv.v1.KvCache/Step", grpc::StubOptions(), &request, &response,
                 [&](grpc::Status s) { done.set_value(s); });
  const grpc::Status malformed = done.get_future().get();
  EXPECT_FALSE(malformed.ok());
  EXPECT_NE(malformed.error_code(), grpc::StatusCode::UNKNOWN) << malformed.error_message();

  // A request over the server's limit: RESOURCE_EXHAUSTED from the transport.
  auto big_client = Client::Connect({.target = serve_.target(), .max_message_bytes = 1 << 24});
  ASSERT_TRUE(big_client.ok());
  step.Clear();
  step.Add(2, Tokens(20000));
  *step.request().mutable_session() = a->ref();
  v1::StepResponse reply;
  absl::Status oversized = (*big_client)->Step(step.request(), &reply);
  EXPECT_EQ(oversized.code(), absl::StatusCode::kResourceExhausted) << oversized;

  // The pool socket: a frame that is not a request, and one longer than it accepts.
  for (const std::string& payload : {std::string("junk"), std::string(100000, 'x')}) {
    absl::StatusOr<service::internal::UniqueFd> sock =
        service::internal::ConnectUnix(serve_.pool_socket());
    ASSERT_TRUE(sock.ok());
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    absl::Status sent = service::internal::SendFrame(sock->get(), payload, {}, deadline);
    absl::StatusOr<service::internal::ReceivedFrame> got =
        service::internal::ReceiveFrame(sock->get(), 1 << 20, 4, deadline);
    ASSERT_TRUE(got.ok()) << got.status();
    v1::PoolHandlesReply pool_reply;
    ASSERT_TRUE(pool_reply.ParseFromString(got->payload));
    EXPECT_EQ(pool_reply.status().code(), static_cast<int>(absl::StatusCode::kInvalidArgument))
        << pool_reply.status().message();
    EXPECT_TRUE(got->fds.empty());
  }
  // A wrong secret on the pool socket gets no descriptor.
  v1::SessionRef wrong = a->ref();
  wrong.set_secret("0123456789abcdef");
  EXPECT_EQ(client::FetchSharedPools(serve_.pool_socket(), wrong).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(StateSnapshot(), before);
}

TEST_F(ServeTest, SigkillMidStepExpiresTheLeaseAndHonoursTheQuarantine) {
  StartServe({"--quarantine-seconds", "2", "--log-level", "info"});
  ChildProcess doomed;
  PAGEDKV_ASSERT_OK(doomed.Spawn({SERVICE_KILL_CLIENT_PATH, serve_.target(), "0.5", "4", "3"}));
  std::string last;
  for (int k = 0; k < 3; ++k) {
    absl::StatusOr<std::string> line = doomed.ReadLine(20);
    ASSERT_TRUE(line.ok()) << line.status();
    last = *line;
  }
  ASSERT_THAT(last, HasSubstr("step 3 pages "));
  absl::flat_hash_set<int32_t> held;
  for (absl::string_view b : absl::StrSplit(last.substr(last.find("pages ") + 6), ',')) {
    int32_t id;
    ASSERT_TRUE(absl::SimpleAtoi(b, &id));
    held.insert(id);
  }
  // Sequences 1..3 hold 6 tokens in two pages each; sequence 4 (one page) is not in the step.
  ASSERT_EQ(held.size(), 6u);
  doomed.Signal(SIGKILL);
  EXPECT_EQ(doomed.Wait(10), 128 + SIGKILL);

  // Expiry: bounded wait for the reaper.
  v1::StatsResponse stats;
  for (int i = 0; i < 200; ++i) {
    stats = Stats();
    if (stats.sessions_expired() == 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  ASSERT_EQ(stats.sessions_expired(), 1u);
  EXPECT_EQ(stats.models(0).quarantined_sequences(), 3);
  EXPECT_EQ(stats.models(0).quarantined_gpu_blocks(), 6u);
  EXPECT_EQ(stats.models(0).pools(0).gpu_in_use_blocks(), 6u);  // sequence 4's page is back

  // Another session takes every block it can while the quarantine lasts: none of those pages.
  std::unique_ptr<Session> next = Open("next");
  absl::flat_hash_set<int32_t> got;
  StepBuilder step;
  for (uint64_t id = 1; id <= 64; ++id) {
    step.Clear();
    step.Add(id, Tokens(4, static_cast<int>(id) * 10)).Batch(id, 4);
    absl::StatusOr<StepResult> r = next->Step(step);
    ASSERT_TRUE(r.ok()) << r.status();
    if (!r->op_status[0].ok()) break;
    got.insert(r->layouts[0].page_indices.begin(), r->layouts[0].page_indices.end());
  }
  stats = Stats();
  if (stats.models(0).quarantined_sequences() == 3) {  // still within the quarantine
    EXPECT_EQ(got.size(), 58u);
  }
  for (int32_t b : held) EXPECT_FALSE(got.contains(b)) << "quarantined page " << b << " reused";

  // The quarantine ends: the six pages come back, and they are the only free ones.
  for (int i = 0; i < 400; ++i) {
    stats = Stats();
    if (stats.models(0).quarantined_sequences() == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  EXPECT_EQ(stats.models(0).quarantined_sequences(), 0);
  EXPECT_EQ(stats.quarantines_released(), 3u);
  step.Clear();
  step.Add(1000, Tokens(24, 7000)).Batch(1000, 24);
  absl::StatusOr<StepResult> r = next->Step(step);
  ASSERT_TRUE(r.ok());
  PAGEDKV_ASSERT_OK(r->FirstError());
  for (int32_t b : r->layouts[0].page_indices) EXPECT_TRUE(held.contains(b));
}

TEST_F(ServeTest, SigtermDrainsTheStepInFlightAndExitsZero) {
  StartServe({"--testing-step-delay-ms", "600", "--drain-seconds", "10"});
  std::unique_ptr<Session> a = Open("a");
  std::promise<absl::Status> finished;
  std::thread in_flight([&] {
    StepBuilder step;
    step.Add(1, Tokens(5)).Batch(1, 5);
    absl::StatusOr<StepResult> r = a->Step(step);
    finished.set_value(r.ok() ? r->FirstError() : r.status());
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the step is in the server now
  serve_.process().Signal(SIGTERM);
  const absl::Status step_status = finished.get_future().get();
  in_flight.join();
  EXPECT_TRUE(step_status.ok()) << step_status;
  EXPECT_EQ(serve_.process().Wait(30), 0);
  // Gone: a new call fails fast.
  auto c = Client::Connect({.target = serve_.target(), .timeout_seconds = 1});
  ASSERT_TRUE(c.ok());
  const absl::StatusCode code = (*c)->DescribeModel().status().code();
  EXPECT_TRUE(code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kDeadlineExceeded)
      << code;
}

TEST_F(ServeTest, DefaultSocketLivesInAPrivateDirectory) {
  TempDir runtime;
  ChildProcess p;
  const std::string ready = runtime.File("ready.json");
  PAGEDKV_ASSERT_OK(p.Spawn({PagedkvBinary(), "serve", "--model", "qwen2.5-1.5b", "--gpu-tier",
                             "virtual", "--gpu-blocks", "8", "--ready-file", ready},
                            {"XDG_RUNTIME_DIR=" + runtime.path()}));
  struct stat st {};
  for (int i = 0; i < 400 && stat(ready.c_str(), &st) != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  const std::string socket = runtime.File("pagedkv/serve.sock");
  ASSERT_EQ(stat(socket.c_str(), &st), 0) << socket;
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat(runtime.File("pagedkv").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  auto c = Client::Connect({.target = "unix:" + socket});
  ASSERT_TRUE(c.ok());
  absl::StatusOr<v1::DescribeModelResponse> d = (*c)->DescribeModel();
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->model().pools(0).kind(), v1::POOL_KIND_NONE);  // virtual: metadata only
  p.Signal(SIGTERM);
  EXPECT_EQ(p.Wait(30), 0);
  EXPECT_NE(stat(socket.c_str(), &st), 0) << "the socket file is removed at exit";
}

TEST_F(ServeTest, ExampleEngineRunsAgainstTheServer) {
  StartServe();
  ChildProcess example;
  PAGEDKV_ASSERT_OK(example.Spawn(
      {SERVICE_EXAMPLE_ENGINE_PATH, "--target", serve_.target(), "--requests", "12"}));
  std::string output;
  for (;;) {
    absl::StatusOr<std::string> line = example.ReadLine(120);
    if (!line.ok()) break;
    output += *line + "\n";
  }
  EXPECT_EQ(example.Wait(60), 0) << output;
  EXPECT_THAT(output, HasSubstr("finished=12"));
  EXPECT_THAT(output, HasSubstr("max_abs_err="));
  v1::StatsResponse stats = Stats();
  EXPECT_EQ(stats.models(0).num_sequences(), 0);
  EXPECT_EQ(stats.sessions_closed(), 1u);
}

}  // namespace
}  // namespace pagedkv::testing
