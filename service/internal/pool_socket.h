// PoolSocket: the Unix socket (mode 0600) next to the gRPC socket that hands a session the
// descriptors of its model's shared pools. gRPC cannot carry file descriptors; this socket can
// (SCM_RIGHTS). One request frame (PoolHandlesRequest: the session's id and secret), one reply
// frame (PoolHandlesReply) with the memfds riding beside it, then the connection closes.
//
//   PAGEDKV_ASSIGN_OR_RETURN(auto socket, PoolSocket::Start(path, handler));
//   socket->Stop();
#ifndef PAGEDKV_SERVICE_INTERNAL_POOL_SOCKET_H_
#define PAGEDKV_SERVICE_INTERNAL_POOL_SOCKET_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "pagedkv/v1/kvcache.pb.h"
#include "service/internal/fd_passing.h"

namespace pagedkv::service::internal {

// Largest request frame accepted (a session id and secret need a few dozen bytes).
inline constexpr size_t kMaxPoolRequestBytes = 4096;

// Prepares `path` for a new Unix socket: InvalidArgument when it is empty or too long; removes a
// stale socket file (no server answers on it); Unavailable when a live server listens there or
// the path is not a socket.
absl::Status ClearStaleSocket(const std::string& path);

// Binds `path` as a Unix stream socket with mode 0600. A stale socket file (no server answers on
// it) is replaced; Unavailable when a live server already listens there or binding fails.
absl::StatusOr<UniqueFd> BindUnixSocket(const std::string& path);

class PoolSocket {
 public:
  using Handler = std::function<absl::Status(const v1::PoolHandlesRequest& request,
                                             v1::PoolHandles* handles, std::vector<int>* fds)>;

  static absl::StatusOr<std::unique_ptr<PoolSocket>> Start(const std::string& path,
                                                           Handler handler);
  ~PoolSocket();
  PoolSocket(const PoolSocket&) = delete;
  PoolSocket& operator=(const PoolSocket&) = delete;

  // Stops accepting, joins the thread and removes the socket file. Idempotent.
  void Stop();
  const std::string& path() const { return path_; }

 private:
  PoolSocket(std::string path, UniqueFd listener, Handler handler);
  void Loop();
  void Serve(int connection);

  std::string path_;
  UniqueFd listener_;
  UniqueFd wake_read_, wake_write_;  // a pipe: Stop() writes, the loop wakes and exits
  Handler handler_;
  std::thread thread_;
  bool stopped_ = false;
};

}  // namespace pagedkv::service::internal

#endif  // PAGEDKV_SERVICE_INTERNAL_POOL_SOCKET_H_
