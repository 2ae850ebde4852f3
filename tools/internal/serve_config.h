// The `pagedkv serve` configuration: ServerOptions from a serve.json file (several models), the
// default socket path, and the bearer-token file. Flags given on the command line override the
// file's top-level values (tools/serve_command.cc).
//
//   PAGEDKV_ASSIGN_OR_RETURN(ServeConfig cfg, LoadServeConfig("serve.json"));
//   {"socket": "/run/kv.sock", "lease_seconds": 30,
//    "models": [{"name": "chat", "model": "llama-3-8b", "gpu_blocks": 4096, "host_blocks": 1024}]}
#ifndef PAGEDKV_TOOLS_INTERNAL_SERVE_CONFIG_H_
#define PAGEDKV_TOOLS_INTERNAL_SERVE_CONFIG_H_

#include <string>

#include "absl/status/statusor.h"
#include "pagedkv/service/server.h"

namespace pagedkv::cli {

struct ServeConfig {
  service::ServerOptions server;
  std::string token_file;     // "" = none
  double drain_seconds = 10;  // SIGTERM: how long in-flight calls may take to finish
};

// Parses a serve.json document. InvalidArgument naming the key and the rule for anything wrong
// (unknown keys included, so that a typo is not silently ignored).
absl::StatusOr<ServeConfig> ParseServeConfig(const std::string& json_text);
absl::StatusOr<ServeConfig> LoadServeConfig(const std::string& path);

// $XDG_RUNTIME_DIR/pagedkv/serve.sock when XDG_RUNTIME_DIR is set, else
// /tmp/pagedkv-<uid>/serve.sock; the directory is created with mode 0700 (Internal on failure).
absl::StatusOr<std::string> DefaultSocketPath();

// The token in `path` (surrounding whitespace removed). InvalidArgument when the file cannot be
// read or the token is empty.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

}  // namespace pagedkv::cli

#endif  // PAGEDKV_TOOLS_INTERNAL_SERVE_CONFIG_H_
