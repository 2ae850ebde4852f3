// Assertion tiers, keyed to PAGEDKV_DEBUG_LEVEL (set by CMake):
//   PAGEDKV_CHECK(c)            always on: an invariant whose violation makes continuing unsafe.
//   PAGEDKV_DCHECK(c)           level >= 1: cheap checks of programming errors.
//   PAGEDKV_DCHECK_EXPENSIVE(c) level >= 2: checkers such as CheckInvariants() after mutations
//   (CI).
// A user's mistake is never an assert: it is a Status.
//
//   PAGEDKV_DCHECK_MSG(ref > 0, "release of a free block");
//   PAGEDKV_DCHECK_OK_EXPENSIVE(CheckInvariants());
#ifndef PAGEDKV_CORE_CHECK_H_
#define PAGEDKV_CORE_CHECK_H_

#include <string>

#include "absl/status/status.h"

#ifndef PAGEDKV_DEBUG_LEVEL
#define PAGEDKV_DEBUG_LEVEL 0
#endif

namespace pagedkv::internal {
// Prints "file:line: check failed: cond (msg)" to stderr and aborts.
[[noreturn]] void CheckFailed(const char* file, int line, const char* cond, const char* msg);
}  // namespace pagedkv::internal

#define PAGEDKV_CHECK_MSG(cond, msg)                                      \
  do {                                                                    \
    if (__builtin_expect(!(cond), 0)) {                                   \
      ::pagedkv::internal::CheckFailed(__FILE__, __LINE__, #cond, (msg)); \
    }                                                                     \
  } while (0)
#define PAGEDKV_CHECK(cond) PAGEDKV_CHECK_MSG(cond, "")

#if PAGEDKV_DEBUG_LEVEL >= 1
#define PAGEDKV_DCHECK_MSG(cond, msg) PAGEDKV_CHECK_MSG(cond, msg)
#else
#define PAGEDKV_DCHECK_MSG(cond, msg) \
  do {                                \
    if (false && (cond)) {            \
    }                                 \
  } while (0)
#endif
#define PAGEDKV_DCHECK(cond) PAGEDKV_DCHECK_MSG(cond, "")

#if PAGEDKV_DEBUG_LEVEL >= 2
#define PAGEDKV_DCHECK_EXPENSIVE(cond) PAGEDKV_CHECK_MSG(cond, "expensive check")
// Runs `status_expr` (an absl::Status, typically CheckInvariants()) and aborts with its message.
#define PAGEDKV_DCHECK_OK_EXPENSIVE(status_expr)                                               \
  do {                                                                                         \
    ::absl::Status pagedkv_dcheck_status_ = (status_expr);                                     \
    if (!pagedkv_dcheck_status_.ok()) {                                                        \
      ::pagedkv::internal::CheckFailed(__FILE__, __LINE__, #status_expr,                       \
                                       std::string(pagedkv_dcheck_status_.message()).c_str()); \
    }                                                                                          \
  } while (0)
#else
#define PAGEDKV_DCHECK_EXPENSIVE(cond) \
  do {                                 \
    if (false && (cond)) {             \
    }                                  \
  } while (0)
#define PAGEDKV_DCHECK_OK_EXPENSIVE(status_expr) \
  do {                                           \
  } while (0)
#endif

#endif  // PAGEDKV_CORE_CHECK_H_
