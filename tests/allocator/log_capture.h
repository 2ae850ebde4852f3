// Captures what the pagedkv logger writes while alive and restores the logger afterwards, so tests
// can check the log lines an operation produces.
//
//   LogCapture capture(spdlog::level::trace);
//   ... run the operation ...
//   EXPECT_EQ(capture.Count(spdlog::level::warn, "no CUDA device"), 1);
#ifndef PAGEDKV_TESTS_ALLOCATOR_LOG_CAPTURE_H_
#define PAGEDKV_TESTS_ALLOCATOR_LOG_CAPTURE_H_

#include <memory>
#include <string>
#include <vector>

#include "pagedkv/core/logging.h"
#include "spdlog/sinks/ringbuffer_sink.h"

namespace pagedkv::testing {

class LogCapture {
 public:
  // Keeps the last `max_lines` lines at `level` and above.
  explicit LogCapture(spdlog::level::level_enum level, size_t max_lines = 256)
      : sink_(std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(max_lines)),
        old_level_(Logger().level()) {
    Logger().sinks().push_back(sink_);
    Logger().set_level(level);
  }
  ~LogCapture() {
    Logger().sinks().pop_back();
    Logger().set_level(old_level_);
  }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  // The captured messages, oldest first (without timestamp or level).
  std::vector<std::string> Lines() const {
    std::vector<std::string> out;
    for (const auto& m : sink_->last_raw()) out.emplace_back(m.payload.data(), m.payload.size());
    return out;
  }

  // Messages at exactly `level` that contain `needle` ("" matches every one).
  int Count(spdlog::level::level_enum level, const std::string& needle) const {
    int n = 0;
    for (const auto& m : sink_->last_raw()) {
      const std::string text(m.payload.data(), m.payload.size());
      if (m.level == level && text.find(needle) != std::string::npos) ++n;
    }
    return n;
  }

 private:
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
  spdlog::level::level_enum old_level_;
};

}  // namespace pagedkv::testing

#endif  // PAGEDKV_TESTS_ALLOCATOR_LOG_CAPTURE_H_
