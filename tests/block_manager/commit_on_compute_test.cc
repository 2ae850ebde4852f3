// Commit on compute: a page enters the prefix index only once the engine reports every token in it
// computed (MarkComputed). The MarkComputed contract, what fork, beams, rewind, swap and free do
// with computed and published pages, the encoder key of encoder-decoder models, and exact block
// counting of a decode step over forks. The first tests replay the failures that motivated it.
#include <numeric>
#include <vector>

#include "gtest/gtest.h"
#include "pagedkv/block_manager/block_manager.h"
#include "tests/block_manager/test_util.h"

namespace pagedkv {
namespace {

using ::absl::StatusCode;
using ::pagedkv::testing::Config;
using ::pagedkv::testing::ExpectFailsUnchanged;
using ::pagedkv::testing::Make;
using ::pagedkv::testing::Spec;
using ::pagedkv::testing::Tokens;

ModelSpec Toy(std::vector<LayerSpec> layers = {LayerSpec::Full()}) {
  ModelSpec spec = Spec(std::move(layers));
  spec.name = "toy";
  return spec;
}

void ExpectOk(const BlockManager& bm) {
  const absl::Status st = bm.CheckInvariants();
  EXPECT_TRUE(st.ok()) << st;
}

// Regression: a chunked prefill computed 8 of 41 tokens, then was preempted (rewind, free). Only
// the two computed pages may be offered again, not the 10 pages the prompt fills.
TEST(CommitOnComputeRegression, PreemptedChunkedPrefillOffersOnlyComputedPages) {
  auto bm = Make(Toy(), Config(4, 64));
  const std::vector<TokenId> prompt = Tokens(41);
  ASSERT_TRUE(bm->AddSequence(1, prompt).ok());
  ASSERT_TRUE(bm->MarkComputed(1, 8).ok());
  ASSERT_TRUE(bm->Rewind(1, 8).ok());
  ASSERT_TRUE(bm->Free(1).ok());
  EXPECT_EQ(bm->CanAdmit(prompt).num_cached_tokens, 8);
  auto info = bm->AddSequence(2, prompt);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->num_cached_tokens, 8);
  EXPECT_EQ(*bm->NumComputedTokens(2), 8);
  ExpectOk(*bm);
}

// Regression: two sequences with the same prompt admitted in one step. The second must not hit
// pages the first has not computed; after the first's forward pass, a third one does.
TEST(CommitOnComputeRegression, SameStepAdmissionDoesNotHitUncomputedPages) {
  auto bm = Make(Toy(), Config(4, 64));
  const std::vector<TokenId> prompt = Tokens(17);
  ASSERT_TRUE(bm->AddSequence(1, prompt).ok());
  auto second = bm->AddSequence(2, prompt);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->num_cached_tokens, 0);
  EXPECT_EQ(bm->stats().prefix_hit_pages, 0u);
  ASSERT_TRUE(bm->MarkComputed(1, 17).ok());
  // The second computed the same content in the same step: its pages stay private (the first
  // one's serve lookups); marking them computed must not fail.
  ASSERT_TRUE(bm->MarkComputed(2, 17).ok());
  auto third = bm->AddSequence(3, prompt);
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(third->num_cached_tokens, 16);
  EXPECT_EQ((*bm->GetBlockTable(3, 0))->blocks()[0], (*bm->GetBlockTable(1, 0))->blocks()[0]);
  ExpectOk(*bm);
}

TEST(MarkComputedTest, OnlyFullComputedPagesArePublished) {
  auto bm = Make(Toy(), Config(4, 64));
  const std::vector<TokenId> prompt = Tokens(13);
  ASSERT_TRUE(bm->AddSequence(1, prompt).ok());
  ASSERT_TRUE(bm->MarkComputed(1, 3).ok());  // page 0 not complete
  EXPECT_EQ(bm->CanAdmit(prompt).num_cached_tokens, 0);
  ASSERT_TRUE(bm->MarkComputed(1, 9).ok());  // pages 0 and 1
  EXPECT_EQ(bm->CanAdmit(prompt).num_cached_tokens, 8);
  ASSERT_TRUE(bm->MarkComputed(1, 9).ok());  // same count: no effect
  ASSERT_TRUE(bm->MarkComputed(1, 13).ok());
  EXPECT_EQ(bm->CanAdmit(prompt).num_cached_tokens, 12);  // never the last token's page
  EXPECT_EQ(bm->GetSequenceStats(1)->num_computed_tokens, 13);
  ExpectOk(*bm);
}

