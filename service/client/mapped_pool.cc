// MappedPool / FetchSharedPools: the pool socket's handle message and SCM_RIGHTS descriptors
// turned into mappings of the server's pools.
#include "pagedkv/service/mapped_pool.h"

#include <sys/mman.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "pagedkv/core/status.h"
#include "pagedkv/service/wire.h"
#include "service/internal/fd_passing.h"

namespace pagedkv::client {

using service::internal::ConnectUnix;
using service::internal::ReceivedFrame;
using service::internal::UniqueFd;

MappedPool::~MappedPool() { Unmap(); }

MappedPool::MappedPool(MappedPool&& other) noexcept
    : handle_(std::move(other.handle_)),
      mapping_(std::exchange(other.mapping_, nullptr)),
      map_bytes_(std::exchange(other.map_bytes_, 0)),
      base_(std::exchange(other.base_, nullptr)) {}

MappedPool& MappedPool::operator=(MappedPool&& other) noexcept {
  if (this != &other) {
    Unmap();
    handle_ = std::move(other.handle_);
    mapping_ = std::exchange(other.mapping_, nullptr);
    map_bytes_ = std::exchange(other.map_bytes_, 0);
    base_ = std::exchange(other.base_, nullptr);
  }
  return *this;
}

void MappedPool::Unmap() {
  if (mapping_ != nullptr) munmap(mapping_, map_bytes_);
  mapping_ = nullptr;
  base_ = nullptr;
  map_bytes_ = 0;
}

absl::StatusOr<MappedPool> MappedPool::Map(const v1::PoolHandle& handle, int fd) {
  const std::string where = absl::StrCat("pool group ", handle.group(), " ", handle.tier());
  if (handle.kind() != v1::POOL_KIND_MEMFD) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": kind ",
                                                   v1::PoolKind_Name(handle.kind()),
                                                   " cannot be mapped here (only memfd pools)"));
  }
  const uint64_t need =
      handle.offset_bytes() + uint64_t{handle.num_blocks()} * handle.bytes_per_block();
  struct stat st {};
  if (fstat(fd, &st) != 0 || static_cast<uint64_t>(st.st_size) < handle.map_bytes() ||
      handle.map_bytes() < need) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": the descriptor holds ", static_cast<int64_t>(st.st_size),
        " bytes, the handle says ", handle.map_bytes(), " to map and ", need, " for its blocks"));
  }
  void* p = mmap(nullptr, handle.map_bytes(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    return absl::InternalError(absl::StrCat(where, ": mmap of ", handle.map_bytes(),
                                            " bytes failed: ", std::strerror(errno)));
  }
  MappedPool pool;
  pool.handle_ = handle;
  pool.mapping_ = static_cast<std::byte*>(p);
  pool.map_bytes_ = handle.map_bytes();
  pool.base_ = pool.mapping_ + handle.offset_bytes();
  return pool;
}

MappedPool* SharedPools::Find(int32_t group, Tier tier) {
  for (MappedPool& p : pools) {
    if (p.group() == group && p.tier() == tier) return &p;
  }
  return nullptr;
}

absl::StatusOr<SharedPools> FetchSharedPools(const std::string& path,
                                             const v1::SessionRef& session) {
  PAGEDKV_ASSIGN_OR_RETURN(UniqueFd sock, ConnectUnix(path));
  v1::PoolHandlesRequest request;
  *request.mutable_session() = session;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  PAGEDKV_RETURN_IF_ERROR(
      service::internal::SendFrame(sock.get(), request.SerializeAsString(), {}, deadline));
  PAGEDKV_ASSIGN_OR_RETURN(ReceivedFrame frame,
                           service::internal::ReceiveFrame(
                               sock.get(), 1 << 20, service::internal::kMaxFdsPerFrame, deadline));
  v1::PoolHandlesReply reply;
  if (!reply.ParseFromString(frame.payload)) {
    return absl::InternalError("pool socket: the reply is not a pagedkv.v1.PoolHandlesReply");
  }
  PAGEDKV_RETURN_IF_ERROR(service::FromProto(reply.status()));
  SharedPools pools;
  pools.model = reply.handles().model();
  for (const v1::PoolHandle& h : reply.handles().pools()) {
    if (h.fd_index() < 0) continue;  // not shareable (virtual pools)
    if (static_cast<size_t>(h.fd_index()) >= frame.fds.size()) {
      return absl::InternalError(absl::StrCat("pool socket: handle names descriptor ", h.fd_index(),
                                              " of ", frame.fds.size()));
    }
    PAGEDKV_ASSIGN_OR_RETURN(MappedPool mapped, MappedPool::Map(h, frame.fds[h.fd_index()].get()));
    pools.pools.push_back(std::move(mapped));
  }
  return pools;
}

}  // namespace pagedkv::client
