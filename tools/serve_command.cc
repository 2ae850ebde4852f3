// `pagedkv serve`: the KV-cache manager as a service that engine processes share. Builds the
// ServerOptions from flags or a serve.json, starts the Server, and waits for SIGTERM / SIGINT,
// which drain in-flight calls and exit 0. The server itself lives in service/.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "pagedkv/core/logging.h"
#include "pagedkv/service/server.h"
#include "tools/internal/command.h"
#include "tools/internal/serve_config.h"

namespace pagedkv::cli {
namespace {

constexpr std::string_view kCommand = "pagedkv serve";

// Writes what a supervisor (or a test) needs to connect, once the sockets are bound: written to
// a temporary name and renamed, so a reader never sees half a file.
absl::Status WriteReadyFile(const std::string& path, const service::Server& server) {
  const nlohmann::ordered_json ready = {{"pid", static_cast<int64_t>(getpid())},
                                        {"socket", server.socket_path()},
                                        {"pool_socket", server.pool_socket_path()},
                                        {"tcp_port", server.tcp_port()}};
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << ready.dump() << "\n";
    if (!out) return absl::InternalError(absl::StrCat("cannot write --ready-file '", path, "'"));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot rename '", tmp, "' to '", path, "'"));
  }
  return absl::OkStatus();
}

}  // namespace

