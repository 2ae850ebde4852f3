// BlockAllocator's state: per-block records threaded on two Boost.Intrusive lists (free list,
// evictable LRU) plus the content-hash index. Shared by the allocator's files
// (block_allocator.cc: allocation and references; hash_index.cc: the prefix-cache index;
// block_allocator_invariants.cc: CheckInvariants). Private to allocator/.
#ifndef PAGEDKV_ALLOCATOR_INTERNAL_BLOCK_ALLOCATOR_IMPL_H_
#define PAGEDKV_ALLOCATOR_INTERNAL_BLOCK_ALLOCATOR_IMPL_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "boost/intrusive/list.hpp"
#include "fmt/format.h"
#include "pagedkv/allocator/block_allocator.h"
#include "pagedkv/core/absl_compat.h"

namespace pagedkv {

struct BlockAllocator::Impl {
  enum class State : uint8_t { kFree = 0, kCached = 1, kInUse = 2 };

  // One record per block. Invariants (CheckInvariants verifies them):
  //   state == kFree   <=> ref == 0 && !hashed, linked on free_list
  //   state == kCached <=> ref == 0 &&  hashed, linked on lru
  //   state == kInUse  <=> ref >= 1, linked on no list
  //   hashed <=> index[hash] == this block's id
  struct Block {
    // normal_link: no auto-unlink or safe-mode bookkeeping on the hot path; `state` says which
    // list (if any) holds the block.
    boost::intrusive::list_member_hook<boost::intrusive::link_mode<boost::intrusive::normal_link>>
        hook;
    BlockHash hash;    // meaningful only when hashed
    uint32_t ref = 0;  // number of holders (block-table entries) of this block
    State state = State::kFree;
    bool hashed = false;
  };
  using List = boost::intrusive::list<
      Block, boost::intrusive::member_hook<Block, decltype(Block::hook), &Block::hook>,
      boost::intrusive::constant_time_size<true>>;
  // The free list keeps its length in `num_free` instead: a bulk release links its blocks into
  // one chain in registers and splices it in with four pointer writes, which a list that counts
  // its own size cannot do without a size update per element.
  using FreeList = boost::intrusive::list<
      Block, boost::intrusive::member_hook<Block, decltype(Block::hook), &Block::hook>,
      boost::intrusive::constant_time_size<false>>;
  using NodeTraits = FreeList::node_traits;
  using NodePtr = NodeTraits::node_ptr;

  explicit Impl(uint32_t n) : blocks(new Block[n]) {
    // Ascending ids, so a fresh allocator hands out 0, 1, 2, ...
    for (uint32_t i = 0; i < n; ++i) free_list.push_back(blocks[i]);
    num_free = n;
  }

  // Puts the chain first..last (linked through their hooks, first's prev and last's next unset)
  // at the front of the free list.
  void PrependToFreeList(NodePtr first, NodePtr last, uint32_t count) {
    const NodePtr header = free_list.end().pointed_node();
    const NodePtr old_first = NodeTraits::get_next(header);
    NodeTraits::set_next(header, first);
    NodeTraits::set_previous(first, header);
    NodeTraits::set_next(last, old_first);
    NodeTraits::set_previous(old_first, last);
    num_free += count;
  }

  static std::string_view StateName(State s) {
    switch (s) {
      case State::kFree:
        return "free";
      case State::kCached:
        return "cached";
      case State::kInUse:
        return "in use";
    }
    return "?";
  }

  BlockId IdOf(const Block& b) const { return static_cast<BlockId>(&b - blocks.get()); }

  // Declared before the lists so the lists are destroyed first.
  std::unique_ptr<Block[]> blocks;
  FreeList free_list;  // state kFree; allocation takes the front, release pushes the front (warm)
  uint32_t num_free = 0;  // length of free_list
  List lru;               // state kCached; front = least recently used (evicted first)
  // Exactly the hashed blocks. Keys are already uniform 128-bit content hashes, so the table hashes
  // them by their low half instead of mixing them again (lookups are on the admission path).
  struct IndexHash {
    size_t operator()(const BlockHash& h) const { return static_cast<size_t>(h.lo ^ (h.hi >> 7)); }
  };
  absl::flat_hash_map<BlockHash, BlockId, IndexHash> index;

  uint32_t peak_in_use = 0;
  uint64_t allocations = 0;
  uint64_t releases = 0;
  uint64_t evictions = 0;
  uint64_t cache_hits = 0;
  uint64_t cache_misses = 0;
};

namespace internal {

// InvalidArgument for an id outside the pool, naming the operation and the pool size.
inline absl::Status UnknownBlockError(std::string_view op, BlockId id, uint32_t num_blocks) {
  return absl::InvalidArgumentError(absl::StrCat(
      AbslView(op), ": block ", id, " does not exist (pool has ", num_blocks, " blocks)"));
}

inline std::string HashString(const BlockHash& h) {
  return fmt::format("{:016x}{:016x}", h.hi, h.lo);
}

}  // namespace internal
}  // namespace pagedkv

#endif  // PAGEDKV_ALLOCATOR_INTERNAL_BLOCK_ALLOCATOR_IMPL_H_
