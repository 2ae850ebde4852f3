// Checks for untrusted input text, shared by every loader (model JSON files, traces, the data
// files of `pagedkv report`): reading a file with the same rules everywhere (a regular file, at
// most a stated size, errno in the message), bounding JSON nesting before a parser recurses into
// it, and quoting input in error messages as a short excerpt, never as a whole value.
//
//   PAGEDKV_ASSIGN_OR_RETURN(std::string text,
//                            ReadTextFile(path, kMaxModelFileBytes, "model JSON file"));
//   PAGEDKV_RETURN_IF_ERROR(CheckJsonNesting(text, kMaxJsonDepth));
#ifndef PAGEDKV_CORE_INPUT_LIMITS_H_
#define PAGEDKV_CORE_INPUT_LIMITS_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace pagedkv {

// Deepest nesting of arrays and objects accepted in any JSON input (ours never exceed 4).
inline constexpr int kMaxJsonDepth = 64;
// Largest model JSON file (a model with 100,000 layers listed one by one is about 1.6 MB).
inline constexpr uint64_t kMaxModelFileBytes = uint64_t{16} << 20;

// The whole file as text. NotFound (with errno's text) when it does not exist, PermissionDenied
// when it may not be read, InvalidArgument for any other failure to open it;
// InvalidArgument when it is not a regular file (a directory, a device such as /dev/zero, a
// FIFO) or larger than max_bytes, naming the limit; InvalidArgument when a read fails. `what`
// names the file's role in messages ("model JSON file", "trace").
absl::StatusOr<std::string> ReadTextFile(const std::string& path, uint64_t max_bytes,
                                         std::string_view what);

// InvalidArgument "JSON nested deeper than MAX levels at byte N" when arrays and objects of
// `text` nest deeper than max_depth (brackets inside strings do not count). Cheap: one pass, no
// allocation; call it before parsing so that no parser (or printer) recurses further.
absl::Status CheckJsonNesting(std::string_view text, int max_depth);

// At most max_chars of `text` for an error message: control and non-ASCII bytes as \xNN, and
// "... (N bytes)" when cut.
std::string Excerpt(std::string_view text, size_t max_chars = 80);

}  // namespace pagedkv

#endif  // PAGEDKV_CORE_INPUT_LIMITS_H_
