// BlockManager implementation. Layout of the state:
//   groups_[g].gpu / .host   one PoolState per (group, tier): the BlockAllocator (refcounts, free
//                            list, LRU, hash index) plus per-block content metadata (page hash and
//                            token ids, kept for prefix-cached groups) and pending-op pins.
//   seqs_                    SeqId -> SeqRecord* (records from an ObjectPool), one BlockTable per
//                            group in each record.
// Reference accounting (CheckInvariants verifies it): for every block of every pool,
//   allocator ref == (table entries naming it) + pins[block]
// where pins are held by the pending CacheOps until TakeCacheOps(). Prefix-cache pages that no
// table names have ref 0 and live on the allocator's LRU (cached), on either tier.
#include "pagedkv/block_manager/block_manager.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <numeric>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "block_manager/internal/block_hasher.h"
#include "pagedkv/allocator/object_pool.h"
#include "pagedkv/core/absl_compat.h"
#include "pagedkv/core/check.h"
#include "pagedkv/core/logging.h"
#include "pagedkv/core/status.h"

namespace pagedkv {
namespace {

using internal::HashPage;
using internal::kRootHash;

int32_t CeilDiv(int64_t a, int32_t b) { return static_cast<int32_t>((a + b - 1) / b); }

// Content metadata, refcounts and pins of one pool (one group on one tier).
struct PoolState {
  std::unique_ptr<BlockAllocator> alloc;  // null for a missing host tier
  // [num_blocks] hash of the full page a block holds; meaningful for full pages of hashed groups.
  std::vector<BlockHash> hashes;
  // [num_blocks * block_size] token ids of each block's slots; hashed groups only.
  std::vector<TokenId> tokens;
  // [num_blocks] references held by pending CacheOps, and every pin in order (one entry each).
  std::vector<uint32_t> pins;
  std::vector<BlockId> pinned;
  // GPU pools only: [num_blocks] for the destination of a pending copy, its source (kInvalidBlockId
  // otherwise); and whether the block is the destination of a pending swap-in.
  std::vector<BlockId> copy_src;
  std::vector<uint8_t> swap_in_dst;

  bool valid() const { return alloc != nullptr; }
  // References held by block tables.
  uint32_t table_refs(BlockId b) const { return alloc->ref_count(b) - pins[b]; }
};

// One sequence. Lifecycle on BlockManager (unknown -> resident <-> swapped -> unknown).
struct SeqRecord {
  SeqId id = 0;
  int32_t num_tokens = 0;  // tokens of the self-attention tables
  bool swapped = false;    // tables name host blocks
  bool has_cross = false;  // SetCrossAttention was called
  EvictionPriority priority = EvictionPriority::kNormal;
  uint64_t extra_key = 0;
  uint64_t stamp = 0;                         // scratch for duplicate detection in batch calls
  absl::InlinedVector<BlockTable, 2> tables;  // one per group
};

}  // namespace

// Told by a GPU allocator about evicted prefix-cache pages; forwards to the manager.
class GroupEvictionListener;

struct BlockManager::Impl {
  struct GroupState {
    GroupInfo info;
    bool cross = false;
    int32_t window_tokens = 0;  // > 0 for sliding groups
    bool hashed = false;        // prefix caching applies to this group
    PoolState gpu;
    PoolState host;
    GroupCacheOps ops;
    BatchLayout layout;  // buffer of the manager-owned BuildBatch
    std::unique_ptr<EvictionListener> listener;
  };

  class Listener : public EvictionListener {
   public:
    Listener(Impl* impl, int32_t group) : impl_(impl), group_(group) {}
    void OnEvict(BlockId block, const BlockHash& hash) override {
      impl_->OnGpuEvict(group_, block, hash);
    }

   private:
    Impl* impl_;
    int32_t group_;
  };

  ModelSpec spec;
  CacheConfig config;
  int32_t bs = 16;
  // Power-of-two block sizes split a token position with a shift and a mask (the decode path does
  // this per sequence; an integer division costs several times more).
  int32_t bs_shift = -1;  // log2(bs) when bs is a power of two, else -1
  int32_t bs_mask = 0;

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
  bool prefix_caching = false;
  bool host_tier = false;
  int32_t cross_group = -1;
  std::vector<GroupState> groups;
  std::vector<LayerLocation> layer_locations;

  ObjectPool<SeqRecord> records;
  absl::flat_hash_map<SeqId, SeqRecord*> seqs;
  int64_t num_swapped = 0;
  uint64_t stamp = 0;

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
  std::vector<BlockId> scratch_blocks;
  std::vector<int64_t> scratch_need;
  std::vector<int64_t> scratch_freed;

  // ---- Small helpers --------------------------------------------------------------------------
  int32_t num_groups() const { return static_cast<int32_t>(groups.size()); }

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

  // Registers an in-use block under `hash` unless another block already holds it (that one keeps
  // serving lookups; this one stays private). Peeks first: a failed SetHash builds an error
  // message, far too slow for the decode path where identical pages are common.
  static void TrySetHash(PoolState& pool, BlockId b, const BlockHash& hash) {
    if (pool.alloc->Peek(hash).has_value()) return;
    absl::Status s = pool.alloc->SetHash(b, hash);
    PAGEDKV_DCHECK_MSG(s.ok(), "SetHash of an in-use unhashed block failed");
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
    for (const auto& [pg, b] : deferred_pins) Pin(groups[pg].gpu, b);
    deferred_pins.clear();
  }

  void Release(PoolState& pool, BlockId b, EvictionPriority priority) {
    absl::Status s = pool.alloc->Release(b, priority);
    PAGEDKV_CHECK_MSG(s.ok(), "release of a block the table does not hold");
  }

  void ReleaseTable(GroupState& G, BlockTable& t, EvictionPriority priority) {
    PoolState& pool = t.tier_ == Tier::kHost ? G.host : G.gpu;
    for (int32_t k = t.first_live_page_; k < t.num_pages(); ++k)
      Release(pool, t.blocks_[k], priority);
    t.blocks_.clear();
    t.num_tokens_ = 0;
    t.first_live_page_ = 0;
  }

  // ---- Pending operations ---------------------------------------------------------------------
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

  // Moves the live pages of `recs`' tables in group g from pool `from` to pool `to` (a swap):
  // allocates one `to` block per distinct page (`distinct`, in first-seen order; `index` maps each
  // to its position), records the copy, carries metadata and hash over, and repoints every table,
  // so a page shared by several tables moves once and keeps its sharing. Space in `to` was
  // checked by the caller. Returns the number of pages moved.
  int64_t MovePages(int32_t g, absl::Span<SeqRecord* const> recs, bool to_host,
                    absl::Span<const BlockId> distinct,
                    absl::flat_hash_map<BlockId, BlockId>& index, Tier new_tier) {
    GroupState& G = groups[g];
    PoolState& from = to_host ? G.gpu : G.host;
    PoolState& to = to_host ? G.host : G.gpu;
    std::vector<BlockId> dst(distinct.size());
    if (to_host) {
      if (!dst.empty()) {
        absl::Status st = to.alloc->Allocate(absl::MakeSpan(dst));
        PAGEDKV_CHECK_MSG(st.ok(), "host allocation failed after its check");
      }
    } else {
      AllocateGpu(g, absl::MakeSpan(dst));
    }
    for (size_t i = 0; i < dst.size(); ++i) {
      const BlockId src = distinct[i];
      index[src] = static_cast<BlockId>(i);
      if (to_host) {
        RecordSwapOut(g, src, dst[i]);
      } else {
        RecordSwapIn(g, src, dst[i]);
      }
      CopyMeta(G, from, src, to, dst[i]);
      if (G.hashed && from.alloc->is_hashed(src)) TrySetHash(to, dst[i], from.hashes[src]);
    }
    std::vector<uint8_t> taken(dst.size(), 0);  // the first table takes Allocate's reference
    for (SeqRecord* rec : recs) {
      BlockTable& t = rec->tables[g];
      for (int32_t k = t.first_live_page_; k < t.num_pages(); ++k) {
        const BlockId i = index[t.blocks_[k]];
        if (taken[i]) {
          absl::Status st = to.alloc->AddRef(dst[i]);
          PAGEDKV_CHECK_MSG(st.ok(), "a just-allocated block vanished");
        }
        taken[i] = 1;
        Release(from, t.blocks_[k], rec->priority);
        t.blocks_[k] = dst[i];
      }
      t.tier_ = new_tier;
    }
    return static_cast<int64_t>(dst.size());
  }

  void CopyMeta(const GroupState& G, const PoolState& from, BlockId fb, PoolState& to, BlockId tb) {
    if (!G.hashed) return;
    to.hashes[tb] = from.hashes[fb];
    std::memcpy(&to.tokens[static_cast<size_t>(tb) * bs],
                &from.tokens[static_cast<size_t>(fb) * bs], sizeof(TokenId) * bs);
  }

