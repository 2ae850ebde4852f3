// The paged policy: a BlockManager whose GPU pool lives on PolicyConfig::gpu_tier: kVirtual
// (metadata only, the default) so the simulator can model an 80 GB GPU anywhere, or real memory
// for an engine that computes K/V in the pool (python/pagedkv/engine). Pages are shared by forks,
// beams and prefix-cache hits; swap uses a host tier when the config gives it swap space.
#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "internal/policies.h"
#include "pagedkv/block_manager/block_manager.h"
#include "pagedkv/block_manager/cache_ops.h"
#include "pagedkv/core/cache_config.h"
#include "pagedkv/core/status.h"
#include "pagedkv/scheduler/policy.h"

namespace pagedkv::internal {
namespace {

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

class PagedPolicy final : public KvCachePolicy {
 public:
  PagedPolicy(const PolicyConfig& config, std::unique_ptr<BlockManager> bm)
      : config_(config),
        bm_(std::move(bm)),
        block_size_(config.block_size_tokens),
        bytes_per_token_(config.model.BytesPerTokenPerLayer() *
                         static_cast<uint64_t>(config.model.NumStorageLayers())) {
    num_blocks_ = 0;
    for (int32_t g = 0; g < bm_->num_groups(); ++g) {
      num_blocks_ = std::max<int64_t>(num_blocks_, bm_->group_info(g).gpu_num_blocks);
      const KvGroup& kg = bm_->group_info(g).group;
      if (kg.kind == AttentionKind::kSliding) sliding_windows_.push_back(kg.window_tokens);
      if (kg.kind == AttentionKind::kFull) has_full_group_ = true;
    }
  }

  PolicyKind kind() const override { return PolicyKind::kPaged; }

  // Pages the fullest group's pool holds for a group of `num_seqs` sequences at its longest. A
  // full group: the prompt's full pages are shared after the fork; every sequence owns the rest.
  // A sliding group holds at most its window plus the tokens being appended (a prefill chunk, or
  // the whole stored prompt without chunking), per sequence (conservatively unshared).
  int64_t PeakBlocks(const AdmitRequest& r) const {
    const int64_t final_tokens = std::max<int64_t>(
        static_cast<int64_t>(r.prompt_tokens) + std::max(r.output_tokens, 1) - 1, r.stored_tokens);
    const int64_t n = std::max(r.num_seqs, 1);
    const int64_t pages = CeilDiv(final_tokens, block_size_);
    int64_t peak = 0;
    if (has_full_group_) {
      const int64_t shared = n == 1 ? 0 : r.prompt_tokens / block_size_;
      peak = shared + n * (pages - shared);
    }
    for (int32_t w : sliding_windows_) {
      const int64_t decode = CeilDiv(static_cast<int64_t>(w) - 1, block_size_) + 1;
      const int64_t prefill =
          r.max_chunk_tokens > 0
              ? CeilDiv(static_cast<int64_t>(w) + r.max_chunk_tokens - 2, block_size_) + 1
              : CeilDiv(r.stored_tokens, block_size_);
      peak = std::max(peak, n * std::min(pages, std::max(decode, prefill)));
    }
    return peak;
  }

  AdmitCheck CanAdmit(const AdmitRequest& request, absl::Span<const TokenId> tokens) override {
    AdmitCheck check;
    // A server rejects requests whose prompt + output exceeds max_model_len.
    check.too_long =
        static_cast<int64_t>(request.prompt_tokens) + request.output_tokens > config_.max_model_len;
    check.ever_fits = !check.too_long && PeakBlocks(request) <= num_blocks_;
    if (!check.ever_fits) return check;
    const AdmitInfo info = bm_->CanAdmit(tokens);
    check.fits = info.can_admit;
    check.cached_tokens = info.num_cached_tokens;
    // With nothing else holding pages (when the scheduler asks), a prompt that fits the pool but
    // not above the watermark is refused by the watermark alone.
    check.watermark_limited = !info.can_admit && info.num_new_blocks <= num_blocks_;
    return check;
  }

  absl::StatusOr<int32_t> Admit(absl::Span<const SeqId> seqs, const AdmitRequest& request,
                                absl::Span<const TokenId> tokens) override {
    if (seqs.empty()) return absl::InvalidArgumentError("admit: no sequence ids given");
    PAGEDKV_ASSIGN_OR_RETURN(AdmitInfo info, bm_->AddSequence(seqs[0], tokens));
    resident_.insert(seqs[0]);
    int32_t cached = info.num_cached_tokens;
    if (bm_->prefix_caching_enabled()) {
      cached += RemoteHitTokens(tokens, cached);
      counters_.prefix_query_tokens += static_cast<int64_t>(tokens.size());
      counters_.prefix_hit_tokens += cached;
    }
    return cached;
  }

