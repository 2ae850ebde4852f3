// Logging through spdlog. One process-wide logger named "pagedkv" writes to stderr; its level comes
// from the PAGEDKV_LOG environment variable (off|error|warn|info|debug|trace, default warn) or the
// CLI's --log-level. At trace level every cache operation logs its sequence, blocks and counts.
//
//   PAGEDKV_LOG_TRACE("append seq={} tokens={} new_blocks={}", seq, n, k);
#ifndef PAGEDKV_CORE_LOGGING_H_
#define PAGEDKV_CORE_LOGGING_H_

#include <string_view>

#include "absl/status/status.h"
#include "spdlog/spdlog.h"

namespace pagedkv {

// The "pagedkv" logger; created on first use with the level from PAGEDKV_LOG.
spdlog::logger& Logger();

// Sets the level by name. InvalidArgument (listing the valid names) for an unknown name.
absl::Status SetLogLevel(std::string_view level_name);

}  // namespace pagedkv

// The level check comes first so that arguments are not formatted when the level is off.
#define PAGEDKV_LOG_AT_(level, ...)                                                 \
  do {                                                                              \
    ::spdlog::logger& pagedkv_logger_ = ::pagedkv::Logger();                        \
    if (pagedkv_logger_.should_log(level)) pagedkv_logger_.log(level, __VA_ARGS__); \
  } while (0)
#define PAGEDKV_LOG_TRACE(...) PAGEDKV_LOG_AT_(::spdlog::level::trace, __VA_ARGS__)
#define PAGEDKV_LOG_DEBUG(...) PAGEDKV_LOG_AT_(::spdlog::level::debug, __VA_ARGS__)
#define PAGEDKV_LOG_INFO(...) PAGEDKV_LOG_AT_(::spdlog::level::info, __VA_ARGS__)
#define PAGEDKV_LOG_WARN(...) PAGEDKV_LOG_AT_(::spdlog::level::warn, __VA_ARGS__)
#define PAGEDKV_LOG_ERROR(...) PAGEDKV_LOG_AT_(::spdlog::level::err, __VA_ARGS__)

#endif  // PAGEDKV_CORE_LOGGING_H_