  // A cached GPU page of group g is being reclaimed: keep it in the host tier (second cache level)
  // when there is room, recording the copy. Best effort: never fails the calling operation.
  void OnGpuEvict(int32_t g, BlockId block, const BlockHash& hash) {
    GroupState& G = groups[g];
    if (!G.host.valid() || !G.hashed) return;
    if (G.host.alloc->Peek(hash).has_value()) return;  // already kept
    if (G.host.alloc->num_available() == 0) return;
    absl::StatusOr<BlockId> h = G.host.alloc->AllocateOne();
    if (!h.ok()) return;
    CopyMeta(G, G.gpu, block, G.host, *h);
    if (!G.host.alloc->SetHash(*h, hash).ok()) {
      Release(G.host, *h, EvictionPriority::kNormal);
      return;
    }
    // The allocation's reference is the host pin; the GPU block is pinned after Allocate returns.
    G.ops.swap_out.push_back({block, *h});
    ++G.host.pins[*h];
    G.host.pinned.push_back(*h);
    deferred_pins.emplace_back(g, block);
    swap_out_bytes += G.info.bytes_per_block;
    ++host_offloads;
    PAGEDKV_LOG_TRACE("offload group={} gpu_block={} host_block={}", g, block, *h);
  }

  // ---- Token metadata and hashing -------------------------------------------------------------
  // Records tokens[i] as the token of position start + i of table t (GPU), hashing every page
  // that becomes full.
  void WriteTokens(GroupState& G, const SeqRecord& rec, BlockTable& t, int32_t start,
                   absl::Span<const TokenId> tokens) {
    if (!G.hashed) return;
    PoolState& pool = G.gpu;
    for (size_t i = 0; i < tokens.size(); ++i) {
      int32_t page, off;
      SplitPos(static_cast<int64_t>(start) + static_cast<int64_t>(i), &page, &off);
      const BlockId b = t.blocks_[page];
      pool.tokens[static_cast<size_t>(b) * bs + off] = tokens[i];
      if (off == bs - 1) HashFullPage(G, rec, t, page);
    }
  }

  void HashFullPage(GroupState& G, const SeqRecord& rec, BlockTable& t, int32_t page) {
    PoolState& pool = G.gpu;
    const BlockId b = t.blocks_[page];
    const BlockHash& parent = page == 0 ? kRootHash : pool.hashes[t.blocks_[page - 1]];
    const BlockHash h = HashPage(
        parent, absl::MakeConstSpan(&pool.tokens[static_cast<size_t>(b) * bs], bs), rec.extra_key);
    pool.hashes[b] = h;
    // AlreadyExists: another page holds the same content and serves lookups; keep this one private.
    TrySetHash(pool, b, h);
  }

  bool TokensEqual(const PoolState& pool, BlockId b, const TokenId* tokens) const {
    return std::memcmp(&pool.tokens[static_cast<size_t>(b) * bs], tokens, sizeof(TokenId) * bs) ==
           0;
  }

  // ---- Prefix matching ------------------------------------------------------------------------
  struct PrefixHit {
    BlockId block;
    bool on_host;
    BlockHash hash;
  };
  // Leading full pages of `prompt` found in the cache (GPU first, then host), confirmed by token
  // ids. Never the page holding the prompt's last token.
  void MatchPrefix(absl::Span<const TokenId> prompt, uint64_t extra_key, bool count_stats,
                   std::vector<PrefixHit>* hits, int32_t* eligible_pages) const {
    hits->clear();
    *eligible_pages = 0;
    if (!prefix_caching || prompt.empty()) return;
    const int32_t g = 0;  // prefix caching implies group 0 is the only full group
    const GroupState& G = groups[g];
    if (!G.hashed) return;
    const int32_t max_pages = static_cast<int32_t>((prompt.size() - 1) / bs);
    *eligible_pages = max_pages;
    BlockHash parent = kRootHash;
    for (int32_t k = 0; k < max_pages; ++k) {
      const TokenId* toks = prompt.data() + static_cast<size_t>(k) * bs;
      const BlockHash h = HashPage(parent, absl::MakeConstSpan(toks, bs), extra_key);
      std::optional<BlockId> b = count_stats ? G.gpu.alloc->Lookup(h) : G.gpu.alloc->Peek(h);
      if (b.has_value() && TokensEqual(G.gpu, *b, toks)) {
        hits->push_back({*b, false, h});
      } else if (G.host.valid()) {
        std::optional<BlockId> hb = G.host.alloc->Peek(h);
        if (!hb.has_value() || !TokensEqual(G.host, *hb, toks)) break;
        hits->push_back({*hb, true, h});
      } else {
        break;
      }
      parent = h;
    }
  }

  // ---- Append planning ------------------------------------------------------------------------
  // Pages wholly before the window of the first query of an append to a table of `len` tokens.
  int32_t WindowReleasePages(const GroupState& G, int32_t len) const {
    if (G.window_tokens <= 0) return 0;
    const int64_t first_needed = static_cast<int64_t>(len) + 1 - G.window_tokens;
    if (first_needed <= 0) return 0;
    return static_cast<int32_t>(first_needed / bs);
  }

  // Blocks group g needs to append n tokens to t, and blocks the window release makes available.
  void PlanAppendGroup(const GroupState& G, const BlockTable& t, int32_t n, int64_t* need,
                       int64_t* freed) const {
    if (n == 0) return;
    const int32_t len = t.num_tokens_;
    const int32_t release_to = WindowReleasePages(G, len);
    for (int32_t k = t.first_live_page_; k < release_to && k < t.num_pages(); ++k) {
      if (G.gpu.alloc->ref_count(t.blocks_[k]) == 1) ++*freed;
    }
    int32_t page, off;
    SplitPos(len, &page, &off);
    if (off != 0 && G.gpu.table_refs(t.blocks_[page]) > 1) ++*need;
    *need += NewPages(len, n);
  }

  void ReleaseWindow(GroupState& G, const SeqRecord& rec, BlockTable& t) {
    const int32_t release_to = std::min(WindowReleasePages(G, t.num_tokens_), t.num_pages());
    for (int32_t k = t.first_live_page_; k < release_to; ++k) {
      Release(G.gpu, t.blocks_[k], rec.priority);
      t.blocks_[k] = kInvalidBlockId;
    }
    if (release_to > t.first_live_page_) {
      PAGEDKV_LOG_TRACE("window release seq={} group={} pages=[{},{})", rec.id,
                        G.info.group.group_id, t.first_live_page_, release_to);
      t.first_live_page_ = release_to;
    }
  }

  // Appends after the caller checked capacity and ran ReleaseWindow.
  void GrowGroup(int32_t g, const SeqRecord& rec, BlockTable& t, absl::Span<const TokenId> tokens) {
    GroupState& G = groups[g];
    const int32_t n = static_cast<int32_t>(tokens.size());
    if (n == 0) return;
    const int32_t len = t.num_tokens_;
    int32_t page, off;
    SplitPos(len, &page, &off);
    if (off != 0) {
      const BlockId last = t.blocks_[page];
      if (G.gpu.table_refs(last) > 1) {
        BlockId copy;
        AllocateGpu(g, absl::MakeSpan(&copy, 1));
        RecordCopy(g, last, copy);
        CopyMeta(G, G.gpu, last, G.gpu, copy);
        Release(G.gpu, last, rec.priority);
        t.blocks_[page] = copy;
        PAGEDKV_LOG_TRACE("cow seq={} group={} page={} src={} dst={}", rec.id, g, page, last, copy);
      } else if (G.hashed && G.gpu.alloc->is_hashed(last)) {
        // A rewound full page is about to be overwritten: it no longer holds its hashed content.
        absl::Status s = G.gpu.alloc->Unhash(last);
        PAGEDKV_CHECK_MSG(s.ok(), "unhash of a hashed in-use block");
      }
    }
    const int32_t new_pages = NewPages(len, n);
    if (new_pages > 0) {
      const size_t old = t.blocks_.size();
      t.blocks_.resize(old + new_pages);
      AllocateGpu(g, absl::MakeSpan(t.blocks_.data() + old, new_pages));
    }
    WriteTokens(G, rec, t, len, tokens);
    t.num_tokens_ = len + n;
  }

  absl::Status CheckAppendCapacity(SeqId seq, int32_t n, absl::Span<const int64_t> need,
                                   absl::Span<const int64_t> freed) const {
    for (int32_t g = 0; g < num_groups(); ++g) {
      const int64_t avail = groups[g].gpu.alloc->num_available() + freed[g];
      if (need[g] > avail) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "sequence ", seq, ": cannot append ", n, " tokens, group ", g, " has ", avail,
            " free + cached blocks < ", need[g], " needed; free, rewind or swap out a sequence"));
      }
    }
    return absl::OkStatus();
  }

  // ---- Stats helpers --------------------------------------------------------------------------
  SequenceStats SeqStats(const SeqRecord& rec) const {
    SequenceStats s;
    s.seq_id = rec.id;
    s.num_tokens = rec.num_tokens;
    s.swapped_out = rec.swapped;
    for (int32_t g = 0; g < num_groups(); ++g) {
      const BlockTable& t = rec.tables[g];
      if (groups[g].cross) s.num_encoder_tokens = t.num_tokens_;
      const PoolState& pool = rec.swapped ? groups[g].host : groups[g].gpu;
      for (int32_t k = t.first_live_page_; k < t.num_pages(); ++k) {
        ++s.num_pages;
        if (pool.table_refs(t.blocks_[k]) > 1) ++s.num_shared_pages;
      }
    }
    return s;
  }
};

