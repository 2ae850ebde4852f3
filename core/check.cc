#include "pagedkv/core/check.h"

#include <cstdio>
#include <cstdlib>

namespace pagedkv::internal {

void CheckFailed(const char* file, int line, const char* cond, const char* msg) {
  std::fprintf(stderr, "%s:%d: pagedkv check failed: %s%s%s%s\n", file, line, cond,
               (msg != nullptr && msg[0] != '\0') ? " (" : "", msg != nullptr ? msg : "",
               (msg != nullptr && msg[0] != '\0') ? ")" : "");
  std::fflush(stderr);
  std::abort();
}

}  // namespace pagedkv::internal
