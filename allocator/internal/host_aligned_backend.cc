// Aligned host backend: plain host memory, page aligned (2 MiB aligned with huge pages so that
// transparent huge pages can back the whole arena). Used for kHost without CUDA and as the
// fallback of a kGpu request on a machine with no device.
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "allocator/internal/pool_backend.h"
#include "pagedkv/core/absl_compat.h"
#include "pagedkv/core/logging.h"

namespace pagedkv::internal {
namespace {

constexpr uint64_t kHugePageBytes = uint64_t{2} << 20;

class HostAlignedBackend final : public PoolBackend {
 public:
  explicit HostAlignedBackend(bool huge_pages) : huge_pages_(huge_pages) {}

  MemoryBackend kind() const override { return MemoryBackend::kHostAligned; }

  absl::StatusOr<std::byte*> Allocate(uint64_t total_bytes, std::string_view pool_name) override {
    const uint64_t alignment = huge_pages_ ? kHugePageBytes : SystemPageBytes();
    if (total_bytes > std::numeric_limits<uint64_t>::max() - alignment) {
      return absl::InvalidArgumentError(absl::StrCat("pool '", AbslView(pool_name),
                                                     "': ", total_bytes,
                                                     " bytes overflow when rounded to pages"));
    }
    // posix_memalign needs no size multiple, but rounding lets madvise cover whole pages.
    const uint64_t rounded = (total_bytes + alignment - 1) / alignment * alignment;
    const uint64_t physical = PhysicalMemoryBytes();
    if (physical != 0 && rounded > physical) {
      return absl::ResourceExhaustedError(
          absl::StrCat("pool '", AbslView(pool_name), "': ", rounded,
                       " bytes of host memory requested but this machine has ", physical,
                       " bytes; use fewer or smaller blocks"));
    }
    if (rounded > std::numeric_limits<size_t>::max()) {
      return absl::InvalidArgumentError(absl::StrCat("pool '", AbslView(pool_name), "': ", rounded,
                                                     " bytes do not fit in size_t"));
    }
    void* base = nullptr;
    const int rc =
        posix_memalign(&base, static_cast<size_t>(alignment), static_cast<size_t>(rounded));
    if (rc != 0 || base == nullptr) {
      return absl::ResourceExhaustedError(
          absl::StrCat("pool '", AbslView(pool_name), "': posix_memalign of ", rounded,
                       " bytes (alignment ", alignment, ") failed: ", std::strerror(rc),
                       "; use fewer or smaller blocks or free host memory"));
    }
#if defined(MADV_HUGEPAGE)
    if (huge_pages_ && madvise(base, static_cast<size_t>(rounded), MADV_HUGEPAGE) != 0) {
      // Only advice: the arena works without huge pages, so this is not an error.
      PAGEDKV_LOG_DEBUG("pool '{}': madvise(MADV_HUGEPAGE) on {} bytes failed: {}", pool_name,
                        rounded, std::strerror(errno));
    }
#endif
    return static_cast<std::byte*>(base);
  }

  void Free(std::byte* base, uint64_t) override { std::free(base); }

 private:
  bool huge_pages_;
};

}  // namespace

std::unique_ptr<PoolBackend> MakeHostAlignedBackend(bool huge_pages) {
  return std::make_unique<HostAlignedBackend>(huge_pages);
}

}  // namespace pagedkv::internal
