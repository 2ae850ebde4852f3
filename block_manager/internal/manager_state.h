// The state behind BlockManager (its Impl), shared by the files that implement one concept each:
// sequences.cc (tables, fork, copy-on-write), prefix_index.cc (admission and the prefix cache),
// swap.cc, windows_cross.cc, pending_ops.cc (CacheOps), batch_builder.cc, invariants.cc.
//
// Layout of the state:
//   groups[g].gpu / .host   one PoolState per (group, tier): the BlockAllocator (refcounts, free
//                           list, LRU, hash index) plus per-block content metadata (page hash and
//                           token ids, kept for prefix-cached groups) and pending-op pins.
//   seqs                    SeqId -> SeqRecord* (records from an ObjectPool), one BlockTable per
//                           group in each record.
// Reference accounting (CheckInvariants verifies it): for every block of every pool,
//   allocator ref == (table entries naming it) + pins[block]
// where pins are held by the pending CacheOps until TakeCacheOps(). Prefix-cache pages that no
// table names have ref 0 and live on the allocator's LRU (cached), on either tier.
#ifndef PAGEDKV_BLOCK_MANAGER_INTERNAL_MANAGER_STATE_H_
#define PAGEDKV_BLOCK_MANAGER_INTERNAL_MANAGER_STATE_H_

#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "pagedkv/allocator/block_allocator.h"
#include "pagedkv/allocator/object_pool.h"
#include "pagedkv/block_manager/block_manager.h"
#include "pagedkv/core/check.h"
#include "pagedkv/remote/remote_tier.h"

namespace pagedkv::internal {

inline int32_t CeilDiv(int64_t a, int32_t b) { return static_cast<int32_t>((a + b - 1) / b); }

// Content metadata, refcounts and pins of one pool (one group on one tier).
//
// Page (block) lifecycle of a GPU pool of a prefix-cached group, as predicates on the allocator's
// ref and hashed bits and the tables that name the page ("computed" = full, and every token in it
// is below the computed count of a sequence whose table names it):
//   free                   ref == 0 && !hashed                       on the allocator's free list
//   allocated-uncomputed   ref >= 1 && !hashed && not computed       K/V not (all) written yet
//   computed               ref >= 1 && !hashed && computed           written, not findable: a
//                                                                    partial page, or another block
//                                                                    already holds its hash
//   published              ref >= 1 &&  hashed                       findable by prefix lookups
//   evictable (cached)     ref == 0 &&  hashed                       on the allocator's LRU
// Calls that move pages:
//   AllocateGpu (append, admission, CoW, swap-in)  free | evictable -> allocated-uncomputed (an
//                                    evictable page is offloaded to the host tier first, if any)
//   MarkComputed                     allocated-uncomputed -> computed -> published
//   (PublishComputed) AddSequence prefix hit           evictable | published -> published (ref + 1)
//   Release (Free, Rewind, window)   published -> evictable at ref 0; any unhashed page -> free
//   GrowGroup into a rewound page    published (ref 1) -> allocated-uncomputed (Unhash first)
// A published page is never written again while hashed: an append into a shared page copies it
// first (copy-on-write), and an unshared one is unhashed before the write. Host pools follow the
// same predicates; their pages are published when they hold a published GPU page's bytes
// (swap-out, offload of an evicted page).
struct PoolState {
  std::unique_ptr<BlockAllocator> alloc;  // null for a missing host tier
  // [num_blocks] hash of the full page a block holds, and the hash of the page before it in its
  // sequence (kRootHash for a first page); meaningful for full pages of hashed groups.
  std::vector<BlockHash> hashes;
  std::vector<BlockHash> parents;
  // [num_blocks * block_size] token ids of each block's slots; hashed groups only.
  std::vector<TokenId> tokens;
  // Hashed groups with a remote tier only: [num_blocks] times the published page was taken as a
  // prefix hit (remote_admit_hits counts these), whether its bytes came from the remote tier
  // (never written back), and the CacheOps generation whose execution fills the block (its bytes
  // are only read once the engine reported that generation executed: see ops_done_gen).
  std::vector<uint32_t> reuse;
  std::vector<uint8_t> remote_origin;
  std::vector<uint64_t> filled_gen;
  // Hashed groups: [num_blocks] serial of the record whose MarkComputed published the page (0 for
  // pages published by a load: host hit, remote page). CheckInvariants only.
  std::vector<uint64_t> publisher;
  // [num_blocks] references held by pending CacheOps, and every pin in order (one entry each).
  std::vector<uint32_t> pins;
  std::vector<BlockId> pinned;
  // GPU pools only: [num_blocks] for the destination of a pending copy, its source (kInvalidBlockId
  // otherwise); and whether the block is the destination of a pending swap-in.
  std::vector<BlockId> copy_src;
  std::vector<uint8_t> swap_in_dst;
  // [num_blocks] scratch of swaps: a block's position among the distinct pages being moved, else
  // kInvalidBlockId (every entry is reset before the call returns).
  mutable std::vector<BlockId> move_index;

