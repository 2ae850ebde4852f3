// BlockManager: maps sequences to KV pages. One block table per (sequence, KV group), one
// BlockAllocator + MemoryPool per (KV group, tier); copy-on-write forks, beam reorder, prefix
// caching (GPU tier, host tier as a second level), swap, rewind, sliding windows, cross-attention.
// Used by the scheduler (one call per decision) and the engine (TakeCacheOps + BuildBatch per
// step).
//
//   PAGEDKV_ASSIGN_OR_RETURN(auto bm, BlockManager::Create(spec, config));
//   PAGEDKV_ASSIGN_OR_RETURN(AddResult r, bm->AddSequence(/*seq=*/1, prompt));
//   PAGEDKV_RETURN_IF_ERROR(bm->AppendTokens(1, {next_token}));
//   bm->TakeCacheOps(&ops);  bm->BuildBatch(entries, /*group=*/0, &layout);
//
// Sequence lifecycle (predicates on a SeqId; the calls that move between them):
//   unknown            not in the manager            -> AddSequence / Fork (as child) -> resident
//   resident           tables name GPU pages        -> AppendTokens, Rewind, Fork, ReorderBeams,
//                                                      SetCrossAttention keep it resident;
//                                                      SwapOut -> swapped; Free -> unknown
//   swapped            tables name host pages       -> SwapIn -> resident; Free -> unknown
//                      (AppendTokens, Rewind, Fork, ReorderBeams, SetCrossAttention:
//                       FailedPrecondition)
//
// Pool sizing: every group gets the same number of blocks per tier. With gpu_num_blocks > 0 that
// is the count; with gpu_budget_bytes it is budget / (sum over groups of bytes_per_block), i.e.
// a budget buys "blocks of all groups"; with neither, gpu_memory_fraction of the CUDA device's
// memory (InvalidArgument without a device). The host tier is sized the same way from
// host_num_blocks / host_budget_bytes; it is kVirtual (metadata only) when the GPU tier is, so a
// simulated GPU's swap space is not bounded by the simulating machine's memory. Cross groups hold
// encoder tokens; shares(j) layers own nothing (LocateLayer resolves them to layer j's storage).
//
// Remote tier (config.remote, needs prefix caching and a host tier with memory): a published host
// page that is evicted after being reused admit_hits times is written to a shared store (Redis,
// Redis Cluster) in the background; AddSequence continues the prefix lookup there after the local
// hits (one round trip per node, bounded by a timeout; a miss of any cause is recomputed) and
// stages verified pages in host blocks that swap in like host hits.
//
// Prefix caching (config.enable_prefix_caching, and only for models whose self-attention layers
// are all `full`: a sliding group drops pages, so its pages cannot serve a later prompt). Commit
// on compute: a page is published (hashed into the prefix index, findable by other sequences)
// only once it is full *and* the engine has reported every token in it computed with
// MarkComputed, so a page whose K/V is not written yet is never handed to another sequence. The
// hash is a chain, hash(page k) = H128(hash(page k-1), its token ids, the sequence's keys): the
// extra_key and, on a model with cross-attention layers, the encoder_key (required there). A hit
// is confirmed against the token ids stored with the page, so a page whose own tokens differ is
// never handed out however hashes collide; the page's prefix is identified by the 128-bit parent
// hash in the chain (a wrong prefix would need a 128-bit collision; docs/block_manager.md). A hit
// is never the page holding the prompt's last token (that token must be computed to produce
// logits), so at most (prompt_len - 1) / block_size pages hit; hit pages count as computed. With
// a host tier, GPU prefix-cache pages that are evicted are copied to host blocks (swap_out
// entries of CacheOps) and kept there as a second cache level; a later hit brings them back
// (swap_in entries).
//
// Page lifecycle and the engine's contract, per step: the manager calls of the step (admission,
// appends: new pages are allocated-uncomputed), TakeCacheOps and execute them, BuildBatch and run
// the model (it writes the new K/V through slot_mapping), then MarkComputed with each sequence's
// computed length (full computed pages become published). See block_manager/internal/
// manager_state.h for the page states as predicates.
//
// Every mutation is all-or-nothing: it computes what it needs, checks, then mutates; a failed
// call returns a Status naming the sequence and the numbers and leaves the manager unchanged.
// Not thread-safe: one owner serializes calls.
#ifndef PAGEDKV_BLOCK_MANAGER_BLOCK_MANAGER_H_
#define PAGEDKV_BLOCK_MANAGER_BLOCK_MANAGER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "pagedkv/allocator/block_allocator.h"
#include "pagedkv/allocator/memory_pool.h"
#include "pagedkv/block_manager/batch_layout.h"
#include "pagedkv/block_manager/block_manager_stats.h"
#include "pagedkv/block_manager/block_table.h"
#include "pagedkv/block_manager/cache_ops.h"
#include "pagedkv/block_manager/prefix_events.h"
#include "pagedkv/core/cache_config.h"
#include "pagedkv/core/model_spec.h"
#include "pagedkv/core/types.h"
#include "pagedkv/remote/remote_tier.h"