int RunServeCommand(const CommandContext& ctx, absl::Span<const std::string> args) {
  std::string model_name, served_name, config_path, socket_path, listen_address, token_file;
  std::string ready_file, gpu_tier = "gpu";
  int64_t gpu_blocks = 0, host_blocks = 0, block_size = 16;
  bool prefix_caching = true, strict_gpu = false;
  ServeConfig defaults;
  double lease_seconds = defaults.server.limits.default_lease_seconds;
  double max_lease_seconds = defaults.server.limits.max_lease_seconds;
  double quarantine_seconds = defaults.server.limits.quarantine_seconds;
  double drain_seconds = defaults.drain_seconds;
  int64_t max_sessions = defaults.server.limits.max_sessions;
  int64_t max_ops_per_step = defaults.server.limits.max_ops_per_step;
  uint64_t max_message_bytes = static_cast<uint64_t>(defaults.server.max_message_bytes);
  int64_t testing_step_delay_ms = 0;
  bool check = false;

  FlagSet flags(std::string(kCommand),
                "Serve the KV-cache manager over gRPC: engine processes open sessions, send "
                "one Step per\nengine step and map the shared pools (docs/service.md). Stops "
                "on SIGTERM or SIGINT after\nthe calls in flight finish (exit 0).");
  flags.AddString("model", "NAME|PATH",
                  "model preset or model JSON file to serve (or use --config)", &model_name, "");
  flags.AddString("name", "NAME", "the name sessions ask for", &served_name, "the model's name");
  flags.AddInt("gpu-blocks", "N", "blocks per KV group in the GPU pool; required with --model",
               &gpu_blocks, 1, int64_t{kInvalidBlockId} - 1, "");
  flags.AddInt("host-blocks", "N", "blocks per KV group in the host pool (swap, 2nd-level cache)",
               &host_blocks, 0);
  flags.AddInt("block-size", "TOKENS", "tokens per KV block", &block_size, 1,
               CacheConfig::kMaxBlockSizeTokens);
  flags.AddBool("prefix-caching", "share full prompt pages between sequences (=false: off)",
                &prefix_caching);
  flags.AddChoice("gpu-tier",
                  "virtual = block bookkeeping only, no pool memory (capacity planning)",
                  {"gpu", "virtual"}, &gpu_tier);
  flags.AddBool("strict-gpu", "fail instead of falling back to host memory without a GPU",
                &strict_gpu);
  flags.AddString("config", "FILE", "serve.json: several models and the settings below",
                  &config_path, "");
  flags.StartGroup("Transport");
  flags.AddString("socket", "PATH", "Unix socket of the service (mode 0600)", &socket_path,
                  "$XDG_RUNTIME_DIR/pagedkv/serve.sock or /tmp/pagedkv-UID/serve.sock");
  flags.AddString("listen", "HOST:PORT",
                  "also serve gRPC over TCP (needs --token-file); port 0 picks one",
                  &listen_address, "");
  flags.AddString("token-file", "FILE", "bearer token TCP clients must send", &token_file, "");
  flags.StartGroup("Sessions and limits");
  flags.AddDouble("lease-seconds", "S", "lease of a session that asks for none", &lease_seconds);
  flags.AddDouble("max-lease-seconds", "S", "longest lease a session may ask for",
                  &max_lease_seconds);
  flags.AddDouble("quarantine-seconds", "S",
                  "how long an expired session's last-step pages stay unusable",
                  &quarantine_seconds);
  flags.AddInt("max-sessions", "N", "open sessions at most", &max_sessions, 1);
  flags.AddInt("max-ops-per-step", "N", "ops in one Step at most", &max_ops_per_step, 1);
  flags.AddBytes("max-message-bytes", "BYTES", "largest request or response, e.g. 64MiB",
                 &max_message_bytes, "64MiB");
  flags.AddDouble("drain-seconds", "S", "on SIGTERM, how long calls in flight may take",
                  &drain_seconds);
  flags.StartGroup("Running");
  flags.AddBool("check", "build the models and pools, print what would be served, and exit",
                &check);
  flags.AddString("ready-file", "FILE",
                  "write {pid, socket, pool_socket, tcp_port} as JSON once serving", &ready_file,
                  "");
  flags.AddInt("testing-step-delay-ms", "MS", "test hook: sleep in every Step",
               &testing_step_delay_ms, 0, 60000);
  AddCommonFlags(flags);
  flags.SetEpilog(
      "Examples:\n"
      "  pagedkv serve --model llama-3-8b --gpu-blocks 4096 --host-blocks 1024\n"
      "  pagedkv serve --model llama-3-8b --gpu-blocks 4096 --gpu-tier virtual --check\n"
      "  pagedkv serve --config serve.json --socket /run/pagedkv/kv.sock\n"
      "  pagedkv serve --model qwen2.5-1.5b --gpu-blocks 2048 --listen 127.0.0.1:7070 "
      "--token-file token.txt\n");
  if (int rc = ParseOrReport(flags, args, ctx); rc != kExitOk) {
    return rc == kHelpShown ? kExitOk : rc;
  }
  // A daemon says what it serves: info unless --log-level or PAGEDKV_LOG chose a level.
  if (!flags.IsSet("log-level") && std::getenv("PAGEDKV_LOG") == nullptr) {
    SetLogLevel("info").IgnoreError();
  }
  const auto usage = [&](std::string message) {
    return ReportError(ctx, kCommand, absl::InvalidArgumentError(message), kExitUsage);
  };

  ServeConfig cfg;
  if (!config_path.empty()) {
    for (const char* flag : {"model", "name", "gpu-blocks", "host-blocks", "block-size",
                             "prefix-caching", "gpu-tier", "strict-gpu"}) {
      if (flags.IsSet(flag)) {
        return usage(absl::StrCat("--", flag, " and --config exclude each other; describe the ",
                                  "models in the config file"));
      }
    }
    absl::StatusOr<ServeConfig> loaded = LoadServeConfig(config_path);
    if (!loaded.ok()) return ReportError(ctx, kCommand, loaded.status(), kExitUsage);
    cfg = std::move(*loaded);
  } else {
    if (model_name.empty()) {
      return usage(
          "missing --model NAME|PATH (or --config FILE); 'pagedkv size --list-models' "
          "lists the presets");
    }
    if (!flags.IsSet("gpu-blocks")) return usage("missing --gpu-blocks N");
    if (gpu_tier != "gpu" && gpu_tier != "virtual") {
      return usage(absl::StrCat("--gpu-tier '", gpu_tier, "': use gpu or virtual"));
    }
    absl::StatusOr<ModelSpec> spec = LoadModelArg(model_name);
    if (!spec.ok())
      return usage(absl::StrCat("--model '", model_name, "': ", spec.status().message()));
    service::ModelOptions m;
    m.name = served_name;
    m.spec = *spec;
    m.cache.block_size_tokens = static_cast<int32_t>(block_size);
    m.cache.gpu_num_blocks = gpu_blocks;
    m.cache.host_num_blocks = host_blocks;
    m.cache.enable_prefix_caching = prefix_caching;
    m.cache.strict_gpu = strict_gpu;
    m.cache.gpu_tier = gpu_tier == "virtual" ? Tier::kVirtual : Tier::kGpu;
    m.cache.watermark = 0.0;
    cfg.server.models.push_back(std::move(m));
  }
  service::ServerOptions& o = cfg.server;
  if (flags.IsSet("socket")) o.socket_path = socket_path;
  if (flags.IsSet("listen")) o.listen_address = listen_address;
  if (flags.IsSet("token-file")) cfg.token_file = token_file;
  if (flags.IsSet("lease-seconds")) o.limits.default_lease_seconds = lease_seconds;
  if (flags.IsSet("max-lease-seconds")) o.limits.max_lease_seconds = max_lease_seconds;
  if (flags.IsSet("quarantine-seconds")) o.limits.quarantine_seconds = quarantine_seconds;
  if (flags.IsSet("max-sessions")) o.limits.max_sessions = max_sessions;
  if (flags.IsSet("max-ops-per-step")) o.limits.max_ops_per_step = max_ops_per_step;
  if (flags.IsSet("max-message-bytes"))
    o.max_message_bytes = static_cast<int64_t>(max_message_bytes);
  if (flags.IsSet("drain-seconds")) cfg.drain_seconds = drain_seconds;
  o.testing_step_delay_ms = testing_step_delay_ms;
  if (o.socket_path.empty()) {
    absl::StatusOr<std::string> path = DefaultSocketPath();
    if (!path.ok()) return ReportError(ctx, kCommand, path.status(), kExitFailure);
    o.socket_path = *path;
  }
  if (!o.listen_address.empty()) {
    if (cfg.token_file.empty()) {
      return usage("--listen serves TCP, which needs a bearer token: give --token-file FILE");
    }
    absl::StatusOr<std::string> token = ReadTokenFile(cfg.token_file);
    if (!token.ok()) return ReportError(ctx, kCommand, token.status(), kExitUsage);
    o.token = *token;
  }

  if (check) {
    absl::StatusOr<std::string> summary = service::Server::Check(o);
    if (!summary.ok()) {
      const int code =
          summary.status().code() == absl::StatusCode::kInvalidArgument ? kExitUsage : kExitFailure;
      return ReportError(ctx, kCommand, summary.status(), code);
    }
    ctx.out << *summary;
    return kExitOk;
  }

  // SIGTERM and SIGINT are taken by sigwait below: block them before any thread starts, so that
  // every thread inherits the mask and none is interrupted by them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<std::unique_ptr<service::Server>> server = service::Server::Start(std::move(o));
  if (!server.ok()) {
    const int code =
        server.status().code() == absl::StatusCode::kInvalidArgument ? kExitUsage : kExitFailure;
    return ReportError(ctx, kCommand, server.status(), code);
  }
  if (!ready_file.empty()) {
    if (absl::Status s = WriteReadyFile(ready_file, **server); !s.ok()) {
      (*server)->Shutdown(0);
      return ReportError(ctx, kCommand, s, kExitFailure);
    }
  }
  int signal_number = 0;
  while (sigwait(&signals, &signal_number) != 0) {
  }
  PAGEDKV_LOG_INFO("serve draining signal={} drain_s={}",
                   signal_number == SIGTERM ? "SIGTERM" : "SIGINT", cfg.drain_seconds);
  (*server)->Shutdown(cfg.drain_seconds);
  server->reset();
  return kExitOk;
}

}  // namespace pagedkv::cli
