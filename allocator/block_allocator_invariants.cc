// BlockAllocator::CheckInvariants: every block on exactly the list its state names, reference
// counts and the hash index consistent with the records, and the counters with the lists.
#include <vector>

#include "allocator/internal/block_allocator_impl.h"
#include "pagedkv/core/check.h"
#include "pagedkv/core/logging.h"

namespace pagedkv {

using internal::HashString;
using internal::UnknownBlockError;

absl::Status BlockAllocator::CheckInvariants() const {
  const Impl& s = *impl_;
  auto fail = [](auto&&... parts) {
    return absl::InternalError(absl::StrCat("BlockAllocator invariant violated: ", parts...));
  };
  // 0 = on no list, 1 = seen on the free list, 2 = seen on the LRU.
  std::vector<uint8_t> seen(num_blocks_, 0);
  auto walk = [&](const auto& list, size_t expected_size, Impl::State want, uint8_t mark,
                  const char* list_name) -> absl::Status {
    size_t walked = 0;
    for (const Impl::Block& b : list) {
      if (++walked > num_blocks_) {
        return fail(list_name, " list has more than ", num_blocks_, " entries (cycle?)");
      }
      const Impl::Block* first = s.blocks.get();
      if (&b < first || &b >= first + num_blocks_) {
        return fail(list_name, " list holds a record outside the metadata array");
      }
      const BlockId id = s.IdOf(b);
      if (seen[id] != 0) return fail("block ", id, " is on a list twice");
      seen[id] = mark;
      if (b.state != want) {
        return fail("block ", id, " is on the ", list_name, " list but its state is ",
                    AbslView(Impl::StateName(b.state)));
      }
    }
    if (walked != expected_size) {
      return fail(list_name, " list length is recorded as ", expected_size, " but ", walked,
                  " entries walked");
    }
    return absl::OkStatus();
  };
  if (absl::Status st = walk(s.free_list, s.num_free, Impl::State::kFree, 1, "free"); !st.ok())
    return st;
  if (absl::Status st = walk(s.lru, s.lru.size(), Impl::State::kCached, 2, "lru"); !st.ok())
    return st;

  uint32_t num_free = 0, num_cached = 0, num_in_use = 0, num_hashed = 0;
  for (BlockId id = 0; id < num_blocks_; ++id) {
    const Impl::Block& b = s.blocks[id];
    switch (b.state) {
      case Impl::State::kFree:
        ++num_free;
        if (b.ref != 0 || b.hashed || seen[id] != 1) {
          return fail("free block ", id, " has ref ", b.ref, ", hashed ", b.hashed,
                      ", on free list ", seen[id] == 1);
        }
        break;
      case Impl::State::kCached:
        ++num_cached;
        if (b.ref != 0 || !b.hashed || seen[id] != 2) {
          return fail("cached block ", id, " has ref ", b.ref, ", hashed ", b.hashed, ", on lru ",
                      seen[id] == 2);
        }
        break;
      case Impl::State::kInUse:
        ++num_in_use;
        if (b.ref == 0 || seen[id] != 0) {
          return fail("in-use block ", id, " has ref ", b.ref, ", on a list ", seen[id] != 0);
        }
        break;
      default:
        return fail("block ", id, " has an unknown state ", static_cast<int>(b.state));
    }
    if (b.hashed) {
      ++num_hashed;
      const auto it = s.index.find(b.hash);
      if (it == s.index.end() || it->second != id) {
        return fail("hashed block ", id, " (", HashString(b.hash),
                    ") is not what the index maps its hash to");
      }
    }
  }
  if (s.index.size() != num_hashed) {
    return fail("the index has ", s.index.size(), " entries but ", num_hashed,
                " blocks are hashed");
  }
  if (num_free + num_cached + num_in_use != num_blocks_) {
    return fail("free ", num_free, " + cached ", num_cached, " + in use ", num_in_use,
                " != num_blocks ", num_blocks_);
  }
  if (num_free != s.num_free || num_cached != s.lru.size()) {
    return fail("state counts (free ", num_free, ", cached ", num_cached,
                ") differ from list sizes (", s.num_free, ", ", s.lru.size(), ")");
  }
  if (s.peak_in_use < num_in_use || s.peak_in_use > num_blocks_) {
    return fail("peak_in_use ", s.peak_in_use, " is not within [in use ", num_in_use,
                ", num_blocks ", num_blocks_, "]");
  }
  return absl::OkStatus();
}

}  // namespace pagedkv