// ---- Construction -------------------------------------------------------------------------------

BlockManager::BlockManager(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BlockManager::~BlockManager() = default;

absl::StatusOr<std::unique_ptr<BlockManager>> BlockManager::Create(const ModelSpec& spec,
                                                                   const CacheConfig& config) {
  PAGEDKV_RETURN_IF_ERROR(spec.Validate());
  PAGEDKV_RETURN_IF_ERROR(config.Validate());
  auto impl = std::make_unique<Impl>();
  impl->spec = spec;
  impl->config = config;
  const int32_t bs = config.block_size_tokens;
  impl->bs = bs;
  if ((bs & (bs - 1)) == 0) {
    impl->bs_shift = __builtin_ctz(static_cast<unsigned>(bs));
    impl->bs_mask = bs - 1;
  }
  const std::vector<KvGroup> kv_groups = spec.Groups();
  if (kv_groups.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("model ", spec.name, " has no layer with storage"));
  }
  bool all_full = true;
  uint64_t bytes_all_groups = 0;
  std::vector<uint64_t> bpb(kv_groups.size());
  for (size_t g = 0; g < kv_groups.size(); ++g) {
    const KvGroup& kg = kv_groups[g];
    if (kg.kind == AttentionKind::kSliding) all_full = false;
    bpb[g] = static_cast<uint64_t>(kg.layers.size()) * spec.BytesPerTokenPerLayer() * bs;
    bytes_all_groups += bpb[g];
  }
  // Group 0 must be the full-attention group for prefix caching (MatchPrefix relies on it).
  impl->prefix_caching =
      config.enable_prefix_caching && all_full && kv_groups[0].kind == AttentionKind::kFull;

  auto blocks_for = [&](int64_t num_blocks, uint64_t budget_bytes, const char* tier,
                        bool required) -> absl::StatusOr<uint32_t> {
    uint64_t n = 0;
    if (num_blocks > 0) {
      n = static_cast<uint64_t>(num_blocks);
    } else if (budget_bytes > 0) {
      n = budget_bytes / bytes_all_groups;
      if (n == 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            tier, " budget of ", budget_bytes, " bytes holds no block of every group (",
            bytes_all_groups, " bytes); raise the budget or lower block_size_tokens"));
      }
    } else if (required) {
      return absl::InvalidArgumentError(
          absl::StrCat("no ", tier,
                       " pool size: set gpu_num_blocks or gpu_budget_bytes (the block manager does "
                       "not query device memory; compute the budget with ComputeSizing)"));
    }
    if (n >= kInvalidBlockId) {
      return absl::InvalidArgumentError(
          absl::StrCat(tier, " pool of ", n, " blocks exceeds the block id range"));
    }
    return static_cast<uint32_t>(n);
  };
  PAGEDKV_ASSIGN_OR_RETURN(const uint32_t gpu_blocks,
                           blocks_for(config.gpu_num_blocks, config.gpu_budget_bytes, "GPU", true));
  PAGEDKV_ASSIGN_OR_RETURN(
      const uint32_t host_blocks,
      blocks_for(config.host_num_blocks, config.host_budget_bytes, "host", false));
  impl->host_tier = host_blocks > 0;

  impl->groups.resize(kv_groups.size());
  for (size_t g = 0; g < kv_groups.size(); ++g) {
    Impl::GroupState& G = impl->groups[g];
    G.info.group = kv_groups[g];
    G.info.bytes_per_block = bpb[g];
    G.info.gpu_num_blocks = gpu_blocks;
    G.info.host_num_blocks = host_blocks;
    G.cross = kv_groups[g].kind == AttentionKind::kCross;
    G.window_tokens = kv_groups[g].kind == AttentionKind::kSliding ? kv_groups[g].window_tokens : 0;
    G.hashed = impl->prefix_caching && kv_groups[g].kind == AttentionKind::kFull;
    if (G.cross) impl->cross_group = static_cast<int32_t>(g);
    G.ops.group = static_cast<int32_t>(g);
    G.ops.bytes_per_block = bpb[g];

    auto make_pool = [&](Tier tier, uint32_t n, double watermark, PoolState* pool) -> absl::Status {
      PoolOptions o;
      o.tier = tier;
      o.bytes_per_block = bpb[g];
      o.num_blocks = n;
      o.strict = config.strict_gpu;
      o.huge_pages = config.host_huge_pages;
      o.name = absl::StrCat(spec.name, "/group", g, "/", AbslView(TierName(tier)));
      PAGEDKV_ASSIGN_OR_RETURN(std::unique_ptr<MemoryPool> mp, MemoryPool::Create(o));
      BlockAllocator::Options ao;
      ao.watermark = watermark;
      PAGEDKV_ASSIGN_OR_RETURN(pool->alloc, BlockAllocator::Create(std::move(mp), ao));
      if (G.hashed) {
        pool->hashes.resize(n);
        pool->tokens.resize(static_cast<size_t>(n) * bs);
      }
      pool->pins.assign(n, 0);
      return absl::OkStatus();
    };
    PAGEDKV_RETURN_IF_ERROR(make_pool(config.gpu_tier, gpu_blocks, config.watermark, &G.gpu));
    G.gpu.copy_src.assign(gpu_blocks, kInvalidBlockId);
    G.gpu.swap_in_dst.assign(gpu_blocks, 0);
    if (impl->host_tier) {
      PAGEDKV_RETURN_IF_ERROR(make_pool(Tier::kHost, host_blocks, 0.0, &G.host));
    }
  }
  // Listeners last: the groups vector no longer moves.
  for (size_t g = 0; g < impl->groups.size(); ++g) {
    Impl::GroupState& G = impl->groups[g];
    if (impl->host_tier && G.hashed) {
      G.listener = std::make_unique<Impl::Listener>(impl.get(), static_cast<int32_t>(g));
      G.gpu.alloc->SetEvictionListener(G.listener.get());
    }
  }
  impl->layer_locations.assign(spec.num_layers(), LayerLocation{});
  for (size_t g = 0; g < kv_groups.size(); ++g) {
    for (size_t i = 0; i < kv_groups[g].layers.size(); ++i) {
      impl->layer_locations[kv_groups[g].layers[i]] = {static_cast<int32_t>(g),
                                                       static_cast<int32_t>(i)};
    }
  }
  for (int32_t l = 0; l < spec.num_layers(); ++l) {
    if (spec.layers[l].kind == AttentionKind::kShares) {
      impl->layer_locations[l] = impl->layer_locations[spec.StorageLayer(l)];
    }
  }
  PAGEDKV_LOG_DEBUG(
      "block manager model={} groups={} block_size={} gpu_blocks={} host_blocks={} "
      "prefix_caching={}",
      spec.name, kv_groups.size(), bs, gpu_blocks, host_blocks, impl->prefix_caching);
  return std::unique_ptr<BlockManager>(new BlockManager(std::move(impl)));
}

// ---- Shape --------------------------------------------------------------------------------------

int32_t BlockManager::block_size() const { return impl_->bs; }
int32_t BlockManager::num_groups() const { return impl_->num_groups(); }
const GroupInfo& BlockManager::group_info(int32_t group) const {
  PAGEDKV_DCHECK(group >= 0 && group < num_groups());
  return impl_->groups[group].info;
}
absl::StatusOr<LayerLocation> BlockManager::LocateLayer(int32_t layer) const {
  if (layer < 0 || layer >= static_cast<int32_t>(impl_->layer_locations.size())) {
    return absl::InvalidArgumentError(
        absl::StrCat("layer ", layer, " outside [0, ", impl_->layer_locations.size(), ")"));
  }
  return impl_->layer_locations[layer];
}
bool BlockManager::prefix_caching_enabled() const { return impl_->prefix_caching; }
bool BlockManager::has_host_tier() const { return impl_->host_tier; }
MemoryPool& BlockManager::gpu_pool(int32_t group) const {
  return impl_->groups[group].gpu.alloc->pool();
}
MemoryPool* BlockManager::host_pool(int32_t group) const {
  const PoolState& p = impl_->groups[group].host;
  return p.valid() ? &p.alloc->pool() : nullptr;
}
const BlockAllocator& BlockManager::gpu_allocator(int32_t group) const {
  return *impl_->groups[group].gpu.alloc;
}
const BlockAllocator* BlockManager::host_allocator(int32_t group) const {
  return impl_->groups[group].host.alloc.get();
}

// ---- Admission ----------------------------------------------------------------------------------