TEST(MarkComputedTest, BadInputsFailAndChangeNothing) {
  auto bm = Make(Toy(), Config(4, 64, 16));
  ASSERT_TRUE(bm->AddSequence(1, Tokens(10)).ok());
  ASSERT_TRUE(bm->MarkComputed(1, 6).ok());
  ExpectFailsUnchanged(*bm, StatusCode::kInvalidArgument, [&] { return bm->MarkComputed(1, 5); });
  ExpectFailsUnchanged(*bm, StatusCode::kInvalidArgument, [&] { return bm->MarkComputed(1, 11); });
  ExpectFailsUnchanged(*bm, StatusCode::kInvalidArgument, [&] { return bm->MarkComputed(1, -1); });
  ExpectFailsUnchanged(*bm, StatusCode::kNotFound, [&] { return bm->MarkComputed(9, 0); });
  EXPECT_EQ(bm->NumComputedTokens(9).status().code(), StatusCode::kNotFound);
  const absl::Status st = bm->MarkComputed(1, 3);
  EXPECT_NE(st.message().find("Rewind"), std::string_view::npos) << st;
  // A batch is all or nothing: a bad second entry leaves the first unapplied.
  ASSERT_TRUE(bm->AddSequence(2, Tokens(8, 500)).ok());
  const SeqId seqs[2] = {2, 1};
  const int64_t bad[2] = {8, 2};
  ExpectFailsUnchanged(*bm, StatusCode::kInvalidArgument,
                       [&] { return bm->MarkComputedBatch(seqs, bad); });
  EXPECT_EQ(*bm->NumComputedTokens(2), 0);
  const SeqId dup[2] = {2, 2};
  const int64_t counts[2] = {4, 4};
  ExpectFailsUnchanged(*bm, StatusCode::kInvalidArgument,
                       [&] { return bm->MarkComputedBatch(dup, counts); });
  ExpectFailsUnchanged(*bm, StatusCode::kInvalidArgument,
                       [&] { return bm->MarkComputedBatch(seqs, absl::MakeConstSpan(counts, 1)); });
  const int64_t good[2] = {8, 10};
  ASSERT_TRUE(bm->MarkComputedBatch(seqs, good).ok());
  EXPECT_EQ(*bm->NumComputedTokens(2), 8);
  EXPECT_EQ(*bm->NumComputedTokens(1), 10);
  ASSERT_TRUE(bm->SwapOut(1).ok());
  ExpectFailsUnchanged(*bm, StatusCode::kFailedPrecondition,
                       [&] { return bm->MarkComputed(1, 10); });
  ExpectOk(*bm);
}

TEST(MarkComputedTest, ForkAndBeamsCarryTheComputedCount) {
  auto bm = Make(Toy(), Config(4, 64));
  ASSERT_TRUE(bm->AddSequence(1, Tokens(10)).ok());
  ASSERT_TRUE(bm->MarkComputed(1, 7).ok());
  ASSERT_TRUE(bm->Fork(1, 2).ok());
  EXPECT_EQ(*bm->NumComputedTokens(2), 7);
  // The parent computes the rest after the fork: the child names the page it published.
  ASSERT_TRUE(bm->MarkComputed(1, 10).ok());
  ExpectOk(*bm);
  ASSERT_TRUE(bm->MarkComputed(2, 10).ok());  // the same shared pages: already published
  ASSERT_TRUE(bm->AddSequence(3, Tokens(10, 700)).ok());
  ASSERT_TRUE(bm->MarkComputed(3, 4).ok());
  const SeqId beams[2] = {1, 3};
  const int32_t parents[2] = {1, 1};  // both continue sequence 3
  ASSERT_TRUE(bm->ReorderBeams(beams, parents).ok());
  EXPECT_EQ(*bm->NumComputedTokens(1), 4);
  EXPECT_EQ(*bm->NumComputedTokens(3), 4);
  ExpectOk(*bm);
}

