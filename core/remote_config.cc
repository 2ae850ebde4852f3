// RemoteTierConfig validation and remote url parsing.
#include "pagedkv/core/remote_config.h"

#include <charconv>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "pagedkv/core/absl_compat.h"

namespace pagedkv {
namespace {

constexpr std::string_view kForms =
    "expected redis://HOST:PORT, redis+cluster://HOST:PORT[,HOST:PORT...] or memory://NAME";

absl::Status BadUrl(std::string_view url, std::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("remote url '", AbslView(url), "': ", AbslView(why), "; ", AbslView(kForms)));
}

absl::StatusOr<RemoteEndpoint> ParseEndpoint(std::string_view url, std::string_view text) {
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return BadUrl(url, absl::StrCat("'", AbslView(text), "' is not HOST:PORT"));
  }
  RemoteEndpoint e;
  e.host = std::string(text.substr(0, colon));
  const std::string_view port = text.substr(colon + 1);
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), e.port);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || e.port < 1 ||
      e.port > 65535) {
    return BadUrl(url, absl::StrCat("port '", AbslView(port), "' is not in 1..65535"));
  }
  return e;
}

}  // namespace

absl::StatusOr<RemoteUrl> ParseRemoteUrl(std::string_view url) {
  RemoteUrl out;
  std::string_view rest;
  const std::string_view text = url;
  const auto starts_with = [&](std::string_view prefix) {
    return text.substr(0, prefix.size()) == prefix;
  };
  if (starts_with("redis+cluster://")) {
    out.kind = RemoteUrl::Kind::kRedisCluster;
    rest = text.substr(16);
  } else if (starts_with("redis://")) {
    out.kind = RemoteUrl::Kind::kRedis;
    rest = text.substr(8);
  } else if (starts_with("memory://")) {
    out.kind = RemoteUrl::Kind::kMemory;
    out.memory_name = std::string(text.substr(9));
    if (out.memory_name.empty()) return BadUrl(text, "memory:// needs a name");
    return out;
  } else {
    return BadUrl(text, "unknown scheme");
  }
  while (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.empty()) return BadUrl(text, "no HOST:PORT");
  for (absl::string_view part : absl::StrSplit(AbslView(rest), ',')) {
    absl::StatusOr<RemoteEndpoint> e =
        ParseEndpoint(text, std::string_view(part.data(), part.size()));
    if (!e.ok()) return e.status();
    out.endpoints.push_back(*std::move(e));
  }
  if (out.kind == RemoteUrl::Kind::kRedis && out.endpoints.size() != 1) {
    return BadUrl(text, "redis:// takes one HOST:PORT (use redis+cluster:// for several)");
  }
  return out;
}

absl::Status RemoteTierConfig::Validate() const {
  if (url.empty()) return absl::OkStatus();
  const auto invalid = [](auto&&... parts) {
    return absl::InvalidArgumentError(absl::StrCat("cache config: remote.", parts...));
  };
  absl::StatusOr<RemoteUrl> parsed = ParseRemoteUrl(url);
  if (!parsed.ok()) return invalid("url: ", parsed.status().message());
  if (timeout_us < 100 || timeout_us > 60'000'000) {
    return invalid("timeout_us must be in [100, 60000000] (0.1 ms .. 60 s), got ", timeout_us);
  }
  if (ttl_seconds < 0) return invalid("ttl_seconds must be >= 0 (0 = never), got ", ttl_seconds);
  if (admit_hits < 0) return invalid("admit_hits must be >= 0, got ", admit_hits);
  if (queue_bytes < (1u << 20)) {
    return invalid("queue_bytes must be >= 1 MiB (one page of a large model), got ", queue_bytes);
  }
  if (min_hit_pages < 1) return invalid("min_hit_pages must be >= 1, got ", min_hit_pages);
  return absl::OkStatus();
}

}  // namespace pagedkv