namespace pagedkv {

// Per-sequence options given at admission.
struct SequenceOptions {
  // Mixed into every page hash of the sequence (e.g. a LoRA adapter id): sequences with different
  // keys never share prefix-cache pages. 0 = none.
  uint64_t extra_key = 0;
  // Identity of the encoder input (e.g. a hash of the audio features) on a model with
  // cross-attention layers: decoder pages depend on it, so it is part of every page hash. Required
  // there when prefix caching is on (AddSequence: InvalidArgument without it); ignored otherwise.
  std::optional<uint64_t> encoder_key;
  // How this sequence's hashed pages join the prefix cache when released: kLow = evicted first.
  EvictionPriority priority = EvictionPriority::kNormal;
};

// One KV group as the manager built it.
struct GroupInfo {
  KvGroup group;                 // kind, window, layers with storage
  uint64_t bytes_per_block = 0;  // layers_in_group * 2 * kv_heads * block_size * head_dim * dtype
  uint32_t gpu_num_blocks = 0;
  uint32_t host_num_blocks = 0;  // 0 without a host tier
};

// Where a model layer's K/V lives: group `group`, layer `layer_in_group` of each block. A
// shares(j) layer resolves to layer j's location.
struct LayerLocation {
  int32_t group = -1;
  int32_t layer_in_group = -1;
};

// What admitting a prompt would take (CanAdmit), or took (AddSequence).
struct AdmitInfo {
  bool can_admit = false;          // blocks fit (CanAdmit: above the watermark)
  int32_t num_cached_tokens = 0;   // prompt tokens served by prefix-cache pages (GPU or host)
  int32_t num_new_blocks = 0;      // GPU blocks to allocate over all groups (host hits included)
  int32_t num_host_hit_pages = 0;  // prefix pages brought back from the host tier
  // Prefix pages loaded from the remote tier (AddSequence only: CanAdmit asks no store). They
  // need GPU blocks like misses, so they never change whether a prompt fits.
  int32_t num_remote_hit_pages = 0;
};

class BlockManager {
 public:
  // Longest sequence (tokens of one table) the manager accepts: keeps token positions and slot
  // arithmetic far from 32-bit overflow.
  static constexpr int32_t kMaxSequenceTokens = (1 << 30) - 1;

  // Builds one pool per group and tier. InvalidArgument for an invalid spec or config (their
  // Validate() messages), or a budget too small for one block of every group; ResourceExhausted
  // when a pool's memory cannot be allocated.
  static absl::StatusOr<std::unique_ptr<BlockManager>> Create(const ModelSpec& spec,
                                                              const CacheConfig& config);
  ~BlockManager();
  BlockManager(const BlockManager&) = delete;
  BlockManager& operator=(const BlockManager&) = delete;

