#include "tests/block_manager/data_harness.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <initializer_list>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "pagedkv/core/status.h"

namespace pagedkv::testing {
namespace {

uint32_t Mix32(uint32_t h) {
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

// K word of layer `layer_in_group` for value v; the V word is its complement.
uint32_t KeyWord(uint32_t v, int32_t layer_in_group) {
  return v ^ (0x9e3779b9u * static_cast<uint32_t>(layer_in_group + 1));
}

uint32_t CrossValue(uint32_t seed, int32_t pos) {
  return Mix32(seed * 0x27d4eb2fu + static_cast<uint32_t>(pos));
}

absl::Status Violation(const std::string& what) { return absl::InternalError(what); }

std::string CodeList(std::initializer_list<absl::StatusCode> codes) {
  std::string out;
  for (absl::StatusCode c : codes) absl::StrAppend(&out, out.empty() ? "" : "|", c);
  return out;
}

}  // namespace

const char* HarnessModelName(HarnessModel model) {
  switch (model) {
    case HarnessModel::kShares:
      return "shares";
    case HarnessModel::kFullSliding:
      return "full_sliding";
    case HarnessModel::kCross:
      return "full_cross";
    case HarnessModel::kFull:
      return "full";
    case HarnessModel::kSliding:
      return "sliding";
  }
  return "?";
}

uint32_t ByteOpSource::Next(uint32_t bound) {
  uint32_t v = 0;
  const int bytes = bound <= 256 ? 1 : 2;
  for (int i = 0; i < bytes; ++i) {
    v = (v << 8) | (pos_ < bytes_.size() ? bytes_[pos_] : 0);
    if (pos_ < bytes_.size()) ++pos_;
  }
  return v % bound;
}

std::string HarnessCounters::ToString() const {
  return absl::StrCat(
      "ops=", ops, " ok=", ok, " failed=", failed, " adds=", adds, " appends=", appends,
      " batch_appends=", batch_appends, " forks=", forks, " reorders=", reorders,
      " rewinds=", rewinds, " frees=", frees, " swap_outs=", swap_outs, " swap_ins=", swap_ins,
      " crosses=", crosses, " bad_inputs=", bad_inputs, " readmits=", readmits,
      " partial_computes=", partial_computes, " poisoned_blocks=", poisoned_blocks,
      " remote_faults=", remote_faults, " remote_hit_pages=", remote_hit_pages,
      " remote_writes=", remote_writes, " remote_misses_by_fault=", remote_misses_by_fault,
      " prefix_hit_pages=", prefix_hit_pages, " host_hit_pages=", host_hit_pages,
      " cow_copies=", cow_copies, " evictions=", evictions, " host_offloads=", host_offloads,
      " verified_tokens=", verified_tokens);
}

absl::StatusOr<std::unique_ptr<DataHarness>> DataHarness::Create(const HarnessOptions& options) {
  std::unique_ptr<DataHarness> h(new DataHarness(options));
  const int32_t bs = options.block_size;
  h->bs_ = bs;
  h->max_prompt_ = std::max(48, 3 * bs);
  ModelSpec spec;
  spec.name = absl::StrCat("harness-", HarnessModelName(options.model));
  spec.num_q_heads = 1;
  spec.num_kv_heads = 1;
  spec.head_dim = 1;
  spec.kv_dtype = DType::kFp32;  // one 32-bit word per K and per V of a token and layer
  switch (options.model) {
    case HarnessModel::kShares:
      spec.layers = {LayerSpec::Full(), LayerSpec::Shares(0), LayerSpec::Full()};
      break;
    case HarnessModel::kFullSliding:
      spec.layers = {LayerSpec::Full(), LayerSpec::Sliding(2 * bs + 3), LayerSpec::Shares(1)};
      break;
    case HarnessModel::kCross:
      spec.layers = {LayerSpec::Full(), LayerSpec::Cross()};
      break;
    case HarnessModel::kFull:
      spec.layers = {LayerSpec::Full()};
      break;
    case HarnessModel::kSliding:
      spec.layers = {LayerSpec::Sliding(2 * bs + 3), LayerSpec::Shares(0)};
      break;
  }
  CacheConfig cfg;
  cfg.block_size_tokens = bs;
  cfg.gpu_tier = Tier::kHost;  // real bytes the harness can read with memcpy, with or without CUDA
  const uint32_t derived = static_cast<uint32_t>((6 * h->max_prompt_ + bs - 1) / bs + 4);
  cfg.gpu_num_blocks = options.gpu_blocks > 0 ? options.gpu_blocks : derived;
  cfg.host_num_blocks =
      options.host_tier ? (options.host_blocks > 0 ? options.host_blocks : derived) : 0;
  cfg.watermark = 0.0;
  cfg.enable_prefix_caching = options.prefix_caching;
  if (options.remote) {
    static std::atomic<uint64_t> next_store{0};
    cfg.remote.url = absl::StrCat("memory://data-harness-", next_store.fetch_add(1));
    cfg.remote.admit_hits = options.remote_admit_hits;
    cfg.remote.timeout_us = 2000;
    h->store_ = MemoryStore::Named(cfg.remote.url.substr(9));
  }
  PAGEDKV_ASSIGN_OR_RETURN(h->bm_, BlockManager::Create(spec, cfg));
  // Poison every byte, so a page read before it was written is caught; and every block again
  // when it is allocated (its previous owner's bytes could be right by chance).
  for (int32_t g = 0; g < h->bm_->num_groups(); ++g) {
    MemoryPool& gpu = h->bm_->gpu_pool(g);
    std::memset(gpu.base(), 0xA5, gpu.total_bytes());
    if (MemoryPool* host = h->bm_->host_pool(g))
      std::memset(host->base(), 0x5A, host->total_bytes());
  }
  h->fresh_gpu_.resize(h->bm_->num_groups());
  DataHarness* raw = h.get();
  // A host block is poisoned at once: nothing pending reads it (a block with a pending swap-in
  // is pinned), and what fills it comes later (a swap-out op) or right after (a remote page
  // staged by the manager). A GPU block waits for the step's swap-outs, which may still read an
  // evicted block's old contents.
  h->bm_->TEST_SetAllocationHook([raw](int32_t group, Tier tier, BlockId block) {
    if (tier == Tier::kHost) {
      raw->Poison(true, group, block);
    } else {
      raw->fresh_gpu_[group].push_back(block);
    }
  });
  std::mt19937 rng(12345);
  h->shared_prefixes_.resize(3);
  for (auto& p : h->shared_prefixes_) {
    p.resize(h->max_prompt_);
    for (TokenId& t : p) t = static_cast<TokenId>(rng() % 50000);
  }
  return h;
}

uint32_t DataHarness::ValueAfter(uint32_t prev, TokenId token, uint64_t key) const {
  return Mix32(prev ^ (static_cast<uint32_t>(token) * 0x85ebca6bu) ^
               static_cast<uint32_t>(key * 0xc2b2ae35u));
}

void DataHarness::Recompute(RefSeq& r, int32_t from) const {
  r.values.resize(r.tokens.size());
  const uint64_t key = r.extra_key ^ (r.encoder_key * 0x9e3779b97f4a7c15ull);
  for (size_t p = static_cast<size_t>(from); p < r.tokens.size(); ++p) {
    const uint32_t prev = p == 0 ? 0x12345678u ^ static_cast<uint32_t>(key) : r.values[p - 1];
    r.values[p] = ValueAfter(prev, r.tokens[p], key);
  }
}

void DataHarness::Poison(bool host, int32_t group, BlockId block) {
  MemoryPool* pool = host ? bm_->host_pool(group) : &bm_->gpu_pool(group);
  std::memset(pool->BlockData(block), host ? 0x5A : 0xA5, pool->bytes_per_block());
  ++counters_.poisoned_blocks;
}

std::vector<TokenId> DataHarness::MakePrompt(OpSource& src) {
  // Three in four prompts start with a piece of a shared prefix (prefix-cache hits), then a short
  // random suffix; the rest are random throughout. Empty prompts occur too.
  std::vector<TokenId> prompt;
  uint32_t suffix = 0;
  if (src.Next(4) != 0) {
    const auto& prefix = shared_prefixes_[src.Next(static_cast<uint32_t>(shared_prefixes_.size()))];
    prompt.assign(prefix.begin(),
                  prefix.begin() + src.Next(static_cast<uint32_t>(max_prompt_) + 1));
    suffix = src.Next(9);
  } else {
    suffix = src.Next(static_cast<uint32_t>(max_prompt_) + 1);
  }
  for (uint32_t i = 0; i < suffix; ++i) prompt.push_back(static_cast<TokenId>(src.Next(1000)));
  if (prompt.size() > static_cast<size_t>(max_prompt_)) prompt.resize(max_prompt_);
  return prompt;
}

SeqId DataHarness::PickLive(OpSource& src, bool want_resident, bool* found) {
  *found = false;
  if (ids_.empty()) return 0;
  SeqId id = ids_[src.Next(static_cast<uint32_t>(ids_.size()))];
  for (int i = 0; i < 4 && want_resident && ref_[id].swapped; ++i) {
    id = ids_[src.Next(static_cast<uint32_t>(ids_.size()))];
  }
  *found = true;
  return id;
}

absl::Status DataHarness::ExpectFailure(const absl::Status& st,
                                        std::initializer_list<absl::StatusCode> codes,
                                        const BlockManagerStats& before, const char* op) {
  if (st.ok()) return Violation(absl::StrCat(op, ": succeeded, expected ", CodeList(codes)));
  if (std::find(codes.begin(), codes.end(), st.code()) == codes.end()) {
    return Violation(
        absl::StrCat(op, ": returned ", st.ToString(), ", expected ", CodeList(codes)));
  }
  if (!(bm_->stats() == before)) {
    return Violation(absl::StrCat(op, ": failed with ", st.ToString(), " but changed the stats"));
  }
  PAGEDKV_RETURN_IF_ERROR(bm_->CheckInvariants());
  ++counters_.failed;
  return absl::OkStatus();
}

uint32_t* DataHarness::Word(bool host, int32_t group, BlockId block, int32_t layer, int32_t kv,
                            int32_t slot_in_block) {
  MemoryPool* pool = host ? bm_->host_pool(group) : &bm_->gpu_pool(group);
  auto* base = reinterpret_cast<uint32_t*>(pool->BlockData(block));
  return base + (static_cast<size_t>(layer) * 2 + kv) * bs_ + slot_in_block;
}

absl::Status DataHarness::Flush(OpSource* src) {
  bm_->TakeCacheOps(&ops_);
  if (static_cast<int32_t>(ops_.groups.size()) != bm_->num_groups()) {
    return Violation(absl::StrCat("CacheOps has ", ops_.groups.size(), " groups"));
  }
  for (int32_t g = 0; g < bm_->num_groups(); ++g) {
    const GroupCacheOps& go = ops_.groups[g];
    if (go.group != g || go.bytes_per_block != bm_->group_info(g).bytes_per_block) {
      return Violation(absl::StrCat("CacheOps group ", g, " header wrong"));
    }
    MemoryPool& gpu = bm_->gpu_pool(g);
    MemoryPool* host = bm_->host_pool(g);
    const uint64_t bpb = go.bytes_per_block;
    const uint32_t gn = gpu.num_blocks();
    const uint32_t hn = host ? host->num_blocks() : 0;
    auto check = [&](const std::vector<BlockPair>& pairs, uint32_t src_n, uint32_t dst_n,
                     const char* kind) -> absl::Status {
      absl::flat_hash_set<BlockId> dsts;
      for (const BlockPair& p : pairs) {
        if (p.src >= src_n || p.dst >= dst_n || !dsts.insert(p.dst).second) {
          return Violation(absl::StrCat(kind, " pair (", p.src, ", ", p.dst,
                                        ") out of range or duplicate destination"));
        }
      }
      return absl::OkStatus();
    };
    PAGEDKV_RETURN_IF_ERROR(check(go.swap_out, gn, hn, "swap_out"));
    PAGEDKV_RETURN_IF_ERROR(check(go.swap_in, hn, gn, "swap_in"));
    PAGEDKV_RETURN_IF_ERROR(check(go.copies, gn, gn, "copy"));
    // Copies run concurrently on a device: no destination may also be a source.
    absl::flat_hash_set<BlockId> copy_dsts;
    for (const BlockPair& p : go.copies) copy_dsts.insert(p.dst);
    for (const BlockPair& p : go.copies) {
      if (copy_dsts.contains(p.src)) {
        return Violation(absl::StrCat("copy source ", p.src, " is also a copy destination"));
      }
    }
    // Fresh GPU blocks hold garbage after the swap_outs, which may still read an evicted block's
    // previous contents.
    for (const BlockPair& p : go.swap_out) {
      std::memcpy(host->BlockData(p.dst), gpu.BlockData(p.src), bpb);
    }
    for (BlockId b : fresh_gpu_[g]) Poison(false, g, b);
    fresh_gpu_[g].clear();
    for (const BlockPair& p : go.swap_in) {
      std::memcpy(gpu.BlockData(p.dst), host->BlockData(p.src), bpb);
    }
    for (const BlockPair& p : go.copies) {
      std::memcpy(gpu.BlockData(p.dst), gpu.BlockData(p.src), bpb);
    }
  }
  if (!bm_->TakeCacheOps().empty()) {
    return Violation("a second TakeCacheOps returned operations");
  }

  // The model computes a chunk of every resident sequence's uncomputed tokens (all of them without
  // a source) and writes their K/V, one batch per group.
  std::vector<BatchEntry> entries;
  std::vector<SeqId> cross_ids;
  for (SeqId id : ids_) {
    RefSeq& r = ref_[id];
    if (r.swapped) continue;
    const int32_t pending = static_cast<int32_t>(r.tokens.size()) - r.written;
    int32_t chunk = pending;
    if (src != nullptr && pending > 0 && src->Next(3) == 0) {
      chunk = static_cast<int32_t>(src->Next(static_cast<uint32_t>(pending) + 1));
      counters_.partial_computes += chunk < pending;
    }
    if (chunk > 0) entries.push_back({id, chunk, r.written + chunk});
    if (!r.cross_written) cross_ids.push_back(id);
  }
  for (int32_t g = 0; g < bm_->num_groups() && !entries.empty(); ++g) {
    const KvGroup& kg = bm_->group_info(g).group;
    if (kg.kind == AttentionKind::kCross) continue;
    const absl::Status st = bm_->BuildBatch(entries, g, &layout_);
    if (!st.ok()) return Violation(absl::StrCat("BuildBatch for writes: ", st.ToString()));
    if (layout_.batch_size() != static_cast<int32_t>(entries.size()) ||
        static_cast<int32_t>(layout_.page_indptr.size()) != layout_.batch_size() + 1 ||
        static_cast<int32_t>(layout_.query_indptr.size()) != layout_.batch_size() + 1 ||
        layout_.block_size != bs_ || layout_.group != g) {
      return Violation("BatchLayout array sizes wrong");
    }
    for (size_t b = 0; b < entries.size(); ++b) {
      const RefSeq& r = ref_[entries[b].seq_id];
      PAGEDKV_ASSIGN_OR_RETURN(const BlockTable* t, bm_->GetBlockTable(entries[b].seq_id, g));
      // Page table of the entry = the table's live pages up to its context's last page.
      const int32_t ctx = entries[b].num_context_tokens;
      const int32_t last_page = (ctx - 1) / bs_;
      const int32_t np = layout_.page_indptr[b + 1] - layout_.page_indptr[b];
      if (np != last_page - t->first_live_page() + 1 ||
          layout_.first_page_token[b] != t->first_live_page() * bs_ ||
          layout_.last_page_len[b] != ctx - last_page * bs_) {
        return Violation(absl::StrCat("BatchLayout entry ", b, " page table wrong"));
      }
      for (int32_t k = 0; k < np; ++k) {
        if (static_cast<BlockId>(layout_.page_indices[layout_.page_indptr[b] + k]) !=
            t->blocks()[t->first_live_page() + k]) {
          return Violation(absl::StrCat("BatchLayout entry ", b, " page ", k, " wrong"));
        }
      }
      const int32_t q0 = layout_.query_indptr[b];
      if (layout_.query_indptr[b + 1] - q0 != entries[b].num_new_tokens) {
        return Violation("query_indptr wrong");
      }
      for (int32_t i = 0; i < entries[b].num_new_tokens; ++i) {
        const int32_t pos = r.written + i;
        const int64_t slot = layout_.slot_mapping[q0 + i];
        if (slot != t->Slot(pos, bs_)) {
          return Violation(absl::StrCat("slot_mapping of token ", pos, " is ", slot,
                                        ", table says ", t->Slot(pos, bs_)));
        }
        const BlockId block = static_cast<BlockId>(slot / bs_);
        const int32_t off = static_cast<int32_t>(slot % bs_);
        for (int32_t l = 0; l < static_cast<int32_t>(kg.layers.size()); ++l) {
          const uint32_t k = KeyWord(r.values[pos], l);
          *Word(false, g, block, l, 0, off) = k;
          *Word(false, g, block, l, 1, off) = ~k;
        }
      }
    }
  }
  // After the forward pass the engine reports what it computed (one batch call, or one call per
  // sequence); full computed pages become prefix hits from now on.
  std::vector<SeqId> ids;
  std::vector<int64_t> computed;
  for (const BatchEntry& e : entries) {
    RefSeq& r = ref_[e.seq_id];
    r.written += e.num_new_tokens;
    ids.push_back(e.seq_id);
    computed.push_back(r.written);
  }
  if (src != nullptr && src->Next(2) == 0) {
    for (size_t i = 0; i < ids.size(); ++i) {
      const absl::Status st = bm_->MarkComputed(ids[i], computed[i]);
      if (!st.ok()) return Violation(absl::StrCat("MarkComputed: ", st.ToString()));
    }
  } else {
    const absl::Status st = bm_->MarkComputedBatch(ids, computed);
    if (!st.ok()) return Violation(absl::StrCat("MarkComputedBatch: ", st.ToString()));
  }
  if (store_ != nullptr && !bm_->FlushRemoteWrites(absl::Seconds(10))) {
    return Violation("remote writes did not finish within 10 s");
  }
  for (SeqId id : cross_ids) {
    RefSeq& r = ref_[id];
    int32_t cg = -1;
    for (int32_t g = 0; g < bm_->num_groups(); ++g) {
      if (bm_->group_info(g).group.kind == AttentionKind::kCross) cg = g;
    }
    const BatchEntry e{id, r.encoder_tokens, -1};
    const absl::Status st = bm_->BuildBatch(absl::MakeConstSpan(&e, 1), cg, &layout_);
    if (!st.ok()) return Violation(absl::StrCat("BuildBatch cross: ", st.ToString()));
    if (layout_.num_new_tokens() != r.encoder_tokens) return Violation("cross slot count wrong");
    const int32_t layers = static_cast<int32_t>(bm_->group_info(cg).group.layers.size());
    for (int32_t p = 0; p < r.encoder_tokens; ++p) {
      const int64_t slot = layout_.slot_mapping[p];
      for (int32_t l = 0; l < layers; ++l) {
        const uint32_t k = KeyWord(CrossValue(r.encoder_seed, p), l);
        *Word(false, cg, static_cast<BlockId>(slot / bs_), l, 0, static_cast<int32_t>(slot % bs_)) =
            k;
        *Word(false, cg, static_cast<BlockId>(slot / bs_), l, 1, static_cast<int32_t>(slot % bs_)) =
            ~k;
      }
    }
    r.cross_written = true;
  }
  return absl::OkStatus();
}

absl::Status DataHarness::CompleteCompute(SeqId id) {
  const RefSeq& r = ref_[id];
  if (r.swapped || r.written == static_cast<int32_t>(r.tokens.size())) return absl::OkStatus();
  return Flush();
}

absl::Status DataHarness::VerifySeq(SeqId id, const RefSeq& r) {
  PAGEDKV_ASSIGN_OR_RETURN(SequenceStats ss, bm_->GetSequenceStats(id));
  if (ss.num_tokens != static_cast<int32_t>(r.tokens.size()) || ss.swapped_out != r.swapped ||
      ss.num_encoder_tokens != (r.has_cross ? r.encoder_tokens : 0) ||
      ss.num_computed_tokens != r.written) {
    return Violation(absl::StrCat("sequence ", id, ": stats say ", ss.num_tokens, " tokens (",
                                  ss.num_computed_tokens, " computed), swapped ", ss.swapped_out,
                                  "; reference ", r.tokens.size(), " (", r.written, "), ",
                                  r.swapped));
  }
  for (int32_t g = 0; g < bm_->num_groups(); ++g) {
    const KvGroup& kg = bm_->group_info(g).group;
    PAGEDKV_ASSIGN_OR_RETURN(const BlockTable* t, bm_->GetBlockTable(id, g));
    if (t->tier() != (r.swapped ? Tier::kHost : Tier::kGpu)) {
      return Violation(absl::StrCat("sequence ", id, " group ", g, ": table on the wrong tier"));
    }
    const bool cross = kg.kind == AttentionKind::kCross;
    const int32_t len = cross ? (r.has_cross ? r.encoder_tokens : 0)
                              : std::min<int32_t>(r.written, static_cast<int32_t>(r.tokens.size()));
    const int32_t want_tokens = cross ? len : static_cast<int32_t>(r.tokens.size());
    if (t->num_tokens() != want_tokens) {
      return Violation(absl::StrCat("sequence ", id, " group ", g, ": table has ", t->num_tokens(),
                                    " tokens, reference ", want_tokens));
    }
    if (cross && !r.cross_written) continue;
    for (int32_t p = t->first_live_page() * bs_; p < len; ++p) {
      const BlockId block = t->blocks()[p / bs_];
      const uint32_t v = cross ? CrossValue(r.encoder_seed, p) : r.values[p];
      for (int32_t l = 0; l < static_cast<int32_t>(kg.layers.size()); ++l) {
        const uint32_t k = *Word(r.swapped, g, block, l, 0, p % bs_);
        const uint32_t vv = *Word(r.swapped, g, block, l, 1, p % bs_);
        if (k != KeyWord(v, l) || vv != ~KeyWord(v, l)) {
          return Violation(absl::StrCat("DATA: sequence ", id, " group ", g, " token ", p,
                                        " layer ", l, " (", r.swapped ? "host" : "gpu", " block ",
                                        block, ") holds ", k, "/", vv, ", expected ",
                                        KeyWord(v, l)));
        }
      }
      ++counters_.verified_tokens;
    }
  }
  return absl::OkStatus();
}

absl::Status DataHarness::VerifyAll() {
  PAGEDKV_RETURN_IF_ERROR(bm_->CheckInvariants());
  if (bm_->num_sequences() != static_cast<int64_t>(ref_.size())) {
    return Violation(
        absl::StrCat("manager has ", bm_->num_sequences(), " sequences, reference ", ref_.size()));
  }
  for (const auto& [id, r] : ref_) PAGEDKV_RETURN_IF_ERROR(VerifySeq(id, r));
  return absl::OkStatus();
}

absl::Status DataHarness::Drain() {
  PAGEDKV_RETURN_IF_ERROR(Flush());
  PAGEDKV_RETURN_IF_ERROR(VerifyAll());
  for (SeqId id : ids_) PAGEDKV_RETURN_IF_ERROR(bm_->Free(id));
  ids_.clear();
  ref_.clear();
  PAGEDKV_RETURN_IF_ERROR(Flush());
  PAGEDKV_RETURN_IF_ERROR(bm_->CheckInvariants());
  const BlockManagerStats st = bm_->stats();
  for (const GroupPoolStats& g : st.groups) {
    if (g.gpu_in_use_blocks != 0 || g.host_in_use_blocks != 0) {
      return Violation(absl::StrCat("leak: group ", g.group, " has ", g.gpu_in_use_blocks,
                                    " GPU and ", g.host_in_use_blocks,
                                    " host blocks in use after freeing everything"));
    }
  }
  counters_.prefix_hit_pages = st.prefix_hit_pages;
  counters_.remote_hit_pages = st.prefix_remote_hit_pages;
  if (store_ != nullptr) {
    const RemoteTierStats rs = bm_->remote_stats();
    counters_.remote_writes = rs.writes_done;
    counters_.remote_misses_by_fault =
        rs.miss_timeout + rs.miss_error + rs.miss_corrupt + rs.miss_foreign;
  }
  counters_.host_hit_pages = st.prefix_host_hit_pages;
  counters_.cow_copies = st.cow_copies;
  counters_.host_offloads = st.host_offloads;
  counters_.evictions = 0;
  for (int32_t g = 0; g < bm_->num_groups(); ++g) {
    counters_.evictions += bm_->gpu_allocator(g).stats().evictions;
  }
  return absl::OkStatus();
}

absl::Status DataHarness::Run(OpSource& src, int64_t num_ops) {
  for (int64_t i = 0; i < num_ops && !src.Done(); ++i) {
    PAGEDKV_RETURN_IF_ERROR(Step(src));
    if (opt_.verify_every > 0 && (i + 1) % opt_.verify_every == 0) {
      PAGEDKV_RETURN_IF_ERROR(Flush());
      PAGEDKV_RETURN_IF_ERROR(VerifyAll());
    }
  }
  return Drain();
}

absl::Status DataHarness::Step(OpSource& src) {
  // Tokens added by earlier calls are computed (written) in the steps that follow, a chunk at a
  // time, before any other manager call, as an engine does.
  bool pending = false;
  for (const auto& [id, r] : ref_) {
    pending |=
        !r.swapped && (r.written < static_cast<int32_t>(r.tokens.size()) || !r.cross_written);
  }
  if (pending) PAGEDKV_RETURN_IF_ERROR(Flush(&src));
  ++counters_.ops;
  const uint32_t pick = src.Next(100);
  absl::Status st;
  if (pick < 14) {
    st = OpAdd(src);
  } else if (pick < 36) {
    st = OpAppend(src);
  } else if (pick < 46) {
    st = OpAppendBatch(src);
  } else if (pick < 54) {
    st = OpFork(src);
  } else if (pick < 60) {
    st = OpReorder(src);
  } else if (pick < 67) {
    st = OpRewind(src);
  } else if (pick < 77) {
    st = OpFree(src);
  } else if (pick < 83) {
    st = OpSwapOut(src);
  } else if (pick < 89) {
    st = OpSwapIn(src);
  } else if (pick < 92) {
    st = OpCross(src);
  } else if (pick < 95) {
    st = OpBadInput(src);
  } else if (pick < 98) {
    st = OpReadmit(src);
  } else if (pick < 99 && store_ != nullptr) {
    st = OpRemoteFault(src);
  } else {
    st = Flush(&src);
  }
  if (store_fault_ops_ > 0 && --store_fault_ops_ == 0) {
    store_->TEST_SetDown(false);
    store_->TEST_SetDelay(absl::ZeroDuration());
  }
  if (!st.ok()) {
    return absl::InternalError(absl::StrCat("op ", counters_.ops, ": ", st.message()));
  }
  return absl::OkStatus();
}

}  // namespace pagedkv::testing
