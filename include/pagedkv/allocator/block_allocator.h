// BlockAllocator: hands out the fixed-size blocks of one MemoryPool in O(1), with reference counts
// and an LRU of cached (hashed, unreferenced) blocks for prefix caching. Metadata only: it never
// touches the bytes of a block. Not thread-safe; one owner (a BlockManager) serializes calls.
//
//   PAGEDKV_ASSIGN_OR_RETURN(auto alloc, BlockAllocator::CreateVirtual(1024));
//   BlockId ids[4];
//   PAGEDKV_RETURN_IF_ERROR(alloc->Allocate(absl::MakeSpan(ids)));  // all four or none
//   PAGEDKV_RETURN_IF_ERROR(alloc->Release(absl::MakeConstSpan(ids)));
//
// Block lifecycle (each block is in exactly one state):
//   free    ref == 0 && !hashed   on the free list
//   cached  ref == 0 &&  hashed   on the evictable LRU list (head = least recent), found by Lookup
//   in use  ref >= 1              on no list; hashed or not
// Transitions:
//   Allocate   free -> in use (ref 1); when no block is free, the LRU head cached block is evicted
//              (its hash dropped, EvictionListener told) -> in use (ref 1)
//   AddRef     in use -> in use (ref + 1); cached -> in use (ref 1): taking a prefix-cache hit
//   Release    ref - 1; at 0: hashed -> cached (LRU tail, or head with EvictionPriority::kLow),
//              unhashed -> free
//   SetHash    in use && !hashed -> in use && hashed (registered in the content-hash index)
//   Unhash     in use && hashed -> in use && !hashed (before its contents are changed)
//   Touch      cached -> cached at the LRU tail (most recently used)
// Invariants: free + cached + in use == num_blocks; the hash index maps exactly the hashed blocks.
#ifndef PAGEDKV_ALLOCATOR_BLOCK_ALLOCATOR_H_
#define PAGEDKV_ALLOCATOR_BLOCK_ALLOCATOR_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "pagedkv/allocator/memory_pool.h"
#include "pagedkv/core/block_hash.h"
#include "pagedkv/core/types.h"

namespace pagedkv {

enum class EvictionPriority : uint8_t {
  kNormal = 0,  // released blocks join the LRU tail: evicted last
  kLow = 1,     // released blocks join the LRU head: evicted first
};

struct BlockAllocatorStats {
  uint32_t num_blocks = 0;
  uint32_t num_free = 0;
  uint32_t num_cached = 0;
  uint32_t num_in_use = 0;
  uint32_t peak_in_use = 0;   // highest num_in_use seen
  uint64_t allocations = 0;   // blocks handed out by Allocate
  uint64_t releases = 0;      // Release calls that dropped a reference
  uint64_t evictions = 0;     // cached blocks reclaimed by Allocate
  uint64_t cache_hits = 0;    // Lookup calls that found a block
  uint64_t cache_misses = 0;  // Lookup calls that found none
};

// Told about each cached block that Allocate evicts, before the block is handed out again (so a
// second-level cache can copy its contents out first).
class EvictionListener {
 public:
  virtual ~EvictionListener() = default;
  virtual void OnEvict(BlockId block, const BlockHash& hash) = 0;
};

// BlockAllocator::Options. Defined outside the class because a nested struct's default member
// initializers cannot be used in a default argument of the enclosing class (`Options options =
// {}`).
struct BlockAllocatorOptions {
  // Fraction of the blocks CanAllocate keeps available; [0, 1).
  double watermark = 0.0;
};

class BlockAllocator {
 public:
  using Options = BlockAllocatorOptions;

  // InvalidArgument for a pool with zero blocks or a watermark outside [0, 1).
  static absl::StatusOr<std::unique_ptr<BlockAllocator>> Create(std::unique_ptr<MemoryPool> pool,
                                                                Options options);
  // A metadata-only allocator over a kVirtual pool of `num_blocks` blocks.
  static absl::StatusOr<std::unique_ptr<BlockAllocator>> CreateVirtual(uint32_t num_blocks,
                                                                       Options options = {});
  ~BlockAllocator();
  BlockAllocator(const BlockAllocator&) = delete;
  BlockAllocator& operator=(const BlockAllocator&) = delete;

