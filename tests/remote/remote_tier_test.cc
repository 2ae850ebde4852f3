// The remote tier on the in-process store (memory://): two engines share pages through it, every
// fault costs a miss and never a wrong byte, the write queue drops instead of blocking, and
// configurations that cannot work are refused.
#include "pagedkv/remote/remote_tier.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "pagedkv/remote/memory_store.h"
#include "tests/remote/shared_tier.h"

namespace pagedkv::testing {
namespace {

std::string UniqueUrl(const std::string& test) { return "memory://" + test; }

// Engine A computes a 5-page prompt, churns it out of GPU and host (so it is written to the
// store), and engine B loads those 5 pages instead of computing them: byte-identical K/V.
TEST(SharedRemoteTier, SecondEngineLoadsWhatTheFirstComputedAndEvicted) {
  const std::string url = UniqueUrl("shared-basic");
  auto a = Engine::Create(url);
  auto b = Engine::Create(url);
  ASSERT_TRUE(a.ok() && b.ok()) << a.status() << b.status();
  const std::vector<TokenId> prompt = PagePrompt(5, 100);
  ASSERT_TRUE((*a)->Prefill(1, prompt).ok());
  ASSERT_TRUE((*a)->manager().Free(1).ok());
  ASSERT_TRUE((*a)->Churn(8, 5000).ok());
  ASSERT_TRUE((*a)->manager().FlushRemoteWrites(absl::Seconds(10)));
  const RemoteTierStats wrote = (*a)->manager().remote_stats();
  EXPECT_GE(wrote.writes_done, 5u);
  EXPECT_EQ(wrote.write_errors, 0u);
  // A's own cache no longer has the prompt: only the store does.
  EXPECT_EQ((*a)->manager().CanAdmit(prompt).num_cached_tokens, 0);

  absl::StatusOr<AdmitInfo> info = (*b)->Prefill(7, prompt);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->num_remote_hit_pages, 5);
  EXPECT_EQ(info->num_cached_tokens, 5 * 16);
  const absl::Status st = (*b)->Verify(7, prompt);
  EXPECT_TRUE(st.ok()) << st;
  const RemoteTierStats got = (*b)->manager().remote_stats();
  EXPECT_EQ(got.hit_pages, 5u);
  EXPECT_EQ(got.bytes_read, 5u * (*b)->manager().group_info(0).bytes_per_block);
  EXPECT_EQ((*b)->manager().stats().prefix_remote_hit_pages, 5u);
  EXPECT_TRUE((*b)->manager().CheckInvariants().ok());
  // The loaded pages are now B's local cache (host and GPU): a third sequence hits them there.
  absl::StatusOr<AdmitInfo> again = (*b)->Prefill(8, prompt);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->num_remote_hit_pages, 0);
  EXPECT_EQ(again->num_cached_tokens, 5 * 16);
}

// Puts a 5-page prompt in the store (from engine A), then runs `fault` on the store and admits the
// prompt on a fresh engine: the admission and the step succeed, the K/V read back is right (the
// pages the fault spoiled were recomputed), and the miss is counted under its cause.
void RunFault(
    const std::string& name,
    const std::function<void(MemoryStore::Shared&, const std::vector<std::string>&)>& fault,
    uint64_t RemoteTierStats::*cause, int64_t timeout_us = 200000) {
  SCOPED_TRACE(name);
  const std::string url = UniqueUrl("fault-" + name);
  std::shared_ptr<MemoryStore::Shared> store = MemoryStore::Named(url.substr(9));
  auto a = Engine::Create(url);
  ASSERT_TRUE(a.ok());
  const std::vector<TokenId> prompt = PagePrompt(5, 300);
  ASSERT_TRUE((*a)->Prefill(1, prompt).ok());
  ASSERT_TRUE((*a)->manager().Free(1).ok());
  ASSERT_TRUE((*a)->Churn(8, 9000).ok());
  ASSERT_TRUE((*a)->manager().FlushRemoteWrites(absl::Seconds(10)));
  std::vector<std::string> keys = store->Keys();
  ASSERT_FALSE(keys.empty());
  fault(*store, keys);
  auto b = Engine::Create(url, 8, 8, timeout_us);
  ASSERT_TRUE(b.ok());
  absl::StatusOr<AdmitInfo> info = (*b)->Prefill(2, prompt);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_LT(info->num_remote_hit_pages, 5);
  const absl::Status st = (*b)->Verify(2, prompt);
  EXPECT_TRUE(st.ok()) << st;
  const RemoteTierStats s = (*b)->manager().remote_stats();
  EXPECT_GE(s.*cause, 1u);
  EXPECT_TRUE((*b)->manager().CheckInvariants().ok());
  store->TEST_SetDown(false);
  store->TEST_SetDelay(absl::ZeroDuration());
}

