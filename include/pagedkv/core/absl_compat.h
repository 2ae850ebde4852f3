// Debian 12's Abseil is built with its own absl::string_view (not std::string_view). pagedkv's API
// speaks std::string_view; these helpers cross the boundary without a copy.
//
//   absl::StrCat("model ", AbslView(name));   // name is a std::string_view
#ifndef PAGEDKV_CORE_ABSL_COMPAT_H_
#define PAGEDKV_CORE_ABSL_COMPAT_H_

#include <string_view>

#include "absl/strings/string_view.h"

namespace pagedkv {

inline absl::string_view AbslView(std::string_view s) { return {s.data(), s.size()}; }
inline std::string_view StdView(absl::string_view s) { return {s.data(), s.size()}; }

}  // namespace pagedkv

#endif  // PAGEDKV_CORE_ABSL_COMPAT_H_
