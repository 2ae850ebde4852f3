// Framed messages with file descriptors over a Unix stream socket (SCM_RIGHTS): the pool socket
// of `pagedkv serve` uses it to hand the shared pools' memfds to a session's engine process.
// Frame: a 4-byte little-endian payload length, then the payload; the descriptors travel with
// the frame's first byte.
//
//   PAGEDKV_RETURN_IF_ERROR(SendFrame(sock, payload, fds, deadline));
//   PAGEDKV_ASSIGN_OR_RETURN(ReceivedFrame f, ReceiveFrame(sock, kMaxBytes, kMaxFds, deadline));
#ifndef PAGEDKV_SERVICE_INTERNAL_FD_PASSING_H_
#define PAGEDKV_SERVICE_INTERNAL_FD_PASSING_H_

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace pagedkv::service::internal {

// Owns one file descriptor; closes it on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

using Deadline = std::chrono::steady_clock::time_point;

// Most descriptors one frame may carry (the kernel's SCM_MAX_FD is 253).
inline constexpr size_t kMaxFdsPerFrame = 64;

// Sends one frame. InvalidArgument for too many descriptors; Unavailable when the peer is gone;
// DeadlineExceeded when the socket does not drain before `deadline`.
absl::Status SendFrame(int sock, std::string_view payload, absl::Span<const int> fds,
                       Deadline deadline);

struct ReceivedFrame {
  std::string payload;
  std::vector<UniqueFd> fds;
};
// Receives one frame. InvalidArgument for a frame longer than max_bytes or with more than
// max_fds descriptors (the extra ones are closed); Unavailable when the peer closed early;
// DeadlineExceeded.
absl::StatusOr<ReceivedFrame> ReceiveFrame(int sock, size_t max_bytes, size_t max_fds,
                                           Deadline deadline);

// A connected Unix stream socket to `path` (close-on-exec). Unavailable naming the path and errno.
absl::StatusOr<UniqueFd> ConnectUnix(const std::string& path);

}  // namespace pagedkv::service::internal

#endif  // PAGEDKV_SERVICE_INTERNAL_FD_PASSING_H_
