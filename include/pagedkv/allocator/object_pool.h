// ObjectPool<T>: O(1) New/Delete of small fixed-size objects that are created and destroyed at a
// high rate (the block manager's per-sequence records), carved from Boost.Pool chunks instead of
// one heap allocation each. Not thread-safe. Objects still alive when the pool is destroyed are
// destroyed with it (their destructors run).
//
//   ObjectPool<SeqRecord> pool;
//   SeqRecord* r = pool.New(args...);
//   pool.Delete(r);
#ifndef PAGEDKV_ALLOCATOR_OBJECT_POOL_H_
#define PAGEDKV_ALLOCATOR_OBJECT_POOL_H_

#include <cstddef>
#include <new>
#include <utility>

#include "boost/pool/pool.hpp"
#include "pagedkv/core/check.h"

namespace pagedkv {

template <typename T>
class ObjectPool {
 public:
  // `objects_per_chunk`: how many objects the first chunk holds (later chunks double).
  explicit ObjectPool(size_t objects_per_chunk = 256) : pool_(kSlotBytes, objects_per_chunk) {}
  ~ObjectPool() {
    // Live objects are threaded on an intrusive list so their destructors can run here.
    while (live_head_ != nullptr) {
      Delete(std::launder(reinterpret_cast<T*>(live_head_->storage)));
    }
  }
  ObjectPool(const ObjectPool&) = delete;
  ObjectPool& operator=(const ObjectPool&) = delete;

  // Constructs a T; throws std::bad_alloc only when the process is out of memory.
  template <typename... Args>
  T* New(Args&&... args) {
    void* raw = pool_.malloc();
    if (raw == nullptr) throw std::bad_alloc();
    Slot* slot = static_cast<Slot*>(raw);
    try {
      ::new (static_cast<void*>(slot->storage)) T(std::forward<Args>(args)...);
    } catch (...) {
      pool_.free(raw);
      throw;
    }
    slot->prev = nullptr;
    slot->next = live_head_;
    if (live_head_ != nullptr) live_head_->prev = slot;
    live_head_ = slot;
    ++num_live_;
    return std::launder(reinterpret_cast<T*>(slot->storage));
  }

  // Destroys an object made by New of this pool.
  void Delete(T* object) {
    PAGEDKV_DCHECK(object != nullptr && num_live_ > 0);
    Slot* slot =
        reinterpret_cast<Slot*>(reinterpret_cast<unsigned char*>(object) - offsetof(Slot, storage));
    PAGEDKV_DCHECK(pool_.is_from(slot));
    object->~T();
    if (slot->prev != nullptr) slot->prev->next = slot->next;
    if (slot->next != nullptr) slot->next->prev = slot->prev;
    if (live_head_ == slot) live_head_ = slot->next;
    --num_live_;
    pool_.free(slot);
  }

  size_t num_live() const { return num_live_; }

 private:
  // Standard layout, so offsetof(Slot, storage) is well defined.
  struct Slot {
    Slot* prev;
    Slot* next;
    alignas(T) unsigned char storage[sizeof(T)];
  };
  static constexpr size_t kSlotBytes = sizeof(Slot);
  // Boost.Pool carves slots of kSlotBytes (a multiple of alignof(Slot)) out of malloc'ed chunks,
  // which are aligned only to max_align_t; over-aligned types would land misaligned.
  static_assert(alignof(Slot) <= alignof(std::max_align_t),
                "ObjectPool supports types aligned to at most alignof(std::max_align_t)");

  boost::pool<boost::default_user_allocator_malloc_free> pool_;
  Slot* live_head_ = nullptr;
  size_t num_live_ = 0;
};

}  // namespace pagedkv

#endif  // PAGEDKV_ALLOCATOR_OBJECT_POOL_H_
