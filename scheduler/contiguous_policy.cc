// The contiguous KV policies: every sequence owns one extent of consecutive token slots, placed
// first-fit or by a buddy allocator (internal/extent_allocator.h). They differ only in how large
// the extent is at admission (see Reservation) and all grow by reallocate-and-copy when a
// sequence outgrows its extent.
#include <algorithm>
#include <memory>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "internal/extent_allocator.h"
#include "internal/policies.h"
#include "pagedkv/core/check.h"
#include "pagedkv/core/status.h"
#include "pagedkv/scheduler/policy.h"

namespace pagedkv::internal {
namespace {

int64_t NextPowerOfTwo(int64_t n) {
  int64_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

// Sequence states: reserved (admitted for a fork child that does not exist yet: stored == 0)
// -> live (stored >= 1) -> freed (erased). Invariant: stored_tokens <= extent_tokens <= the
// allocator's footprint of extent_tokens (the block it occupies).
struct Extent {
  int64_t offset = 0;
  int64_t extent_tokens = 0;
  int64_t stored_tokens = 0;
  bool live = false;
};

class ContiguousPolicy final : public KvCachePolicy {
 public:
  explicit ContiguousPolicy(const PolicyConfig& config)
      : config_(config),
        bytes_per_token_(config.model.BytesPerTokenPerLayer() *
                         static_cast<uint64_t>(config.model.NumStorageLayers())),
        extents_(MakeExtentAllocator(ResolveExtentAllocator(config.kind, config.extent_allocator),
                                     config.capacity_tokens)) {}

  PolicyKind kind() const override { return config_.kind; }

  int64_t Reservation(const AdmitRequest& r) const {
    const int64_t final_tokens =
        static_cast<int64_t>(r.prompt_tokens) + std::max<int64_t>(r.output_tokens, 1) - 1;
    int64_t tokens = 0;
    switch (config_.kind) {
      case PolicyKind::kContiguousMax:
        tokens = config_.max_model_len;
        break;
      case PolicyKind::kOrcaMax:
        tokens =
            std::min<int64_t>(static_cast<int64_t>(r.prompt_tokens) + config_.max_new_tokens - 1,
                              config_.max_model_len);
        break;
      case PolicyKind::kOrcaPow2:
        // The paper's Orca (Pow2): the output length rounded up to a power of two (an output of
        // 25 reserves 32), after the prompt.
        tokens = std::min<int64_t>(static_cast<int64_t>(r.prompt_tokens) +
                                       NextPowerOfTwo(std::max<int64_t>(r.output_tokens, 1)),
                                   config_.max_model_len);
        break;
      case PolicyKind::kOrcaOracle:
        tokens = final_tokens;
        break;
      case PolicyKind::kContiguousRealloc:
      case PolicyKind::kPaged:
        tokens = r.stored_tokens;
        break;
    }
    return std::max<int64_t>({tokens, r.stored_tokens, 1});
  }

  AdmitCheck CanAdmit(const AdmitRequest& request, absl::Span<const TokenId> tokens) override {
    AdmitCheck check;
    const int64_t each = Reservation(request);
    const int64_t n = std::max(request.num_seqs, 1);
    // Growth past the reservation (contiguous-realloc) must fit too, or the sequence would be
    // preempted forever once it holds the whole memory.
    const int64_t final_tokens = std::max<int64_t>(
        static_cast<int64_t>(request.prompt_tokens) + std::max(request.output_tokens, 1) - 1,
        request.stored_tokens);
    // A server rejects requests whose prompt + output exceeds max_model_len.
    check.too_long =
        static_cast<int64_t>(request.prompt_tokens) + request.output_tokens > config_.max_model_len;
    check.ever_fits = !check.too_long && FitsEmpty(std::max(each, final_tokens), n);
    if (!check.ever_fits) return check;
    if (n == 1) {
      check.fits = extents_->CanAllocate(each);
      return check;
    }
    // Several extents: try on a copy (rare: n > 1 or beams).
    std::unique_ptr<ExtentAllocator> trial = extents_->Clone();
    check.fits = true;
    for (int64_t i = 0; i < n && check.fits; ++i) check.fits = trial->Allocate(each).has_value();
    return check;
  }

  absl::StatusOr<int32_t> Admit(absl::Span<const SeqId> seqs, const AdmitRequest& request,
                                absl::Span<const TokenId> tokens) override {
    if (seqs.empty()) return absl::InvalidArgumentError("admit: no sequence ids given");
    for (SeqId s : seqs) {
      if (map_.contains(s)) {
        return absl::AlreadyExistsError(absl::StrCat("sequence ", s, " is already admitted"));
      }
    }
    const int64_t each = Reservation(request);
    std::vector<int64_t> offsets;
    for (size_t i = 0; i < seqs.size(); ++i) {
      std::optional<int64_t> off = extents_->Allocate(each);
      if (!off.has_value()) {
        for (size_t j = 0; j < offsets.size(); ++j) extents_->Free(offsets[j], each);
        return absl::ResourceExhaustedError(absl::StrCat(
            "cannot reserve ", seqs.size(), " extents of ", each, " tokens: largest free hole is ",
            extents_->largest_free(), " of ", extents_->free_tokens(), " free tokens"));
      }
      offsets.push_back(*off);
    }
    for (size_t i = 0; i < seqs.size(); ++i) {
      Extent e{offsets[i], each, i == 0 ? static_cast<int64_t>(tokens.size()) : 0, i == 0};
      map_.emplace(seqs[i], e);
    }
    return 0;
  }

  // Room for `num_tokens` more: inside the extent, by growing in place, or in a new hole while
  // the old extent is still held (the copy needs both).
  bool CanAppend(SeqId seq, int32_t num_tokens) const override {
    auto it = map_.find(seq);
    if (it == map_.end()) return false;
    const Extent& e = it->second;
    const int64_t need = e.stored_tokens + num_tokens;
    if (need <= e.extent_tokens) return true;
    return extents_->CanExtend(e.offset, e.extent_tokens, need) || extents_->CanAllocate(need);
  }

  absl::Status Append(SeqId seq, absl::Span<const TokenId> tokens) override {
    auto it = map_.find(seq);
    if (it == map_.end() || !it->second.live) {
      return absl::NotFoundError(absl::StrCat("append: sequence ", seq, " is not live"));
    }
    PAGEDKV_RETURN_IF_ERROR(
        Grow(seq, it->second, it->second.stored_tokens + static_cast<int64_t>(tokens.size())));
    it->second.stored_tokens += static_cast<int64_t>(tokens.size());
    return absl::OkStatus();
  }

  absl::Status Fork(SeqId parent, SeqId child) override {
    auto p = map_.find(parent);
    if (p == map_.end() || !p->second.live) {
      return absl::NotFoundError(absl::StrCat("fork: parent sequence ", parent, " is not live"));
    }
    const int64_t len = p->second.stored_tokens;
    auto c = map_.find(child);
    if (c == map_.end()) {
      std::optional<int64_t> off = extents_->Allocate(p->second.extent_tokens);
      if (!off.has_value()) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "fork ", parent, " -> ", child, ": no hole of ", p->second.extent_tokens, " tokens"));
      }
      c = map_.emplace(child, Extent{*off, p->second.extent_tokens, 0, false}).first;
    } else if (c->second.live) {
      return absl::AlreadyExistsError(absl::StrCat("fork: child ", child, " is already live"));
    }
    PAGEDKV_RETURN_IF_ERROR(Grow(child, c->second, len));
    c->second.stored_tokens = len;
    c->second.live = true;
    counters_.copy_bytes += static_cast<uint64_t>(len) * bytes_per_token_;
    return absl::OkStatus();
  }