AdmitInfo BlockManager::CanAdmit(absl::Span<const TokenId> prompt,
                                 const SequenceOptions& options) const {
  Impl& s = *impl_;
  std::vector<Impl::PrefixHit> hits;
  int32_t eligible = 0;
  s.MatchPrefix(prompt, options.extra_key, /*count_stats=*/false, &hits, &eligible);
  AdmitInfo info;
  info.can_admit = true;
  int32_t gpu_hits = 0;
  int32_t cached_gpu_hits = 0;  // hits on unreferenced pages: taken, so no longer available
  for (const Impl::PrefixHit& h : hits) {
    if (h.on_host) {
      ++info.num_host_hit_pages;
    } else {
      ++gpu_hits;
      if (s.groups[0].gpu.alloc->ref_count(h.block) == 0) ++cached_gpu_hits;
    }
  }
  const int32_t pages = CeilDiv(static_cast<int64_t>(prompt.size()), s.bs);
  for (int32_t g = 0; g < s.num_groups(); ++g) {
    const Impl::GroupState& G = s.groups[g];
    if (G.cross) continue;
    const int32_t new_blocks = G.hashed ? pages - gpu_hits : pages;
    info.num_new_blocks += new_blocks;
    const int32_t need = new_blocks + (G.hashed ? cached_gpu_hits : 0);
    if (!G.gpu.alloc->CanAllocate(static_cast<uint32_t>(need))) info.can_admit = false;
  }
  info.num_cached_tokens = static_cast<int32_t>(hits.size()) * s.bs;
  return info;
}

absl::StatusOr<AdmitInfo> BlockManager::AddSequence(SeqId seq, absl::Span<const TokenId> prompt,
                                                    const SequenceOptions& options) {
  Impl& s = *impl_;
  if (s.seqs.contains(seq)) {
    return absl::AlreadyExistsError(absl::StrCat(
        "AddSequence: sequence ", seq, " already exists; Free it first or pick a new id"));
  }
  if (prompt.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max() / 2)) {
    return absl::InvalidArgumentError(absl::StrCat("AddSequence: sequence ", seq, ": prompt of ",
                                                   prompt.size(), " tokens is too long"));
  }
  std::vector<Impl::PrefixHit> hits;
  int32_t eligible = 0;
  // Peek first: a failed call must not count hits.
  s.MatchPrefix(prompt, options.extra_key, /*count_stats=*/false, &hits, &eligible);
  int32_t gpu_hits = 0, cached_gpu_hits = 0, host_hits = 0;
  for (const Impl::PrefixHit& h : hits) {
    if (h.on_host) {
      ++host_hits;
    } else {
      ++gpu_hits;
      if (s.groups[0].gpu.alloc->ref_count(h.block) == 0) ++cached_gpu_hits;
    }
  }
  const int32_t pages = CeilDiv(static_cast<int64_t>(prompt.size()), s.bs);
  int32_t total_new = 0;
  for (int32_t g = 0; g < s.num_groups(); ++g) {
    const Impl::GroupState& G = s.groups[g];
    if (G.cross) continue;
    const int32_t new_blocks = G.hashed ? pages - gpu_hits : pages;
    total_new += new_blocks;
    const int64_t need = new_blocks + (G.hashed ? cached_gpu_hits : 0);
    const uint32_t avail = G.gpu.alloc->num_available();
    if (need > avail) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "AddSequence: sequence ", seq, ": prompt of ", prompt.size(), " tokens needs ", need,
          " blocks in group ", g, " (", gpu_hits, " prefix pages cached), ", avail,
          " free + cached available; free or swap out a sequence, or wait"));
    }
  }

  // Mutate. Take the GPU hits and pin the host hits before allocating, so that evictions by the
  // allocation can reach neither.
  if (!hits.empty()) {
    // Count the lookups the allocator would have seen.
    for (const Impl::PrefixHit& h : hits) {
      if (!h.on_host) (void)s.groups[0].gpu.alloc->Lookup(h.hash);
    }
  }
  SeqRecord* rec = s.records.New();
  rec->id = seq;
  rec->extra_key = options.extra_key;
  rec->priority = options.priority;
  rec->tables.resize(s.num_groups());
  for (int32_t g = 0; g < s.num_groups(); ++g) {
    Impl::GroupState& G = s.groups[g];
    if (G.cross) continue;
    BlockTable& t = rec->tables[g];
    t.blocks_.resize(pages);
    int32_t first_new = 0;
    if (G.hashed) {
      for (const Impl::PrefixHit& h : hits) {
        if (h.on_host) {
          // Held until its swap-in is recorded (which pins it until TakeCacheOps).
          absl::Status st = G.host.alloc->AddRef(h.block);
          PAGEDKV_CHECK_MSG(st.ok(), "prefix hit on a free host block");
        } else {
          absl::Status st = G.gpu.alloc->AddRef(h.block);
          PAGEDKV_CHECK_MSG(st.ok(), "prefix hit on a free block");
        }
      }
      first_new = gpu_hits;
    }
    // Hits come first in page order; GPU hits may be followed by host hits (never the reverse,
    // but handle any interleaving). Allocate every non-GPU-hit page in one call.
    std::vector<BlockId>& fresh = s.scratch_blocks;
    fresh.resize(pages - first_new);
    s.AllocateGpu(g, absl::MakeSpan(fresh));
    size_t next = 0;
    for (int32_t k = 0; k < pages; ++k) {
      if (G.hashed && k < static_cast<int32_t>(hits.size()) && !hits[k].on_host) {
        t.blocks_[k] = hits[k].block;
        continue;
      }
      const BlockId b = fresh[next++];
      t.blocks_[k] = b;
      if (G.hashed && k < static_cast<int32_t>(hits.size())) {
        // Host hit: copy the page back; the GPU copy is registered under the same hash.
        const BlockId hb = hits[k].block;
        s.RecordSwapIn(g, hb, b);
        s.CopyMeta(G, G.host, hb, G.gpu, b);
        Impl::TrySetHash(G.gpu, b, hits[k].hash);
        s.Release(G.host, hb, EvictionPriority::kNormal);
      }
    }
    t.num_tokens_ = static_cast<int32_t>(prompt.size());
    if (G.hashed) {
      const int32_t start = static_cast<int32_t>(hits.size()) * s.bs;
      s.WriteTokens(G, *rec, t, start, prompt.subspan(start));
    }
  }
  rec->num_tokens = static_cast<int32_t>(prompt.size());
  s.seqs.emplace(seq, rec);
  s.prefix_query_pages += eligible;
  s.prefix_hit_pages += hits.size();
  s.prefix_host_hit_pages += host_hits;
  PAGEDKV_LOG_TRACE("add seq={} tokens={} pages={} gpu_hits={} host_hits={} new_blocks={}", seq,
                    prompt.size(), pages, gpu_hits, host_hits, total_new);
  AdmitInfo info;
  info.can_admit = true;
  info.num_cached_tokens = static_cast<int32_t>(hits.size()) * s.bs;
  info.num_new_blocks = total_new;
  info.num_host_hit_pages = host_hits;
  PAGEDKV_DCHECK_OK_EXPENSIVE(CheckInvariants());
  return info;
}

// ---- Growth -------------------------------------------------------------------------------------

absl::Status BlockManager::AppendTokens(SeqId seq, absl::Span<const TokenId> tokens) {
  Impl& s = *impl_;
  SeqRecord* rec = s.Find(seq);
  if (rec == nullptr) return Impl::NotFound(seq, "AppendTokens");
  if (rec->swapped) return Impl::Swapped(seq, "AppendTokens");
  const int32_t n = static_cast<int32_t>(tokens.size());
  if (tokens.size() >
      static_cast<size_t>(std::numeric_limits<int32_t>::max() / 2 - rec->num_tokens)) {
    return absl::InvalidArgumentError(
        absl::StrCat("AppendTokens: sequence ", seq, ": ", tokens.size(), " tokens is too many"));
  }
  if (n == 0) return absl::OkStatus();
  s.scratch_need.assign(s.num_groups(), 0);
  s.scratch_freed.assign(s.num_groups(), 0);
  for (int32_t g = 0; g < s.num_groups(); ++g) {
    if (s.groups[g].cross) continue;
    s.PlanAppendGroup(s.groups[g], rec->tables[g], n, &s.scratch_need[g], &s.scratch_freed[g]);
  }
  PAGEDKV_RETURN_IF_ERROR(s.CheckAppendCapacity(seq, n, s.scratch_need, s.scratch_freed));
  for (int32_t g = 0; g < s.num_groups(); ++g) {
    if (s.groups[g].cross) continue;
    s.ReleaseWindow(s.groups[g], *rec, rec->tables[g]);
  }
  for (int32_t g = 0; g < s.num_groups(); ++g) {
    if (s.groups[g].cross) continue;
    s.GrowGroup(g, *rec, rec->tables[g], tokens);
  }
  rec->num_tokens += n;
  PAGEDKV_LOG_TRACE("append seq={} tokens={} total={} new_blocks={}", seq, n, rec->num_tokens,
                    s.scratch_need[0]);
  PAGEDKV_DCHECK_OK_EXPENSIVE(CheckInvariants());
  return absl::OkStatus();
}

