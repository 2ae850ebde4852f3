// MemoryStore: the in-process RemoteStore behind memory://NAME. Every store opened with the same
// name in one process shares its contents (two BlockManagers = two engines sharing a tier), and
// tests inject the faults a network store has: down, slow, corrupted and truncated values.
//
//   std::shared_ptr<MemoryStore::Shared> s = MemoryStore::Named("t1");
//   s->TEST_Corrupt(key);   // flips a byte of the stored value
#ifndef PAGEDKV_REMOTE_MEMORY_STORE_H_
#define PAGEDKV_REMOTE_MEMORY_STORE_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "pagedkv/remote/remote_store.h"

namespace pagedkv {

class MemoryStore final : public RemoteStore {
 public:
  // The contents one name shares, and the faults it injects. Thread-safe.
  class Shared {
   public:
    size_t size() const;
    std::vector<std::string> Keys() const;
    // The value under `key`, or "" when there is none.
    std::string Get(const std::string& key) const;
    // Fault injection: every call fails as unreachable; every call takes `delay` (a lookup whose
    // timeout is shorter times out); a stored value gets one byte flipped / its tail cut off.
    void TEST_SetDown(bool down);
    void TEST_SetDelay(absl::Duration delay);
    bool TEST_Corrupt(const std::string& key);
    bool TEST_Truncate(const std::string& key, size_t keep_bytes);
    void TEST_Put(const std::string& key, std::string bytes);
    void Clear();

   private:
    friend class MemoryStore;
    mutable std::mutex mu_;
    absl::flat_hash_map<std::string, std::string> values_;  // guarded by mu_
    bool down_ = false;                                     // guarded by mu_
    absl::Duration delay_ = absl::ZeroDuration();           // guarded by mu_
  };

  // The contents shared under `name` (created on first use, kept while any store or caller holds
  // it).
  static std::shared_ptr<Shared> Named(const std::string& name);

  explicit MemoryStore(std::string name);
  void MultiGet(absl::Span<const std::string> keys, absl::Duration timeout,
                std::vector<Value>* out) override;
  absl::Status MultiSet(absl::Span<const Item> items, int64_t ttl_seconds,
                        absl::Duration timeout) override;
  std::string Describe() const override;

 private:
  std::string name_;
  std::shared_ptr<Shared> shared_;
};

}  // namespace pagedkv

#endif  // PAGEDKV_REMOTE_MEMORY_STORE_H_
