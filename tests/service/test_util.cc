// Test helpers of the service tests: toy models, temporary directories, child processes.
#include "tests/service/test_util.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

extern char** environ;

namespace pagedkv::testing {

ModelSpec ToySpec() {
  ModelSpec spec;
  spec.name = "toy";
  spec.num_q_heads = 4;
  spec.num_kv_heads = 2;
  spec.head_dim = 16;
  spec.kv_dtype = DType::kFp32;
  spec.layers = {LayerSpec::Full(), LayerSpec::Full()};
  return spec;
}

ModelSpec ToyCrossSpec() {
  ModelSpec spec = ToySpec();
  spec.name = "toy-cross";
  spec.layers = {LayerSpec::Full(), LayerSpec::Full(), LayerSpec::Cross(), LayerSpec::Cross()};
  return spec;
}

service::ServerOptions ToyServerOptions(std::atomic<int64_t>* now_ns) {
  service::ServerOptions o;
  service::ModelOptions m;
  m.name = "toy";
  m.spec = ToySpec();
  m.cache.block_size_tokens = 4;
  m.cache.gpu_num_blocks = 64;
  m.cache.host_num_blocks = 32;
  m.cache.watermark = 0.0;
  o.models.push_back(m);
  o.limits.default_lease_seconds = 5;
  o.limits.quarantine_seconds = 2;
  if (now_ns != nullptr) o.clock_ns = [now_ns] { return now_ns->load(); };
  return o;
}

TempDir::TempDir() {
  char tmpl[] = "/tmp/pkvt-XXXXXX";
  const char* made = mkdtemp(tmpl);
  path_ = made != nullptr ? made : "/tmp";
}

TempDir::~TempDir() {
  std::error_code ec;
  if (path_ != "/tmp") std::filesystem::remove_all(path_, ec);
}

bool WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  return static_cast<bool>(out);
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  if (stdout_fd_ >= 0) close(stdout_fd_);
}

absl::Status ChildProcess::Spawn(const std::vector<std::string>& argv,
                                 const std::vector<std::string>& env) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return absl::InternalError("pipe2 failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  for (const std::string& e : env) env_strings.push_back(e);
  std::vector<char*> envp;
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  const int rc = posix_spawn(&pid_, argv[0].c_str(), &actions, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    pid_ = -1;
    return absl::InternalError(absl::StrCat("posix_spawn ", argv[0], ": ", std::strerror(rc)));
  }
  stdout_fd_ = fds[0];
  return absl::OkStatus();
}

absl::StatusOr<std::string> ChildProcess::ReadLine(double timeout_s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  for (;;) {
    const size_t nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return line;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return absl::DeadlineExceededError("no line from the child in time");
    pollfd p{stdout_fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char chunk[4096];
    const ssize_t n = read(stdout_fd_, chunk, sizeof(chunk));
    if (n <= 0) return absl::UnavailableError("the child closed its stdout");
    buffer_.append(chunk, static_cast<size_t>(n));
  }
}

void ChildProcess::Signal(int signal) const {
  if (pid_ > 0) kill(pid_, signal);
}

namespace {
int ExitCode(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}
}  // namespace

bool ChildProcess::Poll(int* exit_code) {
  if (pid_ <= 0) return true;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) != pid_) return false;
  pid_ = -1;
  *exit_code = ExitCode(status);
  return true;
}

int ChildProcess::Wait(double timeout_s) {
  if (pid_ <= 0) return -1;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  int status = 0;
  for (;;) {
    const pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) break;
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      pid_ = -1;
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  pid_ = -1;
  return ExitCode(status);
}

std::string PagedkvBinary() { return PAGEDKV_CLI_PATH; }

std::string WriteToyModel(const TempDir& dir, const ModelSpec& spec) {
  const std::string path = dir.File(spec.name + ".json");
  WriteFile(path, spec.ToJson());
  return path;
}

absl::Status ServeProcess::Start(const std::vector<std::string>& args,
                                 const std::vector<std::string>& env) {
  socket_ = dir_.File("kv.sock");
  const std::string ready = dir_.File("ready.json");
  std::vector<std::string> argv = {PagedkvBinary(), "serve",        "--socket",
                                   socket_,         "--ready-file", ready};
  argv.insert(argv.end(), args.begin(), args.end());
  if (absl::Status s = process_.Spawn(argv, env); !s.ok()) return s;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(ready);
    if (in) {
      std::stringstream text;
      text << in.rdbuf();
      const nlohmann::json j = nlohmann::json::parse(text.str(), nullptr, false);
      if (!j.is_discarded()) {
        pool_socket_ = j.value("pool_socket", "");
        tcp_port_ = j.value("tcp_port", 0);
        return absl::OkStatus();
      }
    }
    int code = 0;
    if (process_.Poll(&code)) {
      return absl::InternalError(
          absl::StrCat("pagedkv serve exited early (exit code ", code, "); see its stderr above"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return absl::DeadlineExceededError("pagedkv serve did not write its ready file in 20 s");
}

int ServeProcess::Stop(int signal, double timeout_s) {
  process_.Signal(signal);
  return process_.Wait(timeout_s);
}

}  // namespace pagedkv::testing
