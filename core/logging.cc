#include "pagedkv/core/logging.h"

#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "pagedkv/core/absl_compat.h"
#include "spdlog/sinks/stdout_color_sinks.h"

namespace pagedkv {
namespace {

bool ParseLevel(std::string_view name, spdlog::level::level_enum* level) {
  const std::string lower = absl::AsciiStrToLower(AbslView(name));
  if (lower == "trace")
    *level = spdlog::level::trace;
  else if (lower == "debug")
    *level = spdlog::level::debug;
  else if (lower == "info")
    *level = spdlog::level::info;
  else if (lower == "warn" || lower == "warning")
    *level = spdlog::level::warn;
  else if (lower == "error")
    *level = spdlog::level::err;
  else if (lower == "off")
    *level = spdlog::level::off;
  else
    return false;
  return true;
}

std::shared_ptr<spdlog::logger> MakeLogger() {
  auto logger = spdlog::get("pagedkv");
  if (logger == nullptr) logger = spdlog::stderr_color_mt("pagedkv");
  logger->set_pattern("[%H:%M:%S.%e] [pagedkv] [%^%l%$] %v");
  spdlog::level::level_enum level = spdlog::level::warn;
  if (const char* env = std::getenv("PAGEDKV_LOG"); env != nullptr && env[0] != '\0') {
    if (!ParseLevel(env, &level)) {
      logger->warn("PAGEDKV_LOG='{}' is not a level (off|error|warn|info|debug|trace); using warn",
                   env);
    }
  }
  logger->set_level(level);
  return logger;
}

}  // namespace

spdlog::logger& Logger() {
  // The one process-wide object of the library: a logger is shared by nature (spdlog's registry).
  static const std::shared_ptr<spdlog::logger> logger = MakeLogger();
  return *logger;
}

absl::Status SetLogLevel(std::string_view level_name) {
  spdlog::level::level_enum level;
  if (!ParseLevel(level_name, &level)) {
    return absl::InvalidArgumentError(absl::StrCat("unknown log level '", AbslView(level_name),
                                                   "'; expected off|error|warn|info|debug|trace"));
  }
  Logger().set_level(level);
  return absl::OkStatus();
}

}  // namespace pagedkv
