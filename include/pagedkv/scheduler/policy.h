// KvCachePolicy: how the Scheduler places sequences' KV in GPU memory. One interface, several
// policies compared by the Simulator on the same workload:
//   paged               BlockManager pages of block_size tokens (sharing, prefix cache, swap)
//   contiguous-max      one fixed extent of max_model_len tokens per sequence
//   contiguous-realloc  an extent of the current length, grown by reallocate-and-copy
//   orca-max            an extent of prompt + max_new_tokens
//   orca-pow2           an extent of prompt + the output length rounded up to a power of two
//   orca-oracle         an extent of exactly the final length
// The contiguous ones place extents first-fit or, by default for orca-*, with a buddy allocator.
//
//   PAGEDKV_ASSIGN_OR_RETURN(auto policy, MakeKvCachePolicy(config));
//   if (policy->CanAdmit(req).fits) PAGEDKV_RETURN_IF_ERROR(policy->Admit(seqs, prompt, req));
#ifndef PAGEDKV_SCHEDULER_POLICY_H_
#define PAGEDKV_SCHEDULER_POLICY_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "pagedkv/core/model_spec.h"
#include "pagedkv/core/types.h"

namespace pagedkv {

class BlockManager;
struct CacheOps;

enum class PolicyKind : uint8_t {
  kPaged = 0,
  kContiguousMax = 1,
  kContiguousRealloc = 2,
  kOrcaMax = 3,
  kOrcaPow2 = 4,
  kOrcaOracle = 5,
};
std::string_view PolicyKindName(PolicyKind kind);  // "paged", "contiguous-max", ...
// NotFound listing the names for anything else.
absl::StatusOr<PolicyKind> ParsePolicyKind(std::string_view name);
std::vector<std::string> PolicyKindNames();

// How the contiguous policies place extents: kAuto is kBuddy for orca-* (the PagedAttention
// paper's Orca baselines) and kFirstFit for contiguous-*. Unused by `paged`.
enum class ExtentAllocatorKind : uint8_t {
  kAuto = 0,
  kFirstFit = 1,
  kBuddy = 2,
};
std::string_view ExtentAllocatorKindName(ExtentAllocatorKind kind);  // "auto", "first-fit", "buddy"
// InvalidArgument listing the names for anything else.
absl::StatusOr<ExtentAllocatorKind> ParseExtentAllocatorKind(std::string_view name);
// What kAuto means for `policy`; other kinds are returned unchanged.
ExtentAllocatorKind ResolveExtentAllocator(PolicyKind policy, ExtentAllocatorKind kind);

// A store of prefix pages shared by several paged policies: the remote tier of a simulated
// cluster (scheduler/cluster.h). Content-addressed pages of the policies' block size.
class SharedPrefixStore {
 public:
  virtual ~SharedPrefixStore() = default;
  // How many consecutive full pages of `tokens`, from page `first_page` on, the store holds
  // (marking them recently used).
  virtual int32_t MatchPages(absl::Span<const TokenId> tokens, int32_t first_page) = 0;
};

struct PolicyConfig {
  PolicyKind kind = PolicyKind::kPaged;
  ModelSpec model;                 // KV shape (bytes per token)
  int32_t block_size_tokens = 16;  // paged only
  // GPU KV budget in tokens (contiguous policies) or blocks = capacity / block size (paged).
  int64_t capacity_tokens = 0;
  int64_t host_capacity_tokens = 0;  // paged swap space; 0 = no swap
  // Paged: the tier of the manager's GPU pool. kVirtual (metadata only) for the simulator; kGpu
  // (device memory, or host memory without a CUDA device) or kHost when an engine computes K/V
  // in the pool (the swap space is always real host memory).
  Tier gpu_tier = Tier::kVirtual;
  // The longest sequence the server accepts (contiguous-max extent, cap of every reservation).
  int32_t max_model_len = 4096;
  // The generation cap a reservation policy without an oracle must assume (orca-max).
  int32_t max_new_tokens = 2048;
  ExtentAllocatorKind extent_allocator = ExtentAllocatorKind::kAuto;  // contiguous policies
  double watermark = 0.01;            // fraction of blocks kept free at admission (paged)
  bool enable_prefix_caching = true;  // paged
  // Paged with prefix caching: a prefix lookup continues here after the local hits; the pages it
  // finds are loaded instead of computed (counted in remote_* counters). Not owned; may be null.
  SharedPrefixStore* remote_store = nullptr;
};

// What the Scheduler knows about a sequence group being admitted.
struct AdmitRequest {
  int32_t prompt_tokens = 0;  // the original prompt
  int32_t output_tokens = 0;  // tokens each sequence will generate (the oracle's knowledge)
  int32_t stored_tokens = 0;  // tokens to place now: prompt + tokens generated before a preemption
  int32_t num_seqs = 1;       // sequences the group will fork into (n or beam width)
  // Longest prefill chunk the scheduler computes in one step (its token budget with chunked
  // prefill); 0 = the whole prompt at once. Bounds the pages of sliding-window groups.
  int32_t max_chunk_tokens = 0;
};

struct AdmitCheck {
  bool fits = false;      // can be admitted now
  bool ever_fits = true;  // false: longer than max_model_len or than the memory (reject)
  bool too_long = false;  // prompt + output > max_model_len (a reason for !ever_fits)
  // !fits only because of the watermark: the pages would fit in the free pool without it (paged).
  bool watermark_limited = false;
  int32_t cached_tokens = 0;  // leading prompt tokens found in the prefix cache (paged)
};

// Memory state at one instant, in tokens of KV (all layers).
struct KvMemoryStats {
  int64_t capacity_tokens = 0;
  int64_t used_tokens = 0;             // slots holding (or about to hold) a live sequence's token
  int64_t reserved_unused_tokens = 0;  // reserved for a sequence but not holding a token yet
  int64_t internal_frag_tokens = 0;    // slots of allocated pages past the sequence's end (paged)
  int64_t external_frag_tokens = 0;    // free, but in holes too small for the next admission
  // Slots of allocated blocks past their reservation: a buddy block rounds the reservation up to
  // a power of two.
  int64_t rounding_tokens = 0;
  int64_t shared_saved_tokens = 0;  // logical tokens minus physical ones (sharing)
  int64_t cached_tokens = 0;        // prefix-cache pages held without a live owner (paged)
};

// Running totals since the policy was created.
struct KvPolicyCounters {
  uint64_t copy_bytes = 0;  // device copies: copy-on-write, reallocation, fork, reorder
  uint64_t swap_out_bytes = 0;
  uint64_t swap_in_bytes = 0;
  int64_t prefix_query_tokens = 0;  // prompt tokens looked up in the prefix cache at admission
  int64_t prefix_hit_tokens = 0;    // of those, found cached (locally or in the remote store)
  int64_t remote_hit_tokens = 0;    // of the hits, found in the remote store
  uint64_t remote_load_bytes = 0;   // KV bytes of those remote hits (to be loaded)
  int64_t remote_loads = 0;         // admissions that loaded anything from the remote store
};

class KvCachePolicy {
 public:
  virtual ~KvCachePolicy() = default;
  virtual PolicyKind kind() const = 0;

