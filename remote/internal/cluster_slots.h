// Redis Cluster key slots: CRC16 (XMODEM) of the key, or of its {hash tag}, modulo 16384, and the
// slot map read from CLUSTER SLOTS. Internal to remote/.
#ifndef PAGEDKV_REMOTE_INTERNAL_CLUSTER_SLOTS_H_
#define PAGEDKV_REMOTE_INTERNAL_CLUSTER_SLOTS_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pagedkv::internal {

inline constexpr int kClusterSlots = 16384;

// The slot of a key as Redis Cluster computes it.
uint16_t KeySlot(std::string_view key);

// Which master serves each slot (index into nodes; -1 = unassigned).
struct SlotMap {
  std::vector<std::string> nodes;  // "host:port" of the masters
  std::array<int16_t, kClusterSlots> owner;
  SlotMap() { owner.fill(-1); }
  bool empty() const { return nodes.empty(); }
  // Assigns [first, last] to `node` (added when new).
  void Assign(int first, int last, const std::string& node);
};

}  // namespace pagedkv::internal

#endif  // PAGEDKV_REMOTE_INTERNAL_CLUSTER_SLOTS_H_
