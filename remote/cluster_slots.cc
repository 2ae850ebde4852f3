// CRC16 key slots and the slot map of a Redis Cluster (internal/cluster_slots.h).
#include "remote/internal/cluster_slots.h"

#include <algorithm>

namespace pagedkv::internal {
namespace {

// CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), the variant Redis Cluster specifies.
constexpr std::array<uint16_t, 256> MakeTable() {
  std::array<uint16_t, 256> table{};
  for (int i = 0; i < 256; ++i) {
    uint16_t crc = static_cast<uint16_t>(i << 8);
    for (int bit = 0; bit < 8; ++bit) {
      crc = static_cast<uint16_t>((crc & 0x8000) ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    table[i] = crc;
  }
  return table;
}
constexpr std::array<uint16_t, 256> kTable = MakeTable();

uint16_t Crc16(std::string_view data) {
  uint16_t crc = 0;
  for (unsigned char c : data) {
    crc = static_cast<uint16_t>((crc << 8) ^ kTable[((crc >> 8) ^ c) & 0xff]);
  }
  return crc;
}

}  // namespace

uint16_t KeySlot(std::string_view key) {
  // A non-empty {tag} selects the hashed part, so related keys can share a slot.
  const size_t open = key.find('{');
  if (open != std::string_view::npos) {
    const size_t close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) {
      key = key.substr(open + 1, close - open - 1);
    }
  }
  return static_cast<uint16_t>(Crc16(key) % kClusterSlots);
}

void SlotMap::Assign(int first, int last, const std::string& node) {
  auto it = std::find(nodes.begin(), nodes.end(), node);
  int16_t index = static_cast<int16_t>(it - nodes.begin());
  if (it == nodes.end()) nodes.push_back(node);
  first = std::max(first, 0);
  last = std::min(last, kClusterSlots - 1);
  for (int s = first; s <= last; ++s) owner[s] = index;
}

}  // namespace pagedkv::internal
