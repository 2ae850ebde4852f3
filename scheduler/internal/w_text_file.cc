#include "internal/w_text_file.h"

#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "pagedkv/core/absl_compat.h"
#include "pagedkv/core/input_limits.h"

namespace pagedkv::internal {

absl::StatusOr<std::string> ReadWholeFile(const std::string& path, std::string_view what) {
  return ReadTextFile(path, kMaxInputFileBytes, what);
}

bool LineCursor::Next(std::string_view* line) {
  if (pos_ >= text_.size()) return false;
  const char* begin = text_.data() + pos_;
  const void* nl = std::memchr(begin, '\n', text_.size() - pos_);
  size_t len = nl == nullptr ? text_.size() - pos_ : static_cast<const char*>(nl) - begin;
  pos_ += len + (nl == nullptr ? 0 : 1);
  if (len > 0 && begin[len - 1] == '\r') --len;
  *line = std::string_view(begin, len);
  ++line_number_;
  return true;
}

std::string_view TrimSpaces(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

void SplitCsv(std::string_view line, std::vector<std::string_view>* fields) {
  fields->clear();
  size_t start = 0;
  while (true) {
    size_t comma = line.find(',', start);
    if (comma == std::string_view::npos) {
      fields->push_back(TrimSpaces(line.substr(start)));
      return;
    }
    fields->push_back(TrimSpaces(line.substr(start, comma - start)));
    start = comma + 1;
  }
}

bool ParseInt64(std::string_view text, int64_t* out) {
  if (text.empty()) return false;
  return absl::SimpleAtoi(AbslView(text), out);
}

bool ParseDouble(std::string_view text, double* out) {
  if (text.empty()) return false;
  return absl::SimpleAtod(AbslView(text), out);
}

absl::Status LineError(std::string_view path, int64_t line_number, std::string_view message) {
  return absl::InvalidArgumentError(
      absl::StrCat(AbslView(path), ":", line_number, ": ", AbslView(message)));
}

}  // namespace pagedkv::internal