// Regression (fuzz finding): a child forked before its parent computed a page names the page its
// parent published afterwards. Once the parent is freed, no table that computed the page names it;
// the page stays published (its K/V was written) and the child, which recomputes the same tokens
// at the same positions, publishes nothing new.
TEST(CommitOnComputeRegression, ChildOutlivesTheParentThatComputedItsPages) {
  auto bm = Make(Toy(), Config(4, 64));
  const std::vector<TokenId> prompt = Tokens(9);
  ASSERT_TRUE(bm->AddSequence(1, prompt).ok());
  ASSERT_TRUE(bm->Fork(1, 2).ok());
  ASSERT_TRUE(bm->MarkComputed(1, 9).ok());
  ExpectOk(*bm);
  ASSERT_TRUE(bm->Free(1).ok());
  ExpectOk(*bm);
  EXPECT_EQ(*bm->NumComputedTokens(2), 0);
  EXPECT_EQ(bm->CanAdmit(prompt).num_cached_tokens, 8);
  ASSERT_TRUE(bm->MarkComputed(2, 9).ok());
  ExpectOk(*bm);
  auto third = bm->AddSequence(3, prompt);
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(third->num_cached_tokens, 8);
  EXPECT_EQ((*bm->GetBlockTable(3, 0))->blocks()[1], (*bm->GetBlockTable(2, 0))->blocks()[1]);
  ExpectOk(*bm);
}

// Regression (fuzz finding): the same through ReorderBeams: the beam that computed the pages takes
// a copy of a beam that has not.
TEST(CommitOnComputeRegression, BeamTakesTheTableOfABeamThatHasNotComputed) {
  auto bm = Make(Toy(), Config(4, 64));
  ASSERT_TRUE(bm->AddSequence(1, Tokens(9)).ok());
  ASSERT_TRUE(bm->Fork(1, 2).ok());
  ASSERT_TRUE(bm->MarkComputed(1, 9).ok());
  const SeqId beams[2] = {1, 2};
  const int32_t parents[2] = {1, 1};  // both continue beam 2
  ASSERT_TRUE(bm->ReorderBeams(beams, parents).ok());
  ExpectOk(*bm);
  EXPECT_EQ(*bm->NumComputedTokens(1), 0);
  EXPECT_EQ(bm->CanAdmit(Tokens(9)).num_cached_tokens, 8);
  ASSERT_TRUE(bm->MarkComputed(1, 9).ok());
  ExpectOk(*bm);
}

TEST(MarkComputedTest, RewindLowersTheCountAndFreeKeepsOnlyPublishedPages) {
  auto bm = Make(Toy(), Config(4, 64));
  const std::vector<TokenId> prompt = Tokens(14);
  ASSERT_TRUE(bm->AddSequence(1, prompt).ok());
  ASSERT_TRUE(bm->MarkComputed(1, 14).ok());  // pages 0..2 published, page 3 partial
  ASSERT_TRUE(bm->Rewind(1, 6).ok());         // page 1 becomes partial (still published)
  EXPECT_EQ(*bm->NumComputedTokens(1), 6);
  EXPECT_EQ(bm->CanAdmit(prompt).num_cached_tokens, 12);  // page 2 released into the cache
  // Appending into the rewound published page unpublishes it before the write.
  ASSERT_TRUE(bm->AppendTokens(1, Tokens(1, 9000)).ok());
  EXPECT_EQ(bm->CanAdmit(prompt).num_cached_tokens, 4);
  ASSERT_TRUE(bm->MarkComputed(1, 7).ok());
  ASSERT_TRUE(bm->Free(1).ok());
  // Cached: page 0 and the released page 2; page 1 (rewritten, computed but partial) is free.
  EXPECT_EQ(bm->stats().groups[0].gpu_cached_blocks, 2u);
  ExpectOk(*bm);
}

TEST(MarkComputedTest, SharedRewoundPageIsCopiedBeforeTheWrite) {
  auto bm = Make(Toy(), Config(4, 64));
  const std::vector<TokenId> prompt = Tokens(9);
  ASSERT_TRUE(bm->AddSequence(1, prompt).ok());
  ASSERT_TRUE(bm->MarkComputed(1, 9).ok());
  ASSERT_TRUE(bm->Rewind(1, 6).ok());
  // Another request hits the page sequence 1 rewound into (its content is still the old one).
  auto info = bm->AddSequence(2, prompt);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->num_cached_tokens, 8);
  const BlockId shared = (*bm->GetBlockTable(1, 0))->blocks()[1];
  ASSERT_TRUE(bm->AppendTokens(1, Tokens(1, 9000)).ok());
  const CacheOps ops = bm->TakeCacheOps();
  ASSERT_EQ(ops.groups[0].copies.size(), 1u);
  EXPECT_EQ(ops.groups[0].copies[0].src, shared);
  EXPECT_NE((*bm->GetBlockTable(1, 0))->blocks()[1], shared);
  EXPECT_EQ((*bm->GetBlockTable(2, 0))->blocks()[1], shared);
  ExpectOk(*bm);
}