absl::Status BlockManager::AppendTokenBatch(absl::Span<const SeqId> seqs,
                                            absl::Span<const TokenId> tokens) {
  Impl& s = *impl_;
  if (seqs.size() != tokens.size()) {
    return absl::InvalidArgumentError(absl::StrCat("AppendTokenBatch: ", seqs.size(),
                                                   " sequences but ", tokens.size(),
                                                   " tokens; pass one token per sequence"));
  }
  const uint64_t stamp = ++s.stamp;
  s.scratch_recs.clear();
  s.scratch_need.assign(s.num_groups(), 0);
  s.scratch_freed.assign(s.num_groups(), 0);
  for (SeqId seq : seqs) {
    SeqRecord* rec = s.Find(seq);
    if (rec == nullptr) return Impl::NotFound(seq, "AppendTokenBatch");
    if (rec->swapped) return Impl::Swapped(seq, "AppendTokenBatch");
    if (rec->stamp == stamp) {
      return absl::InvalidArgumentError(
          absl::StrCat("AppendTokenBatch: sequence ", seq, " is listed twice; list each once"));
    }
    rec->stamp = stamp;
    s.scratch_recs.push_back(rec);
    for (int32_t g = 0; g < s.num_groups(); ++g) {
      if (s.groups[g].cross) continue;
      s.PlanAppendGroup(s.groups[g], rec->tables[g], 1, &s.scratch_need[g], &s.scratch_freed[g]);
    }
  }
  if (!seqs.empty()) {
    PAGEDKV_RETURN_IF_ERROR(s.CheckAppendCapacity(seqs[0], 1, s.scratch_need, s.scratch_freed));
  }
  // Window releases first, so that every block they free is available to every allocation.
  for (SeqRecord* rec : s.scratch_recs) {
    for (int32_t g = 0; g < s.num_groups(); ++g) {
      if (s.groups[g].window_tokens > 0) s.ReleaseWindow(s.groups[g], *rec, rec->tables[g]);
    }
  }
  for (size_t i = 0; i < s.scratch_recs.size(); ++i) {
    SeqRecord* rec = s.scratch_recs[i];
    for (int32_t g = 0; g < s.num_groups(); ++g) {
      if (s.groups[g].cross) continue;
      s.GrowGroup(g, *rec, rec->tables[g], tokens.subspan(i, 1));
    }
    ++rec->num_tokens;
  }
  PAGEDKV_LOG_TRACE("append_batch seqs={} new_blocks={}", seqs.size(), s.scratch_need[0]);
  PAGEDKV_DCHECK_OK_EXPENSIVE(CheckInvariants());
  return absl::OkStatus();
}

absl::StatusOr<int32_t> BlockManager::BlocksToAppend(SeqId seq, int32_t num_tokens) const {
  const Impl& s = *impl_;
  const SeqRecord* rec = s.Find(seq);
  if (rec == nullptr) return Impl::NotFound(seq, "BlocksToAppend");
  if (rec->swapped) return Impl::Swapped(seq, "BlocksToAppend");
  if (num_tokens < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("BlocksToAppend: num_tokens ", num_tokens, " < 0"));
  }
  int64_t need = 0, freed = 0;
  for (int32_t g = 0; g < s.num_groups(); ++g) {
    if (s.groups[g].cross) continue;
    s.PlanAppendGroup(s.groups[g], rec->tables[g], num_tokens, &need, &freed);
  }
  return static_cast<int32_t>(need);
}

bool BlockManager::CanAppend(SeqId seq, int32_t num_tokens) const {
  const Impl& s = *impl_;
  const SeqRecord* rec = s.Find(seq);
  if (rec == nullptr || rec->swapped || num_tokens < 0) return false;
  for (int32_t g = 0; g < s.num_groups(); ++g) {
    if (s.groups[g].cross) continue;
    int64_t need = 0, freed = 0;
    s.PlanAppendGroup(s.groups[g], rec->tables[g], num_tokens, &need, &freed);
    if (need > s.groups[g].gpu.alloc->num_available() + freed) return false;
  }
  return true;
}

// ---- Sharing ------------------------------------------------------------------------------------

absl::Status BlockManager::Fork(SeqId parent, SeqId child) {
  Impl& s = *impl_;
  if (parent == child) {
    return absl::InvalidArgumentError(
        absl::StrCat("Fork: parent and child are both sequence ", parent, "; pick a new child id"));
  }
  SeqRecord* p = s.Find(parent);
  if (p == nullptr) return Impl::NotFound(parent, "Fork");
  if (s.seqs.contains(child)) {
    return absl::AlreadyExistsError(absl::StrCat("Fork: child sequence ", child, " of ", parent,
                                                 " already exists; Free it or pick a new id"));
  }
  if (p->swapped) return Impl::Swapped(parent, "Fork");
  SeqRecord* c = s.records.New(*p);
  c->id = child;
  c->stamp = 0;
  int32_t pages = 0;
  for (int32_t g = 0; g < s.num_groups(); ++g) {
    const BlockTable& t = c->tables[g];
    BlockAllocator& alloc = *s.groups[g].gpu.alloc;
    for (int32_t k = t.first_live_page_; k < t.num_pages(); ++k) {
      absl::Status st = alloc.AddRef(t.blocks_[k]);
      PAGEDKV_CHECK_MSG(st.ok(), "fork of a free block");
    }
    pages += t.num_live_pages();
  }
  s.seqs.emplace(child, c);
  PAGEDKV_LOG_TRACE("fork parent={} child={} tokens={} shared_pages={}", parent, child,
                    c->num_tokens, pages);
  PAGEDKV_DCHECK_OK_EXPENSIVE(CheckInvariants());
  return absl::OkStatus();
}

absl::Status BlockManager::ReorderBeams(absl::Span<const SeqId> beams,
                                        absl::Span<const int32_t> parent_indices) {
  Impl& s = *impl_;
  const size_t n = beams.size();
  if (parent_indices.size() != n) {
    return absl::InvalidArgumentError(absl::StrCat("ReorderBeams: ", n, " beams but ",
                                                   parent_indices.size(),
                                                   " parent indices; pass one per beam"));
  }
  const uint64_t stamp = ++s.stamp;
  s.scratch_recs.clear();
  for (size_t i = 0; i < n; ++i) {
    SeqRecord* rec = s.Find(beams[i]);
    if (rec == nullptr) return Impl::NotFound(beams[i], "ReorderBeams");
    if (rec->stamp == stamp) {
      return absl::InvalidArgumentError(absl::StrCat("ReorderBeams: beam sequence ", beams[i],
                                                     " is listed twice; list each beam once"));
    }
    rec->stamp = stamp;
    s.scratch_recs.push_back(rec);
  }
  for (size_t i = 0; i < n; ++i) {
    const int32_t p = parent_indices[i];
    if (p < 0 || static_cast<size_t>(p) >= n) {
      return absl::InvalidArgumentError(absl::StrCat("ReorderBeams: parent index ", p, " of beam ",
                                                     i, " (sequence ", beams[i],
                                                     ") is outside [0, ", n, ")"));
    }
  }
  for (size_t i = 0; i < n; ++i) {
    if (s.scratch_recs[i]->swapped) return Impl::Swapped(beams[i], "ReorderBeams");
  }
  // Snapshot the parents' tables of every changed beam, take their references, then drop the
  // replaced tables: no page reaches ref 0 on its way from one beam to another.
  struct NewState {
    size_t beam;
    int32_t num_tokens;
    bool has_cross;
    uint64_t extra_key;
    absl::InlinedVector<BlockTable, 2> tables;
  };
  std::vector<NewState> changed;
  for (size_t i = 0; i < n; ++i) {
    const size_t p = static_cast<size_t>(parent_indices[i]);
    if (p == i) continue;
    const SeqRecord* parent = s.scratch_recs[p];
    changed.push_back(
        {i, parent->num_tokens, parent->has_cross, parent->extra_key, parent->tables});
  }
  for (const NewState& ns : changed) {
    for (int32_t g = 0; g < s.num_groups(); ++g) {
      const BlockTable& t = ns.tables[g];
      for (int32_t k = t.first_live_page_; k < t.num_pages(); ++k) {
        absl::Status st = s.groups[g].gpu.alloc->AddRef(t.blocks_[k]);
        PAGEDKV_CHECK_MSG(st.ok(), "beam page is free");
      }
    }
  }
  for (NewState& ns : changed) {
    SeqRecord* rec = s.scratch_recs[ns.beam];
    for (int32_t g = 0; g < s.num_groups(); ++g) {
      s.ReleaseTable(s.groups[g], rec->tables[g], rec->priority);
      rec->tables[g] = std::move(ns.tables[g]);
    }
    rec->num_tokens = ns.num_tokens;
    rec->has_cross = ns.has_cross;
    // The pages were computed under the parent's extra key (a request's beams share it anyway);
    // keeping it keeps the hash chain of later pages consistent with the inherited ones.
    rec->extra_key = ns.extra_key;
  }
  PAGEDKV_LOG_TRACE("reorder_beams beams={} changed={}", n, changed.size());
  PAGEDKV_DCHECK_OK_EXPENSIVE(CheckInvariants());
  return absl::OkStatus();
}

// ---- Shrinking ----------------------------------------------------------------------------------

