#include "tests/remote/redis_servers.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "remote/internal/cluster_slots.h"

namespace pagedkv::testing {
namespace {

bool OnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return false;
  for (absl::string_view dir : absl::StrSplit(path, ':')) {
    const std::string candidate = absl::StrCat(dir, "/", name);
    if (access(candidate.c_str(), X_OK) == 0) return true;
  }
  return false;
}

bool PortFree(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

// Starts args[0] (found on PATH) with stdout and stderr appended to `log`. The child gets SIGKILL
// when the test process dies, however it dies: a killed test run leaves no server behind.
pid_t Spawn(const std::vector<std::string>& args, const std::string& log) {
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid != 0) return pid;  // the parent, or -1
  // The child: only async-signal-safe calls until exec.
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) _exit(127);
  const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0) _exit(127);
  execvp(argv[0], argv.data());
  _exit(127);
}

}  // namespace

std::optional<std::string> RedisServers::MissingBinaries() {
  for (const char* bin : {"redis-server", "redis-cli"}) {
    if (!OnPath(bin)) {
      return absl::StrCat(bin,
                          " is not installed (Debian: apt-get install redis-server "
                          "redis-tools); the Redis tier tests need a real server");
    }
  }
  return std::nullopt;
}

RedisServers::RedisServers() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "pagedkv-redis-XXXXXX").string();
  dir_ = mkdtemp(tmpl.data()) != nullptr ? tmpl : std::string("/tmp");
}

RedisServers::~RedisServers() {
  for (const auto& [port, pid] : pids_) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
  std::error_code ec;
  if (dir_ != "/tmp") std::filesystem::remove_all(dir_, ec);
}

int RedisServers::FreePort() {
  static std::mt19937 rng(static_cast<uint32_t>(getpid()) * 2654435761u);
  for (int attempt = 0; attempt < 500; ++attempt) {
    const int port = 20000 + static_cast<int>(rng() % 25000);
    if (PortFree(port) && PortFree(port + 10000)) return port;  // the cluster bus port too
  }
  return 0;
}

absl::Status RedisServers::StartOn(int port, bool cluster) {
  const std::string p = absl::StrCat(port);
  std::vector<std::string> args = {"redis-server",
                                   "--port",
                                   p,
                                   "--bind",
                                   "127.0.0.1",
                                   "--save",
                                   "",
                                   "--appendonly",
                                   "no",
                                   "--dir",
                                   dir_,
                                   "--enable-debug-command",
                                   "yes",
                                   "--protected-mode",
                                   "no"};
  if (cluster) {
    args.insert(args.end(), {"--cluster-enabled", "yes", "--cluster-config-file",
                             absl::StrCat("nodes-", p, ".conf"), "--cluster-node-timeout", "1000"});
  }
  const pid_t pid = Spawn(args, absl::StrCat(dir_, "/redis-", p, ".log"));
  if (pid < 0) return absl::InternalError("cannot start redis-server");
  pids_[port] = pid;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline) {
    absl::StatusOr<std::string> pong = Command(port, {"PING"});
    if (pong.ok() && *pong == "PONG") return absl::OkStatus();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "redis-server on port ", port, " did not answer PING within 10 s (log in ", dir_, ")"));
}

absl::StatusOr<int> RedisServers::StartStandalone() {
  const int port = FreePort();
  if (port == 0) return absl::UnavailableError("no free loopback port");
  absl::Status st = StartOn(port, false);
  if (!st.ok()) return st;
  return port;
}