  // Whether a group can be admitted now (above the watermark, with its reservation).
  virtual AdmitCheck CanAdmit(const AdmitRequest& request, absl::Span<const TokenId> tokens) = 0;
  // Places tokens.size() == request.stored_tokens tokens for seqs[0]; seqs[1..] are the ids the
  // group will fork into later (reservation policies reserve for them now). Returns the number of
  // leading tokens found in the prefix cache (they need no compute). ResourceExhausted when it
  // does not fit (state unchanged).
  virtual absl::StatusOr<int32_t> Admit(absl::Span<const SeqId> seqs, const AdmitRequest& request,
                                        absl::Span<const TokenId> tokens) = 0;
  // Leading tokens of `tokens` the policy's own prefix cache holds now (no state change); 0 for
  // policies without one. What a prefix-aware router asks each replica.
  virtual int32_t CachedPrefixTokens(absl::Span<const TokenId> tokens) const { return 0; }
  // Whether `num_tokens` more slots can be appended to `seq` (including a copy-on-write page).
  virtual bool CanAppend(SeqId seq, int32_t num_tokens) const = 0;
  // Appends slots for `tokens` to `seq`. ResourceExhausted when they do not fit (state unchanged).
  virtual absl::Status Append(SeqId seq, absl::Span<const TokenId> tokens) = 0;
  // Child shares (paged) or copies (contiguous) the parent's tokens.
  virtual absl::Status Fork(SeqId parent, SeqId child) = 0;
  // beams[i] continues from beams[parent_index[i]] (all of the same length).
  virtual absl::Status ReorderBeams(absl::Span<const SeqId> beams,
                                    absl::Span<const int32_t> parent_index) = 0;
  // Releases everything `seq` holds, including a reservation made for it by Admit.
  virtual absl::Status Free(SeqId seq) = 0;
  // The engine wrote the K/V of the first `num_computed_tokens` tokens of `seq` (after a step's
  // forward pass). The paged policy publishes full computed pages to its prefix cache (commit on
  // compute); the others ignore it. Errors as BlockManager::MarkComputed.
  virtual absl::Status MarkComputed(SeqId seq, int64_t num_computed_tokens) {
    return absl::OkStatus();
  }
  // True when a prompt's memory is bounded by the prefill chunk rather than its length (paged
  // with sliding-window groups): the scheduler then admits the first chunk only (CanAdmit and
  // Admit with those tokens) and appends each later chunk before computing it, so a long prompt
  // never holds more than its window plus one chunk.
  virtual bool AllocatesPrefillByChunk() const { return false; }

  virtual bool SupportsSwap() const { return false; }
  virtual bool CanSwapOut(absl::Span<const SeqId> seqs) const { return false; }
  virtual bool CanSwapIn(absl::Span<const SeqId> seqs) const { return false; }
  virtual absl::Status SwapOut(absl::Span<const SeqId> seqs) {
    return absl::UnimplementedError("this policy cannot swap; use --preemption recompute");
  }
  virtual absl::Status SwapIn(absl::Span<const SeqId> seqs) {
    return absl::UnimplementedError("this policy cannot swap; use --preemption recompute");
  }

  // `next_admission` (may be null): the head of the waiting queue, whose reservation decides which
  // free holes count as external fragmentation.
  virtual KvMemoryStats MemoryStats(const AdmitRequest* next_admission) const = 0;
  virtual KvPolicyCounters counters() const = 0;
  // Cache operations (paged) accumulated since the last call, moved into *out (cleared first);
  // contiguous policies leave it empty.
  virtual void TakeCacheOps(CacheOps* out) {}
  // The BlockManager behind a paged policy, else null (tests inspect tables through it).
  virtual BlockManager* block_manager() { return nullptr; }

  virtual absl::Status CheckInvariants() const = 0;
};

// InvalidArgument for a bad config (zero capacity, max_model_len < 1, ...).
absl::StatusOr<std::unique_ptr<KvCachePolicy>> MakeKvCachePolicy(const PolicyConfig& config);

}  // namespace pagedkv

#endif  // PAGEDKV_SCHEDULER_POLICY_H_
