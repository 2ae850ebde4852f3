// PrefixIndexListener: told about every change of a BlockManager's prefix index, i.e. the set of
// published pages that later prompts can find by content hash, per KV group and tier. The service
// turns these into the KV events KV-aware routers consume (service/kv_events.cc); tests rebuild
// the index from them.
//
//   class Mirror : public PrefixIndexListener {
//     void OnPrefixIndexEvent(const PrefixIndexEvent& e) override { ... }
//   };
//   manager->SetPrefixIndexListener(&mirror);
#ifndef PAGEDKV_BLOCK_MANAGER_PREFIX_EVENTS_H_
#define PAGEDKV_BLOCK_MANAGER_PREFIX_EVENTS_H_

#include <cstdint>
#include <optional>

#include "absl/types/span.h"
#include "pagedkv/core/block_hash.h"
#include "pagedkv/core/types.h"

namespace pagedkv {

// One change of the index of one pool (group, tier). A hash is in a pool's index from its kStored
// event to its kRemoved event; it is never stored twice in one pool without a removal between.
struct PrefixIndexEvent {
  enum class Kind : uint8_t {
    kStored = 0,   // a page was published (commit on compute, a host offload or swap, a page
                   // brought back from the host or remote tier)
    kRemoved = 1,  // a published page was evicted, or unhashed before it is written again
  };
  Kind kind = Kind::kStored;
  int32_t group = 0;
  Tier tier = Tier::kGpu;  // kGpu or kHost
  BlockHash hash;          // the page's chain hash
  // kStored only: the hash of the page before it in its sequence (nullopt for a first page), and
  // its block_size token ids (valid during the call only).
  std::optional<BlockHash> parent;
  absl::Span<const TokenId> tokens;
};

class PrefixIndexListener {
 public:
  virtual ~PrefixIndexListener() = default;
  // Runs synchronously inside the manager call that changed the index: keep it cheap and never
  // call back into the manager.
  virtual void OnPrefixIndexEvent(const PrefixIndexEvent& event) = 0;
};

}  // namespace pagedkv

#endif  // PAGEDKV_BLOCK_MANAGER_PREFIX_EVENTS_H_