absl::StatusOr<std::vector<int>> RedisServers::StartCluster() {
  std::vector<int> ports;
  std::vector<std::string> args = {"redis-cli", "--cluster", "create"};
  for (int i = 0; i < 6; ++i) {
    int port = 0;
    for (int attempt = 0; attempt < 20 && port == 0; ++attempt) {
      port = FreePort();
      for (int used : ports) port = port == used ? 0 : port;
    }
    if (port == 0) return absl::UnavailableError("no free loopback port");
    absl::Status st = StartOn(port, true);
    if (!st.ok()) return st;
    ports.push_back(port);
    args.push_back(absl::StrCat("127.0.0.1:", port));
  }
  args.insert(args.end(), {"--cluster-replicas", "1", "--cluster-yes"});
  const pid_t pid = Spawn(args, absl::StrCat(dir_, "/cluster-create.log"));
  if (pid < 0) return absl::InternalError("cannot run redis-cli --cluster create");
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (absl::Now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      return absl::DeadlineExceededError("redis-cli --cluster create took over 60 s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(
        absl::StrCat("redis-cli --cluster create failed (log in ", dir_, "/cluster-create.log)"));
  }
  absl::Status ok = WaitClusterOk(absl::Seconds(30));
  if (!ok.ok()) return ok;
  return ports;
}

void RedisServers::Kill(int port) {
  auto it = pids_.find(port);
  if (it == pids_.end()) return;
  kill(it->second, SIGKILL);
  waitpid(it->second, nullptr, 0);
  pids_.erase(it);
}

absl::Status RedisServers::WaitClusterOk(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    bool all = !pids_.empty();
    for (const auto& [port, pid] : pids_) {
      absl::StatusOr<std::string> info = Command(port, {"CLUSTER", "INFO"});
      all = all && info.ok() && info->find("cluster_state:ok") != std::string::npos;
    }
    if (all) return absl::OkStatus();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return absl::DeadlineExceededError("the cluster did not reach cluster_state:ok in time");
}

absl::StatusOr<std::string> RedisServers::Command(int port, const std::vector<std::string>& args) {
  timeval tv{10, 0};  // DEBUG SLEEP and WAIT take seconds
  redisContext* c = redisConnectWithTimeout("127.0.0.1", port, tv);
  if (c == nullptr || c->err != 0) {
    const std::string why = c != nullptr ? c->errstr : "out of memory";
    if (c != nullptr) redisFree(c);
    return absl::UnavailableError(absl::StrCat("127.0.0.1:", port, ": ", why));
  }
  redisSetTimeout(c, tv);
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const std::string& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* reply = static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()));
  std::string text;
  absl::Status st;
  if (reply == nullptr) {
    st = absl::UnavailableError(c->errstr);
  } else if (reply->type == REDIS_REPLY_ERROR) {
    st = absl::InternalError(std::string(reply->str, reply->len));
  } else if (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS) {
    text.assign(reply->str, reply->len);
  } else if (reply->type == REDIS_REPLY_INTEGER) {
    text = absl::StrCat(reply->integer);
  }
  if (reply != nullptr) freeReplyObject(reply);
  redisFree(c);
  if (!st.ok()) return st;
  return text;
}

absl::StatusOr<int> RedisServers::MasterOf(int any_port, const std::string& key) {
  timeval tv{2, 0};
  redisContext* c = redisConnectWithTimeout("127.0.0.1", any_port, tv);
  if (c == nullptr || c->err != 0) {
    if (c != nullptr) redisFree(c);
    return absl::UnavailableError("cannot connect to ask for the slot map");
  }
  auto* reply = static_cast<redisReply*>(redisCommand(c, "CLUSTER SLOTS"));
  const int slot = internal::KeySlot(key);
  int port = -1;
  if (reply != nullptr && reply->type == REDIS_REPLY_ARRAY) {
    for (size_t i = 0; i < reply->elements; ++i) {
      const redisReply* r = reply->element[i];
      if (r->element[0]->integer <= slot && slot <= r->element[1]->integer) {
        port = static_cast<int>(r->element[2]->element[1]->integer);
      }
    }
  }
  if (reply != nullptr) freeReplyObject(reply);
  redisFree(c);
  if (port < 0) return absl::NotFoundError("no master serves the key's slot");
  return port;
}

}  // namespace pagedkv::testing
