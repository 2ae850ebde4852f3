// The prefix cache and admission: page hashing as a chain, lookups of a prompt's leading pages
// (GPU first, then the host second level), CanAdmit / AddSequence, and the eviction hooks.
#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

#include "absl/base/attributes.h"
#include "block_manager/internal/block_hasher.h"
#include "block_manager/internal/manager_state.h"
#include "pagedkv/core/logging.h"
#include "pagedkv/core/status.h"

namespace pagedkv {

using internal::CeilDiv;
using internal::HashPage;
using internal::kRootHash;
using internal::PoolState;
using internal::SeqRecord;

// ---- Token metadata, keys and publication -------------------------------------------------------

void BlockManager::Impl::WriteTokens(GroupState& G, BlockTable& t, int32_t start,
                                     absl::Span<const TokenId> tokens) {
  if (!G.hashed) return;
  PoolState& pool = G.gpu;
  if (tokens.size() == 1) {  // the decode step
    int32_t page, off;
    SplitPos(start, &page, &off);
    pool.tokens[static_cast<size_t>(t.blocks_[page]) * bs + off] = tokens[0];
    return;
  }
  size_t i = 0;
  while (i < tokens.size()) {
    int32_t page, off;
    SplitPos(static_cast<int64_t>(start) + static_cast<int64_t>(i), &page, &off);
    const size_t n = std::min(tokens.size() - i, static_cast<size_t>(bs - off));
    std::memcpy(&pool.tokens[static_cast<size_t>(t.blocks_[page]) * bs + off], &tokens[i],
                n * sizeof(TokenId));
    i += n;
  }
}

void BlockManager::Impl::PublishPages(SeqRecord& rec, int32_t full_pages) {
  GroupState& G = groups[0];  // prefix caching implies group 0 is the only full group
  PoolState& pool = G.gpu;
  BlockTable& t = rec.tables[0];
  for (int32_t k = rec.num_hashed_pages; k < full_pages; ++k) {
    const BlockId b = t.blocks_[k];
    const BlockHash& parent = k == 0 ? kRootHash : pool.hashes[t.blocks_[k - 1]];
    const BlockHash h = HashPage(
        parent, absl::MakeConstSpan(&pool.tokens[static_cast<size_t>(b) * bs], bs), rec.hash_key);
    pool.hashes[b] = h;
    pool.parents[b] = parent;
    // Already published by a sharer (same block), or another block holds the same content and
    // keeps serving lookups (this one stays computed but private).
    if (!pool.alloc->is_hashed(b) && Publish(0, Tier::kGpu, pool, b, h)) {
      pool.publisher[b] = rec.serial;
      if (!pool.reuse.empty()) {
        pool.reuse[b] = 0;
        pool.remote_origin[b] = 0;
      }
    }
  }
  rec.num_hashed_pages = full_pages;
}

absl::StatusOr<uint64_t> BlockManager::Impl::HashKey(const SequenceOptions& options, SeqId seq,
                                                     const char* op) const {
  if (!prefix_caching || cross_group < 0) return options.extra_key;
  if (!options.encoder_key.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(
        op, ": sequence ", seq, ": model ", spec.name,
        " has cross-attention layers and prefix caching is on, so decoder pages depend on the "
        "encoder input; pass SequenceOptions.encoder_key (an id of the encoder input, e.g. a hash "
        "of the audio features) or turn prefix caching off"));
  }
  return internal::MixKeys(options.extra_key, *options.encoder_key);
}

bool BlockManager::Impl::TokensEqual(const PoolState& pool, BlockId b,
                                     const TokenId* tokens) const {
  // An inline loop the compiler vectorizes: a libc memcmp call costs more than 16 token ids.
  const TokenId* stored = &pool.tokens[static_cast<size_t>(b) * bs];
  TokenId diff = 0;
  for (int32_t i = 0; i < bs; ++i) diff |= stored[i] ^ tokens[i];
  return diff == 0;
}

// ---- Prefix matching ----------------------------------------------------------------------------

