// Shared-memory backend: host memory in an anonymous memfd segment, mapped MAP_SHARED, so another
// process that receives the descriptor (SCM_RIGHTS, pagedkv serve) maps the very same pages. The
// segment is sealed against shrinking and growing: a process holding the descriptor cannot
// truncate the pages under the server or under its other clients.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "allocator/internal/pool_backend.h"
#include "pagedkv/core/absl_compat.h"
#include "pagedkv/core/logging.h"

namespace pagedkv::internal {
namespace {

class SharedMemoryBackend final : public PoolBackend {
 public:
  ~SharedMemoryBackend() override {
    if (fd_ >= 0) close(fd_);
  }

  MemoryBackend kind() const override { return MemoryBackend::kSharedHost; }
  int shared_fd() const override { return fd_; }
  uint64_t mapped_bytes() const override { return mapped_bytes_; }

  absl::StatusOr<std::byte*> Allocate(uint64_t total_bytes, std::string_view pool_name) override {
    const std::string where = absl::StrCat("pool '", AbslView(pool_name), "'");
    const uint64_t page = SystemPageBytes();
    if (total_bytes > std::numeric_limits<uint64_t>::max() - page) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": ", total_bytes, " bytes overflow when rounded to pages"));
    }
    const uint64_t rounded = (total_bytes + page - 1) / page * page;
    const uint64_t physical = PhysicalMemoryBytes();
    if (physical != 0 && rounded > physical) {
      return absl::ResourceExhaustedError(
          absl::StrCat(where, ": ", rounded, " bytes of shared host memory requested but this ",
                       "machine has ", physical, " bytes; use fewer or smaller blocks"));
    }
    if (rounded > static_cast<uint64_t>(std::numeric_limits<off_t>::max())) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": ", rounded, " bytes do not fit in off_t"));
    }
    // The name only shows in /proc/<pid>/fd; memfd names need not be unique.
    const std::string name = absl::StrCat("pagedkv:", AbslView(pool_name));
    const int fd = memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) {
      return absl::ResourceExhaustedError(
          absl::StrCat(where, ": memfd_create failed: ", std::strerror(errno),
                       "; shared pools need Linux >= 3.17 (or run without shared memory)"));
    }
    if (ftruncate(fd, static_cast<off_t>(rounded)) != 0) {
      const int err = errno;
      close(fd);
      return absl::ResourceExhaustedError(absl::StrCat(
          where, ": ftruncate of the memfd to ", rounded, " bytes failed: ", std::strerror(err)));
    }
    // Size is fixed from here on; F_SEAL_SEAL keeps anyone from lifting the seals again.
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
      PAGEDKV_LOG_DEBUG("{}: sealing the memfd failed: {} (clients could resize it)", where,
                        std::strerror(errno));
    }
    void* base =
        mmap(nullptr, static_cast<size_t>(rounded), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
      const int err = errno;
      close(fd);
      return absl::ResourceExhaustedError(
          absl::StrCat(where, ": mmap of ", rounded, " shared bytes failed: ", std::strerror(err),
                       "; use fewer or smaller blocks or free host memory"));
    }
    fd_ = fd;
    mapped_bytes_ = rounded;
    return static_cast<std::byte*>(base);
  }

  void Free(std::byte* base, uint64_t) override {
    if (base != nullptr && munmap(base, static_cast<size_t>(mapped_bytes_)) != 0) {
      PAGEDKV_LOG_ERROR("shared pool: munmap of {} bytes failed: {}", mapped_bytes_,
                        std::strerror(errno));
    }
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
  uint64_t mapped_bytes_ = 0;  // total bytes rounded up to whole pages (the memfd's size)
};

}  // namespace

std::unique_ptr<PoolBackend> MakeSharedMemoryBackend() {
  return std::make_unique<SharedMemoryBackend>();
}

}  // namespace pagedkv::internal