absl::Status BlockManager::Rewind(SeqId seq, int32_t num_tokens) {
  Impl& s = *impl_;
  SeqRecord* rec = s.Find(seq);
  if (rec == nullptr) return Impl::NotFound(seq, "Rewind");
  if (rec->swapped) return Impl::Swapped(seq, "Rewind");
  if (num_tokens < 0 || num_tokens > rec->num_tokens) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Rewind: sequence ", seq, " has ", rec->num_tokens, " tokens; cannot rewind to ",
        num_tokens, " (valid: 0..", rec->num_tokens, ")"));
  }
  for (int32_t g = 0; g < s.num_groups(); ++g) {
    const Impl::GroupState& G = s.groups[g];
    if (G.window_tokens <= 0 || num_tokens == 0) continue;
    const int64_t first_needed =
        std::max<int64_t>(0, static_cast<int64_t>(num_tokens) + 1 - G.window_tokens);
    const int64_t first_held = static_cast<int64_t>(rec->tables[g].first_live_page_) * s.bs;
    if (first_held > first_needed) {
      return absl::FailedPreconditionError(absl::StrCat(
          "Rewind: sequence ", seq, " to ", num_tokens, " tokens needs tokens from ", first_needed,
          " in sliding group ", g, " (window ", G.window_tokens, "), but pages before token ",
          first_held, " were released; rewind less or recompute the sequence"));
    }
  }
  const int32_t keep_pages = CeilDiv(num_tokens, s.bs);
  int32_t released = 0;
  for (int32_t g = 0; g < s.num_groups(); ++g) {
    Impl::GroupState& G = s.groups[g];
    if (G.cross) continue;
    BlockTable& t = rec->tables[g];
    if (num_tokens == 0) {
      released += t.num_live_pages();
      s.ReleaseTable(G, t, rec->priority);
      continue;
    }
    for (int32_t k = std::max(keep_pages, t.first_live_page_); k < t.num_pages(); ++k) {
      s.Release(G.gpu, t.blocks_[k], rec->priority);
      ++released;
    }
    t.blocks_.resize(keep_pages);
    t.num_tokens_ = num_tokens;
  }
  PAGEDKV_LOG_TRACE("rewind seq={} from={} to={} released_pages={}", seq, rec->num_tokens,
                    num_tokens, released);
  rec->num_tokens = num_tokens;
  PAGEDKV_DCHECK_OK_EXPENSIVE(CheckInvariants());
  return absl::OkStatus();
}

absl::Status BlockManager::Free(SeqId seq) {
  Impl& s = *impl_;
  auto it = s.seqs.find(seq);
  if (it == s.seqs.end()) return Impl::NotFound(seq, "Free");
  SeqRecord* rec = it->second;
  int32_t pages = 0;
  for (int32_t g = 0; g < s.num_groups(); ++g) {
    pages += rec->tables[g].num_live_pages();
    s.ReleaseTable(s.groups[g], rec->tables[g], rec->priority);
  }
  if (rec->swapped) --s.num_swapped;
  PAGEDKV_LOG_TRACE("free seq={} tokens={} pages={} swapped={}", seq, rec->num_tokens, pages,
                    rec->swapped);
  s.seqs.erase(it);
  s.records.Delete(rec);
  PAGEDKV_DCHECK_OK_EXPENSIVE(CheckInvariants());
  return absl::OkStatus();
}

// ---- Swap ---------------------------------------------------------------------------------------

namespace {
// Validates a swap request: known, distinct, in the expected residency.
absl::Status ValidateSwapSet(const absl::flat_hash_map<SeqId, SeqRecord*>& seqs,
                             absl::Span<const SeqId> ids, bool want_swapped, const char* op,
                             std::vector<SeqRecord*>* out) {
  out->clear();
  absl::flat_hash_set<SeqId> seen;
  for (SeqId id : ids) {
    auto it = seqs.find(id);
    if (it == seqs.end()) {
      return absl::NotFoundError(absl::StrCat(op, ": sequence ", id, " is not known"));
    }
    if (!seen.insert(id).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(op, ": sequence ", id, " is listed twice; list each once"));
    }
    if (it->second->swapped != want_swapped) {
      return absl::FailedPreconditionError(absl::StrCat(
          op, ": sequence ", id,
          want_swapped ? " is not swapped out (it has no host pages); nothing to swap in"
                       : " is already swapped out"));
    }
    out->push_back(it->second);
  }
  return absl::OkStatus();
}
}  // namespace

absl::Status BlockManager::SwapOut(absl::Span<const SeqId> seqs) {
  Impl& s = *impl_;
  std::vector<SeqRecord*> recs;
  PAGEDKV_RETURN_IF_ERROR(ValidateSwapSet(s.seqs, seqs, /*want_swapped=*/false, "SwapOut", &recs));
  if (!s.host_tier) {
    return absl::FailedPreconditionError(
        "SwapOut: no host tier is configured (host_num_blocks / host_budget_bytes); preempt by "
        "recompute (Free) instead");
  }
  // Distinct GPU pages per group, in first-seen order.
  std::vector<std::vector<BlockId>> distinct(s.num_groups());
  std::vector<absl::flat_hash_map<BlockId, BlockId>> map(s.num_groups());
  for (int32_t g = 0; g < s.num_groups(); ++g) {
    Impl::GroupState& G = s.groups[g];
    for (SeqRecord* rec : recs) {
      const BlockTable& t = rec->tables[g];
      for (int32_t k = t.first_live_page_; k < t.num_pages(); ++k) {
        const BlockId b = t.blocks_[k];
        // swap_out runs before swap_in within a step, so neither the page nor the original
        // source of a pending copy into it may still be waiting for its swap-in.
        if (G.gpu.swap_in_dst[b] || G.gpu.swap_in_dst[s.ResolveGpuSource(G, b)]) {
          return absl::FailedPreconditionError(absl::StrCat(
              "SwapOut: sequence ", rec->id, " page ", k, " (group ", g, ", block ", b,
              ") is still being swapped in by the pending CacheOps; call TakeCacheOps and "
              "execute them first"));
        }
        if (map[g].emplace(b, kInvalidBlockId).second) distinct[g].push_back(b);
      }
    }
    const uint32_t avail = G.host.alloc->num_available();
    if (distinct[g].size() > avail) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "SwapOut: ", seqs.size(), " sequence(s) starting with ", seqs.empty() ? 0 : seqs[0],
          " need ", distinct[g].size(), " host blocks in group ", g, ", ", avail,
          " available; free swapped sequences or preempt by recompute"));
    }
  }
  int64_t moved = 0;
  for (int32_t g = 0; g < s.num_groups(); ++g) {
    moved += s.MovePages(g, recs, /*to_host=*/true, distinct[g], map[g], Tier::kHost);
  }
  for (SeqRecord* rec : recs) rec->swapped = true;
  s.num_swapped += static_cast<int64_t>(recs.size());
  PAGEDKV_LOG_TRACE("swap_out seqs={} first={} pages_moved={}", seqs.size(),
                    seqs.empty() ? 0 : seqs[0], moved);
  PAGEDKV_DCHECK_OK_EXPENSIVE(CheckInvariants());
  return absl::OkStatus();
}

absl::Status BlockManager::SwapIn(absl::Span<const SeqId> seqs) {
  Impl& s = *impl_;
  std::vector<SeqRecord*> recs;
  PAGEDKV_RETURN_IF_ERROR(ValidateSwapSet(s.seqs, seqs, /*want_swapped=*/true, "SwapIn", &recs));
  std::vector<std::vector<BlockId>> distinct(s.num_groups());
  std::vector<absl::flat_hash_map<BlockId, BlockId>> map(s.num_groups());
  for (int32_t g = 0; g < s.num_groups(); ++g) {
    Impl::GroupState& G = s.groups[g];
    for (SeqRecord* rec : recs) {
      const BlockTable& t = rec->tables[g];
      for (int32_t k = t.first_live_page_; k < t.num_pages(); ++k) {
        if (map[g].emplace(t.blocks_[k], kInvalidBlockId).second)
          distinct[g].push_back(t.blocks_[k]);
      }
    }
    const uint32_t avail = G.gpu.alloc->num_available();
    if (distinct[g].size() > avail) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "SwapIn: ", seqs.size(), " sequence(s) starting with ", seqs.empty() ? 0 : seqs[0],
          " need ", distinct[g].size(), " GPU blocks in group ", g, ", ", avail,
          " free + cached available; wait for running sequences to finish"));
    }
  }
  int64_t moved = 0;
  for (int32_t g = 0; g < s.num_groups(); ++g) {
    moved += s.MovePages(g, recs, /*to_host=*/false, distinct[g], map[g], Tier::kGpu);
  }
  for (SeqRecord* rec : recs) rec->swapped = false;
  s.num_swapped -= static_cast<int64_t>(recs.size());
  PAGEDKV_LOG_TRACE("swap_in seqs={} first={} pages_moved={}", seqs.size(),
                    seqs.empty() ? 0 : seqs[0], moved);
  PAGEDKV_DCHECK_OK_EXPENSIVE(CheckInvariants());
  return absl::OkStatus();
}