TEST(MarkComputedTest, SwapKeepsComputedAndPublishedPages) {
  auto bm = Make(Toy(), Config(4, 64, 64));
  const std::vector<TokenId> prompt = Tokens(13);
  ASSERT_TRUE(bm->AddSequence(1, prompt).ok());
  ASSERT_TRUE(bm->MarkComputed(1, 6).ok());
  ASSERT_TRUE(bm->SwapOut(1).ok());
  (void)bm->TakeCacheOps();
  EXPECT_EQ(*bm->NumComputedTokens(1), 6);
  // The published page was copied to the host tier; its GPU block stays cached.
  EXPECT_EQ(bm->CanAdmit(prompt).num_cached_tokens, 4);
  EXPECT_EQ(bm->stats().groups[0].host_in_use_blocks, 4u);
  ASSERT_TRUE(bm->SwapIn(1).ok());
  (void)bm->TakeCacheOps();
  ASSERT_TRUE(bm->MarkComputed(1, 13).ok());
  EXPECT_EQ(bm->CanAdmit(prompt).num_cached_tokens, 12);
  ExpectOk(*bm);
}

// Regression: on an encoder-decoder model, decoder pages depend on the audio. Two requests with
// the same decoder prompt and different audio must not share them.
TEST(CommitOnComputeRegression, EncoderKeySeparatesDecoderPagesOfDifferentAudio) {
  absl::StatusOr<ModelSpec> whisper = ModelSpec::Preset("whisper-large-v3");
  ASSERT_TRUE(whisper.ok()) << whisper.status();
  CacheConfig cfg = Config(16, 256);
  auto bm = Make(*whisper, cfg);
  ASSERT_TRUE(bm->prefix_caching_enabled());
  const std::vector<TokenId> prompt = Tokens(40);
  // Without the encoder input's identity the manager cannot key the pages.
  ExpectFailsUnchanged(*bm, StatusCode::kInvalidArgument,
                       [&] { return bm->AddSequence(1, prompt).status(); });
  EXPECT_FALSE(bm->CanAdmit(prompt).can_admit);
  const absl::Status st = bm->AddSequence(1, prompt).status();
  EXPECT_NE(st.message().find("encoder_key"), std::string_view::npos) << st;
  SequenceOptions audio_a, audio_b;
  audio_a.encoder_key = 0xA;
  audio_b.encoder_key = 0xB;
  ASSERT_TRUE(bm->AddSequence(1, prompt, audio_a).ok());
  ASSERT_TRUE(bm->MarkComputed(1, 40).ok());
  EXPECT_EQ(bm->CanAdmit(prompt, audio_b).num_cached_tokens, 0);
  EXPECT_EQ(bm->CanAdmit(prompt, audio_a).num_cached_tokens, 32);
  auto other = bm->AddSequence(2, prompt, audio_b);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->num_cached_tokens, 0);
  auto same = bm->AddSequence(3, prompt, audio_a);
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->num_cached_tokens, 32);
  EXPECT_EQ(bm->TouchPrefix(prompt, audio_a), 2);
  EXPECT_EQ(bm->TouchPrefix(prompt), 0);
  ExpectOk(*bm);
  // Without prefix caching the key is not needed.
  cfg.enable_prefix_caching = false;
  auto plain = Make(*whisper, cfg);
  EXPECT_TRUE(plain->AddSequence(1, prompt).ok());
}

