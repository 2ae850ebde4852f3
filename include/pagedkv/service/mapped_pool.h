// MappedPool: one of a served model's pools mapped into this (engine) process: the very pages
// the server's page tables and CacheOps name. SharedPools fetches every pool of a session's model
// from the pool socket (descriptors passed with SCM_RIGHTS) and maps the memfd ones.
//
//   PAGEDKV_ASSIGN_OR_RETURN(SharedPools pools, session->MapPools());
//   MappedPool* gpu = pools.Find(/*group=*/0, Tier::kGpu);
//   std::byte* block = gpu->BlockData(7);   // bytes_per_block bytes, layout as in DESIGN.md
#ifndef PAGEDKV_SERVICE_MAPPED_POOL_H_
#define PAGEDKV_SERVICE_MAPPED_POOL_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "pagedkv/core/types.h"
#include "pagedkv/v1/kvcache.pb.h"

namespace pagedkv::client {

class MappedPool {
 public:
  MappedPool() = default;
  ~MappedPool();
  MappedPool(MappedPool&& other) noexcept;
  MappedPool& operator=(MappedPool&& other) noexcept;
  MappedPool(const MappedPool&) = delete;
  MappedPool& operator=(const MappedPool&) = delete;

  // Maps handle's memory from `fd` (not kept: the mapping stays valid after the fd is closed).
  // InvalidArgument for a handle that is not POOL_KIND_MEMFD or whose sizes disagree;
  // Internal when mmap fails.
  static absl::StatusOr<MappedPool> Map(const v1::PoolHandle& handle, int fd);

  const v1::PoolHandle& handle() const { return handle_; }
  int32_t group() const { return handle_.group(); }
  Tier tier() const { return handle_.tier() == "host" ? Tier::kHost : Tier::kGpu; }
  std::byte* base() const { return base_; }
  uint32_t num_blocks() const { return handle_.num_blocks(); }
  uint64_t bytes_per_block() const { return handle_.bytes_per_block(); }
  // Start of block `id` (id < num_blocks).
  std::byte* BlockData(BlockId id) const {
    return base_ + static_cast<size_t>(id) * handle_.bytes_per_block();
  }

 private:
  void Unmap();
  v1::PoolHandle handle_;
  std::byte* mapping_ = nullptr;  // what mmap returned
  size_t map_bytes_ = 0;
  std::byte* base_ = nullptr;  // mapping_ + offset_bytes: block 0
};

struct SharedPools {
  std::string model;
  std::vector<MappedPool> pools;
  // The pool of (group, tier), or nullptr.
  MappedPool* Find(int32_t group, Tier tier);
};

// Asks the pool socket at `path` for the pools of `session`'s model and maps each memfd pool.
// The server's status (NotFound for an unknown session) or Unavailable when the socket is gone.
absl::StatusOr<SharedPools> FetchSharedPools(const std::string& path,
                                             const v1::SessionRef& session);

}  // namespace pagedkv::client

#endif  // PAGEDKV_SERVICE_MAPPED_POOL_H_