  int32_t CachedPrefixTokens(absl::Span<const TokenId> tokens) const override {
    return bm_->prefix_caching_enabled() ? bm_->CanAdmit(tokens).num_cached_tokens : 0;
  }

  bool CanAppend(SeqId seq, int32_t num_tokens) const override {
    return bm_->CanAppend(seq, num_tokens);
  }
  absl::Status Append(SeqId seq, absl::Span<const TokenId> tokens) override {
    return bm_->AppendTokens(seq, tokens);
  }
  absl::Status Fork(SeqId parent, SeqId child) override {
    PAGEDKV_RETURN_IF_ERROR(bm_->Fork(parent, child));
    resident_.insert(child);
    return absl::OkStatus();
  }
  absl::Status ReorderBeams(absl::Span<const SeqId> beams,
                            absl::Span<const int32_t> parent_index) override {
    return bm_->ReorderBeams(beams, parent_index);
  }
  absl::Status Free(SeqId seq) override {
    PAGEDKV_RETURN_IF_ERROR(bm_->Free(seq));
    resident_.erase(seq);
    return absl::OkStatus();
  }
  absl::Status MarkComputed(SeqId seq, int64_t num_computed_tokens) override {
    return bm_->MarkComputed(seq, num_computed_tokens);
  }
  bool AllocatesPrefillByChunk() const override { return !sliding_windows_.empty(); }

  bool SupportsSwap() const override { return bm_->has_host_tier(); }
  // The manager has no dry run for SwapOut; it is all-or-nothing, so the scheduler simply tries.
  bool CanSwapOut(absl::Span<const SeqId> seqs) const override { return bm_->has_host_tier(); }
  bool CanSwapIn(absl::Span<const SeqId> seqs) const override { return bm_->CanSwapIn(seqs); }
  absl::Status SwapOut(absl::Span<const SeqId> seqs) override {
    PAGEDKV_RETURN_IF_ERROR(bm_->SwapOut(seqs));
    for (SeqId s : seqs) resident_.erase(s);
    return absl::OkStatus();
  }
  absl::Status SwapIn(absl::Span<const SeqId> seqs) override {
    PAGEDKV_RETURN_IF_ERROR(bm_->SwapIn(seqs));
    resident_.insert(seqs.begin(), seqs.end());
    return absl::OkStatus();
  }

  // O(resident sequences): BlockManager::stats() is O(pool blocks), too slow to call every step
  // of a long simulation. Distinct in-use pages come from the allocators; a page shared by several
  // tables (fork, beams, prefix hits) counts once there, so sharing saves table entries minus
  // distinct pages. With several KV groups every number is the mean over groups (a token takes a
  // slot in each).
  KvMemoryStats MemoryStats(const AdmitRequest* next_admission) const override {
    KvMemoryStats s;
    s.capacity_tokens = num_blocks_ * block_size_;
    const int32_t num_groups = bm_->num_groups();
    int64_t in_use_pages = 0;
    int64_t cached_pages = 0;
    int64_t entries = 0;
    int64_t internal = 0;
    for (int32_t g = 0; g < num_groups; ++g) {
      const BlockAllocator& a = bm_->gpu_allocator(g);
      in_use_pages += a.num_in_use();
      cached_pages += a.num_cached();
      tails_.clear();
      for (SeqId seq : resident_) {
        absl::StatusOr<const BlockTable*> t = bm_->GetBlockTable(seq, g);
        if (!t.ok() || (*t)->num_live_pages() == 0) continue;
        entries += (*t)->num_live_pages();
        const int32_t tail = static_cast<int32_t>((*t)->num_tokens() % block_size_);
        if (tail != 0) tails_.push_back({(*t)->blocks().back(), tail});
      }
      // A partial last page shared by several tables (right after a fork) wastes its tail once,
      // beyond the longest of the tables' fills.
      std::sort(tails_.begin(), tails_.end());
      for (size_t i = 0; i < tails_.size(); ++i) {
        if (i + 1 < tails_.size() && tails_[i + 1].first == tails_[i].first) continue;
        internal += block_size_ - tails_[i].second;
      }
    }
    const int64_t n = std::max(num_groups, 1);
    s.internal_frag_tokens = internal / n;
    s.used_tokens = std::max<int64_t>(0, in_use_pages * block_size_ - internal) / n;
    s.shared_saved_tokens = std::max<int64_t>(0, entries - in_use_pages) * block_size_ / n;
    s.cached_tokens = cached_pages * block_size_ / n;
    return s;
  }