// MarkComputedBatch of exactly the last AppendTokenBatch's sequences skips the id lookups; it must
// still refuse what the general path refuses, and never trust a record freed in between.
TEST(MarkComputedTest, BatchAfterADecodeStepChecksLikeAnyOther) {
  auto bm = Make(Toy(), Config(4, 64, 16));
  for (SeqId id : {1, 2, 3}) ASSERT_TRUE(bm->AddSequence(id, Tokens(7, 100 * id)).ok());
  const SeqId seqs[3] = {1, 2, 3};
  const int64_t prompt[3] = {7, 7, 7};
  ASSERT_TRUE(bm->MarkComputedBatch(seqs, prompt).ok());
  const TokenId tokens[3] = {1, 2, 3};
  ASSERT_TRUE(bm->AppendTokenBatch(seqs, tokens).ok());
  const int64_t bad[3] = {8, 9, 8};  // 9 > 8 tokens
  ExpectFailsUnchanged(*bm, StatusCode::kInvalidArgument,
                       [&] { return bm->MarkComputedBatch(seqs, bad); });
  const int64_t good[3] = {8, 8, 8};
  ASSERT_TRUE(bm->MarkComputedBatch(seqs, good).ok());
  std::vector<TokenId> two = Tokens(7, 200);  // sequence 2's tokens, and one more
  two.push_back(2);
  two.push_back(0);
  EXPECT_EQ(bm->CanAdmit(two).num_cached_tokens, 8);
  ASSERT_TRUE(bm->AppendTokenBatch(seqs, tokens).ok());
  ASSERT_TRUE(bm->SwapOut(3).ok());
  const int64_t next[3] = {9, 9, 9};
  ExpectFailsUnchanged(*bm, StatusCode::kFailedPrecondition,
                       [&] { return bm->MarkComputedBatch(seqs, next); });
  ASSERT_TRUE(bm->SwapIn(3).ok());
  const absl::Status st =
      bm->AppendTokenBatch(absl::MakeConstSpan(seqs, 2), absl::MakeConstSpan(tokens, 2));
  ASSERT_TRUE(st.ok()) << st;
  ASSERT_TRUE(bm->Free(2).ok());
  ExpectFailsUnchanged(*bm, StatusCode::kNotFound, [&] {
    return bm->MarkComputedBatch(absl::MakeConstSpan(seqs, 2), absl::MakeConstSpan(next, 2));
  });
  ASSERT_TRUE(bm->AddSequence(4, Tokens(5, 900)).ok());  // may reuse the freed record
  const SeqId reused[2] = {1, 4};
  const int64_t counts[2] = {10, 5};
  ASSERT_TRUE(bm->MarkComputedBatch(reused, counts).ok());
  EXPECT_EQ(*bm->NumComputedTokens(4), 5);
  ExpectOk(*bm);
}

// Two forks sharing a partly filled last page need one copy-on-write page, not two, when both
// append in one step: the last sharer keeps the original.
TEST(DecodeBatchTest, ForksSharingALastPageCountOneCopy) {
  auto bm = Make(Toy(), Config(4, 3));
  ASSERT_TRUE(bm->AddSequence(1, Tokens(6)).ok());  // 2 pages, the last half full
  ASSERT_TRUE(bm->Fork(1, 2).ok());
  ASSERT_EQ(bm->gpu_allocator(0).num_available(), 1u);
  const SeqId seqs[2] = {1, 2};
  const TokenId tokens[2] = {7, 8};
  ASSERT_TRUE(bm->AppendTokenBatch(seqs, tokens).ok());
  EXPECT_EQ(bm->TakeCacheOps().groups[0].copies.size(), 1u);
  ExpectOk(*bm);
  // With a third sharer outside the batch, both batch members copy: two blocks, one available.
  auto bm3 = Make(Toy(), Config(4, 4));
  ASSERT_TRUE(bm3->AddSequence(1, Tokens(6)).ok());
  ASSERT_TRUE(bm3->Fork(1, 2).ok());
  ASSERT_TRUE(bm3->Fork(1, 3).ok());
  ASSERT_TRUE(bm3->AddSequence(4, Tokens(1, 50)).ok());
  ASSERT_EQ(bm3->gpu_allocator(0).num_available(), 1u);
  ExpectFailsUnchanged(*bm3, StatusCode::kResourceExhausted,
                       [&] { return bm3->AppendTokenBatch(seqs, tokens); });
  ASSERT_TRUE(bm3->Free(4).ok());
  ASSERT_TRUE(bm3->AppendTokenBatch(seqs, tokens).ok());
  EXPECT_EQ(bm3->TakeCacheOps().groups[0].copies.size(), 2u);
  ExpectOk(*bm3);
}

}  // namespace
}  // namespace pagedkv