void BlockManager::Impl::MatchPrefix(absl::Span<const TokenId> prompt, uint64_t hash_key,
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
    const BlockHash h = HashPage(parent, absl::MakeConstSpan(toks, bs), hash_key);
    std::optional<BlockId> b = G.gpu.alloc->Peek(h);
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

// ---- Admission ----------------------------------------------------------------------------------

AdmitInfo BlockManager::CanAdmit(absl::Span<const TokenId> prompt,
                                 const SequenceOptions& options) const {
  Impl& s = *impl_;
  AdmitInfo info;
  absl::StatusOr<uint64_t> key = s.HashKey(options, 0, "CanAdmit");
  if (!key.ok() || prompt.size() > static_cast<size_t>(kMaxSequenceTokens)) return info;
  std::vector<Impl::PrefixHit> hits;
  int32_t eligible = 0;
  s.MatchPrefix(prompt, *key, &hits, &eligible);
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
  if (prompt.size() > static_cast<size_t>(kMaxSequenceTokens)) {
    return absl::InvalidArgumentError(absl::StrCat("AddSequence: sequence ", seq, ": prompt of ",
                                                   prompt.size(), " tokens is over the limit of ",
                                                   kMaxSequenceTokens, " tokens per sequence"));
  }
  PAGEDKV_ASSIGN_OR_RETURN(const uint64_t hash_key, s.HashKey(options, seq, "AddSequence"));
  std::vector<Impl::PrefixHit> hits;
  int32_t eligible = 0;
  // Peek: a failed call must not count lookups.
  s.MatchPrefix(prompt, hash_key, &hits, &eligible);
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
    if (pages > static_cast<int64_t>(G.gpu.alloc->num_blocks())) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "AddSequence: sequence ", seq, ": prompt of ", prompt.size(), " tokens needs ", pages,
          " blocks in group ", g, " but the GPU pool has only ", G.gpu.alloc->num_blocks(),
          " blocks: it can never fit; shorten the prompt or configure "
          "more GPU blocks"));
    }
    if (need > avail) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "AddSequence: sequence ", seq, ": prompt of ", prompt.size(), " tokens needs ", need,
          " blocks in group ", g, " (", gpu_hits, " prefix pages cached), ", avail,
          " free + cached available; free or swap out a sequence, or wait"));
    }
  }
  // The remote tier continues the lookup (after the checks, so a failed call asks nothing). Its
  // pages need GPU blocks like misses (counted above) and a host block each for staging.
  std::vector<RemoteTier::Hit> remote_pages;
  std::vector<BlockHash> remote_hashes;
  if (s.remote != nullptr && static_cast<int32_t>(hits.size()) < eligible) {
    const BlockAllocator& host = *s.groups[0].host.alloc;
    int64_t staging = host.num_available();
    for (const Impl::PrefixHit& h : hits) staging -= h.on_host && host.ref_count(h.block) == 0;
    s.LookupRemote(prompt, hash_key, hits.size(), hits.empty() ? kRootHash : hits.back().hash,
                   static_cast<int32_t>(std::max<int64_t>(staging, 0)), &remote_pages,
                   &remote_hashes);
  }
  const int32_t remote_hits = static_cast<int32_t>(remote_pages.size());
  const int32_t cached_pages = static_cast<int32_t>(hits.size()) + remote_hits;

  // Mutate. The GPU index saw one hit per GPU hit and one miss per page looked up further (host
  // hits, and the page where the walk stopped). Take the GPU hits and pin the host hits before
  // allocating, so that evictions by the allocation can reach neither.
  if (s.prefix_caching && s.groups[0].hashed && eligible > 0) {
    const int32_t stopped = static_cast<int32_t>(hits.size()) < eligible ? 1 : 0;
    s.groups[0].gpu.alloc->CountLookups(static_cast<uint64_t>(gpu_hits),
                                        static_cast<uint64_t>(host_hits + stopped));
  }
  std::vector<BlockId> staged;  // host blocks of the remote pages
  SeqRecord* rec = s.records.New();
  rec->id = seq;
  rec->serial = ++s.last_serial;
  rec->extra_key = options.extra_key;
  rec->hash_key = hash_key;
  rec->priority = options.priority;
  rec->tables.resize(s.num_groups());
  for (int32_t g = 0; g < s.num_groups(); ++g) {
    Impl::GroupState& G = s.groups[g];
    if (G.cross) continue;
    BlockTable& t = rec->tables[g];
    t.blocks_.resize(pages);
    int32_t first_new = 0;
    if (G.hashed) {
      // Host hits are held until their swap-in is recorded (which pins them until TakeCacheOps).
      std::vector<BlockId>& gpu_blocks = s.scratch_blocks;
      std::vector<BlockId> host_blocks;
      gpu_blocks.clear();
      for (const Impl::PrefixHit& h : hits) {
        (h.on_host ? host_blocks : gpu_blocks).push_back(h.block);
      }
      absl::Status st = G.gpu.alloc->AddRef(gpu_blocks);
      PAGEDKV_CHECK_MSG(st.ok(), "prefix hit on a free block");
      st = G.host.valid() ? G.host.alloc->AddRef(host_blocks) : absl::OkStatus();
      PAGEDKV_CHECK_MSG(st.ok(), "prefix hit on a free host block");
      if (!G.gpu.reuse.empty()) {  // remote tier: reuse counts decide what is written there
        for (BlockId b : gpu_blocks) ++G.gpu.reuse[b];
        for (BlockId b : host_blocks) ++G.host.reuse[b];
      }
      // Remote pages land in host blocks now, before the GPU allocation's evictions can take the
      // host blocks counted for them; they are then swapped in like host hits.
      staged.clear();
      for (int32_t i = 0; i < remote_hits; ++i) {
        const BlockHash& parent = i > 0          ? remote_hashes[i - 1]
                                  : hits.empty() ? kRootHash
                                                 : hits.back().hash;
        staged.push_back(s.StageRemotePage(g, remote_pages[i], remote_hashes[i], parent));
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
      if (G.hashed && k < cached_pages) {
        // Host hit or staged remote page: copy the page back; the GPU copy is registered under the
        // same hash.
        const bool local = k < static_cast<int32_t>(hits.size());
        const BlockId hb = local ? hits[k].block : staged[k - hits.size()];
        s.RecordSwapIn(g, hb, b);
        s.CopyMeta(G, G.host, hb, G.gpu, b);
        s.Publish(g, Tier::kGpu, G.gpu, b, local ? hits[k].hash : remote_hashes[k - hits.size()]);
        s.Release(G.host, hb, EvictionPriority::kNormal);
      }
    }
    t.num_tokens_ = static_cast<int32_t>(prompt.size());
    if (G.hashed) {
      const int32_t start = cached_pages * s.bs;
      s.WriteTokens(G, t, start, prompt.subspan(start));
    }
  }
  rec->num_tokens = static_cast<int32_t>(prompt.size());
  // Hit pages hold computed K/V and their hashes are known (GPU hits keep theirs; host hits and
  // remote pages carry theirs over with CopyMeta).
  rec->num_computed = cached_pages * s.bs;
  rec->num_hashed_pages = cached_pages;
  s.seqs.emplace(seq, rec);
  s.prefix_query_pages += eligible;
  s.prefix_hit_pages += cached_pages;
  s.prefix_host_hit_pages += host_hits;
  s.prefix_remote_hit_pages += remote_hits;
  PAGEDKV_LOG_TRACE(
      "add seq={} tokens={} pages={} gpu_hits={} host_hits={} remote_hits={} new_blocks={}", seq,
      prompt.size(), pages, gpu_hits, host_hits, remote_hits, total_new);
  AdmitInfo info;
  info.can_admit = true;
  info.num_cached_tokens = cached_pages * s.bs;
  info.num_new_blocks = total_new;
  info.num_host_hit_pages = host_hits;
  info.num_remote_hit_pages = remote_hits;
  PAGEDKV_DCHECK_OK_EXPENSIVE(CheckInvariants());
  return info;
}

