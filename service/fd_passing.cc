// Framed messages with SCM_RIGHTS descriptors over Unix stream sockets.
#include "service/internal/fd_passing.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace pagedkv::service::internal {
namespace {

// Waits until `sock` is ready for `events` or the deadline passes.
absl::Status WaitReady(int sock, short events, Deadline deadline) {
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return absl::DeadlineExceededError("pool socket: the peer did not answer in time");
    }
    pollfd p{sock, events, 0};
    const int rc = poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 1 << 30)));
    if (rc > 0) return absl::OkStatus();
    if (rc < 0 && errno != EINTR) {
      return absl::UnavailableError(
          absl::StrCat("pool socket: poll failed: ", std::strerror(errno)));
    }
  }
}

}  // namespace

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) close(fd_);
  fd_ = fd;
}

absl::Status SendFrame(int sock, std::string_view payload, absl::Span<const int> fds,
                       Deadline deadline) {
  if (fds.size() > kMaxFdsPerFrame) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pool socket: ", fds.size(), " descriptors in one frame; at most ", kMaxFdsPerFrame));
  }
  if (payload.size() > UINT32_MAX) {
    return absl::InvalidArgumentError("pool socket: frame longer than 4 GiB");
  }
  std::string frame(4, '\0');
  const auto len = static_cast<uint32_t>(payload.size());
  std::memcpy(frame.data(), &len, 4);  // little-endian host (wire.h asserts it)
  frame.append(payload);
  size_t sent = 0;
  bool fds_sent = fds.empty();
  std::vector<char> control(CMSG_SPACE(sizeof(int) * std::max<size_t>(fds.size(), 1)));
  while (sent < frame.size()) {
    iovec iov{frame.data() + sent, frame.size() - sent};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (!fds_sent) {
      std::fill(control.begin(), control.end(), 0);
      msg.msg_control = control.data();
      msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    const ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (absl::Status s = WaitReady(sock, POLLOUT, deadline); !s.ok()) return s;
        continue;
      }
      return absl::UnavailableError(
          absl::StrCat("pool socket: sendmsg failed: ", std::strerror(errno)));
    }
    sent += static_cast<size_t>(n);
    fds_sent = true;
  }
  return absl::OkStatus();
}

absl::StatusOr<ReceivedFrame> ReceiveFrame(int sock, size_t max_bytes, size_t max_fds,
                                           Deadline deadline) {
  ReceivedFrame frame;
  std::string header(4, '\0');
  size_t got = 0;
  size_t want = 4;
  std::string* buffer = &header;
  std::vector<char> control(CMSG_SPACE(sizeof(int) * kMaxFdsPerFrame));
  while (got < want) {
    iovec iov{buffer->data() + got, want - got};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    const ssize_t n = recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (absl::Status s = WaitReady(sock, POLLIN, deadline); !s.ok()) return s;
        continue;
      }
      return absl::UnavailableError(
          absl::StrCat("pool socket: recvmsg failed: ", std::strerror(errno)));
    }
    // Adopt every descriptor first, so that each one is closed whatever happens next.
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        frame.fds.emplace_back(fd);
      }
    }
    if ((msg.msg_flags & MSG_CTRUNC) != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("pool socket: a frame carried more than ", kMaxFdsPerFrame, " descriptors"));
    }
    if (frame.fds.size() > max_fds) {
      return absl::InvalidArgumentError(absl::StrCat("pool socket: a frame carried ",
                                                     frame.fds.size(), " descriptors; at most ",
                                                     max_fds, " expected"));
    }
    if (n == 0) {
      return absl::UnavailableError(absl::StrCat(
          "pool socket: the peer closed the connection after ", got, " of ", want, " bytes"));
    }
    got += static_cast<size_t>(n);
    if (got == want && buffer == &header) {
      uint32_t len;
      std::memcpy(&len, header.data(), 4);
      if (len > max_bytes) {
        return absl::InvalidArgumentError(
            absl::StrCat("pool socket: a frame of ", len, " bytes; at most ", max_bytes));
      }
      frame.payload.resize(len);
      buffer = &frame.payload;
      got = 0;
      want = len;
    }
  }
  return frame;
}

absl::StatusOr<UniqueFd> ConnectUnix(const std::string& path) {
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("socket path '", path, "' is longer than ",
                                                   sizeof(addr.sun_path) - 1, " bytes"));
  }
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd sock(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!sock.valid()) {
    return absl::UnavailableError(absl::StrCat("socket(AF_UNIX) failed: ", std::strerror(errno)));
  }
  if (connect(sock.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot connect to '", path, "': ", std::strerror(errno), "; is pagedkv serve running?"));
  }
  return sock;
}

}  // namespace pagedkv::service::internal
