// serve.json parsing, the default socket path and the token file of `pagedkv serve`.
#include "tools/internal/serve_config.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "nlohmann/json.hpp"
#include "pagedkv/core/absl_compat.h"
#include "pagedkv/core/logging.h"
#include "pagedkv/core/status.h"
#include "tools/internal/command.h"

namespace pagedkv::cli {
namespace {

using Json = nlohmann::json;

absl::Status Invalid(std::string_view where, std::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("serve config: ", AbslView(where), ": ", AbslView(what)));
}

absl::Status CheckKeys(const Json& object, std::string_view where,
                       std::initializer_list<std::string_view> known) {
  for (auto it = object.begin(); it != object.end(); ++it) {
    bool ok = false;
    for (std::string_view k : known) ok = ok || it.key() == k;
    if (!ok) {
      return Invalid(where, absl::StrCat("unknown key '", it.key(), "'; known keys: ",
                                         absl::StrJoin(known, ", ", [](std::string* out, auto k) {
                                           out->append(k.data(), k.size());
                                         })));
    }
  }
  return absl::OkStatus();
}

template <typename T>
absl::Status Read(const Json& object, const char* key, std::string_view where, T* out) {
  auto it = object.find(key);
  if (it == object.end()) return absl::OkStatus();
  try {
    *out = it->template get<T>();
  } catch (const Json::exception& e) {
    return Invalid(where, absl::StrCat("'", key, "' has the wrong type (", e.what(), ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<service::ModelOptions> ParseModel(const Json& m, size_t index) {
  const std::string where = absl::StrCat("models[", index, "]");
  if (!m.is_object()) return Invalid(where, "must be an object");
  PAGEDKV_RETURN_IF_ERROR(CheckKeys(m, where,
                                    {"name", "model", "gpu_blocks", "host_blocks", "block_size",
                                     "prefix_caching", "gpu_tier", "strict_gpu", "share_pools"}));
  service::ModelOptions out;
  PAGEDKV_RETURN_IF_ERROR(Read(m, "name", where, &out.name));
  auto model = m.find("model");
  if (model == m.end()) return Invalid(where, "'model' is required (a preset, a path or a spec)");
  if (model->is_object()) {
    absl::StatusOr<ModelSpec> spec = ModelSpec::FromJson(model->dump());
    if (!spec.ok()) return Invalid(where, StdView(spec.status().message()));
    out.spec = *spec;
  } else if (model->is_string()) {
    absl::StatusOr<ModelSpec> spec = LoadModelArg(model->get<std::string>());
    if (!spec.ok()) return Invalid(where, StdView(spec.status().message()));
    out.spec = *spec;
  } else {
    return Invalid(where, "'model' must be a preset name, a JSON file path or a spec object");
  }
  int64_t gpu_blocks = 0, host_blocks = 0;
  int32_t block_size = 16;
  std::string tier = "gpu";
  PAGEDKV_RETURN_IF_ERROR(Read(m, "gpu_blocks", where, &gpu_blocks));
  PAGEDKV_RETURN_IF_ERROR(Read(m, "host_blocks", where, &host_blocks));
  PAGEDKV_RETURN_IF_ERROR(Read(m, "block_size", where, &block_size));
  PAGEDKV_RETURN_IF_ERROR(Read(m, "prefix_caching", where, &out.cache.enable_prefix_caching));
  PAGEDKV_RETURN_IF_ERROR(Read(m, "strict_gpu", where, &out.cache.strict_gpu));
  PAGEDKV_RETURN_IF_ERROR(Read(m, "share_pools", where, &out.share_pools));
  PAGEDKV_RETURN_IF_ERROR(Read(m, "gpu_tier", where, &tier));
  if (gpu_blocks < 1)
    return Invalid(where, absl::StrCat("'gpu_blocks' must be >= 1, got ", gpu_blocks));
  if (host_blocks < 0) {
    return Invalid(where, absl::StrCat("'host_blocks' must be >= 0, got ", host_blocks));
  }
  if (tier != "gpu" && tier != "virtual") {
    return Invalid(where, absl::StrCat("'gpu_tier' must be gpu or virtual, got '", tier, "'"));
  }
  out.cache.gpu_num_blocks = gpu_blocks;
  out.cache.host_num_blocks = host_blocks;
  out.cache.block_size_tokens = block_size;
  out.cache.gpu_tier = tier == "virtual" ? Tier::kVirtual : Tier::kGpu;
  out.cache.watermark = 0.0;  // admission policy is the engine's; the service admits what fits
  if (absl::Status s = out.cache.Validate(); !s.ok()) return Invalid(where, StdView(s.message()));
  return out;
}

}  // namespace

absl::StatusOr<ServeConfig> ParseServeConfig(const std::string& json_text) {
  Json doc;
  try {
    doc = Json::parse(json_text);
  } catch (const Json::parse_error& e) {
    return absl::InvalidArgumentError(absl::StrCat("serve config: not valid JSON: ", e.what()));
  }
  if (!doc.is_object()) return Invalid("top level", "must be an object");
  PAGEDKV_RETURN_IF_ERROR(
      CheckKeys(doc, "top level",
                {"socket", "listen", "token_file", "lease_seconds", "min_lease_seconds",
                 "max_lease_seconds", "quarantine_seconds", "max_sessions", "max_ops_per_step",
                 "max_batch_entries", "max_message_bytes", "drain_seconds", "models"}));
  ServeConfig cfg;
  service::ServerOptions& o = cfg.server;
  service::SessionLimits& l = o.limits;
  PAGEDKV_RETURN_IF_ERROR(Read(doc, "socket", "top level", &o.socket_path));
  PAGEDKV_RETURN_IF_ERROR(Read(doc, "listen", "top level", &o.listen_address));
  PAGEDKV_RETURN_IF_ERROR(Read(doc, "token_file", "top level", &cfg.token_file));
  PAGEDKV_RETURN_IF_ERROR(Read(doc, "lease_seconds", "top level", &l.default_lease_seconds));
  PAGEDKV_RETURN_IF_ERROR(Read(doc, "min_lease_seconds", "top level", &l.min_lease_seconds));
  PAGEDKV_RETURN_IF_ERROR(Read(doc, "max_lease_seconds", "top level", &l.max_lease_seconds));
  PAGEDKV_RETURN_IF_ERROR(Read(doc, "quarantine_seconds", "top level", &l.quarantine_seconds));
  PAGEDKV_RETURN_IF_ERROR(Read(doc, "max_sessions", "top level", &l.max_sessions));
  PAGEDKV_RETURN_IF_ERROR(Read(doc, "max_ops_per_step", "top level", &l.max_ops_per_step));
  PAGEDKV_RETURN_IF_ERROR(Read(doc, "max_batch_entries", "top level", &l.max_batch_entries));
  PAGEDKV_RETURN_IF_ERROR(Read(doc, "max_message_bytes", "top level", &o.max_message_bytes));
  PAGEDKV_RETURN_IF_ERROR(Read(doc, "drain_seconds", "top level", &cfg.drain_seconds));
  auto models = doc.find("models");
  if (models == doc.end() || !models->is_array() || models->empty()) {
    return Invalid("top level", "'models' must be a non-empty array of models to serve");
  }
  for (size_t i = 0; i < models->size(); ++i) {
    PAGEDKV_ASSIGN_OR_RETURN(service::ModelOptions m, ParseModel((*models)[i], i));
    o.models.push_back(std::move(m));
  }
  return cfg;
}

absl::StatusOr<ServeConfig> LoadServeConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("serve config '", path, "' cannot be read: ", std::strerror(errno)));
  }
  std::ostringstream text;
  text << in.rdbuf();
  absl::StatusOr<ServeConfig> cfg = ParseServeConfig(text.str());
  if (!cfg.ok()) {
    return absl::Status(cfg.status().code(), absl::StrCat(path, ": ", cfg.status().message()));
  }
  return cfg;
}

absl::StatusOr<std::string> DefaultSocketPath() {
  const char* runtime = std::getenv("XDG_RUNTIME_DIR");
  const std::string dir = runtime != nullptr && runtime[0] != '\0'
                              ? absl::StrCat(runtime, "/pagedkv")
                              : absl::StrCat("/tmp/pagedkv-", getuid());
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::InternalError(
        absl::StrCat("cannot create '", dir, "': ", std::strerror(errno), "; give --socket PATH"));
  }
  struct stat st {};
  if (lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid()) {
    return absl::InternalError(absl::StrCat("'", dir,
                                            "' is not a directory owned by this user; give "
                                            "--socket PATH"));
  }
  chmod(dir.c_str(), 0700);
  return dir + "/serve.sock";
}

absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("--token-file '", path, "' cannot be read: ", std::strerror(errno)));
  }
  std::ostringstream text;
  text << in.rdbuf();
  std::string token(absl::StripAsciiWhitespace(text.str()));
  if (token.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("--token-file '", path, "' holds no token"));
  }
  struct stat st {};
  if (stat(path.c_str(), &st) == 0 && (st.st_mode & 0077) != 0) {
    PAGEDKV_LOG_WARN("token file '{}' is readable by other users (mode {:o}); chmod 600 it", path,
                     st.st_mode & 0777);
  }
  return token;
}

}  // namespace pagedkv::cli
