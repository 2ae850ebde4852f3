// Tests of the KV placement policies (policy.h) used directly: names, config validation,
// reservations per policy, copy accounting, and a seeded random-operation test of every policy
// against a reference model of stored tokens.
#include "pagedkv/scheduler/policy.h"

#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "pagedkv/allocator/memory_pool.h"
#include "pagedkv/block_manager/block_manager.h"
#include "pagedkv/block_manager/cache_ops.h"
#include "test_util.h"

namespace pagedkv {
namespace {

using ::pagedkv::testing::TinyModel;

PolicyConfig Config(PolicyKind kind, int64_t capacity_tokens) {
  PolicyConfig c;
  c.kind = kind;
  c.model = TinyModel();
  c.block_size_tokens = 4;
  c.capacity_tokens = capacity_tokens;
  c.max_model_len = 64;
  c.max_new_tokens = 16;
  c.watermark = 0.0;
  c.enable_prefix_caching = false;
  return c;
}

std::vector<TokenId> Tokens(int n, TokenId base) {
  std::vector<TokenId> t(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) t[static_cast<size_t>(i)] = base + i;
  return t;
}

TEST(PolicyKindTest, NamesRoundTrip) {
  EXPECT_EQ(PolicyKindNames().size(), 6u);
  for (const std::string& name : PolicyKindNames()) {
    absl::StatusOr<PolicyKind> k = ParsePolicyKind(name);
    ASSERT_TRUE(k.ok()) << name;
    EXPECT_EQ(PolicyKindName(*k), name);
  }
  EXPECT_EQ(*ParsePolicyKind("ORCA-POW2"), PolicyKind::kOrcaPow2);
  absl::StatusOr<PolicyKind> bad = ParsePolicyKind("buddy");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(std::string(bad.status().message()).find("contiguous-max"), std::string::npos);
}

TEST(PolicyTest, ConfigValidation) {
  EXPECT_EQ(MakeKvCachePolicy(Config(PolicyKind::kPaged, 0)).status().code(),
            absl::StatusCode::kInvalidArgument);
  PolicyConfig c = Config(PolicyKind::kOrcaMax, 64);
  c.max_model_len = 0;
  EXPECT_EQ(MakeKvCachePolicy(c).status().code(), absl::StatusCode::kInvalidArgument);
  c = Config(PolicyKind::kPaged, 3);  // less than one page of 4
  EXPECT_EQ(MakeKvCachePolicy(c).status().code(), absl::StatusCode::kInvalidArgument);
}

// The paged policy's GPU pool is metadata only by default (the simulator) and real memory with
// gpu_tier kHost (an engine computes K/V in it: python/pagedkv/engine).
TEST(PolicyTest, PagedPoolTier) {
  PolicyConfig c = Config(PolicyKind::kPaged, 64);
  c.host_capacity_tokens = 16;
  absl::StatusOr<std::unique_ptr<KvCachePolicy>> virt = MakeKvCachePolicy(c);
  ASSERT_TRUE(virt.ok()) << virt.status();
  EXPECT_FALSE((*virt)->block_manager()->gpu_pool(0).has_memory());
  c.gpu_tier = Tier::kHost;
  absl::StatusOr<std::unique_ptr<KvCachePolicy>> real = MakeKvCachePolicy(c);
  ASSERT_TRUE(real.ok()) << real.status();
  const MemoryPool& pool = (*real)->block_manager()->gpu_pool(0);
  EXPECT_TRUE(pool.has_memory());
  EXPECT_NE(pool.base(), nullptr);
  EXPECT_EQ(pool.num_blocks(), 16u);
  ASSERT_NE((*real)->block_manager()->host_pool(0), nullptr);
  EXPECT_TRUE((*real)->block_manager()->host_pool(0)->has_memory());
}

// Prompt 10, output 7 (final length 16): what each policy reserves at admission, and how much
// more its allocator's block takes (orca-* on buddy blocks by default; first-fit takes exactly the
// reservation).
TEST(PolicyTest, ReservationPerPolicy) {
  struct Case {
    PolicyKind kind;
    int64_t reserved_unused;
    int64_t rounding;
  };
  const Case cases[] = {
      {PolicyKind::kContiguousMax, 64 - 10, 0},           // max_model_len
      {PolicyKind::kContiguousRealloc, 0, 0},             // exactly the stored tokens
      {PolicyKind::kOrcaMax, 10 + 16 - 1 - 10, 32 - 25},  // prompt + max_new_tokens - 1 -> 32
      {PolicyKind::kOrcaPow2, 10 + 8 - 10, 32 - 18},      // prompt + pow2(output 7) = 18 -> 32
      {PolicyKind::kOrcaOracle, 16 - 10, 0},              // prompt + output - 1 = 16
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(PolicyKindName(c.kind)));
    auto p = *MakeKvCachePolicy(Config(c.kind, 256));
    const AdmitRequest r{.prompt_tokens = 10, .output_tokens = 7, .stored_tokens = 10};
    const std::vector<TokenId> t = Tokens(10, 0);
    EXPECT_TRUE(p->CanAdmit(r, t).fits);
    const SeqId ids[] = {1};
    ASSERT_TRUE(p->Admit(ids, r, t).ok());
    const KvMemoryStats m = p->MemoryStats(nullptr);
    EXPECT_EQ(m.used_tokens, 10);
    EXPECT_EQ(m.reserved_unused_tokens, c.reserved_unused);
    EXPECT_EQ(m.rounding_tokens, c.rounding);
    EXPECT_EQ(m.capacity_tokens, 256);
    EXPECT_TRUE(p->CheckInvariants().ok());
  }
}

TEST(PolicyTest, ContiguousForkAndBeamCopiesAreCounted) {
  auto p = *MakeKvCachePolicy(Config(PolicyKind::kOrcaOracle, 256));
  const AdmitRequest r{.prompt_tokens = 10, .output_tokens = 5, .stored_tokens = 10, .num_seqs = 2};
  const SeqId ids[] = {1, 2};
  ASSERT_TRUE(p->Admit(ids, r, Tokens(10, 0)).ok());
  EXPECT_EQ(p->MemoryStats(nullptr).reserved_unused_tokens, 14 + 4);  // two extents of 14
  ASSERT_TRUE(p->Fork(1, 2).ok());
  EXPECT_EQ(p->counters().copy_bytes, 10u * 4u);  // the prompt copied, 4 bytes per token
  const int32_t parents[] = {0, 0};
  ASSERT_TRUE(p->ReorderBeams(ids, parents).ok());
  EXPECT_EQ(p->counters().copy_bytes, 10u * 4u + 10u * 4u);  // beam 1 copies beam 0's past
  ASSERT_TRUE(p->Free(1).ok());
  ASSERT_TRUE(p->Free(2).ok());
  EXPECT_EQ(p->MemoryStats(nullptr).used_tokens, 0);
  EXPECT_EQ(p->Free(2).code(), absl::StatusCode::kNotFound);
}

// orca-pow2 reserves the prompt plus the output rounded up to a power of two (the paper's example:
// an output of 25 reserves 32), capped at max_model_len.
TEST(PolicyTest, OrcaPow2RoundsTheOutputOnly) {
  PolicyConfig c = Config(PolicyKind::kOrcaPow2, 1024);
  c.max_model_len = 512;
  c.extent_allocator = ExtentAllocatorKind::kFirstFit;  // the reservation itself, no rounding
  struct Case {
    int32_t prompt, output;
    int64_t reserved;
  };
  const Case cases[] = {
      {100, 25, 100 + 32}, {100, 32, 100 + 32}, {100, 33, 100 + 64},
      {7, 1, 7 + 1},       {300, 200, 512},  // 300 + 256 capped at max_model_len
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(absl::StrCat(k.prompt, " + ", k.output));
    auto p = *MakeKvCachePolicy(c);
    const AdmitRequest r{
        .prompt_tokens = k.prompt, .output_tokens = k.output, .stored_tokens = k.prompt};
    const SeqId ids[] = {1};
    ASSERT_TRUE(p->Admit(ids, r, Tokens(k.prompt, 0)).ok());
    const KvMemoryStats m = p->MemoryStats(nullptr);
    EXPECT_EQ(m.used_tokens + m.reserved_unused_tokens, k.reserved);
    EXPECT_EQ(m.rounding_tokens, 0);
  }
}

TEST(PolicyTest, ExtentAllocatorNamesAndDefaults) {
  for (const char* name : {"auto", "first-fit", "buddy"}) {
    absl::StatusOr<ExtentAllocatorKind> k = ParseExtentAllocatorKind(name);
    ASSERT_TRUE(k.ok()) << name;
    EXPECT_EQ(ExtentAllocatorKindName(*k), name);
  }
  EXPECT_EQ(ParseExtentAllocatorKind("slab").status().code(), absl::StatusCode::kInvalidArgument);
  for (PolicyKind k : {PolicyKind::kOrcaMax, PolicyKind::kOrcaPow2, PolicyKind::kOrcaOracle}) {
    EXPECT_EQ(ResolveExtentAllocator(k, ExtentAllocatorKind::kAuto), ExtentAllocatorKind::kBuddy);
  }
  for (PolicyKind k : {PolicyKind::kContiguousMax, PolicyKind::kContiguousRealloc}) {
    EXPECT_EQ(ResolveExtentAllocator(k, ExtentAllocatorKind::kAuto),
              ExtentAllocatorKind::kFirstFit);
  }
  EXPECT_EQ(ResolveExtentAllocator(PolicyKind::kOrcaMax, ExtentAllocatorKind::kFirstFit),
            ExtentAllocatorKind::kFirstFit);
}

// Requests are rejected when prompt + output exceeds max_model_len (64 here): 60 + 4 fits exactly,
// 60 + 5 does not, on every policy.
TEST(PolicyTest, MaxModelLenBoundsPromptPlusOutput) {
  for (PolicyKind kind :
       {PolicyKind::kPaged, PolicyKind::kContiguousMax, PolicyKind::kContiguousRealloc,
        PolicyKind::kOrcaMax, PolicyKind::kOrcaPow2, PolicyKind::kOrcaOracle}) {
    SCOPED_TRACE(std::string(PolicyKindName(kind)));
    auto p = *MakeKvCachePolicy(Config(kind, 256));
    const AdmitRequest fits{.prompt_tokens = 60, .output_tokens = 4, .stored_tokens = 60};
    const AdmitRequest too_long{.prompt_tokens = 60, .output_tokens = 5, .stored_tokens = 60};
    EXPECT_TRUE(p->CanAdmit(fits, Tokens(60, 0)).ever_fits);
    EXPECT_FALSE(p->CanAdmit(fits, Tokens(60, 0)).too_long);
    const AdmitCheck check = p->CanAdmit(too_long, Tokens(60, 0));
    EXPECT_FALSE(check.ever_fits);
    EXPECT_TRUE(check.too_long);
  }
}

TEST(PolicyTest, ExternalFragmentationCountsHolesTooSmall) {
  // orca-oracle on first-fit, capacity 40: three extents of 10, free the middle one: a 10-token
  // hole and the 10-token tail. A next request needing 12 cannot use either: 20 tokens of
  // external fragmentation; one needing 10 can: 0.
  PolicyConfig c = Config(PolicyKind::kOrcaOracle, 40);
  c.extent_allocator = ExtentAllocatorKind::kFirstFit;
  auto p = *MakeKvCachePolicy(c);
  const AdmitRequest r{.prompt_tokens = 5, .output_tokens = 6, .stored_tokens = 5};
  for (SeqId id = 1; id <= 3; ++id) {
    const SeqId ids[] = {id};
    ASSERT_TRUE(p->Admit(ids, r, Tokens(5, 0)).ok());
  }
  ASSERT_TRUE(p->Free(2).ok());
  const AdmitRequest big{.prompt_tokens = 6, .output_tokens = 7, .stored_tokens = 6};
  EXPECT_EQ(p->MemoryStats(&big).external_frag_tokens, 20);
  EXPECT_FALSE(p->CanAdmit(big, Tokens(6, 0)).fits);
  EXPECT_EQ(p->MemoryStats(&r).external_frag_tokens, 0);
}

TEST(PolicyTest, BuddyExternalFragmentationAndRounding) {
  // orca-oracle on buddy blocks, capacity 64: three requests reserving 10 tokens take 16-token
  // blocks at 0, 16 and 32 (6 slots of rounding each); freeing the middle one leaves free blocks
  // of 16 (at 16) and 16 (at 48). A request reserving 17 needs a 32-token block: both holes are
  // too small (32 tokens of external fragmentation) although 32 tokens are free.
  auto p = *MakeKvCachePolicy(Config(PolicyKind::kOrcaOracle, 64));
  const AdmitRequest r{.prompt_tokens = 5, .output_tokens = 6, .stored_tokens = 5};
  for (SeqId id = 1; id <= 3; ++id) {
    const SeqId ids[] = {id};
    ASSERT_TRUE(p->Admit(ids, r, Tokens(5, 0)).ok());
  }
  EXPECT_EQ(p->MemoryStats(nullptr).rounding_tokens, 3 * 6);
  ASSERT_TRUE(p->Free(2).ok());
  EXPECT_TRUE(p->CheckInvariants().ok()) << p->CheckInvariants();
  const AdmitRequest big{.prompt_tokens = 6, .output_tokens = 12, .stored_tokens = 6};
  EXPECT_EQ(p->MemoryStats(&big).external_frag_tokens, 32);
  EXPECT_FALSE(p->CanAdmit(big, Tokens(6, 0)).fits);
  EXPECT_TRUE(p->CanAdmit(big, Tokens(6, 0)).ever_fits);
  EXPECT_EQ(p->MemoryStats(&r).external_frag_tokens, 0);
  ASSERT_TRUE(p->Free(3).ok());  // 32..63 merges into one 32-token block
  EXPECT_TRUE(p->CanAdmit(big, Tokens(6, 0)).fits);
}

void TakeAndCheck(KvCachePolicy* p, const std::map<SeqId, int64_t>& stored) {
  CacheOps ops;
  p->TakeCacheOps(&ops);
  ASSERT_TRUE(p->CheckInvariants().ok()) << p->CheckInvariants();
  int64_t total = 0;
  for (const auto& [seq, n] : stored) total += n;
  const KvMemoryStats m = p->MemoryStats(nullptr);
  ASSERT_EQ(m.used_tokens, total);
  ASSERT_GE(m.reserved_unused_tokens, 0);
  ASSERT_LE(m.used_tokens + m.reserved_unused_tokens + m.internal_frag_tokens, m.capacity_tokens);
}

// Random admissions, appends and frees on every policy; a reference map of stored tokens per
// sequence must match the policy's used tokens, and every failed call must leave it unchanged.
class PolicyRandomTest : public ::testing::TestWithParam<PolicyKind> {};

TEST_P(PolicyRandomTest, MatchesReferenceModel) {
  auto p = *MakeKvCachePolicy(Config(GetParam(), 400));
  std::mt19937_64 rng(17);
  std::map<SeqId, int64_t> stored;
  SeqId next = 1;
  for (int op = 0; op < 3000; ++op) {
    const int kind = static_cast<int>(rng() % 3);
    if (kind == 0 || stored.empty()) {
      const int32_t prompt = 1 + static_cast<int32_t>(rng() % 30);
      const AdmitRequest r{.prompt_tokens = prompt,
                           .output_tokens = 1 + static_cast<int32_t>(rng() % 16),
                           .stored_tokens = prompt};
      const std::vector<TokenId> t = Tokens(prompt, static_cast<TokenId>(next * 1000));
      const bool fits = p->CanAdmit(r, t).fits;
      const SeqId ids[] = {next};
      absl::StatusOr<int32_t> admitted = p->Admit(ids, r, t);
      EXPECT_EQ(admitted.ok(), fits) << admitted.status();
      if (admitted.ok()) stored[next] = prompt;
      ++next;
    } else if (kind == 1) {
      auto it = stored.begin();
      std::advance(it, static_cast<long>(rng() % stored.size()));
      const int32_t n = 1 + static_cast<int32_t>(rng() % 3);
      const bool can = p->CanAppend(it->first, n);
      absl::Status st = p->Append(it->first, Tokens(n, 7));
      EXPECT_EQ(st.ok(), can) << st;
      if (st.ok()) it->second += n;
    } else {
      auto it = stored.begin();
      std::advance(it, static_cast<long>(rng() % stored.size()));
      ASSERT_TRUE(p->Free(it->first).ok());
      stored.erase(it);
    }
    TakeAndCheck(p.get(), stored);
    if (HasFatalFailure()) return;
  }
}

INSTANTIATE_TEST_SUITE_P(AllPolicies, PolicyRandomTest, ::pagedkv::testing::AllPolicyKinds(),
                         ::pagedkv::testing::PolicyKindParamName);

// The reservation policies on the other allocator than their default (first-fit for orca-*,
// buddy for contiguous-*) under the same random operations.
TEST(PolicyRandomTest, OtherExtentAllocatorsMatchReferenceModel) {
  for (PolicyKind kind : {PolicyKind::kOrcaMax, PolicyKind::kOrcaOracle, PolicyKind::kContiguousMax,
                          PolicyKind::kContiguousRealloc}) {
    SCOPED_TRACE(std::string(PolicyKindName(kind)));
    PolicyConfig c = Config(kind, 400);
    c.extent_allocator =
        ResolveExtentAllocator(kind, ExtentAllocatorKind::kAuto) == ExtentAllocatorKind::kBuddy
            ? ExtentAllocatorKind::kFirstFit
            : ExtentAllocatorKind::kBuddy;
    auto p = *MakeKvCachePolicy(c);
    std::mt19937_64 rng(23);
    std::map<SeqId, int64_t> stored;
    for (SeqId next = 1; next < 800; ++next) {
      if (rng() % 2 == 0 || stored.empty()) {
        const int32_t prompt = 1 + static_cast<int32_t>(rng() % 30);
        const AdmitRequest r{.prompt_tokens = prompt,
                             .output_tokens = 1 + static_cast<int32_t>(rng() % 16),
                             .stored_tokens = prompt};
        const std::vector<TokenId> t = Tokens(prompt, 0);
        const bool fits = p->CanAdmit(r, t).fits;
        const SeqId ids[] = {next};
        absl::StatusOr<int32_t> admitted = p->Admit(ids, r, t);
        ASSERT_EQ(admitted.ok(), fits) << admitted.status();
        if (admitted.ok()) stored[next] = prompt;
      } else {
        auto it = stored.begin();
        std::advance(it, static_cast<long>(rng() % stored.size()));
        if (p->CanAppend(it->first, 2)) {
          ASSERT_TRUE(p->Append(it->first, Tokens(2, 7)).ok());
          it->second += 2;
        } else {
          ASSERT_TRUE(p->Free(it->first).ok());
          stored.erase(it);
        }
      }
      TakeAndCheck(p.get(), stored);
      if (HasFatalFailure()) return;
    }
  }
}

}  // namespace
}  // namespace pagedkv
