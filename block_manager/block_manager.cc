// BlockManager construction (groups, pools, listeners, layer locations), shape accessors, queries
// and statistics. The operations live in one file per concept (see internal/manager_state.h).
#include "pagedkv/block_manager/block_manager.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "block_manager/internal/manager_state.h"
#include "pagedkv/core/absl_compat.h"
#include "pagedkv/core/logging.h"
#include "pagedkv/core/status.h"

namespace pagedkv {

using internal::PoolState;
using internal::SeqRecord;

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
  const bool remote = config.remote.enabled();
  if (remote && !impl->prefix_caching) {
    return absl::InvalidArgumentError(absl::StrCat(
        "remote tier (", config.remote.url,
        ") needs prefix caching: its pages are prefix-cache "
        "pages; set enable_prefix_caching on a model whose self-attention layers are all full"));
  }
  if (remote && !impl->host_tier) {
    return absl::InvalidArgumentError(absl::StrCat("remote tier (", config.remote.url,
                                                   ") stages pages through the host tier: set "
                                                   "host_num_blocks or host_budget_bytes"));
  }

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
        pool->publisher.assign(n, 0);
        if (remote) {
          pool->reuse.assign(n, 0);
          pool->remote_origin.assign(n, 0);
          pool->filled_gen.assign(n, 0);
        }
      }
      pool->pins.assign(n, 0);
      pool->move_index.assign(n, kInvalidBlockId);
      return absl::OkStatus();
    };
    PAGEDKV_RETURN_IF_ERROR(make_pool(config.gpu_tier, gpu_blocks, config.watermark, &G.gpu));
    G.gpu.copy_src.assign(gpu_blocks, kInvalidBlockId);
    G.gpu.swap_in_dst.assign(gpu_blocks, 0);
    if (impl->host_tier) {
      // A simulated (kVirtual) GPU pool gets a simulated host pool: the swap space of a modelled
      // GPU is not bounded by the memory of the machine running the simulation.
      const Tier host = config.gpu_tier == Tier::kVirtual ? Tier::kVirtual : Tier::kHost;
      PAGEDKV_RETURN_IF_ERROR(make_pool(host, host_blocks, 0.0, &G.host));
    }
  }
  if (remote) {
    if (!impl->groups[0].host.alloc->pool().has_memory()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "remote tier (", config.remote.url,
          ") needs a host tier with memory, but the host pool "
          "is virtual (metadata only); simulations model the remote tier with --remote-* flags"));
    }
    PAGEDKV_ASSIGN_OR_RETURN(impl->remote, RemoteTier::Create(config.remote, spec, bs));
    for (size_t g = 0; g < impl->groups.size(); ++g) {
      if (impl->groups[g].hashed) {
        impl->remote->SetGroup(static_cast<int32_t>(g), impl->groups[g].info.bytes_per_block);
      }
    }
  }
  // Listeners last: the groups vector no longer moves.
  for (size_t g = 0; g < impl->groups.size(); ++g) {
    Impl::GroupState& G = impl->groups[g];
    if (impl->host_tier && G.hashed) {
      G.listener = std::make_unique<Impl::Listener>(impl.get(), static_cast<int32_t>(g), false);
      G.gpu.alloc->SetEvictionListener(G.listener.get());
      if (remote) {
        G.host_listener =
            std::make_unique<Impl::Listener>(impl.get(), static_cast<int32_t>(g), true);
        G.host.alloc->SetEvictionListener(G.host_listener.get());
      }
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
  st.prefix_remote_hit_pages = s.prefix_remote_hit_pages;
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

void BlockManager::TEST_SetAllocationHook(
    std::function<void(int32_t group, Tier tier, BlockId block)> hook) {
  Impl& s = *impl_;
  s.allocation_hook = std::move(hook);
  for (int32_t g = 0; g < s.num_groups(); ++g) {
    for (Tier tier : {Tier::kGpu, Tier::kHost}) {
      PoolState& pool = tier == Tier::kGpu ? s.groups[g].gpu : s.groups[g].host;
      if (!pool.valid()) continue;
      if (!s.allocation_hook) {
        pool.alloc->TEST_SetAllocationHook(nullptr);
        continue;
      }
      pool.alloc->TEST_SetAllocationHook(
          [&s, g, tier](BlockId b) { s.allocation_hook(g, tier, b); });
    }
  }
}

SequenceStats BlockManager::Impl::SeqStats(const SeqRecord& rec) const {
  SequenceStats s;
  s.seq_id = rec.id;
  s.num_tokens = rec.num_tokens;
  s.num_computed_tokens = rec.num_computed;
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

}  // namespace pagedkv