// ---- Compute progress ---------------------------------------------------------------------------

namespace {
bool ComputedInRange(const SeqRecord& rec, int64_t n) {
  return n >= rec.num_computed && n <= rec.num_tokens;
}
ABSL_ATTRIBUTE_NOINLINE absl::Status ComputedOutOfRange(const SeqRecord& rec, int64_t n,
                                                        const char* op) {
  return absl::InvalidArgumentError(
      absl::StrCat(op, ": sequence ", rec.id, " has ", rec.num_tokens, " tokens of which ",
                   rec.num_computed, " are computed; num_computed_tokens ", n, " must be in [",
                   rec.num_computed, ", ", rec.num_tokens, "] (it only grows; Rewind lowers it)"));
}
}  // namespace

absl::Status BlockManager::MarkComputed(SeqId seq, int64_t num_computed_tokens) {
  Impl& s = *impl_;
  SeqRecord* rec = s.Find(seq);
  if (rec == nullptr) return Impl::NotFound(seq, "MarkComputed");
  if (rec->swapped) return Impl::Swapped(seq, "MarkComputed");
  if (!ComputedInRange(*rec, num_computed_tokens)) {
    return ComputedOutOfRange(*rec, num_computed_tokens, "MarkComputed");
  }
  rec->num_computed = static_cast<int32_t>(num_computed_tokens);
  s.PublishComputed(*rec);
  s.ops_done_gen = s.ops_taken_gen;
  PAGEDKV_DCHECK_OK_EXPENSIVE(CheckInvariants());
  return absl::OkStatus();
}

