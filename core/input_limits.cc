#include "pagedkv/core/input_limits.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "pagedkv/core/absl_compat.h"

namespace pagedkv {

absl::StatusOr<std::string> ReadTextFile(const std::string& path, uint64_t max_bytes,
                                         std::string_view what) {
  // Opened first and checked through the descriptor, so that what is checked is what is read.
  // O_NONBLOCK: opening a FIFO with no writer must not hang before the check refuses it.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    const int err = errno;
    const std::string message = absl::StrCat(
        AbslView(what), " '", path, "' cannot be opened: ", std::strerror(err), "; check the path");
    if (err == ENOENT || err == ENOTDIR) return absl::NotFoundError(message);
    if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(message);
    return absl::InvalidArgumentError(message);
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    return absl::InvalidArgumentError(
        absl::StrCat("cannot inspect ", AbslView(what), " '", path, "': ", std::strerror(err)));
  }
  if (!S_ISREG(st.st_mode)) {
    const char* kind = S_ISDIR(st.st_mode)    ? "a directory"
                       : S_ISCHR(st.st_mode)  ? "a character device"
                       : S_ISBLK(st.st_mode)  ? "a block device"
                       : S_ISFIFO(st.st_mode) ? "a FIFO"
                       : S_ISSOCK(st.st_mode) ? "a socket"
                                              : "not a regular file";
    return absl::InvalidArgumentError(
        absl::StrCat(AbslView(what), " '", path, "' is ", kind, "; give a regular file"));
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size > max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s '%s' has %d bytes, more than the limit of %d bytes", AbslView(what),
                        path, size, max_bytes));
  }
  // Blocking reads from here on (a regular file never blocks, but O_NONBLOCK could make a
  // network file system return EAGAIN).
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  std::string data(static_cast<size_t>(size), '\0');
  size_t got = 0;
  while (got < data.size()) {
    const ssize_t n = ::read(fd, data.data() + got, data.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      return absl::InvalidArgumentError(
          absl::StrCat("cannot read ", AbslView(what), " '", path, "': ", std::strerror(err)));
    }
    if (n == 0) break;  // the file shrank while being read
    got += static_cast<size_t>(n);
  }
  data.resize(got);
  return data;
}

absl::Status CheckJsonNesting(std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character, whatever it is
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '[':
      case '{':
        if (++depth > max_depth) {
          return absl::InvalidArgumentError(absl::StrCat(
              "JSON nested deeper than ", max_depth, " levels at byte ", i + 1,
              " (arrays and objects inside each other); the input is not what was expected"));
        }
        break;
      case ']':
      case '}':
        if (depth > 0) --depth;  // unbalanced closers are the parser's to report
        break;
      default:
        break;
    }
  }
  return absl::OkStatus();
}

std::string Excerpt(std::string_view text, size_t max_chars) {
  std::string out;
  size_t used = 0;
  size_t i = 0;
  for (; i < text.size() && used < max_chars; ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
      ++used;
    } else {
      absl::StrAppendFormat(&out, "\\x%02x", c);
      used += 4;
    }
  }
  if (i < text.size()) absl::StrAppend(&out, "... (", text.size(), " bytes)");
  return out;
}

}  // namespace pagedkv
