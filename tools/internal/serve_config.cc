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

// "remote": a URL string or {"url", "timeout_us", "ttl_seconds", "admit_hits", "queue_bytes",
// "min_hit_pages"}; `out` keeps the defaults (or the top-level value) for keys not given.
absl::Status ParseRemote(const Json& r, const std::string& where, RemoteTierConfig* out) {
  if (r.is_string()) {
    out->url = r.get<std::string>();
  } else if (r.is_object()) {
    PAGEDKV_RETURN_IF_ERROR(CheckKeys(
        r, where,
        {"url", "timeout_us", "ttl_seconds", "admit_hits", "queue_bytes", "min_hit_pages"}));
    PAGEDKV_RETURN_IF_ERROR(Read(r, "url", where, &out->url));
    PAGEDKV_RETURN_IF_ERROR(Read(r, "timeout_us", where, &out->timeout_us));
    PAGEDKV_RETURN_IF_ERROR(Read(r, "ttl_seconds", where, &out->ttl_seconds));
    PAGEDKV_RETURN_IF_ERROR(Read(r, "admit_hits", where, &out->admit_hits));
    PAGEDKV_RETURN_IF_ERROR(Read(r, "queue_bytes", where, &out->queue_bytes));
    PAGEDKV_RETURN_IF_ERROR(Read(r, "min_hit_pages", where, &out->min_hit_pages));
  } else {
    return Invalid(where,
                   "must be a URL string (redis://HOST:PORT, redis+cluster://H:P,H:P) or "
                   "an object with \"url\" and the tier's settings");
  }
  if (out->url.empty()) return absl::OkStatus();
  if (absl::Status s = out->Validate(); !s.ok()) return Invalid(where, StdView(s.message()));
  return absl::OkStatus();
}

absl::StatusOr<service::ModelOptions> ParseModel(const Json& m, size_t index,
                                                 const RemoteTierConfig& remote_default) {
  const std::string where = absl::StrCat("models[", index, "]");
  if (!m.is_object()) return Invalid(where, "must be an object");
  PAGEDKV_RETURN_IF_ERROR(
      CheckKeys(m, where,
                {"name", "model", "gpu_blocks", "host_blocks", "block_size", "prefix_caching",
                 "gpu_tier", "strict_gpu", "share_pools", "cuda_device", "remote"}));
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
  PAGEDKV_RETURN_IF_ERROR(Read(m, "cuda_device", where, &out.cuda_device));
  if (out.cuda_device < 0) {
    return Invalid(where, absl::StrCat("'cuda_device' must be >= 0, got ", out.cuda_device));
  }
  out.cache.remote = remote_default;
  if (auto r = m.find("remote"); r != m.end()) {
    PAGEDKV_RETURN_IF_ERROR(ParseRemote(*r, where + ".remote", &out.cache.remote));
  }
  if (!m.contains("gpu_blocks")) {
    return Invalid(where,
                   "'gpu_blocks' is missing: give the number of GPU blocks of the model's pool");
  }
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
  if (out.cache.remote.enabled()) {
    if (!out.cache.enable_prefix_caching || host_blocks == 0 || !out.share_pools ||
        tier == "virtual") {
      return Invalid(where, absl::StrCat("the remote tier (", out.cache.remote.url,
                                         ") stages pages through a shared host pool: it needs "
                                         "prefix_caching, host_blocks > 0, share_pools and "
                                         "gpu_tier gpu; set them or drop 'remote'"));
    }
  }
  return out;
}