  absl::Status ReorderBeams(absl::Span<const SeqId> beams,
                            absl::Span<const int32_t> parent_index) override {
    if (beams.size() != parent_index.size()) {
      return absl::InvalidArgumentError(absl::StrCat("reorder: ", beams.size(), " beams but ",
                                                     parent_index.size(), " parent indices"));
    }
    // A dense cache copies a beam's whole past whenever its parent is another beam.
    for (size_t i = 0; i < beams.size(); ++i) {
      const int32_t p = parent_index[i];
      if (p < 0 || static_cast<size_t>(p) >= beams.size()) {
        return absl::InvalidArgumentError(absl::StrCat("reorder: parent index ", p, " of beam ", i,
                                                       " outside [0, ", beams.size(), ")"));
      }
      if (static_cast<size_t>(p) != i) {
        auto it = map_.find(beams[p]);
        if (it == map_.end()) return absl::NotFoundError("reorder: unknown beam");
        counters_.copy_bytes += static_cast<uint64_t>(it->second.stored_tokens) * bytes_per_token_;
      }
    }
    return absl::OkStatus();
  }

  absl::Status Free(SeqId seq) override {
    auto it = map_.find(seq);
    if (it == map_.end()) {
      return absl::NotFoundError(absl::StrCat("free: unknown sequence ", seq));
    }
    extents_->Free(it->second.offset, it->second.extent_tokens);
    map_.erase(it);
    return absl::OkStatus();
  }

