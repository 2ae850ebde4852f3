#include "internal/report_format.h"

#include <cmath>
#include <cstdlib>

#include "absl/strings/str_format.h"

namespace pagedkv::internal {

std::string Grouped(double v) {
  if (!std::isfinite(v)) return kMissing;
  std::string digits = absl::StrFormat("%.0f", std::abs(v));
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return (v < 0 ? "-" : "") + out;
}
std::string Fixed(double v, int decimals) {
  return std::isfinite(v) ? absl::StrFormat("%.*f", decimals, v) : kMissing;
}
std::string Percent(double fraction) {
  return std::isfinite(fraction) ? absl::StrFormat("%.1f%%", fraction * 100) : kMissing;
}
std::string Seconds(double s) {
  if (!std::isfinite(s)) return kMissing;
  if (std::abs(s) < 1) return absl::StrFormat("%.1f ms", s * 1e3);
  return absl::StrFormat("%.2f s", s);
}
std::string Bytes(double b) {
  if (!std::isfinite(b)) return kMissing;
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (std::abs(b) >= 1024 && u < 4) b /= 1024, ++u;
  return u == 0 ? absl::StrFormat("%.0f B", b) : absl::StrFormat("%.1f %s", b, units[u]);
}

}  // namespace pagedkv::internal
