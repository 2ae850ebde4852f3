// Shared by the service tests: the toy model, ServerOptions for in-process cores, a fake lease
// clock, and ServeProcess, which runs the real `pagedkv serve` binary on a temporary socket.
//
//   ServeProcess serve;
//   ASSERT_OK(serve.Start({"--model", ToyModelPath(), "--gpu-blocks", "64"}));
//   auto client = *client::Client::Connect({.target = serve.target()});
//   EXPECT_EQ(serve.Stop(SIGTERM), 0);
#ifndef PAGEDKV_TESTS_SERVICE_TEST_UTIL_H_
#define PAGEDKV_TESTS_SERVICE_TEST_UTIL_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "pagedkv/core/model_spec.h"
#include "pagedkv/service/server.h"

namespace pagedkv::testing {

#define PAGEDKV_ASSERT_OK(expr)                   \
  do {                                            \
    const ::absl::Status pagedkv_st_ = (expr);    \
    ASSERT_TRUE(pagedkv_st_.ok()) << pagedkv_st_; \
  } while (0)

// 2 full layers, 4 q heads, 2 kv heads, head dim 16, fp32: one KV group.
ModelSpec ToySpec();
// full, full, cross, cross: a self-attention group and a cross group (encoder-decoder).
ModelSpec ToyCrossSpec();

// One toy model ("toy", block size 4, 64 GPU and 32 host blocks per group) and limits that suit
// tests; `now_ns` (when given) is the lease clock.
service::ServerOptions ToyServerOptions(std::atomic<int64_t>* now_ns = nullptr);

// A fresh directory under /tmp (short, so socket paths fit), removed with its files on
// destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Writes `text` to `path`; false on failure.
bool WriteFile(const std::string& path, const std::string& text);

// A child process (posix_spawn) with its stdout on a pipe.
class ChildProcess {
 public:
  ChildProcess() = default;
  ~ChildProcess();  // SIGKILLs a child still running
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // `env` entries ("K=V") are added to this process's environment.
  absl::Status Spawn(const std::vector<std::string>& argv,
                     const std::vector<std::string>& env = {});
  // The next line of the child's stdout (without '\n'); DeadlineExceeded after timeout_s,
  // Unavailable at end of output.
  absl::StatusOr<std::string> ReadLine(double timeout_s);
  void Signal(int signal) const;
  // Non-blocking: true (with the code as Wait gives it) once the child has exited.
  bool Poll(int* exit_code);
  // Waits up to timeout_s for the exit: the exit code, 128 + signal when killed, or -1 when it
  // did not exit in time (it is then SIGKILLed).
  int Wait(double timeout_s);
  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }

 private:
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string buffer_;
};

// The `pagedkv serve` binary on a temporary Unix socket (and TCP when asked), started with
// --ready-file and waited for (bounded).
class ServeProcess {
 public:
  ServeProcess() = default;
  ~ServeProcess() = default;

  // Appends --socket, --ready-file and `args`; waits up to 20 s for the ready file.
  absl::Status Start(const std::vector<std::string>& args,
                     const std::vector<std::string>& env = {});
  // Sends `signal` and returns the exit code (bounded wait, see ChildProcess::Wait).
  int Stop(int signal, double timeout_s = 30.0);

  std::string target() const { return "unix:" + socket_; }
  const std::string& socket() const { return socket_; }
  const std::string& pool_socket() const { return pool_socket_; }
  int tcp_port() const { return tcp_port_; }
  const TempDir& dir() const { return dir_; }
  ChildProcess& process() { return process_; }

 private:
  TempDir dir_;
  ChildProcess process_;
  std::string socket_, pool_socket_;
  int tcp_port_ = 0;
};

// Path of the built `pagedkv` binary, and of the toy model as a JSON file under `dir`.
std::string PagedkvBinary();
std::string WriteToyModel(const TempDir& dir, const ModelSpec& spec);

}  // namespace pagedkv::testing

#endif  // PAGEDKV_TESTS_SERVICE_TEST_UTIL_H_
