// PoolSocket: hands the shared pools' memfds to sessions over a Unix socket (SCM_RIGHTS).
#include "service/internal/pool_socket.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "pagedkv/core/absl_compat.h"
#include "pagedkv/core/logging.h"
#include "pagedkv/service/wire.h"

namespace pagedkv::service::internal {
namespace {

// A client gets this long to send its request and take the reply.
constexpr auto kConnectionTimeout = std::chrono::seconds(2);

}  // namespace

absl::Status ClearStaleSocket(const std::string& path) {
  sockaddr_un addr{};
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("socket path '", path, "' must be 1..",
                                                   sizeof(addr.sun_path) - 1, " bytes long"));
  }
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) return absl::OkStatus();
  if (!S_ISSOCK(st.st_mode)) {
    return absl::UnavailableError(absl::StrCat("'", path, "' exists and is not a socket; ",
                                               "remove it or choose another --socket"));
  }
  if (ConnectUnix(path).ok()) {
    return absl::UnavailableError(absl::StrCat("a server already listens on '", path,
                                               "'; stop it or choose another --socket"));
  }
  unlink(path.c_str());  // stale: left by a server that did not shut down cleanly
  return absl::OkStatus();
}

absl::StatusOr<UniqueFd> BindUnixSocket(const std::string& path) {
  if (absl::Status s = ClearStaleSocket(path); !s.ok()) return s;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd sock(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!sock.valid()) {
    return absl::UnavailableError(absl::StrCat("socket(AF_UNIX) failed: ", std::strerror(errno)));
  }
  // The socket file is created with mode 0600 (no window in which others could connect).
  const mode_t old_mask = umask(0177);
  const int rc = bind(sock.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  const int bind_errno = errno;
  umask(old_mask);
  if (rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot bind '", path, "': ", std::strerror(bind_errno)));
  }
  chmod(path.c_str(), 0600);
  if (listen(sock.get(), 64) != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on '", path, "': ", std::strerror(errno)));
  }
  return sock;
}

absl::StatusOr<std::unique_ptr<PoolSocket>> PoolSocket::Start(const std::string& path,
                                                              Handler handler) {
  absl::StatusOr<UniqueFd> listener = BindUnixSocket(path);
  if (!listener.ok()) return listener.status();
  std::unique_ptr<PoolSocket> socket(
      new PoolSocket(path, std::move(*listener), std::move(handler)));
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return absl::UnavailableError(absl::StrCat("pipe2 failed: ", std::strerror(errno)));
  }
  socket->wake_read_.reset(pipe_fds[0]);
  socket->wake_write_.reset(pipe_fds[1]);
  socket->thread_ = std::thread([s = socket.get()] { s->Loop(); });
  return socket;
}

PoolSocket::PoolSocket(std::string path, UniqueFd listener, Handler handler)
    : path_(std::move(path)), listener_(std::move(listener)), handler_(std::move(handler)) {}

PoolSocket::~PoolSocket() { Stop(); }

void PoolSocket::Stop() {
  if (stopped_) return;
  stopped_ = true;
  if (thread_.joinable()) {
    const char byte = 1;
    if (write(wake_write_.get(), &byte, 1) != 1) {
      PAGEDKV_LOG_ERROR("pool socket: cannot wake its thread: {}", std::strerror(errno));
    }
    thread_.join();
  }
  listener_.reset();
  unlink(path_.c_str());
}

void PoolSocket::Loop() {
  for (;;) {
    pollfd fds[2] = {{listener_.get(), POLLIN, 0}, {wake_read_.get(), POLLIN, 0}};
    const int rc = poll(fds, 2, -1);
    if (rc < 0) {
      if (errno == EINTR) continue;
      PAGEDKV_LOG_ERROR("pool socket: poll failed: {}; no more descriptors are handed out",
                        std::strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    UniqueFd connection(accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!connection.valid()) continue;
    Serve(connection.get());
  }
}

void PoolSocket::Serve(int connection) {
  const Deadline deadline = std::chrono::steady_clock::now() + kConnectionTimeout;
  absl::StatusOr<ReceivedFrame> frame =
      ReceiveFrame(connection, kMaxPoolRequestBytes, /*max_fds=*/0, deadline);
  v1::PoolHandlesReply reply;
  std::vector<int> fds;
  absl::Status status;
  if (!frame.ok()) {
    status = frame.status();
  } else {
    v1::PoolHandlesRequest request;
    if (!request.ParseFromString(frame->payload)) {
      status = absl::InvalidArgumentError(
          "pool socket: the request is not a pagedkv.v1.PoolHandlesRequest");
    } else {
      status = handler_(request, reply.mutable_handles(), &fds);
    }
  }
  if (!status.ok()) {
    reply.clear_handles();
    fds.clear();
    PAGEDKV_LOG_INFO("pool_handles refused: {}", StdView(status.message()));
  }
  ToProto(status, reply.mutable_status());
  if (absl::Status s = SendFrame(connection, reply.SerializeAsString(), fds, deadline); !s.ok()) {
    PAGEDKV_LOG_INFO("pool_handles reply not delivered: {}", StdView(s.message()));
  } else if (status.ok()) {
    PAGEDKV_LOG_DEBUG("pool_handles sent model={} descriptors={}", reply.handles().model(),
                      fds.size());
  }
}

}  // namespace pagedkv::service::internal