bool BlockManager::CanSwapIn(absl::Span<const SeqId> seqs) const {
  const Impl& s = *impl_;
  std::vector<SeqRecord*> recs;
  if (!ValidateSwapSet(s.seqs, seqs, true, "CanSwapIn", &recs).ok()) return false;
  for (int32_t g = 0; g < s.num_groups(); ++g) {
    absl::flat_hash_set<BlockId> distinct;
    for (SeqRecord* rec : recs) {
      const BlockTable& t = rec->tables[g];
      for (int32_t k = t.first_live_page_; k < t.num_pages(); ++k) distinct.insert(t.blocks_[k]);
    }
    if (distinct.size() > s.groups[g].gpu.alloc->num_available()) return false;
  }
  return true;
}

// ---- Encoder-decoder ----------------------------------------------------------------------------

absl::Status BlockManager::SetCrossAttention(SeqId seq, int32_t encoder_tokens) {
  Impl& s = *impl_;
  if (s.cross_group < 0) {
    return absl::FailedPreconditionError(absl::StrCat("SetCrossAttention: sequence ", seq,
                                                      ": model ", s.spec.name,
                                                      " has no cross-attention layers"));
  }
  SeqRecord* rec = s.Find(seq);
  if (rec == nullptr) return Impl::NotFound(seq, "SetCrossAttention");
  if (encoder_tokens < 0) {
    return absl::InvalidArgumentError(absl::StrCat("SetCrossAttention: sequence ", seq,
                                                   ": encoder_tokens ", encoder_tokens, " < 0"));
  }
  if (rec->swapped) return Impl::Swapped(seq, "SetCrossAttention");
  if (rec->has_cross) {
    return absl::FailedPreconditionError(
        absl::StrCat("SetCrossAttention: sequence ", seq, " already has ",
                     rec->tables[s.cross_group].num_tokens(),
                     " encoder tokens; it is written once per request"));
  }
  const int32_t g = s.cross_group;
  const int32_t pages = CeilDiv(encoder_tokens, s.bs);
  const uint32_t avail = s.groups[g].gpu.alloc->num_available();
  if (static_cast<uint32_t>(pages) > avail) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "SetCrossAttention: sequence ", seq, ": ", encoder_tokens, " encoder tokens need ", pages,
        " blocks in group ", g, ", ", avail, " available; free or swap out a sequence"));
  }
  BlockTable& t = rec->tables[g];
  t.blocks_.resize(pages);
  s.AllocateGpu(g, absl::MakeSpan(t.blocks_));
  t.num_tokens_ = encoder_tokens;
  rec->has_cross = true;
  PAGEDKV_LOG_TRACE("cross seq={} encoder_tokens={} pages={}", seq, encoder_tokens, pages);
  PAGEDKV_DCHECK_OK_EXPENSIVE(CheckInvariants());
  return absl::OkStatus();
}

// ---- Eviction hooks -----------------------------------------------------------------------------

absl::Status BlockManager::SetEvictionPriority(SeqId seq, EvictionPriority priority) {
  SeqRecord* rec = impl_->Find(seq);
  if (rec == nullptr) return Impl::NotFound(seq, "SetEvictionPriority");
  rec->priority = priority;
  return absl::OkStatus();
}

int32_t BlockManager::TouchPrefix(absl::Span<const TokenId> prompt, uint64_t extra_key) {
  Impl& s = *impl_;
  std::vector<Impl::PrefixHit> hits;
  int32_t eligible = 0;
  s.MatchPrefix(prompt, extra_key, false, &hits, &eligible);
  int32_t n = 0;
  for (const Impl::PrefixHit& h : hits) {
    if (h.on_host) break;
    (void)s.groups[0].gpu.alloc->Touch(h.block);
    ++n;
  }
  PAGEDKV_LOG_TRACE("touch_prefix tokens={} pages={}", prompt.size(), n);
  return n;
}

// ---- Per-step outputs ---------------------------------------------------------------------------

void BlockManager::TakeCacheOps(CacheOps* ops) {
  Impl& s = *impl_;
  ops->groups.resize(s.num_groups());
  for (int32_t g = 0; g < s.num_groups(); ++g) {
    Impl::GroupState& G = s.groups[g];
    for (const BlockPair& c : G.ops.copies) G.gpu.copy_src[c.dst] = kInvalidBlockId;
    for (const BlockPair& c : G.ops.swap_in) G.gpu.swap_in_dst[c.dst] = 0;
    GroupCacheOps& out = ops->groups[g];
    out.clear();
    std::swap(out, G.ops);
    out.group = g;
    out.bytes_per_block = G.info.bytes_per_block;
    G.ops.group = g;
    G.ops.bytes_per_block = G.info.bytes_per_block;
    for (PoolState* pool : {&G.gpu, &G.host}) {
      if (!pool->valid()) continue;
      for (BlockId b : pool->pinned) {
        --pool->pins[b];
        s.Release(*pool, b, EvictionPriority::kNormal);
      }
      pool->pinned.clear();
    }
    if (!out.empty()) {
      PAGEDKV_LOG_TRACE("cache_ops group={} swap_out={} swap_in={} copies={}", g,
                        out.swap_out.size(), out.swap_in.size(), out.copies.size());
    }
  }
}

CacheOps BlockManager::TakeCacheOps() {
  CacheOps ops;
  TakeCacheOps(&ops);
  return ops;
}

absl::Status BlockManager::BuildBatch(absl::Span<const BatchEntry> entries, int32_t group,
                                      BatchLayout* layout) const {
  const Impl& s = *impl_;
  if (group < 0 || group >= s.num_groups()) {
    return absl::InvalidArgumentError(
        absl::StrCat("BuildBatch: group ", group, " outside [0, ", s.num_groups(), ")"));
  }
  const int32_t bs = s.bs;
  layout->clear();
  layout->group = group;
  layout->block_size = bs;
  layout->page_indptr.push_back(0);
  layout->query_indptr.push_back(0);
  for (const BatchEntry& e : entries) {
    const SeqRecord* rec = s.Find(e.seq_id);
    if (rec == nullptr) return Impl::NotFound(e.seq_id, "BuildBatch");
    if (rec->swapped) return Impl::Swapped(e.seq_id, "BuildBatch");
    const BlockTable& t = rec->tables[group];
    const int32_t ctx = e.num_context_tokens < 0 ? t.num_tokens_ : e.num_context_tokens;
    if (ctx > t.num_tokens_ || e.num_new_tokens < 0 || e.num_new_tokens > ctx) {
      return absl::InvalidArgumentError(absl::StrCat(
          "BuildBatch: sequence ", e.seq_id, " group ", group, " holds ", t.num_tokens_,
          " tokens; num_context_tokens ", e.num_context_tokens, " / num_new_tokens ",
          e.num_new_tokens, " must satisfy 0 <= new <= context <= ", t.num_tokens_));
    }
    const int32_t first_page = t.first_live_page_;
    if (ctx == 0) {
      layout->page_indptr.push_back(layout->page_indptr.back());
      layout->last_page_len.push_back(0);
      layout->first_page_token.push_back(0);
      layout->query_indptr.push_back(layout->query_indptr.back());
      continue;
    }
    const int32_t last_page = (ctx - 1) / bs;
    const int32_t first_new = ctx - e.num_new_tokens;
    if (last_page < first_page || (e.num_new_tokens > 0 && first_new / bs < first_page)) {
      return absl::InvalidArgumentError(
          absl::StrCat("BuildBatch: sequence ", e.seq_id, " group ", group, ": tokens from ",
                       std::min(first_new, ctx - 1),
                       " lie in pages released by the sliding window (first held "
                       "token ",
                       first_page * bs, ")"));
    }
    const BlockId* blocks = t.blocks_.data();
    layout->page_indices.insert(layout->page_indices.end(), blocks + first_page,
                                blocks + last_page + 1);
    layout->page_indptr.push_back(static_cast<int32_t>(layout->page_indices.size()));
    layout->last_page_len.push_back(ctx - last_page * bs);
    layout->first_page_token.push_back(first_page * bs);
    for (int32_t p = first_new; p < ctx; ++p) {
      const int32_t page = p / bs;
      layout->slot_mapping.push_back(static_cast<int64_t>(blocks[page]) * bs + (p - page * bs));
    }
    layout->query_indptr.push_back(static_cast<int32_t>(layout->slot_mapping.size()));
  }
  return absl::OkStatus();
}

absl::StatusOr<const BatchLayout*> BlockManager::BuildBatch(absl::Span<const BatchEntry> entries,
                                                            int32_t group) {
  if (group < 0 || group >= impl_->num_groups()) {
    return absl::InvalidArgumentError(
        absl::StrCat("BuildBatch: group ", group, " outside [0, ", impl_->num_groups(), ")"));
  }
  BatchLayout* layout = &impl_->groups[group].layout;
  PAGEDKV_RETURN_IF_ERROR(BuildBatch(entries, group, layout));
  return layout;
}

// ---- Queries ------------------------------------------------------------------------------------