absl::Status ParseEvents(const Json& e, service::KvEventsOptions* out) {
  const char* where = "events";
  if (!e.is_object()) return Invalid(where, "must be an object with \"endpoint\"");
  PAGEDKV_RETURN_IF_ERROR(CheckKeys(e, where,
                                    {"endpoint", "replay_endpoint", "topic", "buffer_batches",
                                     "max_queue_batches", "high_water_mark"}));
  PAGEDKV_RETURN_IF_ERROR(Read(e, "endpoint", where, &out->endpoint));
  PAGEDKV_RETURN_IF_ERROR(Read(e, "replay_endpoint", where, &out->replay_endpoint));
  PAGEDKV_RETURN_IF_ERROR(Read(e, "topic", where, &out->topic));
  PAGEDKV_RETURN_IF_ERROR(Read(e, "buffer_batches", where, &out->buffer_batches));
  PAGEDKV_RETURN_IF_ERROR(Read(e, "max_queue_batches", where, &out->max_queue_batches));
  PAGEDKV_RETURN_IF_ERROR(Read(e, "high_water_mark", where, &out->high_water_mark));
  if (out->endpoint.empty()) {
    return Invalid(where, "'endpoint' is required, e.g. \"tcp://127.0.0.1:5557\"");
  }
  if (out->buffer_batches < 1 || out->max_queue_batches < 1 || out->high_water_mark < 0) {
    return Invalid(where,
                   "'buffer_batches' and 'max_queue_batches' must be >= 1 and "
                   "'high_water_mark' >= 0");
  }
  return absl::OkStatus();
}

// Ranges of the top-level numbers, each message naming its key.
absl::Status CheckLimits(const ServeConfig& cfg) {
  const service::SessionLimits& l = cfg.server.limits;
  const auto bad = [](const char* key, auto value, const char* rule) {
    return Invalid("top level", absl::StrCat("'", key, "' ", rule, ", got ", value));
  };
  if (!(l.min_lease_seconds > 0))
    return bad("min_lease_seconds", l.min_lease_seconds, "must be > 0");
  if (!(l.default_lease_seconds >= l.min_lease_seconds)) {
    return bad("lease_seconds", l.default_lease_seconds, "must be >= min_lease_seconds");
  }
  if (!(l.max_lease_seconds >= l.default_lease_seconds)) {
    return bad("max_lease_seconds", l.max_lease_seconds, "must be >= lease_seconds");
  }
  if (!(l.quarantine_seconds >= 0))
    return bad("quarantine_seconds", l.quarantine_seconds, "must be >= 0");
  if (l.max_sessions < 1) return bad("max_sessions", l.max_sessions, "must be >= 1");
  if (l.max_ops_per_step < 1) return bad("max_ops_per_step", l.max_ops_per_step, "must be >= 1");
  if (l.max_batch_entries < 1) return bad("max_batch_entries", l.max_batch_entries, "must be >= 1");
  if (cfg.server.max_message_bytes < 4096) {
    return bad("max_message_bytes", cfg.server.max_message_bytes, "must be >= 4096");
  }
  if (!(cfg.drain_seconds >= 0)) return bad("drain_seconds", cfg.drain_seconds, "must be >= 0");
  return absl::OkStatus();
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
  PAGEDKV_RETURN_IF_ERROR(CheckKeys(
      doc, "top level",
      {"socket", "listen", "token_file", "lease_seconds", "min_lease_seconds", "max_lease_seconds",
       "quarantine_seconds", "max_sessions", "max_ops_per_step", "max_batch_entries",
       "max_message_bytes", "drain_seconds", "metrics_address", "events", "remote", "models"}));
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
  PAGEDKV_RETURN_IF_ERROR(Read(doc, "metrics_address", "top level", &o.metrics_address));
  PAGEDKV_RETURN_IF_ERROR(CheckLimits(cfg));
  if (auto e = doc.find("events"); e != doc.end()) {
    PAGEDKV_RETURN_IF_ERROR(ParseEvents(*e, &o.events));
  }
  RemoteTierConfig remote_default;
  if (auto r = doc.find("remote"); r != doc.end()) {
    PAGEDKV_RETURN_IF_ERROR(ParseRemote(*r, "remote", &remote_default));
  }
  auto models = doc.find("models");
  if (models == doc.end() || !models->is_array() || models->empty()) {
    return Invalid("top level", "'models' must be a non-empty array of models to serve");
  }
  for (size_t i = 0; i < models->size(); ++i) {
    PAGEDKV_ASSIGN_OR_RETURN(service::ModelOptions m, ParseModel((*models)[i], i, remote_default));
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