  bool valid() const { return alloc != nullptr; }
  // References held by block tables.
  uint32_t table_refs(BlockId b) const { return alloc->ref_count(b) - pins[b]; }
};

// One sequence. Lifecycle on BlockManager (unknown -> resident <-> swapped -> unknown).
// Invariants: 0 <= num_computed <= num_tokens; in a hashed group the pool's hashes[] of the
// table's pages [0, num_hashed_pages) hold their chain hashes, num_hashed_pages ==
// num_computed / block_size.
struct SeqRecord {
  SeqId id = 0;
  int32_t num_tokens = 0;        // tokens of the self-attention tables
  int32_t num_computed = 0;      // leading tokens whose K/V the engine reported written
  int32_t num_hashed_pages = 0;  // leading pages of the hashed group whose hash is computed
  bool swapped = false;          // tables name host blocks
  bool has_cross = false;        // SetCrossAttention was called
  EvictionPriority priority = EvictionPriority::kNormal;
  uint64_t extra_key = 0;
  uint64_t hash_key = 0;       // the keys mixed into every page hash (extra_key, encoder_key)
  mutable uint64_t stamp = 0;  // scratch for duplicate detection in batch calls (const ones too)
  uint64_t serial = 0;         // unique per record, never reused (names the publisher of a page)
  absl::InlinedVector<BlockTable, 2> tables;  // one per group
};

}  // namespace pagedkv::internal

namespace pagedkv {

struct BlockManager::Impl {
  using PoolState = internal::PoolState;
  using SeqRecord = internal::SeqRecord;

  struct GroupState {
    GroupInfo info;
    bool cross = false;
    int32_t window_tokens = 0;  // > 0 for sliding groups
    bool hashed = false;        // prefix caching applies to this group
    PoolState gpu;
    PoolState host;
    GroupCacheOps ops;
    BatchLayout layout;                               // buffer of the manager-owned BuildBatch
    std::unique_ptr<EvictionListener> listener;       // GPU evictions -> host second level
    std::unique_ptr<EvictionListener> host_listener;  // host evictions -> remote tier
  };

  // Told by an allocator about evicted prefix-cache pages; reports the removal to the prefix
  // listener, then forwards to OnGpuEvict (GPU pools) or OnHostEvict (host pools).
  class Listener : public EvictionListener {
   public:
    Listener(Impl* impl, int32_t group, bool host) : impl_(impl), group_(group), host_(host) {}
    void OnEvict(BlockId block, const BlockHash& hash) override {
      impl_->EmitRemoved(group_, host_ ? Tier::kHost : Tier::kGpu, hash);
      if (host_) {
        impl_->OnHostEvict(group_, block, hash);
      } else {
        impl_->OnGpuEvict(group_, block, hash);
      }
    }

   private:
    Impl* impl_;
    int32_t group_;
    bool host_;
  };

  ModelSpec spec;
  CacheConfig config;
  std::function<void(int32_t, Tier, BlockId)> allocation_hook;  // TEST_SetAllocationHook
  PrefixIndexListener* prefix_listener = nullptr;               // SetPrefixIndexListener
  int32_t bs = 16;
  // Power-of-two block sizes split a token position with a shift and a mask (the decode path does
  // this per sequence; an integer division costs several times more).
  int32_t bs_shift = -1;  // log2(bs) when bs is a power of two, else -1
  int32_t bs_mask = 0;
  bool prefix_caching = false;
  bool host_tier = false;
  int32_t cross_group = -1;
  std::vector<GroupState> groups;
  std::vector<LayerLocation> layer_locations;
  // The shared tier below host (config.remote), or null.
  std::unique_ptr<RemoteTier> remote;
  // CacheOps generations: ops_taken_gen counts TakeCacheOps calls; ops_done_gen is its value at
  // the last MarkComputed(Batch), after which the engine has executed every op taken before.
  uint64_t ops_taken_gen = 0;
  uint64_t ops_done_gen = 0;
  uint64_t prefix_remote_hit_pages = 0;

