// The in-process ServiceCore fixture shared by service_core_test.cc and
// service_session_test.cc: a toy model on a fake lease clock, one-op steps, and state snapshots
// that prove a failed op changed nothing.
//
//   TEST_F(CoreTest, Something) { v1::SessionRef s = Open("a"); StepBuilder step; ... }
#ifndef PAGEDKV_TESTS_SERVICE_CORE_FIXTURE_H_
#define PAGEDKV_TESTS_SERVICE_CORE_FIXTURE_H_

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pagedkv/service/client.h"
#include "pagedkv/service/wire.h"
#include "service/internal/model_host.h"
#include "service/internal/service_core.h"
#include "tests/service/test_util.h"

namespace pagedkv::service::internal {

using client::StepBuilder;
using client::StepResult;
using ::testing::HasSubstr;
using testing::ToyServerOptions;

inline constexpr int64_t kSecond = 1'000'000'000;

inline Deadline Far() { return std::chrono::steady_clock::now() + std::chrono::seconds(30); }

// Nothing in a message may be a manager id (>= 2^40): sessions only ever see their own ids.
inline void ExpectNoManagerIds(absl::string_view message) {
  for (absl::string_view word : absl::StrSplit(message, absl::ByAnyChar(" ,;:()[]'"))) {
    uint64_t value = 0;
    if (absl::SimpleAtoi(word, &value)) {
      EXPECT_LT(value, kFirstManagerSeqId) << "manager id leaked in: " << message;
    }
  }
}

class CoreTest : public ::testing::Test {
 protected:
  void SetUp() override { Make(ToyServerOptions(&now_)); }

  void Make(const ServerOptions& options) {
    absl::StatusOr<std::unique_ptr<ServiceCore>> core = ServiceCore::Create(options);
    ASSERT_TRUE(core.ok()) << core.status();
    core_ = std::move(*core);
  }

  v1::SessionRef Open(const std::string& name, uint32_t gpu_quota = 0,
                      const std::string& cache_namespace = "", double lease_seconds = 0,
                      uint32_t host_quota = 0) {
    v1::OpenSessionRequest request;
    request.set_client_name(name);
    request.set_gpu_block_quota(gpu_quota);
    request.set_host_block_quota(host_quota);
    request.set_cache_namespace(cache_namespace);
    request.set_lease_seconds(lease_seconds);
    v1::OpenSessionResponse response;
    absl::Status s = core_->OpenSession(request, &response);
    EXPECT_TRUE(s.ok()) << s;
    return response.session();
  }

  // One Step; the RPC itself must succeed.
  StepResult Step(const v1::SessionRef& session, StepBuilder& step) {
    *step.request().mutable_session() = session;
    v1::StepResponse response;
    absl::Status s = core_->Step(step.request(), Far(), &response);
    EXPECT_TRUE(s.ok()) << s;
    last_response_ = response;
    absl::StatusOr<StepResult> r = client::UnpackStep(response);
    EXPECT_TRUE(r.ok()) << r.status();
    for (const absl::Status& st : r->op_status) ExpectNoManagerIds(st.message());
    ExpectNoManagerIds(r->batch_status.message());
    step.Clear();
    return *r;
  }

  // A single-op Step's op status.
  absl::Status Op(const v1::SessionRef& session, StepBuilder& step) {
    StepResult r = Step(session, step);
    EXPECT_EQ(r.op_status.size(), 1u);
    return r.op_status.empty() ? absl::InternalError("no result") : r.op_status[0];
  }

  v1::StatsResponse Stats(const v1::SessionRef* session = nullptr) {
    v1::StatsRequest request;
    request.set_check_invariants(true);
    if (session != nullptr) *request.mutable_session() = *session;
    v1::StatsResponse response;
    absl::Status s = core_->Stats(request, Far(), &response);
    EXPECT_TRUE(s.ok()) << s;
    EXPECT_EQ(response.invariants().code(), 0) << response.invariants().message();
    return response;
  }

  // What must not change when an op fails: pools, sequences, every counter but steps/ops.
  std::string Snapshot(const v1::SessionRef& session) {
    v1::StatsResponse s = Stats(&session);
    for (v1::ModelStats& m : *s.mutable_models()) {
      m.clear_steps();
      m.clear_ops();
      m.clear_failed_ops();
    }
    s.mutable_session()->clear_steps();
    s.mutable_session()->clear_seconds_until_expiry();
    return s.DebugString();
  }

  // Runs a single-op step that must fail with `code`, leaving the state unchanged.
  void ExpectFails(const v1::SessionRef& session, StepBuilder& step, absl::StatusCode code,
                   const std::string& message_part) {
    const std::string before = Snapshot(session);
    absl::Status s = Op(session, step);
    EXPECT_EQ(s.code(), code) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr(message_part));
    EXPECT_EQ(Snapshot(session), before) << "a failed op changed the state: " << s;
  }

  uint32_t GpuInUse() {
    v1::StatsResponse s = Stats();
    uint32_t n = 0;
    for (const v1::PoolStats& p : s.models(0).pools()) n += p.gpu_in_use_blocks();
    return n;
  }

  std::atomic<int64_t> now_{1000 * kSecond};
  std::unique_ptr<ServiceCore> core_;
  v1::StepResponse last_response_;
};

inline std::vector<TokenId> Tokens(int n, int base = 100) {
  std::vector<TokenId> t(n);
  for (int i = 0; i < n; ++i) t[i] = base + i;
  return t;
}

}  // namespace pagedkv::service::internal

#endif  // PAGEDKV_TESTS_SERVICE_CORE_FIXTURE_H_
