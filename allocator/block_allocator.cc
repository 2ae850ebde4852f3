// BlockAllocator: per-block metadata records in one array, threaded on two Boost.Intrusive lists
// (free list, evictable LRU) through one hook each record carries, plus a content-hash index.
// Every operation is O(1) (the span forms O(n) in the span); nothing allocates per block.
#include "pagedkv/allocator/block_allocator.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

#include "allocator/internal/block_allocator_impl.h"
#include "pagedkv/core/check.h"
#include "pagedkv/core/logging.h"

namespace pagedkv {

using internal::HashString;
using internal::UnknownBlockError;

namespace {

// ceil(watermark * num_blocks), except that a product within rounding noise of an integer counts
// as that integer (0.07 * 100 is 7.000000000000001 in binary floating point, not 8 blocks' worth).
uint32_t WatermarkBlocks(double watermark, uint32_t num_blocks) {
  const double exact = watermark * static_cast<double>(num_blocks);
  const double nearest = std::nearbyint(exact);
  const double blocks =
      std::fabs(exact - nearest) <= 1e-9 * std::max(1.0, exact) ? nearest : std::ceil(exact);
  return static_cast<uint32_t>(std::min(blocks, static_cast<double>(num_blocks)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<BlockAllocator>> BlockAllocator::Create(
    std::unique_ptr<MemoryPool> pool, Options options) {
  if (pool == nullptr) {
    return absl::InvalidArgumentError(
        "BlockAllocator::Create: pool is null; create a MemoryPool first");
  }
  const uint32_t n = pool->num_blocks();
  if (n == 0 || n >= kInvalidBlockId) {
    return absl::InvalidArgumentError(absl::StrCat("BlockAllocator::Create: pool '", pool->name(),
                                                   "' has ", n, " blocks; need 1 to ",
                                                   kInvalidBlockId - 1));
  }
  // Written so that NaN fails too.
  if (!(options.watermark >= 0.0 && options.watermark < 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat("BlockAllocator::Create: watermark ",
                                                   options.watermark,
                                                   " is outside [0, 1); use e.g. 0.01 for 1%"));
  }
  auto impl = std::make_unique<Impl>(n);
  PAGEDKV_LOG_TRACE("allocator over pool '{}' created: num_blocks={} watermark={} ({} blocks)",
                    pool->name(), n, options.watermark, WatermarkBlocks(options.watermark, n));
  return std::unique_ptr<BlockAllocator>(
      new BlockAllocator(std::move(pool), std::move(impl), options));
}

absl::StatusOr<std::unique_ptr<BlockAllocator>> BlockAllocator::CreateVirtual(uint32_t num_blocks,
                                                                              Options options) {
  PoolOptions pool_options;
  pool_options.tier = Tier::kVirtual;
  pool_options.bytes_per_block = 1;  // a virtual pool has no bytes; any positive size will do
  pool_options.num_blocks = num_blocks;
  pool_options.name = "virtual";
  absl::StatusOr<std::unique_ptr<MemoryPool>> pool = MemoryPool::Create(pool_options);
  if (!pool.ok()) return pool.status();
  return Create(std::move(*pool), options);
}

BlockAllocator::BlockAllocator(std::unique_ptr<MemoryPool> pool, std::unique_ptr<Impl> impl,
                               Options options)
    : pool_(std::move(pool)),
      impl_(std::move(impl)),
      num_blocks_(pool_->num_blocks()),
      watermark_blocks_(WatermarkBlocks(options.watermark, pool_->num_blocks())) {}

BlockAllocator::~BlockAllocator() = default;

uint32_t BlockAllocator::num_free() const { return impl_->num_free; }
uint32_t BlockAllocator::num_cached() const { return static_cast<uint32_t>(impl_->lru.size()); }

absl::Status BlockAllocator::Allocate(absl::Span<BlockId> out) {
  Impl& s = *impl_;
  const size_t needed = out.size();
  const size_t num_free = s.num_free;
  const size_t num_cached = s.lru.size();
  if (__builtin_expect(needed > num_free + num_cached, 0)) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "need ", needed, " blocks, ", num_free, " free + ", num_cached, " cached available of ",
        num_blocks_, " (", num_blocks_ - num_free - num_cached,
        " in use); release blocks or preempt a sequence and retry"));
  }
  size_t i = 0;
  // Free blocks first: they hold nothing anyone can reuse.
  const size_t from_free = needed < num_free ? needed : num_free;
  // Walk the first `from_free` nodes, then unlink them as one range: one pointer update
  // instead of one per block (normal_link hooks are not touched by a range erase).
  Impl::FreeList::iterator it = s.free_list.begin();
  for (; i < from_free; ++i) {
    Impl::Block& b = *it;
    ++it;
    b.ref = 1;
    b.state = Impl::State::kInUse;
    out[i] = s.IdOf(b);
  }
  s.free_list.erase(s.free_list.begin(), it);
  s.num_free -= static_cast<uint32_t>(from_free);
  // Then evict cached blocks, least recently used first.
  for (; i < needed; ++i) {
    Impl::Block& b = s.lru.front();
    s.lru.pop_front();
    const BlockId id = s.IdOf(b);
    s.index.erase(b.hash);
    b.hashed = false;
    b.ref = 1;
    b.state = Impl::State::kInUse;
    ++s.evictions;
    PAGEDKV_LOG_TRACE("evict block={} hash={} cached_left={}", id, HashString(b.hash),
                      s.lru.size());
    if (eviction_listener_ != nullptr) eviction_listener_->OnEvict(id, b.hash);
    out[i] = id;
  }
  s.allocations += needed;
  if (allocation_hook_) {
    for (const BlockId id : out) allocation_hook_(id);
  }
  const uint32_t in_use = num_blocks_ - static_cast<uint32_t>(s.num_free + s.lru.size());
  if (in_use > s.peak_in_use) s.peak_in_use = in_use;
  PAGEDKV_LOG_TRACE("allocate n={} blocks=[{}] evicted={} free={} cached={} in_use={}", needed,
                    fmt::join(out.begin(), out.end(), ","), needed - from_free, s.num_free,
                    s.lru.size(), in_use);
  return absl::OkStatus();
}

absl::StatusOr<BlockId> BlockAllocator::AllocateOne() {
  BlockId id = kInvalidBlockId;
  absl::Status status = Allocate(absl::Span<BlockId>(&id, 1));
  if (__builtin_expect(!status.ok(), 0)) return status;
  return id;
}

absl::Status BlockAllocator::Release(BlockId id, EvictionPriority priority) {
  Impl& s = *impl_;
  if (__builtin_expect(id >= num_blocks_, 0)) {
    return absl::InvalidArgumentError(absl::StrCat("Release: block ", id,
                                                   " does not exist (pool has ", num_blocks_,
                                                   " blocks); pass an id from Allocate"));
  }
  Impl::Block& b = s.blocks[id];
  if (__builtin_expect(b.ref == 0, 0)) {
    return absl::FailedPreconditionError(
        absl::StrCat("Release: block ", id, " is ", AbslView(Impl::StateName(b.state)),
                     ", not in use (double release?); release only blocks you hold"));
  }
  ++s.releases;
  if (--b.ref == 0) {
    if (b.hashed) {
      b.state = Impl::State::kCached;
      if (priority == EvictionPriority::kLow) {
        s.lru.push_front(b);
      } else {
        s.lru.push_back(b);
      }
    } else {
      b.state = Impl::State::kFree;
      s.free_list.push_front(b);
      ++s.num_free;
    }
  }
  PAGEDKV_LOG_TRACE("release block={} ref={} state={} free={} cached={}", id, b.ref,
                    Impl::StateName(b.state), s.num_free, s.lru.size());
  return absl::OkStatus();
}

absl::Status BlockAllocator::Release(absl::Span<const BlockId> ids, EvictionPriority priority) {
  Impl& s = *impl_;
  // Pass 1: validate and take the references. A failure undoes the references taken so far, so
  // the call either releases every entry or none. Duplicates are fine up to a block's ref count.
  for (size_t i = 0; i < ids.size(); ++i) {
    const BlockId id = ids[i];
    absl::Status error;
    if (id >= num_blocks_) {
      error = absl::InvalidArgumentError(absl::StrCat(
          "Release: entry ", i, " names block ", id, " which does not exist (pool has ",
          num_blocks_, " blocks); nothing was released"));
    } else if (s.blocks[id].ref == 0) {
      // Count this block's earlier entries: they are what used up its references.
      size_t earlier = 0;
      for (size_t j = 0; j < i; ++j) earlier += ids[j] == id;
      error = absl::FailedPreconditionError(absl::StrCat(
          "Release: entry ", i, " names block ", id, " which is ",
          AbslView(Impl::StateName(s.blocks[id].state)), " with ref ", earlier,
          earlier == 0 ? " (double release?)" : " (named more often than it is referenced)",
          "; nothing was released"));
    }
    if (!error.ok()) {
      for (size_t j = 0; j < i; ++j) ++s.blocks[ids[j]].ref;
      return error;
    }
    --s.blocks[id].ref;
  }
  // Pass 2: blocks whose last reference went move to their list (once, even when named twice).
  // Freed blocks are chained in registers (the last named ends up first, as with push_front)
  // and spliced in once.
  Impl::NodePtr chain_first = nullptr;
  Impl::NodePtr chain_last = nullptr;
  uint32_t chain_length = 0;
  for (const BlockId id : ids) {
    Impl::Block& b = s.blocks[id];
    if (b.ref != 0 || b.state != Impl::State::kInUse) continue;
    if (b.hashed) {
      b.state = Impl::State::kCached;
      if (priority == EvictionPriority::kLow) {
        s.lru.push_front(b);
      } else {
        s.lru.push_back(b);
      }
    } else {
      b.state = Impl::State::kFree;
      const Impl::NodePtr node = Impl::FreeList::value_traits::to_node_ptr(b);
      if (chain_first == nullptr) {
        chain_last = node;
      } else {
        Impl::NodeTraits::set_next(node, chain_first);
        Impl::NodeTraits::set_previous(chain_first, node);
      }
      chain_first = node;
      ++chain_length;
    }
  }
  if (chain_first != nullptr) s.PrependToFreeList(chain_first, chain_last, chain_length);
  s.releases += ids.size();
  PAGEDKV_LOG_TRACE("release n={} blocks=[{}] free={} cached={}", ids.size(),
                    fmt::join(ids.begin(), ids.end(), ","), s.num_free, s.lru.size());
  return absl::OkStatus();
}

absl::Status BlockAllocator::AddRef(absl::Span<const BlockId> ids) {
  Impl& s = *impl_;
  for (const BlockId id : ids) {
    // The whole span is checked first; a repeated id is checked once per reference it gains.
    if (__builtin_expect(id >= num_blocks_ || s.blocks[id].state == Impl::State::kFree ||
                             s.blocks[id].ref == std::numeric_limits<uint32_t>::max(),
                         0)) {
      return AddRef(id);  // the single-id call builds the error without changing anything
    }
  }
  for (const BlockId id : ids) {
    Impl::Block& b = s.blocks[id];
    if (__builtin_expect(b.state == Impl::State::kCached, 0)) {
      s.lru.erase(s.lru.iterator_to(b));
      b.ref = 1;
      b.state = Impl::State::kInUse;
    } else {
      ++b.ref;
    }
  }
  const uint32_t in_use = num_blocks_ - static_cast<uint32_t>(s.num_free + s.lru.size());
  if (in_use > s.peak_in_use) s.peak_in_use = in_use;
  PAGEDKV_LOG_TRACE("addref n={}", ids.size());
  return absl::OkStatus();
}

absl::Status BlockAllocator::AddRef(BlockId id) {
  Impl& s = *impl_;
  if (__builtin_expect(id >= num_blocks_, 0)) {
    return UnknownBlockError("AddRef", id, num_blocks_);
  }
  Impl::Block& b = s.blocks[id];
  switch (b.state) {
    case Impl::State::kInUse:
      if (__builtin_expect(b.ref == std::numeric_limits<uint32_t>::max(), 0)) {
        return absl::OutOfRangeError(
            absl::StrCat("AddRef: block ", id, " already has the maximum ref count ", b.ref));
      }
      ++b.ref;
      break;
    case Impl::State::kCached: {
      // A prefix-cache hit: the block leaves the LRU and is in use again.
      s.lru.erase(s.lru.iterator_to(b));
      b.ref = 1;
      b.state = Impl::State::kInUse;
      const uint32_t in_use = num_blocks_ - static_cast<uint32_t>(s.num_free + s.lru.size());
      if (in_use > s.peak_in_use) s.peak_in_use = in_use;
      break;
    }
    case Impl::State::kFree:
      return absl::FailedPreconditionError(
          absl::StrCat("AddRef: block ", id,
                       " is free; only in-use or cached blocks can gain a reference (use "
                       "Allocate for a new block)"));
  }
  PAGEDKV_LOG_TRACE("addref block={} ref={}", id, b.ref);
  return absl::OkStatus();
}

bool BlockAllocator::CanAllocate(uint32_t num_blocks) const {
  const uint64_t available = num_available();
  return uint64_t{num_blocks} + watermark_blocks_ <= available;
}

uint32_t BlockAllocator::ref_count(BlockId id) const {
  PAGEDKV_DCHECK_MSG(id < num_blocks_, "block id out of range");
  return impl_->blocks[id].ref;
}

bool BlockAllocator::is_hashed(BlockId id) const {
  PAGEDKV_DCHECK_MSG(id < num_blocks_, "block id out of range");
  return impl_->blocks[id].hashed;
}

std::optional<BlockHash> BlockAllocator::hash(BlockId id) const {
  PAGEDKV_DCHECK_MSG(id < num_blocks_, "block id out of range");
  const Impl::Block& b = impl_->blocks[id];
  if (!b.hashed) return std::nullopt;
  return b.hash;
}

BlockAllocatorStats BlockAllocator::stats() const {
  const Impl& s = *impl_;
  BlockAllocatorStats st;
  st.num_blocks = num_blocks_;
  st.num_free = num_free();
  st.num_cached = num_cached();
  st.num_in_use = num_in_use();
  st.peak_in_use = s.peak_in_use;
  st.allocations = s.allocations;
  st.releases = s.releases;
  st.evictions = s.evictions;
  st.cache_hits = s.cache_hits;
  st.cache_misses = s.cache_misses;
  return st;
}

}  // namespace pagedkv
