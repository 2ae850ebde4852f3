// The wire helpers (include/pagedkv/service/wire.h), the id rewriting and key salting of
// step_runner.h, and framed descriptor passing (service/internal/fd_passing.h).
#include "pagedkv/service/wire.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/internal/fd_passing.h"
#include "service/internal/model_host.h"
#include "service/internal/step_runner.h"

namespace pagedkv::service {
namespace {

using internal::kFirstManagerSeqId;
using ::testing::HasSubstr;

TEST(WireTest, StatusesMapToTheSameCodeAndMessage) {
  const absl::Status s = absl::ResourceExhaustedError("3 free blocks < 4 needed");
  const grpc::Status g = ToGrpcStatus(s);
  EXPECT_EQ(g.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(g.error_message(), "3 free blocks < 4 needed");
  EXPECT_EQ(FromGrpcStatus(g), s);
  v1::Status p;
  ToProto(s, &p);
  EXPECT_EQ(p.code(), 8);
  EXPECT_EQ(FromProto(p), s);
  ToProto(absl::OkStatus(), &p);
  EXPECT_TRUE(FromProto(p).ok());
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
}

TEST(WireTest, LayoutsAndCacheOpsRoundTrip) {
  BatchLayout l;
  l.group = 1;
  l.block_size = 4;
  l.page_indptr = {0, 2, 3};
  l.page_indices = {7, 9, 11};
  l.last_page_len = {1, 4};
  l.first_page_token = {0, 0};
  l.query_indptr = {0, 5, 6};
  l.slot_mapping = {28, 29, 30, 31, 36, int64_t{1} << 40};
  v1::BatchLayout m;
  PackLayout(l, &m);
  EXPECT_EQ(m.slot_mapping().size(), 6u * 8);
  absl::StatusOr<BatchLayout> back = UnpackLayout(m);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->page_indices, l.page_indices);
  EXPECT_EQ(back->slot_mapping, l.slot_mapping);
  EXPECT_EQ(back->query_indptr, l.query_indptr);
  EXPECT_EQ(back->group, 1);

  CacheOps ops;
  ops.groups.resize(2);
  ops.groups[1].group = 1;
  ops.groups[1].bytes_per_block = 64;
  ops.groups[1].copies = {{1, 2}, {3, 4}};
  ops.groups[1].swap_in = {{5, 6}};
  v1::StepResponse r;
  PackCacheOps(ops, &r);
  absl::StatusOr<CacheOps> ops_back = UnpackCacheOps(r);
  ASSERT_TRUE(ops_back.ok());
  EXPECT_EQ(ops_back->groups[1].copies, ops.groups[1].copies);
  EXPECT_EQ(ops_back->groups[1].swap_in, ops.groups[1].swap_in);
  EXPECT_EQ(ops_back->groups[1].bytes_per_block, 64u);
  EXPECT_TRUE(ops_back->groups[0].empty());
}

TEST(WireTest, MalformedArraysAreInvalidArgument) {
  v1::BatchLayout m;
  m.set_batch_size(1);
  m.set_page_indptr(std::string(7, '\0'));  // not a whole number of int32
  absl::StatusOr<BatchLayout> l = UnpackLayout(m);
  EXPECT_EQ(l.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(l.status().message()), HasSubstr("page_indptr"));
  BatchLayout ok;
  ok.page_indptr = {0, 3};
  ok.page_indices = {1};  // indptr says 3 pages
  ok.last_page_len = {1};
  ok.first_page_token = {0};
  ok.query_indptr = {0, 0};
  PackLayout(ok, &m);
  EXPECT_EQ(UnpackLayout(m).status().code(), absl::StatusCode::kInvalidArgument);
  v1::StepResponse r;
  r.add_cache_ops()->set_copies("12345");
  EXPECT_EQ(UnpackCacheOps(r).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(WireTest, ManagerIdsAreRewrittenAndNeverLeak) {
  const SeqId a = kFirstManagerSeqId + 5, b = kFirstManagerSeqId + 17;
  const std::vector<std::pair<SeqId, uint64_t>> names = {{a, 7}, {b, 9}};
  const std::string msg = absl::StrCat("Fork: child sequence ", b, " of ", a,
                                       " exists; 3 free blocks; ", kFirstManagerSeqId + 99);
  EXPECT_EQ(internal::RewriteSeqIds(msg, names),
            "Fork: child sequence 9 of 7 exists; 3 free blocks; (another sequence)");
  EXPECT_EQ(internal::RewriteSeqIds("no ids 12 and 99999999999999999999999", names),
            "no ids 12 and 99999999999999999999999");
}

TEST(WireTest, NamespacesSaltKeys) {
  using internal::NamespaceSalt;
  using internal::SaltedExtraKey;
  EXPECT_EQ(NamespaceSalt("tenant", 1), NamespaceSalt("tenant", 2));  // named: shared
  EXPECT_NE(NamespaceSalt("", 1), NamespaceSalt("", 2));              // private: per session
  EXPECT_NE(NamespaceSalt("tenant", 1), NamespaceSalt("tenant2", 1));
  const uint64_t s = NamespaceSalt("tenant", 1);
  EXPECT_NE(SaltedExtraKey(s, 0), SaltedExtraKey(s, 1));
  EXPECT_NE(SaltedExtraKey(s, 0), SaltedExtraKey(NamespaceSalt("", 1), 0));
}

// ---- Descriptor passing --------------------------------------------------------------------

internal::Deadline Soon() { return std::chrono::steady_clock::now() + std::chrono::seconds(5); }

TEST(FdPassingTest, AFrameCarriesItsDescriptors) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  internal::UniqueFd a(sv[0]), b(sv[1]);
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  internal::UniqueFd r(p[0]), w(p[1]);
  const std::string payload(100000, 'x');  // larger than one socket buffer: sent in pieces
  std::thread sender([&] {
    EXPECT_TRUE(internal::SendFrame(a.get(), payload, {w.get(), r.get()}, Soon()).ok());
  });
  absl::StatusOr<internal::ReceivedFrame> f = internal::ReceiveFrame(b.get(), 1 << 20, 4, Soon());
  sender.join();
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->payload, payload);
  ASSERT_EQ(f->fds.size(), 2u);
  // The received write end writes into the original pipe.
  ASSERT_EQ(write(f->fds[0].get(), "k", 1), 1);
  char c = 0;
  ASSERT_EQ(read(r.get(), &c, 1), 1);
  EXPECT_EQ(c, 'k');
}

struct SocketPair {
  SocketPair() {
    int sv[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    a.reset(sv[0]);
    b.reset(sv[1]);
  }
  internal::UniqueFd a, b;
};

TEST(FdPassingTest, LimitsAndAClosedPeerAreErrors) {
  {
    SocketPair p;  // longer than the receiver accepts
    ASSERT_TRUE(internal::SendFrame(p.a.get(), std::string(64, 'y'), {}, Soon()).ok());
    absl::StatusOr<internal::ReceivedFrame> f = internal::ReceiveFrame(p.b.get(), 16, 0, Soon());
    EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(f.status().message()), HasSubstr("64 bytes; at most 16"));
  }
  {
    SocketPair p;  // descriptors where none are expected: refused (and closed)
    ASSERT_TRUE(internal::SendFrame(p.a.get(), "z", {p.a.get()}, Soon()).ok());
    EXPECT_EQ(internal::ReceiveFrame(p.b.get(), 16, 0, Soon()).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  {
    SocketPair p;  // too many to send
    std::vector<int> many(internal::kMaxFdsPerFrame + 1, p.a.get());
    EXPECT_EQ(internal::SendFrame(p.a.get(), "z", many, Soon()).code(),
              absl::StatusCode::kInvalidArgument);
  }
  {
    SocketPair p;  // the peer goes away
    p.a.reset();
    EXPECT_EQ(internal::ReceiveFrame(p.b.get(), 16, 0, Soon()).status().code(),
              absl::StatusCode::kUnavailable);
  }
  EXPECT_EQ(internal::ConnectUnix("/nonexistent/pagedkv.sock").status().code(),
            absl::StatusCode::kUnavailable);
}

TEST(FdPassingTest, SilentPeerIsDeadlineExceeded) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  internal::UniqueFd a(sv[0]), b(sv[1]);
  const auto soon = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
  EXPECT_EQ(internal::ReceiveFrame(b.get(), 16, 0, soon).status().code(),
            absl::StatusCode::kDeadlineExceeded);
}

}  // namespace
}  // namespace pagedkv::service