  // ---- Shape ---------------------------------------------------------------------------------
  int32_t block_size() const;
  int32_t num_groups() const;
  const GroupInfo& group_info(int32_t group) const;  // group in [0, num_groups)
  // InvalidArgument for a layer outside [0, num_layers).
  absl::StatusOr<LayerLocation> LocateLayer(int32_t layer) const;
  bool prefix_caching_enabled() const;  // config asked for it and the model allows it
  bool has_host_tier() const;
  // The group's pools and allocators (for the engine's kernels and for tests). host_* return
  // nullptr without a host tier.
  MemoryPool& gpu_pool(int32_t group) const;
  MemoryPool* host_pool(int32_t group) const;
  const BlockAllocator& gpu_allocator(int32_t group) const;
  const BlockAllocator* host_allocator(int32_t group) const;

  // ---- Admission -----------------------------------------------------------------------------
  // Would AddSequence(prompt) succeed and leave at least the watermark of every GPU pool
  // available? Counts prefix hits (published pages only) without taking them (no statistics
  // change). can_admit is false for options AddSequence would refuse (a missing encoder_key).
  AdmitInfo CanAdmit(absl::Span<const TokenId> prompt, const SequenceOptions& options = {}) const;

  // Admits `seq` with its prompt: takes the published prefix-cache pages it hits (ref + 1; host
  // hits are copied back through swap_in), allocates the rest (allocated-uncomputed until
  // MarkComputed). The sequence starts with num_cached_tokens computed tokens. The watermark is not
  // applied here (CanAdmit is the admission policy). AlreadyExists for a known id;
  // ResourceExhausted when the blocks do not fit; InvalidArgument for a prompt over 2^30 tokens or
  // a missing encoder_key on a cross-attention model with prefix caching. An empty prompt is
  // allowed (no pages until AppendTokens).
  absl::StatusOr<AdmitInfo> AddSequence(SeqId seq, absl::Span<const TokenId> prompt,
                                        const SequenceOptions& options = {});

  // ---- Growth --------------------------------------------------------------------------------
  // Appends tokens: fills the last page (copy-on-write first when it is shared: one `copies`
  // entry), then new pages; sliding-window groups first release pages no query of this or a
  // later step can see. NotFound (unknown), FailedPrecondition (swapped out),
  // ResourceExhausted (not enough free + cached blocks).
  absl::Status AppendTokens(SeqId seq, absl::Span<const TokenId> tokens);
  // One decode step: appends tokens[i] to seqs[i], all or nothing (checks every sequence and
  // the total block need before changing anything). Same codes as AppendTokens;
  // InvalidArgument for sizes that differ or a sequence listed twice.
  absl::Status AppendTokenBatch(absl::Span<const SeqId> seqs, absl::Span<const TokenId> tokens);
  // True when AppendTokens(seq, num_tokens tokens) would succeed now (false for unknown or
  // swapped-out sequences).
  bool CanAppend(SeqId seq, int32_t num_tokens) const;
  // GPU blocks (all groups) that AppendTokens(seq, num_tokens) would allocate, CoW included.
  absl::StatusOr<int32_t> BlocksToAppend(SeqId seq, int32_t num_tokens) const;

  // ---- Compute progress ----------------------------------------------------------------------
  // The engine reports that the K/V of the first num_computed_tokens tokens of `seq` is written
  // (after the forward pass of a step). Full pages whose tokens are all computed are published to
  // the prefix cache. It also tells the manager that every CacheOps taken before it has been
  // executed (the remote tier writes only bytes the engine has produced). Monotone: InvalidArgument
  // below the current computed count (Rewind lowers it) or above NumTokens; NotFound;
  // FailedPrecondition (swapped out). Equal to the current count: no effect.
  absl::Status MarkComputed(SeqId seq, int64_t num_computed_tokens);
  // One step's reports, all or nothing (every entry is checked before any takes effect). Same
  // codes; InvalidArgument for sizes that differ or a sequence listed twice.
  absl::Status MarkComputedBatch(absl::Span<const SeqId> seqs,
                                 absl::Span<const int64_t> num_computed_tokens);
  // Tokens of `seq` whose K/V is computed (prefix hits included); NotFound.
  absl::StatusOr<int64_t> NumComputedTokens(SeqId seq) const;

