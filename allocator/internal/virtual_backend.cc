// Virtual backend: a pool with block ids and no bytes, so a large GPU can be simulated anywhere.
#include <memory>

#include "allocator/internal/pool_backend.h"

namespace pagedkv::internal {
namespace {

class VirtualBackend final : public PoolBackend {
 public:
  MemoryBackend kind() const override { return MemoryBackend::kVirtual; }
  absl::StatusOr<std::byte*> Allocate(uint64_t, std::string_view) override { return nullptr; }
  void Free(std::byte*, uint64_t) override {}
};

}  // namespace

std::unique_ptr<PoolBackend> MakeVirtualBackend() { return std::make_unique<VirtualBackend>(); }

}  // namespace pagedkv::internal