  KvMemoryStats MemoryStats(const AdmitRequest* next_admission) const override {
    KvMemoryStats s;
    s.capacity_tokens = extents_->capacity();
    for (const auto& [seq, e] : map_) {
      s.used_tokens += e.stored_tokens;
      s.reserved_unused_tokens += e.extent_tokens - e.stored_tokens;
      s.rounding_tokens += extents_->FootprintTokens(e.extent_tokens) - e.extent_tokens;
    }
    if (next_admission != nullptr) {
      s.external_frag_tokens = extents_->FreeTokensInHolesSmallerThan(Reservation(*next_admission));
    }
    return s;
  }

  KvPolicyCounters counters() const override { return counters_; }

  absl::Status CheckInvariants() const override {
    PAGEDKV_RETURN_IF_ERROR(extents_->CheckInvariants());
    int64_t held = 0;
    for (const auto& [seq, e] : map_) {
      if (e.stored_tokens > e.extent_tokens) {
        return absl::InternalError(absl::StrCat("sequence ", seq, " stores ", e.stored_tokens,
                                                " tokens in an extent of ", e.extent_tokens));
      }
      held += extents_->FootprintTokens(e.extent_tokens);
    }
    if (held + extents_->free_tokens() != extents_->capacity()) {
      return absl::InternalError(absl::StrCat("held ", held, " + free ", extents_->free_tokens(),
                                              " != capacity ", extents_->capacity()));
    }
    return absl::OkStatus();
  }

 private:
  // Makes the extent hold at least `need` tokens: in place, or by moving to a new hole (counting
  // the copy of the stored tokens). Exact growth, as a reallocating past/present buffer does.
  absl::Status Grow(SeqId seq, Extent& e, int64_t need) {
    if (need <= e.extent_tokens) return absl::OkStatus();
    if (extents_->TryExtend(e.offset, e.extent_tokens, need)) {
      e.extent_tokens = need;
      return absl::OkStatus();
    }
    std::optional<int64_t> off = extents_->Allocate(need);
    if (!off.has_value()) {
      return absl::ResourceExhaustedError(
          absl::StrCat("sequence ", seq, ": cannot grow to ", need, " tokens, largest hole ",
                       extents_->largest_free(), "; preempt a sequence first"));
    }
    extents_->Free(e.offset, e.extent_tokens);
    counters_.copy_bytes += static_cast<uint64_t>(e.stored_tokens) * bytes_per_token_;
    e.offset = *off;
    e.extent_tokens = need;
    return absl::OkStatus();
  }

  // Whether `n` extents of `each` tokens fit in the empty memory (else the request can never run).
  bool FitsEmpty(int64_t each, int64_t n) const {
    if (n == 1) {
      return extents_->FootprintTokens(each) <= LargestEver();
    }
    std::unique_ptr<ExtentAllocator> empty =
        MakeExtentAllocator(extents_->kind(), extents_->capacity());
    for (int64_t i = 0; i < n; ++i) {
      if (!empty->Allocate(each).has_value()) return false;
    }
    return true;
  }
  // The longest extent the empty memory holds: the capacity, or for buddy its largest region.
  int64_t LargestEver() const {
    const int64_t cap = extents_->capacity();
    if (extents_->kind() != ExtentAllocatorKind::kBuddy || cap <= 0) return cap;
    int64_t p = 1;
    while (p <= cap / 2) p <<= 1;
    return p;
  }

  PolicyConfig config_;
  uint64_t bytes_per_token_;
  std::unique_ptr<ExtentAllocator> extents_;
  absl::flat_hash_map<SeqId, Extent> map_;
  KvPolicyCounters counters_;
};

}  // namespace

std::unique_ptr<KvCachePolicy> MakeContiguousPolicy(const PolicyConfig& config) {
  return std::make_unique<ContiguousPolicy>(config);
}

}  // namespace pagedkv::internal
