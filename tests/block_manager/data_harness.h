// DataHarness: drives a BlockManager whose pools hold real bytes (host memory) the way an engine
// does, against a reference model of every sequence, and checks the data property: reading each
// sequence back through its block table yields exactly the values written for its own tokens.
// Shared by the data-through-table test and the libFuzzer target (no GoogleTest dependency).
//
//   PAGEDKV_ASSIGN_OR_RETURN(auto h, DataHarness::Create({.model = HarnessModel::kFull}));
//   RandomOpSource src(/*seed=*/1);
//   PAGEDKV_RETURN_IF_ERROR(h->Run(src, /*num_ops=*/10000));
//
// Engine order per step, as the harness mimics it: manager calls (which record CacheOps), then
// TakeCacheOps and execute them (memcpy: all swap_out, then swap_in, then copies), then the model
// computes a chunk of each sequence's uncomputed tokens (chunked prefill: possibly not all of
// them) and writes their K/V through BuildBatch's slot_mapping, then MarkComputed. A value is a
// hash of the token's whole prefix (and the sequence's extra key), as real K/V would be, so a page
// with the right token ids but another prefix is caught too. Every block the manager allocates is
// poisoned (after the step's swap_outs, which may read an evicted block's old bytes), so a page
// handed out before its K/V was computed reads as garbage; every sequence is checked within its
// computed length.
#ifndef PAGEDKV_TESTS_BLOCK_MANAGER_DATA_HARNESS_H_
#define PAGEDKV_TESTS_BLOCK_MANAGER_DATA_HARNESS_H_

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "pagedkv/block_manager/block_manager.h"
#include "pagedkv/remote/memory_store.h"

namespace pagedkv::testing {

enum class HarnessModel : uint8_t {
  kShares = 0,       // layers: full, shares(0), full (one group of two layers)
  kFullSliding = 1,  // layers: full, sliding(window), shares(1) (two groups; no prefix caching)
  kCross = 2,        // layers: full, cross (encoder-decoder; prefix keys include the encoder)
  kFull = 3,         // layers: full (one group, one layer)
  kSliding = 4,      // layers: sliding(window), shares(0) (one sliding group)
};
inline constexpr int kNumHarnessModels = 5;
const char* HarnessModelName(HarnessModel model);

struct HarnessOptions {
  HarnessModel model = HarnessModel::kFull;
  int32_t block_size = 16;
  bool prefix_caching = true;
  bool host_tier = true;
  // 0 = derived from block_size (about six sequences of the longest prompt).
  uint32_t gpu_blocks = 0;
  uint32_t host_blocks = 0;
  int32_t max_live_seqs = 16;
  // Full data + CheckInvariants check every this many operations (and at the end of Run).
  int32_t verify_every = 8;
  // A remote tier on an in-process store of its own (needs prefix caching and a host tier):
  // evicted host pages are written there, later prompts load them, and faults are injected into
  // the store (corrupted, truncated and foreign values, the store down or slower than the
  // deadline). Writes are flushed after every step, so a seed replays exactly.
  bool remote = false;
  int32_t remote_admit_hits = 0;
};

// Where operation choices come from: a seeded PRNG (tests) or fuzzer bytes.
class OpSource {
 public:
  virtual ~OpSource() = default;
  // A value in [0, bound) (bound >= 1).
  virtual uint32_t Next(uint32_t bound) = 0;
  // False once a byte source is used up (a PRNG never is).
  virtual bool Done() const { return false; }
};

class RandomOpSource : public OpSource {
 public:
  explicit RandomOpSource(uint64_t seed) : rng_(seed) {}
  uint32_t Next(uint32_t bound) override {
    return std::uniform_int_distribution<uint32_t>(0, bound - 1)(rng_);
  }

 private:
  std::mt19937_64 rng_;
};

class ByteOpSource : public OpSource {
 public:
  explicit ByteOpSource(absl::Span<const uint8_t> bytes) : bytes_(bytes) {}
  uint32_t Next(uint32_t bound) override;
  bool Done() const override { return pos_ >= bytes_.size(); }

 private:
  absl::Span<const uint8_t> bytes_;
  size_t pos_ = 0;
};

// Counts of what Run did, for test output and to assert coverage.
struct HarnessCounters {
  uint64_t ops = 0;
  uint64_t ok = 0;
  uint64_t failed = 0;  // calls that returned an expected error (state checked unchanged)
  uint64_t adds = 0, appends = 0, batch_appends = 0, forks = 0, reorders = 0, rewinds = 0,
           frees = 0, swap_outs = 0, swap_ins = 0, crosses = 0, bad_inputs = 0, readmits = 0,
           partial_computes = 0, poisoned_blocks = 0, remote_faults = 0;
  uint64_t remote_hit_pages = 0, remote_writes = 0, remote_misses_by_fault = 0;
  uint64_t prefix_hit_pages = 0, host_hit_pages = 0, cow_copies = 0, evictions = 0,
           host_offloads = 0, window_releases = 0;
  uint64_t verified_tokens = 0;
  std::string ToString() const;
};

class DataHarness {
 public:
  static absl::StatusOr<std::unique_ptr<DataHarness>> Create(const HarnessOptions& options);

