// BlockAllocator's prefix-cache index: publishing a block's content hash, looking pages up by hash
// (a hit on a cached block revives it from the LRU), touching and unhashing.
#include <optional>

#include "allocator/internal/block_allocator_impl.h"
#include "pagedkv/core/check.h"
#include "pagedkv/core/logging.h"

namespace pagedkv {

using internal::HashString;
using internal::UnknownBlockError;

absl::Status BlockAllocator::Touch(BlockId id) {
  Impl& s = *impl_;
  if (id >= num_blocks_) {
    return UnknownBlockError("Touch", id, num_blocks_);
  }
  Impl::Block& b = s.blocks[id];
  switch (b.state) {
    case Impl::State::kCached:
      s.lru.erase(s.lru.iterator_to(b));
      s.lru.push_back(b);
      return absl::OkStatus();
    case Impl::State::kInUse:
      return absl::OkStatus();
    case Impl::State::kFree:
      break;
  }
  return absl::FailedPreconditionError(
      absl::StrCat("Touch: block ", id, " is free; only cached or in-use blocks can be touched"));
}

absl::Status BlockAllocator::SetHash(BlockId id, const BlockHash& hash) {
  Impl& s = *impl_;
  if (id >= num_blocks_) {
    return UnknownBlockError("SetHash", id, num_blocks_);
  }
  Impl::Block& b = s.blocks[id];
  if (b.state != Impl::State::kInUse) {
    return absl::FailedPreconditionError(
        absl::StrCat("SetHash: block ", id, " is ", AbslView(Impl::StateName(b.state)),
                     "; only an in-use block can be registered under a hash"));
  }
  if (b.hashed) {
    return absl::FailedPreconditionError(absl::StrCat("SetHash: block ", id, " is already hashed (",
                                                      HashString(b.hash), "); Unhash it first"));
  }
  const auto [it, inserted] = s.index.try_emplace(hash, id);
  if (!inserted) {
    return absl::AlreadyExistsError(
        absl::StrCat("SetHash: hash ", HashString(hash), " is already held by block ", it->second,
                     "; keep block ", id, " unhashed or take block ", it->second, " instead"));
  }
  b.hash = hash;
  b.hashed = true;
  PAGEDKV_LOG_TRACE("sethash block={} hash={}", id, HashString(hash));
  return absl::OkStatus();
}

bool BlockAllocator::TrySetHash(BlockId id, const BlockHash& hash) {
  Impl& s = *impl_;
  PAGEDKV_DCHECK(id < num_blocks_);
  Impl::Block& b = s.blocks[id];
  PAGEDKV_DCHECK(b.state == Impl::State::kInUse && !b.hashed);
  if (!s.index.try_emplace(hash, id).second) return false;
  b.hash = hash;
  b.hashed = true;
  return true;
}

void BlockAllocator::CountLookups(uint64_t hits, uint64_t misses) {
  impl_->cache_hits += hits;
  impl_->cache_misses += misses;
}

absl::Status BlockAllocator::Unhash(BlockId id) {
  Impl& s = *impl_;
  if (id >= num_blocks_) {
    return UnknownBlockError("Unhash", id, num_blocks_);
  }
  Impl::Block& b = s.blocks[id];
  if (b.state != Impl::State::kInUse || !b.hashed) {
    return absl::FailedPreconditionError(absl::StrCat(
        "Unhash: block ", id, " is ", AbslView(Impl::StateName(b.state)),
        b.hashed ? "" : " and not hashed", "; only an in-use hashed block can be unhashed"));
  }
  s.index.erase(b.hash);
  b.hashed = false;
  PAGEDKV_LOG_TRACE("unhash block={} hash={}", id, HashString(b.hash));
  return absl::OkStatus();
}

std::optional<BlockId> BlockAllocator::Lookup(const BlockHash& hash) {
  Impl& s = *impl_;
  const auto it = s.index.find(hash);
  if (it == s.index.end()) {
    ++s.cache_misses;
    return std::nullopt;
  }
  ++s.cache_hits;
  return it->second;
}

std::optional<BlockId> BlockAllocator::Peek(const BlockHash& hash) const {
  const auto it = impl_->index.find(hash);
  if (it == impl_->index.end()) return std::nullopt;
  return it->second;
}

}  // namespace pagedkv
