// Status helpers for code that returns absl::Status / absl::StatusOr<T> (the Abseil on Debian 12
// predates its own macros).
//
//   absl::StatusOr<int> Parse(std::string_view s);
//   absl::Status Use() {
//     PAGEDKV_ASSIGN_OR_RETURN(int v, Parse("3"));
//     PAGEDKV_RETURN_IF_ERROR(Check(v));
//     return absl::OkStatus();
//   }
#ifndef PAGEDKV_CORE_STATUS_H_
#define PAGEDKV_CORE_STATUS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define PAGEDKV_STATUS_CONCAT_INNER_(a, b) a##b
#define PAGEDKV_STATUS_CONCAT_(a, b) PAGEDKV_STATUS_CONCAT_INNER_(a, b)

// Returns from the enclosing function when `expr` (an absl::Status) is not OK.
#define PAGEDKV_RETURN_IF_ERROR(expr)                                       \
  do {                                                                      \
    ::absl::Status pagedkv_status_ = (expr);                                \
    if (__builtin_expect(!pagedkv_status_.ok(), 0)) return pagedkv_status_; \
  } while (0)

// `lhs` = value of `rexpr` (an absl::StatusOr<T>), or returns its status when not OK.
// `lhs` may be a declaration (`auto x`, `int x`) or an existing lvalue.
#define PAGEDKV_ASSIGN_OR_RETURN(lhs, rexpr) \
  PAGEDKV_ASSIGN_OR_RETURN_IMPL_(PAGEDKV_STATUS_CONCAT_(pagedkv_statusor_, __LINE__), lhs, rexpr)

#define PAGEDKV_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr)         \
  auto statusor = (rexpr);                                           \
  if (__builtin_expect(!statusor.ok(), 0)) return statusor.status(); \
  lhs = std::move(statusor).value()

#endif  // PAGEDKV_CORE_STATUS_H_
