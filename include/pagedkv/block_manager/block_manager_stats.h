// Statistics of a BlockManager: per sequence (SequenceStats) and global (BlockManagerStats). Read
// by the scheduler, the profiler and the service's metrics. Plain values; comparable with ==, which
// tests use to prove that a failed call left the manager unchanged.
//
//   BlockManagerStats s = manager->stats();
//   double waste = double(s.internal_fragmentation_slots) / s.slots_allocated;
#ifndef PAGEDKV_BLOCK_MANAGER_BLOCK_MANAGER_STATS_H_
#define PAGEDKV_BLOCK_MANAGER_BLOCK_MANAGER_STATS_H_

#include <cstdint>
#include <vector>

#include "pagedkv/core/types.h"

namespace pagedkv {

struct SequenceStats {
  SeqId seq_id = 0;
  int32_t num_tokens = 0;           // tokens of the sequence (self-attention groups)
  int32_t num_computed_tokens = 0;  // of those, tokens whose K/V the engine reported (MarkComputed)
  int32_t num_encoder_tokens = 0;   // cross-attention tokens (SetCrossAttention), 0 if none
  int32_t num_pages = 0;            // live pages over all groups (cross group included)
  int32_t num_shared_pages = 0;     // of those, pages also named by another table (ref > 1)
  bool swapped_out = false;         // pages live in the host tier
  friend bool operator==(const SequenceStats&, const SequenceStats&) = default;
};

// Block counts of one group's pools.
struct GroupPoolStats {
  int32_t group = 0;
  uint32_t gpu_num_blocks = 0;
  uint32_t gpu_free_blocks = 0;
  uint32_t gpu_cached_blocks = 0;  // prefix-cache pages nobody references (evictable)
  uint32_t gpu_in_use_blocks = 0;
  uint32_t host_num_blocks = 0;  // 0 without a host tier
  uint32_t host_free_blocks = 0;
  uint32_t host_cached_blocks = 0;  // second-level prefix-cache pages
  uint32_t host_in_use_blocks = 0;
  friend bool operator==(const GroupPoolStats&, const GroupPoolStats&) = default;
};

struct BlockManagerStats {
  int64_t num_sequences = 0;
  int64_t num_swapped_sequences = 0;
  // Token slots that hold a token, summed over every table of resident (GPU) sequences; a page
  // shared by k tables counts k times (what each sequence sees).
  int64_t tokens_stored = 0;
  // Distinct in-use GPU pages (over all groups) times block_size.
  int64_t slots_allocated = 0;
  // Slots of distinct in-use GPU pages that hold no token (the unfilled tail of last pages).
  int64_t internal_fragmentation_slots = 0;
  // GPU table entries minus distinct GPU pages they name: pages that sharing (forks, beams,
  // prefix hits) saved.
  int64_t pages_saved_by_sharing = 0;
  // Prefix caching: full prompt pages looked up by AddSequence, and those found (GPU or host).
  uint64_t prefix_query_pages = 0;
  uint64_t prefix_hit_pages = 0;
  uint64_t prefix_host_hit_pages = 0;    // of the hits, pages brought back from the host tier
  uint64_t prefix_remote_hit_pages = 0;  // of the hits, pages loaded from the remote tier
  double prefix_hit_rate = 0.0;          // hit / query pages; 0 when nothing was queried
  // Cumulative bytes of the CacheOps produced so far.
  uint64_t swap_out_bytes = 0;  // includes offload of evicted prefix-cache pages
  uint64_t swap_in_bytes = 0;   // includes host prefix-cache hits
  uint64_t copy_bytes = 0;      // copy-on-write
  uint64_t cow_copies = 0;      // copy-on-write page copies
  uint64_t host_offloads = 0;   // evicted GPU prefix-cache pages kept in the host tier
  std::vector<GroupPoolStats> groups;
  friend bool operator==(const BlockManagerStats&, const BlockManagerStats&) = default;
};

}  // namespace pagedkv

#endif  // PAGEDKV_BLOCK_MANAGER_BLOCK_MANAGER_STATS_H_