  KvPolicyCounters counters() const override { return counters_; }

  // Tokens after the first `local` cached ones found in the remote store: whole pages, and never
  // the prompt's last token (its logits must be computed). Counted as loads.
  int32_t RemoteHitTokens(absl::Span<const TokenId> tokens, int32_t local) {
    if (config_.remote_store == nullptr || local % block_size_ != 0) return 0;
    const int64_t usable_pages = (static_cast<int64_t>(tokens.size()) - 1) / block_size_;
    if (local / block_size_ >= usable_pages) return 0;
    const int32_t pages = config_.remote_store->MatchPages(
        tokens.first(static_cast<size_t>(usable_pages * block_size_)),
        static_cast<int32_t>(local / block_size_));
    if (pages <= 0) return 0;
    const int32_t hit = static_cast<int32_t>(pages * block_size_);
    counters_.remote_hit_tokens += hit;
    counters_.remote_load_bytes += static_cast<uint64_t>(hit) * bytes_per_token_;
    ++counters_.remote_loads;
    return hit;
  }

  void TakeCacheOps(CacheOps* out) override {
    bm_->TakeCacheOps(out);
    counters_.copy_bytes += out->copy_bytes();
    counters_.swap_out_bytes += out->swap_out_bytes();
    counters_.swap_in_bytes += out->swap_in_bytes();
  }

  BlockManager* block_manager() override { return bm_.get(); }

  absl::Status CheckInvariants() const override {
    PAGEDKV_RETURN_IF_ERROR(bm_->CheckInvariants());
    // The resident set is exactly the manager's sequences that are not swapped out.
    int64_t resident = 0;
    for (SeqId seq : bm_->SequenceIds()) {
      absl::StatusOr<SequenceStats> st = bm_->GetSequenceStats(seq);
      if (!st.ok()) return st.status();
      if (st->swapped_out) continue;
      ++resident;
      if (!resident_.contains(seq)) {
        return absl::InternalError(absl::StrCat("paged policy: resident sequence ", seq,
                                                " is missing from the resident set"));
      }
    }
    if (resident != static_cast<int64_t>(resident_.size())) {
      return absl::InternalError(absl::StrCat("paged policy: ", resident_.size(),
                                              " sequences in the resident set, manager has ",
                                              resident));
    }
    return absl::OkStatus();
  }

 private:
  PolicyConfig config_;
  std::unique_ptr<BlockManager> bm_;
  int64_t block_size_;
  uint64_t bytes_per_token_;
  int64_t num_blocks_;
  bool has_full_group_ = false;
  std::vector<int32_t> sliding_windows_;  // window (tokens) of each sliding group
  KvPolicyCounters counters_;
  // Sequences whose pages are on the GPU (admitted or forked, not swapped out, not freed).
  absl::flat_hash_set<SeqId> resident_;
  mutable std::vector<std::pair<BlockId, int32_t>> tails_;  // scratch of MemoryStats
};

}  // namespace

absl::StatusOr<std::unique_ptr<KvCachePolicy>> MakePagedPolicy(const PolicyConfig& config) {
  if (config.block_size_tokens < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "policy paged: block size must be >= 1 token, got ", config.block_size_tokens));
  }
  CacheConfig cc;
  cc.block_size_tokens = config.block_size_tokens;
  cc.gpu_tier = config.gpu_tier;
  cc.gpu_num_blocks = config.capacity_tokens / config.block_size_tokens;
  if (cc.gpu_num_blocks < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "policy paged: KV capacity of ", config.capacity_tokens, " tokens holds no block of ",
        config.block_size_tokens, " tokens; give the GPU more memory or use a smaller block size"));
  }
  cc.host_num_blocks = config.host_capacity_tokens / config.block_size_tokens;
  cc.watermark = config.watermark;
  cc.enable_prefix_caching = config.enable_prefix_caching;
  PAGEDKV_ASSIGN_OR_RETURN(std::unique_ptr<BlockManager> bm,
                           BlockManager::Create(config.model, cc));
  return std::unique_ptr<KvCachePolicy>(std::make_unique<PagedPolicy>(config, std::move(bm)));
}

}  // namespace pagedkv::internal