  // Runs up to num_ops random operations drawn from `src` (stops early when src is Done), then
  // frees everything and checks that no block leaked. Internal error on the first violated
  // property (data, invariants, unexpected status code, state changed by a failed call).
  absl::Status Run(OpSource& src, int64_t num_ops);

  // One random operation (exposed for the fuzzer's fine-grained loop).
  absl::Status Step(OpSource& src);
  // Executes pending CacheOps, then computes pending tokens: all of them, or with `src` a random
  // chunk of each sequence (chunked prefill), and reports them with MarkComputed.
  absl::Status Flush(OpSource* src = nullptr);
  // Reads every sequence back through its tables; CheckInvariants.
  absl::Status VerifyAll();
  // Frees every sequence, flushes, and checks that every pool is free or cached.
  absl::Status Drain();

  BlockManager& manager() { return *bm_; }
  const HarnessCounters& counters() const { return counters_; }

 private:
  struct RefSeq {
    std::vector<TokenId> tokens;
    std::vector<uint32_t> values;  // values[p]: hash of tokens[0..p] and extra_key
    uint64_t extra_key = 0;
    uint64_t encoder_key = 0;  // 0 = none (values depend on it like on the extra key)
    bool swapped = false;
    bool has_cross = false;
    int32_t encoder_tokens = 0;
    uint32_t encoder_seed = 0;  // cross values: hash(encoder_seed, p)
    int32_t written = 0;        // computed tokens: their K/V is in the pools (MarkComputed)
    bool cross_written = true;
  };

  explicit DataHarness(const HarnessOptions& options) : opt_(options) {}

  uint32_t ValueAfter(uint32_t prev, TokenId token, uint64_t key) const;
  void Recompute(RefSeq& r, int32_t from) const;
  std::vector<TokenId> MakePrompt(OpSource& src);
  SeqId PickLive(OpSource& src, bool want_resident, bool* found);
  absl::Status ExpectFailure(const absl::Status& st, std::initializer_list<absl::StatusCode> codes,
                             const BlockManagerStats& before, const char* op);
  absl::Status WriteSeq(SeqId id, RefSeq& r);
  absl::Status VerifySeq(SeqId id, const RefSeq& r);
  uint32_t* Word(bool host, int32_t group, BlockId block, int32_t layer, int32_t kv,
                 int32_t slot_in_block);

  absl::Status OpAdd(OpSource& src);
  absl::Status OpAppend(OpSource& src);
  absl::Status OpAppendBatch(OpSource& src);
  absl::Status OpFork(OpSource& src);
  absl::Status OpReorder(OpSource& src);
  absl::Status OpRewind(OpSource& src);
  absl::Status OpFree(OpSource& src);
  absl::Status OpSwapOut(OpSource& src);
  absl::Status OpSwapIn(OpSource& src);
  absl::Status OpCross(OpSource& src);
  absl::Status OpBadInput(OpSource& src);
  // Preemption by recompute: frees a sequence and admits its tokens again under a new id.
  absl::Status OpReadmit(OpSource& src);
  // Breaks the remote store for a while (one of the faults above).
  absl::Status OpRemoteFault(OpSource& src);
  // AddSequence of r.tokens with r's keys, checked against CanAdmit; on success r is live.
  absl::Status Admit(SeqId id, RefSeq r, EvictionPriority priority);
  // Computes everything `id` has pending (an engine finishes a prefill before it decodes).
  absl::Status CompleteCompute(SeqId id);
  void Poison(bool host, int32_t group, BlockId block);

  HarnessOptions opt_;
  std::unique_ptr<BlockManager> bm_;
  int32_t bs_ = 0;
  int32_t max_prompt_ = 0;
  absl::flat_hash_map<SeqId, RefSeq> ref_;
  std::vector<SeqId> ids_;  // the keys of ref_, for uniform picks
  SeqId next_id_ = 1;
  std::vector<std::vector<TokenId>> shared_prefixes_;
  CacheOps ops_;
  BatchLayout layout_;
  // GPU blocks allocated since the last Flush, per group: poisoned there, after the swap_outs
  // that may read them (host blocks are poisoned when allocated).
  std::vector<std::vector<BlockId>> fresh_gpu_;
  std::shared_ptr<MemoryStore::Shared> store_;  // the remote tier's contents (remote only)
  int32_t store_fault_ops_ = 0;                 // ops left with the store down or slow
  HarnessCounters counters_;
};

}  // namespace pagedkv::testing

#endif  // PAGEDKV_TESTS_BLOCK_MANAGER_DATA_HARNESS_H_
