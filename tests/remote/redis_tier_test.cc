// The remote tier on real Redis (label `redis`): a standalone server and a 3-master / 3-replica
// cluster, started on loopback by the test. Two engines share pages through each; and every fault
// of a real deployment (store down at start, killed mid-run, a cluster master killed and failed
// over, a slow store, corrupted and truncated values, a key holding another page) leaves the
// engines' steps succeeding with no wrong byte served. Skipped when redis-server is missing.
#include <hiredis/hiredis.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "tests/remote/redis_servers.h"
#include "tests/remote/shared_tier.h"

namespace pagedkv::testing {
namespace {

#define SKIP_WITHOUT_REDIS() \
  if (auto why = RedisServers::MissingBinaries()) GTEST_SKIP() << *why

// Keys the tier wrote on one server.
std::vector<std::string> StoredKeys(int port) {
  std::vector<std::string> keys;
  timeval tv{2, 0};
  redisContext* c = redisConnectWithTimeout("127.0.0.1", port, tv);
  if (c == nullptr || c->err != 0) {
    if (c != nullptr) redisFree(c);
    return keys;
  }
  auto* r = static_cast<redisReply*>(redisCommand(c, "KEYS pagedkv:*"));
  if (r != nullptr && r->type == REDIS_REPLY_ARRAY) {
    for (size_t i = 0; i < r->elements; ++i)
      keys.emplace_back(r->element[i]->str, r->element[i]->len);
  }
  if (r != nullptr) freeReplyObject(r);
  redisFree(c);
  return keys;
}

// Engine A computes a 5-page prompt and churns it out of its GPU and host tiers into the store.
void FillStore(const std::string& url, const std::vector<TokenId>& prompt) {
  auto a = Engine::Create(url);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE((*a)->Prefill(1, prompt).ok());
  ASSERT_TRUE((*a)->manager().Free(1).ok());
  ASSERT_TRUE((*a)->Churn(8, 4000).ok());
  ASSERT_TRUE((*a)->manager().FlushRemoteWrites(absl::Seconds(20)));
  const RemoteTierStats s = (*a)->manager().remote_stats();
  EXPECT_GE(s.writes_done, 5u) << "writes_done=" << s.writes_done << " errors=" << s.write_errors;
}

// Engine B admits the prompt: steps succeed, K/V read back is right; returns the remote hits.
int32_t LoadAndVerify(const std::string& url, const std::vector<TokenId>& prompt,
                      int64_t timeout_us = 500000) {
  auto b = Engine::Create(url, 8, 8, timeout_us);
  EXPECT_TRUE(b.ok()) << b.status();
  if (!b.ok()) return -1;
  absl::StatusOr<AdmitInfo> info = (*b)->Prefill(2, prompt);
  EXPECT_TRUE(info.ok()) << info.status();
  if (!info.ok()) return -1;
  const absl::Status st = (*b)->Verify(2, prompt);
  EXPECT_TRUE(st.ok()) << st;
  EXPECT_TRUE((*b)->manager().CheckInvariants().ok());
  return info->num_remote_hit_pages;
}

TEST(RedisTier, StandaloneSharesPagesBetweenEngines) {
  SKIP_WITHOUT_REDIS();
  RedisServers servers;
  absl::StatusOr<int> port = servers.StartStandalone();
  ASSERT_TRUE(port.ok()) << port.status();
  const std::string url = absl::StrCat("redis://127.0.0.1:", *port);
  const std::vector<TokenId> prompt = PagePrompt(5, 100);
  FillStore(url, prompt);
  EXPECT_GE(StoredKeys(*port).size(), 5u);
  EXPECT_EQ(LoadAndVerify(url, prompt), 5);
}

TEST(RedisTier, ClusterSharesPagesBetweenEnginesAcrossMasters) {
  SKIP_WITHOUT_REDIS();
  RedisServers servers;
  absl::StatusOr<std::vector<int>> ports = servers.StartCluster();
  ASSERT_TRUE(ports.ok()) << ports.status();
  const std::string url =
      absl::StrCat("redis+cluster://127.0.0.1:", (*ports)[0], ",127.0.0.1:", (*ports)[1]);
  const std::vector<TokenId> prompt = PagePrompt(5, 200);
  FillStore(url, prompt);
  // Keys route by slot to several masters (replicas hold copies: count masters only).
  int masters_with_keys = 0;
  size_t keys = 0;
  for (int p : *ports) {
    absl::StatusOr<std::string> info = RedisServers::Command(p, {"INFO", "replication"});
    if (!info.ok() || info->find("role:master") == std::string::npos) continue;
    const size_t n = StoredKeys(p).size();
    masters_with_keys += n > 0;
    keys += n;
  }
  EXPECT_GE(keys, 5u);
  EXPECT_GE(masters_with_keys, 2);
  EXPECT_EQ(LoadAndVerify(url, prompt), 5);
}

TEST(RedisTier, StoreDownAtStartThenUp) {
  SKIP_WITHOUT_REDIS();
  RedisServers servers;
  const int port = RedisServers::FreePort();
  const std::string url = absl::StrCat("redis://127.0.0.1:", port);
  const std::vector<TokenId> prompt = PagePrompt(5, 300);
  // Nothing listens: engines start, their lookups and writes fail, their steps succeed.
  {
    auto a = Engine::Create(url);
    ASSERT_TRUE(a.ok()) << a.status();
    ASSERT_TRUE((*a)->Prefill(1, prompt).ok());
    ASSERT_TRUE((*a)->manager().Free(1).ok());
    ASSERT_TRUE((*a)->Churn(8, 4000).ok());
    ASSERT_TRUE((*a)->manager().FlushRemoteWrites(absl::Seconds(20)));
    EXPECT_GT((*a)->manager().remote_stats().write_errors, 0u);
    EXPECT_GT((*a)->manager().remote_stats().miss_error, 0u);
  }
  EXPECT_EQ(LoadAndVerify(url, prompt), 0);
  // The store comes up: the same engines' next writes and lookups reach it.
  ASSERT_TRUE(servers.StartOn(port, false).ok());
  FillStore(url, prompt);
  EXPECT_EQ(LoadAndVerify(url, prompt), 5);
}

TEST(RedisTier, StoreKilledMidRun) {
  SKIP_WITHOUT_REDIS();
  RedisServers servers;
  absl::StatusOr<int> port = servers.StartStandalone();
  ASSERT_TRUE(port.ok());
  const std::string url = absl::StrCat("redis://127.0.0.1:", *port);
  const std::vector<TokenId> prompt = PagePrompt(5, 400);
  auto a = Engine::Create(url);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE((*a)->Prefill(1, prompt).ok());
  ASSERT_TRUE((*a)->manager().Free(1).ok());
  servers.Kill(*port);
  // Engine A keeps serving: its evictions' writes fail, its steps do not.
  ASSERT_TRUE((*a)->Churn(8, 4000).ok());
  ASSERT_TRUE((*a)->manager().FlushRemoteWrites(absl::Seconds(20)));
  EXPECT_GT((*a)->manager().remote_stats().write_errors, 0u);
  EXPECT_EQ(LoadAndVerify(url, prompt), 0);
}

TEST(RedisTier, ClusterMasterKilledFailsOverToItsReplica) {
  SKIP_WITHOUT_REDIS();
  RedisServers servers;
  absl::StatusOr<std::vector<int>> ports = servers.StartCluster();
  ASSERT_TRUE(ports.ok()) << ports.status();
  const std::string url = absl::StrCat("redis+cluster://127.0.0.1:", (*ports)[0],
                                       ",127.0.0.1:", (*ports)[1], ",127.0.0.1:", (*ports)[2]);
  const std::vector<TokenId> prompt = PagePrompt(5, 500);
  FillStore(url, prompt);
  // Every master has its writes acknowledged by its replica before one of them dies.
  for (int p : *ports) {
    absl::StatusOr<std::string> info = RedisServers::Command(p, {"INFO", "replication"});
    if (info.ok() && info->find("role:master") != std::string::npos) {
      absl::StatusOr<std::string> acked = RedisServers::Command(p, {"WAIT", "1", "5000"});
      ASSERT_TRUE(acked.ok() && *acked == "1") << "port " << p << ": replica did not acknowledge";
    }
  }
  std::vector<std::string> keys;
  for (int p : *ports) {
    for (const std::string& k : StoredKeys(p)) keys.push_back(k);
  }
  ASSERT_FALSE(keys.empty());
  absl::StatusOr<int> victim = RedisServers::MasterOf((*ports)[0], keys[0]);
  ASSERT_TRUE(victim.ok()) << victim.status();
  servers.Kill(*victim);
  // Before the failover: some pages miss (their master is gone); steps succeed, data is right.
  EXPECT_GE(LoadAndVerify(url, prompt, 200000), 0);
  // The failover: the slot's master changes (a replica is promoted), then the cluster is ok.
  const int alive = (*ports)[0] == *victim ? (*ports)[1] : (*ports)[0];
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    absl::StatusOr<int> master = RedisServers::MasterOf(alive, keys[0]);
    if (master.ok() && *master != *victim) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const absl::StatusOr<int> promoted = RedisServers::MasterOf(alive, keys[0]);
  ASSERT_TRUE(promoted.ok() && *promoted != *victim) << "no failover within 30 s";
  ASSERT_TRUE(servers.WaitClusterOk(absl::Seconds(30)).ok());
  // After: the promoted replica serves them. Nodes learn of the new master at their own pace, so
  // a first lookup may still be redirected or refused; a few tries, each a fresh engine.
  int32_t hits = 0;
  for (int attempt = 0; attempt < 10 && hits != 5; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(300));
    hits = LoadAndVerify(url, prompt, /*timeout_us=*/2000000);
  }
  EXPECT_EQ(hits, 5);
}

TEST(RedisTier, SlowStoreIsAMissNotAStall) {
  SKIP_WITHOUT_REDIS();
  RedisServers servers;
  absl::StatusOr<int> port = servers.StartStandalone();
  ASSERT_TRUE(port.ok());
  const std::string url = absl::StrCat("redis://127.0.0.1:", *port);
  const std::vector<TokenId> prompt = PagePrompt(5, 600);
  FillStore(url, prompt);
  // The server stops answering for 3 s; a lookup with a 50 ms deadline gives up long before.
  std::thread sleeper([&] { (void)RedisServers::Command(*port, {"DEBUG", "SLEEP", "3"}); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto b = Engine::Create(url, 8, 8, /*timeout_us=*/50000);
  ASSERT_TRUE(b.ok());
  const absl::Time start = absl::Now();
  absl::StatusOr<AdmitInfo> info = (*b)->Prefill(2, prompt);
  const absl::Duration took = absl::Now() - start;
  sleeper.join();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->num_remote_hit_pages, 0);
  EXPECT_LT(took, absl::Seconds(2)) << "the step waited for the store";
  EXPECT_GT((*b)->manager().remote_stats().miss_timeout, 0u);
  EXPECT_TRUE((*b)->Verify(2, prompt).ok());
}

TEST(RedisTier, DamagedAndForeignValuesAreMisses) {
  SKIP_WITHOUT_REDIS();
  RedisServers servers;
  absl::StatusOr<int> port = servers.StartStandalone();
  ASSERT_TRUE(port.ok());
  const std::string url = absl::StrCat("redis://127.0.0.1:", *port);
  const std::vector<TokenId> prompt = PagePrompt(5, 700);
  FillStore(url, prompt);
  std::vector<std::string> keys = StoredKeys(*port);
  ASSERT_GE(keys.size(), 5u);
  for (const std::string mode : {"corrupt", "truncate", "foreign"}) {
    SCOPED_TRACE(mode);
    for (size_t i = 0; i < keys.size(); ++i) {
      absl::StatusOr<std::string> v = RedisServers::Command(*port, {"GET", keys[i]});
      ASSERT_TRUE(v.ok());
      std::string bad = *v;
      if (std::string(mode) == "corrupt") {
        bad[bad.size() / 2] ^= 0x01;
      } else if (std::string(mode) == "truncate") {
        bad.resize(bad.size() - 7);
      } else {
        absl::StatusOr<std::string> other =
            RedisServers::Command(*port, {"GET", keys[(i + 1) % keys.size()]});
        ASSERT_TRUE(other.ok());
        bad = *other;  // a valid page, of another key
      }
      ASSERT_TRUE(RedisServers::Command(*port, {"SET", keys[i] + ".bad", bad}).ok());
    }
    for (const std::string& k : keys) {
      ASSERT_TRUE(RedisServers::Command(*port, {"RENAME", k, k + ".good"}).ok());
      ASSERT_TRUE(RedisServers::Command(*port, {"RENAME", k + ".bad", k}).ok());
    }
    EXPECT_EQ(LoadAndVerify(url, prompt), 0);
    for (const std::string& k : keys) {
      ASSERT_TRUE(RedisServers::Command(*port, {"RENAME", k + ".good", k}).ok());
    }
  }
  EXPECT_EQ(LoadAndVerify(url, prompt), 5);  // restored: hits again
}

}  // namespace
}  // namespace pagedkv::testing