  ObjectPool<SeqRecord> records;
  uint64_t last_serial = 0;  // SeqRecord::serial of the newest record
  absl::flat_hash_map<SeqId, SeqRecord*> seqs;
  int64_t num_swapped = 0;
  mutable uint64_t stamp = 0;  // batch calls mark their records to find duplicates

  // Cumulative counters for stats().
  uint64_t prefix_query_pages = 0;
  uint64_t prefix_hit_pages = 0;
  uint64_t prefix_host_hit_pages = 0;
  uint64_t swap_out_bytes = 0;
  uint64_t swap_in_bytes = 0;
  uint64_t copy_bytes = 0;
  uint64_t cow_copies = 0;
  uint64_t host_offloads = 0;

  // GPU blocks to pin once the Allocate that evicted them returns.
  std::vector<std::pair<int32_t, BlockId>> deferred_pins;
  // Scratch reused by batch calls.
  std::vector<SeqRecord*> scratch_recs;
  // The records of the last successful AppendTokenBatch, in order, while records_epoch (bumped by
  // every record deletion) still equals last_batch_epoch: MarkComputedBatch of the same step
  // finds them without id lookups.
  std::vector<SeqRecord*> last_batch;
  uint64_t records_epoch = 0;
  uint64_t last_batch_epoch = ~uint64_t{0};
  std::vector<BlockId> scratch_blocks;
  std::vector<int64_t> scratch_need;
  std::vector<int64_t> scratch_freed;
  // PlanDecodeBatch: batch tables per shared partial last page, and per shared window page.
  absl::flat_hash_map<BlockId, int32_t> shared_last;
  absl::flat_hash_map<BlockId, int32_t> shared_window;

  // ---- Small helpers (inline: on the decode path) ---------------------------------------------
  int32_t num_groups() const { return static_cast<int32_t>(groups.size()); }

  // page = pos / bs, offset = pos % bs.
  void SplitPos(int64_t pos, int32_t* page, int32_t* off) const {
    if (bs_shift >= 0) {
      *page = static_cast<int32_t>(pos >> bs_shift);
      *off = static_cast<int32_t>(pos & bs_mask);
    } else {
      *page = static_cast<int32_t>(pos / bs);
      *off = static_cast<int32_t>(pos - static_cast<int64_t>(*page) * bs);
    }
  }
  // Pages a table of len tokens gains when n more are appended.
  int32_t NewPages(int32_t len, int32_t n) const {
    int32_t page, off;
    SplitPos(len, &page, &off);
    if (n == 1) return off == 0 ? 1 : 0;  // the decode step
    int32_t end_page, end_off;
    SplitPos(static_cast<int64_t>(len) + n, &end_page, &end_off);
    return (end_page + (end_off != 0)) - (page + (off != 0));
  }

  SeqRecord* Find(SeqId seq) const {
    auto it = seqs.find(seq);
    return it == seqs.end() ? nullptr : it->second;
  }

  static absl::Status NotFound(SeqId seq, const char* op) {
    return absl::NotFoundError(absl::StrCat(
        op, ": sequence ", seq, " is not known; add it with AddSequence or Fork first"));
  }
  static absl::Status Swapped(SeqId seq, const char* op) {
    return absl::FailedPreconditionError(
        absl::StrCat(op, ": sequence ", seq, " is swapped out; SwapIn it first"));
  }