bool BlockManager::Contains(SeqId seq) const { return impl_->seqs.contains(seq); }
int64_t BlockManager::num_sequences() const { return static_cast<int64_t>(impl_->seqs.size()); }

absl::StatusOr<int32_t> BlockManager::NumTokens(SeqId seq) const {
  const SeqRecord* rec = impl_->Find(seq);
  if (rec == nullptr) return Impl::NotFound(seq, "NumTokens");
  return rec->num_tokens;
}

absl::StatusOr<SequenceStats> BlockManager::GetSequenceStats(SeqId seq) const {
  const SeqRecord* rec = impl_->Find(seq);
  if (rec == nullptr) return Impl::NotFound(seq, "GetSequenceStats");
  return impl_->SeqStats(*rec);
}

absl::StatusOr<const BlockTable*> BlockManager::GetBlockTable(SeqId seq, int32_t group) const {
  if (group < 0 || group >= impl_->num_groups()) {
    return absl::InvalidArgumentError(
        absl::StrCat("GetBlockTable: group ", group, " outside [0, ", impl_->num_groups(), ")"));
  }
  const SeqRecord* rec = impl_->Find(seq);
  if (rec == nullptr) return Impl::NotFound(seq, "GetBlockTable");
  return &rec->tables[group];
}

std::vector<SeqId> BlockManager::SequenceIds() const {
  std::vector<SeqId> ids;
  ids.reserve(impl_->seqs.size());
  for (const auto& [id, rec] : impl_->seqs) ids.push_back(id);
  return ids;
}

BlockManagerStats BlockManager::stats() const {
  const Impl& s = *impl_;
  BlockManagerStats st;
  st.num_sequences = static_cast<int64_t>(s.seqs.size());
  st.num_swapped_sequences = s.num_swapped;
  int64_t entries = 0;
  // Per GPU block: most tokens any resident table keeps in it (for internal fragmentation).
  std::vector<absl::flat_hash_map<BlockId, int32_t>> partial(s.num_groups());
  for (const auto& [id, rec] : s.seqs) {
    if (rec->swapped) continue;
    for (int32_t g = 0; g < s.num_groups(); ++g) {
      const BlockTable& t = rec->tables[g];
      st.tokens_stored += t.num_tokens_ - static_cast<int64_t>(t.first_live_page_) * s.bs;
      entries += t.num_live_pages();
      const int32_t tail = t.num_tokens_ % s.bs;
      if (tail != 0) {
        int32_t& m = partial[g][t.blocks_.back()];
        m = std::max(m, tail);
      }
    }
  }
  int64_t distinct = 0;
  for (int32_t g = 0; g < s.num_groups(); ++g) {
    const Impl::GroupState& G = s.groups[g];
    const BlockAllocator& a = *G.gpu.alloc;
    const uint32_t n = a.num_blocks();
    for (BlockId b = 0; b < n; ++b) {
      if (a.ref_count(b) > G.gpu.pins[b]) ++distinct;
    }
    for (const auto& [b, tokens] : partial[g]) st.internal_fragmentation_slots += s.bs - tokens;
    GroupPoolStats gs;
    gs.group = g;
    gs.gpu_num_blocks = n;
    gs.gpu_free_blocks = a.num_free();
    gs.gpu_cached_blocks = a.num_cached();
    gs.gpu_in_use_blocks = a.num_in_use();
    if (G.host.valid()) {
      const BlockAllocator& h = *G.host.alloc;
      gs.host_num_blocks = h.num_blocks();
      gs.host_free_blocks = h.num_free();
      gs.host_cached_blocks = h.num_cached();
      gs.host_in_use_blocks = h.num_in_use();
    }
    st.slots_allocated += static_cast<int64_t>(a.num_in_use()) * s.bs;
    st.groups.push_back(gs);
  }
  st.pages_saved_by_sharing = entries - distinct;
  st.prefix_query_pages = s.prefix_query_pages;
  st.prefix_hit_pages = s.prefix_hit_pages;
  st.prefix_host_hit_pages = s.prefix_host_hit_pages;
  st.prefix_hit_rate = s.prefix_query_pages == 0
                           ? 0.0
                           : static_cast<double>(s.prefix_hit_pages) / s.prefix_query_pages;
  st.swap_out_bytes = s.swap_out_bytes;
  st.swap_in_bytes = s.swap_in_bytes;
  st.copy_bytes = s.copy_bytes;
  st.cow_copies = s.cow_copies;
  st.host_offloads = s.host_offloads;
  return st;
}

absl::Status BlockManager::CheckInvariants() const {
  const Impl& s = *impl_;
  int64_t swapped = 0;
  for (int32_t g = 0; g < s.num_groups(); ++g) {
    const Impl::GroupState& G = s.groups[g];
    for (const PoolState* pool : {&G.gpu, &G.host}) {
      if (!pool->valid()) continue;
      const bool is_gpu = pool == &G.gpu;
      const char* tier = is_gpu ? "GPU" : "host";
      PAGEDKV_RETURN_IF_ERROR(pool->alloc->CheckInvariants());
      const uint32_t n = pool->alloc->num_blocks();
      std::vector<uint32_t> expected(pool->pins.begin(), pool->pins.end());
      if (pool->pinned.size() !=
          static_cast<size_t>(std::accumulate(pool->pins.begin(), pool->pins.end(), uint64_t{0}))) {
        return absl::InternalError(absl::StrCat("group ", g, " ", tier, ": pin list has ",
                                                pool->pinned.size(),
                                                " entries, pin counts differ"));
      }
      for (const auto& [id, rec] : s.seqs) {
        if (rec->swapped == is_gpu) continue;
        const BlockTable& t = rec->tables[g];
        PAGEDKV_RETURN_IF_ERROR(t.CheckInvariants(s.bs, n));
        if (t.tier_ != (is_gpu ? Tier::kGpu : Tier::kHost)) {
          return absl::InternalError(absl::StrCat("sequence ", id, " group ", g,
                                                  ": table tier does not match its residency"));
        }
        for (int32_t k = t.first_live_page_; k < t.num_pages(); ++k) ++expected[t.blocks_[k]];
        // Hash chain of full pages of resident tables of hashed groups.
        if (is_gpu && G.hashed) {
          BlockHash parent = kRootHash;
          for (int32_t k = 0; k < t.num_tokens_ / s.bs; ++k) {
            const BlockId b = t.blocks_[k];
            const BlockHash h = HashPage(
                parent, absl::MakeConstSpan(&pool->tokens[static_cast<size_t>(b) * s.bs], s.bs),
                rec->extra_key);
            if (!(h == pool->hashes[b])) {
              return absl::InternalError(absl::StrCat("sequence ", id, " page ", k, " (block ", b,
                                                      "): stored hash does not match its tokens"));
            }
            parent = h;
          }
        }
      }
      for (BlockId b = 0; b < n; ++b) {
        if (pool->alloc->ref_count(b) != expected[b]) {
          return absl::InternalError(absl::StrCat(
              "group ", g, " ", tier, " block ", b, ": ref ", pool->alloc->ref_count(b), " but ",
              expected[b] - pool->pins[b], " table entries + ", pool->pins[b], " pins"));
        }
        if (G.hashed && pool->alloc->is_hashed(b) && !(*pool->alloc->hash(b) == pool->hashes[b])) {
          return absl::InternalError(absl::StrCat("group ", g, " ", tier, " block ", b,
                                                  ": allocator hash differs from the page's hash"));
        }
      }
      if (is_gpu) {
        size_t marked = 0;
        for (BlockId b = 0; b < n; ++b) marked += G.gpu.copy_src[b] != kInvalidBlockId;
        if (marked != G.ops.copies.size()) {
          return absl::InternalError(absl::StrCat("group ", g, ": ", marked,
                                                  " copy destinations marked, ",
                                                  G.ops.copies.size(), " pending copies"));
        }
      }
    }
  }
  for (const auto& [id, rec] : s.seqs) {
    if (rec->id != id)
      return absl::InternalError(absl::StrCat("record of ", id, " says ", rec->id));
    swapped += rec->swapped;
    if (static_cast<int32_t>(rec->tables.size()) != s.num_groups()) {
      return absl::InternalError(
          absl::StrCat("sequence ", id, " has ", rec->tables.size(), " tables"));
    }
    for (int32_t g = 0; g < s.num_groups(); ++g) {
      if (!s.groups[g].cross && rec->tables[g].num_tokens_ != rec->num_tokens) {
        return absl::InternalError(absl::StrCat("sequence ", id, " group ", g, " table has ",
                                                rec->tables[g].num_tokens_, " tokens, sequence ",
                                                rec->num_tokens));
      }
    }
  }
  if (swapped != s.num_swapped) {
    return absl::InternalError(
        absl::StrCat(swapped, " swapped sequences, counter says ", s.num_swapped));
  }
  if (s.records.num_live() != s.seqs.size()) {
    return absl::InternalError(
        absl::StrCat(s.records.num_live(), " records for ", s.seqs.size(), " sequences"));
  }
  return absl::OkStatus();
}

}  // namespace pagedkv
