// Private helpers of the trace loaders and the report reader: read a whole file, walk its lines
// with 1-based line numbers, split CSV fields and parse numbers with errors that name file:line.
// Not for use outside scheduler/.
#ifndef PAGEDKV_SCHEDULER_INTERNAL_W_TEXT_FILE_H_
#define PAGEDKV_SCHEDULER_INTERNAL_W_TEXT_FILE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace pagedkv::internal {

// Largest trace or report data file read (pagedkv/core/input_limits.h states the rules).
inline constexpr uint64_t kMaxInputFileBytes = uint64_t{1} << 30;

// The whole file as a string (ReadTextFile with kMaxInputFileBytes). NotFound when it cannot be
// opened (errno's text), InvalidArgument when it is not a regular file, is larger than the limit
// or cannot be read. `what` names the file in messages ("trace").
absl::StatusOr<std::string> ReadWholeFile(const std::string& path, std::string_view what = "file");

// Walks the lines of a text buffer ('\n' or "\r\n" endings; a last line without a newline counts).
class LineCursor {
 public:
  explicit LineCursor(std::string_view text) : text_(text) {}
  // Next line without its ending; false at the end of the buffer.
  bool Next(std::string_view* line);
  // 1-based number of the line last returned by Next.
  int64_t line_number() const { return line_number_; }

 private:
  std::string_view text_;
  size_t pos_ = 0;
  int64_t line_number_ = 0;
};

// Splits a CSV line on commas into `fields` (cleared first). No quoting: the traces we read have
// none. Surrounding spaces of each field are trimmed.
void SplitCsv(std::string_view line, std::vector<std::string_view>* fields);

// Strict number parsing of a whole field (no trailing junk); false when it does not parse.
bool ParseInt64(std::string_view text, int64_t* out);
bool ParseDouble(std::string_view text, double* out);

// Trims ASCII spaces and tabs at both ends.
std::string_view TrimSpaces(std::string_view text);

// "path:line: message" as an InvalidArgument status.
absl::Status LineError(std::string_view path, int64_t line_number, std::string_view message);

}  // namespace pagedkv::internal

#endif  // PAGEDKV_SCHEDULER_INTERNAL_W_TEXT_FILE_H_