  // ---- Blocks and pending CacheOps (inline: on the decode and swap paths) ----------------------
  // Registers an in-use block of pool (g, tier) under `hash` unless another block already holds it
  // (that one keeps serving lookups; this one stays private), and tells the prefix listener. The
  // block's parents[] and tokens[] must be set. True when registered.
  bool Publish(int32_t g, Tier tier, PoolState& pool, BlockId b, const BlockHash& hash) {
    if (!pool.alloc->TrySetHash(b, hash)) return false;
    if (prefix_listener != nullptr) EmitStored(g, tier, pool, b, hash);
    return true;
  }
  void EmitStored(int32_t g, Tier tier, const PoolState& pool, BlockId b, const BlockHash& hash);
  void EmitRemoved(int32_t g, Tier tier, const BlockHash& hash) {
    if (prefix_listener == nullptr) return;
    PrefixIndexEvent e;
    e.kind = PrefixIndexEvent::Kind::kRemoved;
    e.group = g;
    e.tier = tier;
    e.hash = hash;
    prefix_listener->OnPrefixIndexEvent(e);
  }
  void Pin(PoolState& pool, BlockId b) {
    absl::Status s = pool.alloc->AddRef(b);
    PAGEDKV_CHECK_MSG(s.ok(), "pin of a free block");
    ++pool.pins[b];
    pool.pinned.push_back(b);
  }
  // Allocates GPU blocks after the caller checked that they are available.
  void AllocateGpu(int32_t g, absl::Span<BlockId> out) {
    if (out.empty()) return;
    absl::Status s = groups[g].gpu.alloc->Allocate(out);
    PAGEDKV_CHECK_MSG(s.ok(), "GPU allocation failed after its check");
    if (!deferred_pins.empty()) PinDeferred();
  }
  void PinDeferred();  // pins the GPU blocks whose eviction offload the allocation recorded
  void Release(PoolState& pool, BlockId b, EvictionPriority priority) {
    absl::Status s = pool.alloc->Release(b, priority);
    PAGEDKV_CHECK_MSG(s.ok(), "release of a block the table does not hold");
  }
  void ReleaseTable(GroupState& G, BlockTable& t, EvictionPriority priority);
  BlockId ResolveGpuSource(const GroupState& G, BlockId b) const {
    const BlockId src = G.gpu.copy_src[b];
    return src == kInvalidBlockId ? b : src;
  }
  void RecordCopy(int32_t g, BlockId src, BlockId dst) {
    GroupState& G = groups[g];
    src = ResolveGpuSource(G, src);
    G.ops.copies.push_back({src, dst});
    G.gpu.copy_src[dst] = src;
    Pin(G.gpu, src);
    Pin(G.gpu, dst);
    copy_bytes += G.info.bytes_per_block;
    ++cow_copies;
  }
  void RecordSwapOut(int32_t g, BlockId gpu_block, BlockId host_block) {
    GroupState& G = groups[g];
    const BlockId src = ResolveGpuSource(G, gpu_block);
    G.ops.swap_out.push_back({src, host_block});
    Pin(G.gpu, src);
    Pin(G.host, host_block);
    swap_out_bytes += G.info.bytes_per_block;
  }
  void RecordSwapIn(int32_t g, BlockId host_block, BlockId gpu_block) {
    GroupState& G = groups[g];
    G.ops.swap_in.push_back({host_block, gpu_block});
    G.gpu.swap_in_dst[gpu_block] = 1;
    Pin(G.host, host_block);
    Pin(G.gpu, gpu_block);
    swap_in_bytes += G.info.bytes_per_block;
  }
  // Carries a page's hash and token ids from one block to another (hashed groups).
  void CopyMeta(const GroupState& G, const PoolState& from, BlockId fb, PoolState& to, BlockId tb) {
    if (!G.hashed) return;
    to.hashes[tb] = from.hashes[fb];
    to.parents[tb] = from.parents[fb];
    to.publisher[tb] = from.publisher[fb];
    std::memcpy(&to.tokens[static_cast<size_t>(tb) * bs],
                &from.tokens[static_cast<size_t>(fb) * bs], sizeof(TokenId) * bs);
  }

  // ---- Prefix index (prefix_index.cc) ----------------------------------------------------------
  struct PrefixHit {
    BlockId block;
    bool on_host;
    BlockHash hash;
  };
  // Records tokens[i] as the token id of position start + i of table t (GPU; hashed groups).
  void WriteTokens(GroupState& G, BlockTable& t, int32_t start, absl::Span<const TokenId> tokens);
  // Hashes the table's pages from rec.num_hashed_pages up to the last full computed page and
  // publishes each unless another block already holds its hash.
  void PublishComputed(SeqRecord& rec) {
    if (!prefix_caching) return;
    int32_t full_pages, unused;
    SplitPos(rec.num_computed, &full_pages, &unused);
    if (rec.num_hashed_pages < full_pages) PublishPages(rec, full_pages);
  }
  void PublishPages(SeqRecord& rec, int32_t full_pages);
  // The keys of a sequence mixed into its page hashes. InvalidArgument for a missing encoder key
  // on a cross-attention model with prefix caching.
  absl::StatusOr<uint64_t> HashKey(const SequenceOptions& options, SeqId seq, const char* op) const;
  bool TokensEqual(const PoolState& pool, BlockId b, const TokenId* tokens) const;
  // Leading full pages of `prompt` found in the cache (GPU first, then host), confirmed by token
  // ids. Never the page holding the prompt's last token.
  void MatchPrefix(absl::Span<const TokenId> prompt, uint64_t hash_key,
                   std::vector<PrefixHit>* hits, int32_t* eligible_pages) const;

