// ModelHost: builds a served model's manager and shared pools, describes them, and keeps the
// quarantine.
#include "service/internal/model_host.h"

#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "pagedkv/attention/cache_ops.h"
#include "pagedkv/core/absl_compat.h"
#include "pagedkv/core/check.h"
#include "pagedkv/core/logging.h"
#include "pagedkv/core/status.h"
#include "service/internal/session.h"

namespace pagedkv::service::internal {
namespace {

v1::PoolKind KindOf(const MemoryPool& pool) {
  switch (pool.backend()) {
    case MemoryBackend::kSharedHost:
      return v1::POOL_KIND_MEMFD;
    default:
      // Device pools become POOL_KIND_CUDA_IPC with the next service issue; plain host and
      // virtual pools cannot be reached from another process.
      return v1::POOL_KIND_NONE;
  }
}

void DescribePool(const MemoryPool& pool, int32_t group, std::string_view tier,
                  const ModelSpec& spec, int32_t layers_in_group, int32_t block_size,
                  v1::PoolHandle* out) {
  out->set_group(group);
  out->set_tier(std::string(tier));
  out->set_backend(std::string(MemoryBackendName(pool.backend())));
  out->set_kind(KindOf(pool));
  out->set_num_blocks(pool.num_blocks());
  out->set_bytes_per_block(pool.bytes_per_block());
  out->set_offset_bytes(0);
  out->set_map_bytes(pool.shared_memory_bytes());
  out->set_fd_index(-1);
  v1::PoolLayout* layout = out->mutable_layout();
  layout->set_num_layers(layers_in_group);
  layout->set_num_kv_heads(spec.num_kv_heads);
  layout->set_block_size(block_size);
  layout->set_head_dim(spec.head_dim);
  layout->set_dtype(std::string(DTypeName(spec.kv_dtype)));
  layout->set_bytes_per_block(pool.bytes_per_block());
}

}  // namespace

absl::StatusOr<std::unique_ptr<ModelHost>> ModelHost::Create(const ModelOptions& options) {
  std::unique_ptr<ModelHost> host(new ModelHost());
  host->name_ = options.name.empty() ? options.spec.name : options.name;
  if (host->name_.empty()) {
    return absl::InvalidArgumentError("a served model needs a name (set it or name the spec)");
  }
  // The manager keeps the books only: the pools below hold the bytes, so its own GPU tier is
  // virtual (and so, then, is its host tier).
  CacheConfig manager_config = options.cache;
  manager_config.gpu_tier = Tier::kVirtual;
  absl::StatusOr<std::unique_ptr<BlockManager>> bm =
      BlockManager::Create(options.spec, manager_config);
  if (!bm.ok()) {
    return absl::Status(bm.status().code(),
                        absl::StrCat("model '", host->name_, "': ", bm.status().message()));
  }
  host->bm_ = std::move(*bm);
  const BlockManager& m = *host->bm_;
  host->block_size_ = m.block_size();
  host->num_groups_ = m.num_groups();
  host->gpu_blocks_ = m.group_info(0).gpu_num_blocks;
  host->host_blocks_ = m.group_info(0).host_num_blocks;

  v1::ModelDescription& d = host->description_;
  const ModelSpec& spec = options.spec;
  d.set_name(host->name_);
  d.set_num_layers(spec.num_layers());
  d.set_num_q_heads(spec.num_q_heads);
  d.set_num_kv_heads(spec.num_kv_heads);
  d.set_head_dim(spec.head_dim);
  d.set_kv_dtype(std::string(DTypeName(spec.kv_dtype)));
  d.set_block_size(m.block_size());
  d.set_prefix_caching(m.prefix_caching_enabled());
  d.set_has_host_tier(m.has_host_tier());
  d.set_spec_json(spec.ToJson());
  for (int32_t layer = 0; layer < spec.num_layers(); ++layer) {
    PAGEDKV_ASSIGN_OR_RETURN(LayerLocation loc, m.LocateLayer(layer));
    v1::LayerLocation* l = d.add_layers();
    l->set_group(loc.group);
    l->set_layer_in_group(loc.layer_in_group);
  }
  for (int32_t g = 0; g < m.num_groups(); ++g) {
    const GroupInfo& info = m.group_info(g);
    v1::KvGroupDescription* gd = d.add_groups();
    gd->set_group(g);
    gd->set_kind(std::string(AttentionKindName(info.group.kind)));
    gd->set_window_tokens(info.group.window_tokens);
    for (int32_t layer : info.group.layers) gd->add_layers(layer);
    gd->set_bytes_per_block(info.bytes_per_block);
    gd->set_gpu_num_blocks(info.gpu_num_blocks);
    gd->set_host_num_blocks(info.host_num_blocks);

    const auto layers_in_group = static_cast<int32_t>(info.group.layers.size());
    PoolOptions po;
    po.bytes_per_block = info.bytes_per_block;
    po.shared = options.share_pools;
    po.strict = options.cache.strict_gpu;
    po.huge_pages = options.cache.host_huge_pages;
    po.tier = options.cache.gpu_tier;
    po.num_blocks = info.gpu_num_blocks;
    po.name = absl::StrCat(host->name_, "/group", g, "/gpu");
    PAGEDKV_ASSIGN_OR_RETURN(std::unique_ptr<MemoryPool> gpu, MemoryPool::Create(po));
    DescribePool(*gpu, g, "gpu", spec, layers_in_group, m.block_size(), d.add_pools());
    host->gpu_pools_.push_back(std::move(gpu));
    if (m.has_host_tier()) {
      // A metadata-only model keeps its host tier metadata-only too.
      po.tier = options.cache.gpu_tier == Tier::kVirtual ? Tier::kVirtual : Tier::kHost;
      po.num_blocks = info.host_num_blocks;
      po.name = absl::StrCat(host->name_, "/group", g, "/host");
      PAGEDKV_ASSIGN_OR_RETURN(std::unique_ptr<MemoryPool> hp, MemoryPool::Create(po));
      DescribePool(*hp, g, "host", spec, layers_in_group, m.block_size(), d.add_pools());
      host->host_pools_.push_back(std::move(hp));
    }
  }
  host->executes_cache_ops_ = true;
  for (const auto* pools : {&host->gpu_pools_, &host->host_pools_}) {
    for (const std::unique_ptr<MemoryPool>& pool : *pools) {
      const MemoryBackend b = pool->backend();
      if (b != MemoryBackend::kSharedHost && b != MemoryBackend::kHostAligned) {
        host->executes_cache_ops_ = false;
      }
    }
  }
  return host;
}

absl::Status ModelHost::ExecuteCacheOps(const CacheOps& ops) {
  const CacheOpOptions cpu{.backend = Backend::kCpu};
  std::vector<BlockCopy> pairs;
  const auto convert = [&](const std::vector<BlockPair>& from) {
    pairs.clear();
    for (const BlockPair& p : from) {
      pairs.push_back({static_cast<int32_t>(p.src), static_cast<int32_t>(p.dst)});
    }
    return absl::MakeConstSpan(pairs);
  };
  for (const GroupCacheOps& g : ops.groups) {
    if (g.empty()) continue;
    MemoryPool& gpu = *gpu_pools_[g.group];
    const auto gpu_blocks = static_cast<int32_t>(gpu.num_blocks());
    if (!g.swap_out.empty() || !g.swap_in.empty()) {
      MemoryPool& hp = *host_pools_[g.group];
      const auto host_blocks = static_cast<int32_t>(hp.num_blocks());
      PAGEDKV_RETURN_IF_ERROR(SwapBlocks(gpu.base(), gpu_blocks, hp.base(), host_blocks,
                                         g.bytes_per_block, convert(g.swap_out), cpu));
      PAGEDKV_RETURN_IF_ERROR(SwapBlocks(hp.base(), host_blocks, gpu.base(), gpu_blocks,
                                         g.bytes_per_block, convert(g.swap_in), cpu));
    }
    PAGEDKV_RETURN_IF_ERROR(
        CopyBlocks(gpu.base(), g.bytes_per_block, gpu_blocks, convert(g.copies), cpu));
  }
  counters_.executed_cache_op_bytes += ops.total_bytes();
  return absl::OkStatus();
}

void ModelHost::FillPoolHandles(v1::PoolHandles* out, std::vector<int>* fds) const {
  out->set_model(name_);
  for (const v1::PoolHandle& described : description_.pools()) {
    v1::PoolHandle* h = out->add_pools();
    *h = described;
    const auto& pools = described.tier() == "gpu" ? gpu_pools_ : host_pools_;
    const MemoryPool& pool = *pools[described.group()];
    if (pool.shared_memory_fd() >= 0) {
      h->set_fd_index(static_cast<int32_t>(fds->size()));
      fds->push_back(pool.shared_memory_fd());
    }
  }
}

void ModelHost::Quarantine(SeqId seq, BlockLedger& from, int64_t release_ns) {
  PAGEDKV_DCHECK_MSG(quarantine_.empty() || quarantine_.back().release_ns <= release_ns,
                     "quarantine deadlines must not decrease");
  from.TransferTo(seq, quarantine_ledger_);
  quarantine_.push_back({seq, release_ns});
  ++counters_.quarantined_total;
}

int64_t ModelHost::ReleaseDue(int64_t now_ns) {
  int64_t released = 0;
  while (!quarantine_.empty() && quarantine_.front().release_ns <= now_ns) {
    const SeqId seq = quarantine_.front().seq;
    quarantine_.pop_front();
    absl::Status s = bm_->Free(seq);
    PAGEDKV_CHECK_MSG(s.ok(), "a quarantined sequence vanished from the manager");
    quarantine_ledger_.Drop(seq);
    ++released;
  }
  return released;
}

void ModelHost::FillStats(v1::ModelStats* out) const {
  const BlockManagerStats s = bm_->stats();
  out->set_name(name_);
  out->set_num_sequences(s.num_sequences);
  out->set_num_swapped_sequences(s.num_swapped_sequences);
  for (const GroupPoolStats& g : s.groups) {
    v1::PoolStats* p = out->add_pools();
    p->set_group(g.group);
    p->set_gpu_num_blocks(g.gpu_num_blocks);
    p->set_gpu_free_blocks(g.gpu_free_blocks);
    p->set_gpu_cached_blocks(g.gpu_cached_blocks);
    p->set_gpu_in_use_blocks(g.gpu_in_use_blocks);
    p->set_host_num_blocks(g.host_num_blocks);
    p->set_host_free_blocks(g.host_free_blocks);
    p->set_host_cached_blocks(g.host_cached_blocks);
    p->set_host_in_use_blocks(g.host_in_use_blocks);
  }
  out->set_open_sessions(open_sessions);
  out->set_quarantined_sequences(num_quarantined());
  out->set_quarantined_gpu_blocks(quarantine_ledger_.used(Tier::kGpu));
  out->set_quarantined_host_blocks(quarantine_ledger_.used(Tier::kHost));
  out->set_prefix_query_pages(s.prefix_query_pages);
  out->set_prefix_hit_pages(s.prefix_hit_pages);
  out->set_steps(counters_.steps);
  out->set_ops(counters_.ops);
  out->set_failed_ops(counters_.failed_ops);
  out->set_executed_cache_op_bytes(counters_.executed_cache_op_bytes);
}

absl::Status ModelHost::CheckInvariants(const std::vector<const Session*>& sessions) const {
  const auto where = [&](auto&&... parts) {
    return absl::StrCat("model '", name_, "': ", parts...);
  };
  if (absl::Status s = bm_->CheckInvariants(); !s.ok()) {
    return absl::InternalError(where("block manager: ", s.message()));
  }
  if (absl::Status s = quarantine_ledger_.CheckAgainst(*bm_); !s.ok()) {
    return absl::InternalError(where("quarantine: ", s.message()));
  }
  absl::flat_hash_set<SeqId> owned;
  for (const Held& h : quarantine_) {
    if (!owned.insert(h.seq).second || !quarantine_ledger_.Tracks(h.seq)) {
      return absl::InternalError(
          where("quarantined sequence ", h.seq, " listed twice or untracked"));
    }
  }
  for (const Session* session : sessions) {
    if (session->model != this) continue;
    if (absl::Status s = session->ledger.CheckAgainst(*bm_); !s.ok()) {
      return absl::InternalError(where("session ", session->id, ": ", s.message()));
    }
    if (session->ledger.num_sequences() != static_cast<int64_t>(session->seqs.size())) {
      return absl::InternalError(where("session ", session->id, " tracks ",
                                       session->ledger.num_sequences(), " sequences but maps ",
                                       session->seqs.size()));
    }
    for (const auto& [client_id, seq] : session->seqs) {
      if (!owned.insert(seq).second) {
        return absl::InternalError(
            where("manager sequence ", seq, " is owned twice (session ", session->id, ")"));
      }
      if (!session->ledger.Tracks(seq)) {
        return absl::InternalError(
            where("session ", session->id, " sequence ", client_id, " is not in its ledger"));
      }
    }
  }
  for (SeqId seq : bm_->SequenceIds()) {
    if (!owned.contains(seq)) {
      return absl::InternalError(
          where("manager sequence ", seq, " belongs to no session and no quarantine (a leak)"));
    }
  }
  if (static_cast<int64_t>(owned.size()) != bm_->num_sequences()) {
    return absl::InternalError(
        where(owned.size(), " sequences owned, the manager holds ", bm_->num_sequences()));
  }
  return absl::OkStatus();
}

}  // namespace pagedkv::service::internal