absl::Status BlockManager::MarkComputedBatch(absl::Span<const SeqId> seqs,
                                             absl::Span<const int64_t> num_computed_tokens) {
  Impl& s = *impl_;
  if (seqs.size() != num_computed_tokens.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("MarkComputedBatch: ", seqs.size(), " sequences but ",
                     num_computed_tokens.size(), " computed counts; pass one count per sequence"));
  }
  // The engine usually reports exactly the sequences of the step's AppendTokenBatch, in order:
  // their records are known (none was freed since), so no id lookup is needed.
  if (s.last_batch_epoch == s.records_epoch && seqs.size() == s.last_batch.size()) {
    size_t i = 0;
    for (; i < seqs.size(); ++i) {
      const SeqRecord* rec = s.last_batch[i];
      if (rec->id != seqs[i] || rec->swapped || !ComputedInRange(*rec, num_computed_tokens[i])) {
        break;
      }
    }
    if (i == seqs.size()) {
      for (i = 0; i < seqs.size(); ++i) {
        SeqRecord* rec = s.last_batch[i];
        rec->num_computed = static_cast<int32_t>(num_computed_tokens[i]);
        s.PublishComputed(*rec);
      }
      s.ops_done_gen = s.ops_taken_gen;
      PAGEDKV_DCHECK_OK_EXPENSIVE(CheckInvariants());
      return absl::OkStatus();
    }
  }
  const uint64_t stamp = ++s.stamp;
  s.scratch_recs.clear();
  for (size_t i = 0; i < seqs.size(); ++i) {
    SeqRecord* rec = s.Find(seqs[i]);
    if (rec == nullptr) return Impl::NotFound(seqs[i], "MarkComputedBatch");
    if (rec->swapped) return Impl::Swapped(seqs[i], "MarkComputedBatch");
    if (rec->stamp == stamp) {
      return absl::InvalidArgumentError(absl::StrCat("MarkComputedBatch: sequence ", seqs[i],
                                                     " is listed twice; list each once"));
    }
    rec->stamp = stamp;
    if (!ComputedInRange(*rec, num_computed_tokens[i])) {
      return ComputedOutOfRange(*rec, num_computed_tokens[i], "MarkComputedBatch");
    }
    s.scratch_recs.push_back(rec);
  }
  for (size_t i = 0; i < s.scratch_recs.size(); ++i) {
    SeqRecord* rec = s.scratch_recs[i];
    rec->num_computed = static_cast<int32_t>(num_computed_tokens[i]);
    s.PublishComputed(*rec);
  }
  s.ops_done_gen = s.ops_taken_gen;
  PAGEDKV_DCHECK_OK_EXPENSIVE(CheckInvariants());
  return absl::OkStatus();
}

absl::StatusOr<int64_t> BlockManager::NumComputedTokens(SeqId seq) const {
  const SeqRecord* rec = impl_->Find(seq);
  if (rec == nullptr) return Impl::NotFound(seq, "NumComputedTokens");
  return rec->num_computed;
}

// ---- Eviction hooks -----------------------------------------------------------------------------

absl::Status BlockManager::SetEvictionPriority(SeqId seq, EvictionPriority priority) {
  SeqRecord* rec = impl_->Find(seq);
  if (rec == nullptr) return Impl::NotFound(seq, "SetEvictionPriority");
  rec->priority = priority;
  return absl::OkStatus();
}

int32_t BlockManager::TouchPrefix(absl::Span<const TokenId> prompt,
                                  const SequenceOptions& options) {
  Impl& s = *impl_;
  absl::StatusOr<uint64_t> key = s.HashKey(options, 0, "TouchPrefix");
  if (!key.ok()) return 0;
  std::vector<Impl::PrefixHit> hits;
  int32_t eligible = 0;
  s.MatchPrefix(prompt, *key, &hits, &eligible);
  int32_t n = 0;
  for (const Impl::PrefixHit& h : hits) {
    if (h.on_host) break;
    (void)s.groups[0].gpu.alloc->Touch(h.block);
    ++n;
  }
  PAGEDKV_LOG_TRACE("touch_prefix tokens={} pages={}", prompt.size(), n);
  return n;
}
}  // namespace pagedkv