  // Fills `out` with out.size() blocks, each with ref 1: all of them, or none and
  // ResourceExhausted("need N blocks, F free + C cached available of T") with state unchanged.
  absl::Status Allocate(absl::Span<BlockId> out);
  absl::StatusOr<BlockId> AllocateOne();

  // Drops one reference. InvalidArgument for an id >= num_blocks; FailedPrecondition for a block
  // that is not in use (double release). The span form validates every id first (an id may appear
  // at most ref times) and then releases all, or none.
  absl::Status Release(BlockId id, EvictionPriority priority = EvictionPriority::kNormal);
  absl::Status Release(absl::Span<const BlockId> ids,
                       EvictionPriority priority = EvictionPriority::kNormal);

  // Adds a reference to an in-use or cached block. FailedPrecondition for a free block.
  absl::Status AddRef(BlockId id);
  // One reference to each block of `ids` (an id listed k times gains k), all or nothing: the
  // first bad id's error, state unchanged. One call for a whole table (fork, prefix hits).
  absl::Status AddRef(absl::Span<const BlockId> ids);
  // Moves a cached block to the LRU tail. OK and no effect for an in-use block;
  // FailedPrecondition for a free block.
  absl::Status Touch(BlockId id);

  // Registers an in-use block under `hash`. FailedPrecondition when the block is not in use or
  // already hashed; AlreadyExists when another block holds this hash (the caller keeps its block
  // unhashed, or takes the other one).
  absl::Status SetHash(BlockId id, const BlockHash& hash);
  // SetHash for callers that already know the block is in use and unhashed (checked by
  // PAGEDKV_DCHECK): true when registered, false when another block holds the hash. One index
  // operation and no message on the hot path.
  bool TrySetHash(BlockId id, const BlockHash& hash);
  // Removes an in-use block's hash. FailedPrecondition when it is not in use or not hashed.
  absl::Status Unhash(BlockId id);

  // The block holding `hash` (cached or in use), counting a hit or a miss. Takes no reference.
  std::optional<BlockId> Lookup(const BlockHash& hash);
  // Same without touching statistics.
  std::optional<BlockId> Peek(const BlockHash& hash) const;
  // Counts lookups made with Peek as if Lookup had made them (a caller that peeks first and
  // decides later).
  void CountLookups(uint64_t hits, uint64_t misses);

  // True when n blocks can be allocated and at least watermark_blocks() stay available after.
  bool CanAllocate(uint32_t num_blocks) const;

  uint32_t num_blocks() const { return num_blocks_; }
  uint32_t num_free() const;
  uint32_t num_cached() const;
  uint32_t num_in_use() const { return num_blocks_ - num_free() - num_cached(); }
  uint32_t num_available() const { return num_free() + num_cached(); }  // free + cached
  uint32_t watermark_blocks() const { return watermark_blocks_; }

  // Per-block state (id < num_blocks; checked by PAGEDKV_DCHECK).
  uint32_t ref_count(BlockId id) const;
  bool is_hashed(BlockId id) const;
  std::optional<BlockHash> hash(BlockId id) const;

  BlockAllocatorStats stats() const;
  MemoryPool& pool() const { return *pool_; }

  // At most one listener; nullptr removes it. Not owned.
  void SetEvictionListener(EvictionListener* listener) { eviction_listener_ = listener; }
  // Test hook: called with every block Allocate hands out, after the eviction callbacks (tests
  // poison fresh pages with it, as an engine finds stale bytes there). An empty function removes
  // it.
  void TEST_SetAllocationHook(std::function<void(BlockId)> hook) {
    allocation_hook_ = std::move(hook);
  }

  // Checks every invariant above (list membership and lengths, refcounts, hash index). O(blocks).
  absl::Status CheckInvariants() const;

 private:
  struct Impl;
  BlockAllocator(std::unique_ptr<MemoryPool> pool, std::unique_ptr<Impl> impl, Options options);

  std::unique_ptr<MemoryPool> pool_;
  std::unique_ptr<Impl> impl_;  // metadata array, intrusive lists, hash index
  uint32_t num_blocks_;
  uint32_t watermark_blocks_;
  EvictionListener* eviction_listener_ = nullptr;
  std::function<void(BlockId)> allocation_hook_;
};

}  // namespace pagedkv

#endif  // PAGEDKV_ALLOCATOR_BLOCK_ALLOCATOR_H_