  // ---- Sharing -------------------------------------------------------------------------------
  // Child gets a copy of the parent's tables (and its computed count); every page ref + 1; no
  // data moves. NotFound
  // (unknown parent), AlreadyExists (child exists), FailedPrecondition (parent swapped out),
  // InvalidArgument (parent == child).
  absl::Status Fork(SeqId parent, SeqId child);
  // Beam search step: new beam i continues old beam parent_indices[i] (indices into `beams`, the
  // beam_indices convention). Tables are rebuilt by sharing and releasing pages, never by
  // copying data; the next AppendTokens of each beam copies at most its one shared partial page.
  // InvalidArgument (sizes differ, index out of [0, beams.size()), a beam listed twice),
  // NotFound (unknown beam), FailedPrecondition (a beam is swapped out).
  absl::Status ReorderBeams(absl::Span<const SeqId> beams,
                            absl::Span<const int32_t> parent_indices);

  // ---- Shrinking -----------------------------------------------------------------------------
  // Truncates to `num_tokens` tokens, releasing whole pages past the end (speculative decoding);
  // the computed count drops to at most num_tokens. Released pages that were published join the
  // prefix cache, the others are free. A shared last page is not modified: the next append copies
  // it; an unshared published last page is unpublished before the next append writes into it.
  // NotFound, FailedPrecondition
  // (swapped out, or a sliding group already released pages the shorter sequence would need
  // again), InvalidArgument (num_tokens < 0 or > current length).
  absl::Status Rewind(SeqId seq, int32_t num_tokens);
  // Releases every page of the sequence (GPU or host). Published pages join the prefix cache;
  // uncomputed ones are free. NotFound for an unknown id.
  absl::Status Free(SeqId seq);

  // ---- Swap ----------------------------------------------------------------------------------
  // Moves the sequences' GPU pages to host pages (swap_out entries); a page shared by several of
  // them moves once. NotFound, FailedPrecondition (already swapped, no host tier, a page is the
  // destination of a swap-in still pending in CacheOps: take the ops first), InvalidArgument
  // (listed twice), ResourceExhausted (host blocks).
  absl::Status SwapOut(absl::Span<const SeqId> seqs);
  absl::Status SwapOut(SeqId seq) { return SwapOut(absl::MakeConstSpan(&seq, 1)); }
  // Brings swapped sequences back (swap_in entries); a host page shared by several of them gets one
  // GPU page. NotFound, FailedPrecondition (not swapped out: no host pages), InvalidArgument,
  // ResourceExhausted (GPU blocks).
  absl::Status SwapIn(absl::Span<const SeqId> seqs);
  absl::Status SwapIn(SeqId seq) { return SwapIn(absl::MakeConstSpan(&seq, 1)); }
  // True when SwapIn(seqs) would succeed now.
  bool CanSwapIn(absl::Span<const SeqId> seqs) const;

  // ---- Encoder-decoder -----------------------------------------------------------------------
  // Allocates the cross-attention pages for `encoder_tokens` encoder outputs (written once, in
  // the next step, through BuildBatch on the cross group). FailedPrecondition when the model has
  // no cross layers, the sequence is swapped out or already has them; InvalidArgument for
  // encoder_tokens < 0; NotFound; ResourceExhausted.
  absl::Status SetCrossAttention(SeqId seq, int32_t encoder_tokens);