TEST(SharedRemoteTier, FaultsCostMissesNeverWrongData) {
  // Every value corrupted by one byte: checksum failures.
  RunFault(
      "corrupt",
      [](MemoryStore::Shared& s, const std::vector<std::string>& keys) {
        for (const std::string& k : keys) s.TEST_Corrupt(k);
      },
      &RemoteTierStats::miss_corrupt);
  RunFault(
      "truncate",
      [](MemoryStore::Shared& s, const std::vector<std::string>& keys) {
        for (const std::string& k : keys) s.TEST_Truncate(k, 100);
      },
      &RemoteTierStats::miss_corrupt);
  // A valid page of another key under each key (another prefix or another model's page).
  RunFault(
      "foreign",
      [](MemoryStore::Shared& s, const std::vector<std::string>& keys) {
        const std::string other = s.Get(keys[0]);
        for (const std::string& k : keys) s.TEST_Put(k, other);
      },
      &RemoteTierStats::miss_foreign);
  RunFault(
      "down", [](MemoryStore::Shared& s, const std::vector<std::string>&) { s.TEST_SetDown(true); },
      &RemoteTierStats::miss_error);
  RunFault(
      "slow",
      [](MemoryStore::Shared& s, const std::vector<std::string>&) {
        s.TEST_SetDelay(absl::Milliseconds(30));
      },
      &RemoteTierStats::miss_timeout, /*timeout_us=*/5000);
  RunFault(
      "missing", [](MemoryStore::Shared& s, const std::vector<std::string>&) { s.Clear(); },
      &RemoteTierStats::miss_missing);
}

// A page of another model (another name, same shape) is never loaded: its keys differ.
TEST(SharedRemoteTier, AnotherModelNeverSharesPages) {
  ModelSpec spec;
  spec.name = "remote-test";
  spec.num_q_heads = spec.num_kv_heads = 1;
  spec.head_dim = 4;
  spec.kv_dtype = DType::kFp32;
  spec.layers = {LayerSpec::Full()};
  ModelSpec other = spec;
  other.name = "another-model";
  EXPECT_NE(RemoteModelFingerprint(spec, 16), RemoteModelFingerprint(other, 16));
  EXPECT_NE(RemoteModelFingerprint(spec, 16), RemoteModelFingerprint(spec, 32));
  other = spec;
  other.kv_dtype = DType::kFp16;
  EXPECT_NE(RemoteModelFingerprint(spec, 16), RemoteModelFingerprint(other, 16));
}

TEST(RemoteTierTest, FullQueueDropsInsteadOfBlocking) {
  RemoteTierConfig cfg;
  cfg.url = UniqueUrl("queue");
  cfg.queue_bytes = 1 << 20;
  cfg.timeout_us = 5000000;
  std::shared_ptr<MemoryStore::Shared> store = MemoryStore::Named("queue");
  store->TEST_SetDelay(absl::Seconds(2));  // the writer is slow
  ModelSpec spec;
  spec.name = "q";
  spec.num_q_heads = spec.num_kv_heads = 1;
  spec.head_dim = 4;
  spec.layers = {LayerSpec::Full()};
  auto tier = RemoteTier::Create(cfg, spec, 16);
  ASSERT_TRUE(tier.ok()) << tier.status();
  const uint64_t page_bytes = 600 << 10;
  (*tier)->SetGroup(0, page_bytes);
  std::vector<std::byte> page(page_bytes);
  std::vector<TokenId> tokens(16, 3);
  int accepted = 0;
  const absl::Time start = absl::Now();
  for (uint64_t i = 0; i < 4; ++i) {
    accepted += (*tier)->Enqueue(0, BlockHash{i, i}, tokens, page.data());
  }
  EXPECT_LT(absl::Now() - start, absl::Seconds(1)) << "Enqueue waited for the store";
  const RemoteTierStats s = (*tier)->stats();
  EXPECT_EQ(s.writes_queued + s.writes_dropped, 4u);
  EXPECT_GE(s.writes_dropped, 2u);
  EXPECT_EQ(accepted, static_cast<int>(s.writes_queued));
  EXPECT_TRUE((*tier)->Flush(absl::Seconds(10)));
  EXPECT_EQ((*tier)->stats().writes_done, s.writes_queued);
  store->TEST_SetDelay(absl::ZeroDuration());
}

TEST(RemoteTierTest, RefusesConfigurationsThatCannotWork) {
  ModelSpec spec;
  spec.name = "c";
  spec.num_q_heads = spec.num_kv_heads = 1;
  spec.head_dim = 4;
  spec.layers = {LayerSpec::Full()};
  CacheConfig cfg;
  cfg.block_size_tokens = 16;
  cfg.gpu_tier = Tier::kHost;
  cfg.gpu_num_blocks = 8;
  cfg.remote.url = "memory://config";
  // No host tier to stage pages through.
  absl::Status st = BlockManager::Create(spec, cfg).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("host_num_blocks"), std::string_view::npos) << st;
  cfg.host_num_blocks = 8;
  cfg.enable_prefix_caching = false;
  st = BlockManager::Create(spec, cfg).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("prefix caching"), std::string_view::npos) << st;
  cfg.enable_prefix_caching = true;
  cfg.remote.url = "rediss://nope";
  st = BlockManager::Create(spec, cfg).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("remote.url"), std::string_view::npos) << st;
  cfg.remote.url = "memory://config";
  EXPECT_TRUE(BlockManager::Create(spec, cfg).ok());
}

}  // namespace
}  // namespace pagedkv::testing