  // ---- Growth and copy-on-write (sequences.cc) -------------------------------------------------
  // Blocks group g needs to append n tokens to t, and blocks the window release makes available.
  void PlanAppendGroup(const GroupState& G, const BlockTable& t, int32_t n, int64_t* need,
                       int64_t* freed) const;
  // Exact blocks group g needs (and frees by window release) for one token appended to each of
  // scratch_recs, as the appends run one after another (forks sharing a partial last page copy
  // it once fewer than they are when no other table shares it).
  void PlanDecodeBatch(int32_t g, int64_t* need, int64_t* freed);
  // Appends after the caller checked capacity and ran ReleaseWindow.
  void GrowGroup(int32_t g, const SeqRecord& rec, BlockTable& t, absl::Span<const TokenId> tokens);
  absl::Status CheckAppendCapacity(SeqId seq, int32_t n, absl::Span<const int64_t> need,
                                   absl::Span<const int64_t> freed) const;

  // ---- Swap and the host second level (swap.cc) ------------------------------------------------
  // Known, distinct sequences in the expected residency (SwapOut, SwapIn, CanSwapIn).
  absl::Status ValidateSwapSet(absl::Span<const SeqId> ids, bool want_swapped, const char* op,
                               std::vector<SeqRecord*>* out) const;
  // The distinct live pages of `recs`' tables in group g (blocks of `pool`), in first-seen
  // order, numbered in pool.move_index; ClearMoveIndex resets those entries.
  void CollectDistinct(const PoolState& pool, int32_t g, absl::Span<SeqRecord* const> recs,
                       std::vector<BlockId>* distinct) const;
  static void ClearMoveIndex(const PoolState& pool, absl::Span<const BlockId> distinct);
  // Moves the live pages of `recs`' tables in group g between tiers; see swap.cc.
  int64_t MovePages(int32_t g, absl::Span<SeqRecord* const> recs, bool to_host,
                    absl::Span<const BlockId> distinct, Tier new_tier);
  // A cached GPU page of group g is being reclaimed: keep it in the host tier when there is room.
  void OnGpuEvict(int32_t g, BlockId block, const BlockHash& hash);
  // A cached host page of group g is being reclaimed: queue it for the remote tier when it earned
  // it and its bytes are known to be written (remote_tier.cc).
  void OnHostEvict(int32_t g, BlockId block, const BlockHash& hash);
  // After the local prefix hits of group 0, the prompt's next pages from the remote tier: fills
  // `pages` with verified pages (at most max_pages) whose token ids match the prompt.
  void LookupRemote(absl::Span<const TokenId> prompt, uint64_t hash_key, size_t first_page,
                    const BlockHash& parent, int32_t max_pages, std::vector<RemoteTier::Hit>* pages,
                    std::vector<BlockHash>* hashes);
  // Stages a verified remote page in a fresh host block of group g (published there) and returns
  // the block. `parent`: the hash of the page before it in the prompt.
  BlockId StageRemotePage(int32_t g, const RemoteTier::Hit& page, const BlockHash& hash,
                          const BlockHash& parent);

  // ---- Sliding windows (windows_cross.cc) ------------------------------------------------------
  // Pages wholly before the window of the first query of an append to a table of `len` tokens.
  int32_t WindowReleasePages(const GroupState& G, int32_t len) const;
  void ReleaseWindow(GroupState& G, const SeqRecord& rec, BlockTable& t);

  // ---- Statistics (block_manager.cc) -----------------------------------------------------------
  SequenceStats SeqStats(const SeqRecord& rec) const;
};

}  // namespace pagedkv

#endif  // PAGEDKV_BLOCK_MANAGER_INTERNAL_MANAGER_STATE_H_