  // ---- Eviction hooks ------------------------------------------------------------------------
  // How the sequence's hashed pages join the prefix cache when released (kLow: evicted first).
  absl::Status SetEvictionPriority(SeqId seq, EvictionPriority priority);
  // Marks the cached GPU pages of this prompt's prefix most recently used (a session expected to
  // return). Returns the number of leading pages found. No statistics change. `options` gives the
  // keys the pages were hashed with (extra_key, encoder_key).
  int32_t TouchPrefix(absl::Span<const TokenId> prompt, const SequenceOptions& options = {});

  // ---- Per-step outputs ----------------------------------------------------------------------
  // Moves the pending CacheOps into *ops (reusing its vectors) and unpins their blocks. Call once
  // per step, before executing the ops and before the model runs.
  void TakeCacheOps(CacheOps* ops);
  CacheOps TakeCacheOps();
  // Fills `layout` for `entries` in `group` (see batch_layout.h). Reuses layout's capacity.
  // InvalidArgument (group out of range, a sequence listed twice, num_new_tokens /
  // num_context_tokens out of range for the table or num_context_tokens < -1, an entry whose new
  // tokens fall in released sliding-window pages), NotFound (unknown
  // sequence), FailedPrecondition (swapped out). `layout` is unspecified after an error.
  absl::Status BuildBatch(absl::Span<const BatchEntry> entries, int32_t group,
                          BatchLayout* layout) const;
  // Same into a buffer owned by the manager (one per group), valid until the next call for the
  // group or until the manager is destroyed.
  absl::StatusOr<const BatchLayout*> BuildBatch(absl::Span<const BatchEntry> entries,
                                                int32_t group);

  // ---- Queries -------------------------------------------------------------------------------
  bool Contains(SeqId seq) const;
  int64_t num_sequences() const;
  // Tokens of a sequence; NotFound.
  absl::StatusOr<int32_t> NumTokens(SeqId seq) const;
  absl::StatusOr<SequenceStats> GetSequenceStats(SeqId seq) const;
  // The table of (seq, group); valid until the next mutation. NotFound, InvalidArgument (group).
  absl::StatusOr<const BlockTable*> GetBlockTable(SeqId seq, int32_t group) const;
  // Ids of all known sequences (unordered).
  std::vector<SeqId> SequenceIds() const;
  // O(sequences + groups); O(blocks) fields are kept incrementally where cheap and computed
  // otherwise: call per step or less, not per token.
  BlockManagerStats stats() const;

  // Every table and pool: each block's ref equals the number of tables naming it plus the pins of
  // pending CacheOps; hashed pages hold the token ids that produce their hash; tables obey
  // BlockTable's invariants; every allocator's own invariants. O(blocks + table entries).
  absl::Status CheckInvariants() const;

  // ---- Remote tier (config.remote) ----------------------------------------------------------
  bool has_remote_tier() const;
  // Lookups, hits, misses by cause, bytes and writes of the remote tier; zeros without one.
  RemoteTierStats remote_stats() const;
  // Waits until the queued remote writes are sent (or failed), at most `timeout`; true when none
  // is left. For tests and orderly shutdown: steps never wait for the store.
  bool FlushRemoteWrites(absl::Duration timeout);

  // ---- Prefix index events -------------------------------------------------------------------
  // Tells `listener` (not owned; nullptr removes it) every page published to or removed from the
  // prefix index of any pool from now on (prefix_events.h). At most one listener.
  void SetPrefixIndexListener(PrefixIndexListener* listener);

  // Test hook: `hook(group, tier, block)` runs for every block the manager allocates, in any pool
  // (tests poison fresh pages with it). An empty function removes it.
  void TEST_SetAllocationHook(std::function<void(int32_t group, Tier tier, BlockId block)> hook);

 private:
  struct Impl;
  explicit BlockManager(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pagedkv

#endif  // PAGEDKV_BLOCK_MANAGER_BLOCK_MANAGER_H_
