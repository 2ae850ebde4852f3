// MemoryPool: validates the request, picks a backend from the tier and the devices present (with
// the kGpu -> host fallback), and owns the arena for its lifetime.
#include "pagedkv/allocator/memory_pool.h"

#include <limits>
#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "allocator/internal/pool_backend.h"
#include "pagedkv/core/absl_compat.h"
#include "pagedkv/core/check.h"
#include "pagedkv/core/logging.h"

namespace pagedkv {
namespace {

std::string_view NoDeviceReason() {
#if defined(PAGEDKV_HAVE_CUDA)
  return internal::CudaUnavailableReason();
#else
  return "pagedkv was built without CUDA";
#endif
}

absl::Status ValidateOptions(const PoolOptions& o) {
  const std::string where =
      absl::StrCat("pool '", o.name, "' (tier ", AbslView(TierName(o.tier)), ")");
  if (o.bytes_per_block == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": bytes_per_block is 0; a block must hold at least one byte"));
  }
  if (o.num_blocks == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        where,
        ": num_blocks is 0; a pool needs at least one block (is the budget smaller than "
        "one block of ",
        o.bytes_per_block, " bytes?)"));
  }
  if (o.num_blocks >= kInvalidBlockId) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": num_blocks ", o.num_blocks,
                                                   " is too large; at most ", kInvalidBlockId - 1,
                                                   " blocks per pool"));
  }
  // total_bytes() multiplies in uint64_t; refuse a product that wraps or that size_t cannot hold.
  const uint64_t max_bytes = std::numeric_limits<size_t>::max();
  if (o.bytes_per_block > max_bytes / o.num_blocks) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": ", o.num_blocks, " blocks x ", o.bytes_per_block,
        " bytes per block overflows a 64-bit byte count; use fewer or smaller blocks"));
  }
  if (o.cuda_device < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": cuda_device ", o.cuda_device, " is negative"));
  }
  return absl::OkStatus();
}

// The backend for a validated request, or FailedPrecondition for a strict kGpu request with no
// device.
absl::StatusOr<std::unique_ptr<internal::PoolBackend>> ChooseBackend(const PoolOptions& o) {
  switch (o.tier) {
    case Tier::kVirtual:
      return internal::MakeVirtualBackend();
    case Tier::kGpu:
#if defined(PAGEDKV_HAVE_CUDA)
      if (CudaDeviceAvailable()) return internal::MakeCudaDeviceBackend(o.cuda_device);
#endif
      if (o.strict) {
        return absl::FailedPreconditionError(
            absl::StrCat("pool '", o.name,
                         "': tier gpu requested in strict mode but no CUDA device "
                         "is usable (",
                         AbslView(NoDeviceReason()),
                         "); run on a machine with a GPU or turn strict mode off to fall back to "
                         "host memory"));
      }
      PAGEDKV_LOG_WARN(
          "pool '{}': tier gpu requested but no CUDA device is usable ({}); using {} bytes of "
          "{} host memory instead (set strict to make this an error)",
          o.name, NoDeviceReason(), o.bytes_per_block * o.num_blocks,
          o.shared ? "shared" : "page-aligned");
      if (o.shared) return internal::MakeSharedMemoryBackend();
      return internal::MakeHostAlignedBackend(o.huge_pages);
    case Tier::kHost:
      if (o.shared) return internal::MakeSharedMemoryBackend();
#if defined(PAGEDKV_HAVE_CUDA)
      if (CudaDeviceAvailable()) return internal::MakeCudaPinnedHostBackend();
#endif
      return internal::MakeHostAlignedBackend(o.huge_pages);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("pool '", o.name, "': unknown tier ", static_cast<int>(o.tier)));
}

}  // namespace

std::string_view MemoryBackendName(MemoryBackend backend) {
  switch (backend) {
    case MemoryBackend::kCudaDevice:
      return "cuda_device";
    case MemoryBackend::kCudaPinnedHost:
      return "cuda_pinned_host";
    case MemoryBackend::kHostAligned:
      return "host_aligned";
    case MemoryBackend::kVirtual:
      return "virtual";
    case MemoryBackend::kSharedHost:
      return "shared_host";
  }
  return "unknown";
}

bool CudaDeviceAvailable() {
#if defined(PAGEDKV_HAVE_CUDA)
  return internal::CudaDeviceUsable();  // probed once, then cached
#else
  return false;
#endif
}

absl::StatusOr<std::unique_ptr<MemoryPool>> MemoryPool::Create(const PoolOptions& options) {
  if (absl::Status s = ValidateOptions(options); !s.ok()) return s;
  absl::StatusOr<std::unique_ptr<internal::PoolBackend>> backend = ChooseBackend(options);
  if (!backend.ok()) return backend.status();
  const uint64_t total_bytes = options.bytes_per_block * options.num_blocks;
  absl::StatusOr<std::byte*> base = (*backend)->Allocate(total_bytes, options.name);
  if (!base.ok()) return base.status();
  PAGEDKV_LOG_TRACE(
      "pool '{}' created: tier={} backend={} num_blocks={} bytes_per_block={} total_bytes={} "
      "base={}",
      options.name, TierName(options.tier), MemoryBackendName((*backend)->kind()),
      options.num_blocks, options.bytes_per_block, total_bytes, static_cast<void*>(*base));
  return std::unique_ptr<MemoryPool>(new MemoryPool(options, std::move(*backend), *base));
}

MemoryPool::MemoryPool(const PoolOptions& options, std::unique_ptr<internal::PoolBackend> impl,
                       std::byte* base)
    : options_(options), impl_(std::move(impl)), backend_(impl_->kind()), base_(base) {}

MemoryPool::~MemoryPool() {
  PAGEDKV_LOG_TRACE("pool '{}' destroyed: backend={} total_bytes={}", options_.name,
                    MemoryBackendName(backend_), total_bytes());
  impl_->Free(base_, total_bytes());
}

int MemoryPool::shared_memory_fd() const { return impl_->shared_fd(); }

uint64_t MemoryPool::shared_memory_bytes() const { return impl_->mapped_bytes(); }

std::byte* MemoryPool::BlockData(BlockId id) const {
  PAGEDKV_DCHECK_MSG(id < options_.num_blocks, "block id out of range");
  if (base_ == nullptr) return nullptr;
  return base_ + static_cast<size_t>(id) * options_.bytes_per_block;
}

}  // namespace pagedkv
