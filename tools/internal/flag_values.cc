#include "tools/internal/flag_values.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "pagedkv/core/absl_compat.h"
#include "pagedkv/core/sizing.h"

namespace pagedkv::cli {
namespace {

// Parses a whole number prefix of `text` (from_chars grammar) into *value; returns the rest.
bool SplitNumber(std::string_view text, double* value, std::string_view* rest) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *value);
  if (ec != std::errc() || end == text.data()) return false;
  *rest = text.substr(static_cast<size_t>(end - text.data()));
  return std::isfinite(*value);
}

}  // namespace

absl::StatusOr<int64_t> ParseIntInRange(std::string_view text, int64_t min, int64_t max) {
  int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec == std::errc::invalid_argument || end != text.data() + text.size()) {
    return absl::InvalidArgumentError("is not an integer");
  }
  const bool overflow = ec == std::errc::result_out_of_range;
  if (overflow || value < min || value > max) {
    const std::string prefix = overflow ? "is out of range; " : "";
    if (max == std::numeric_limits<int64_t>::max() && !(overflow && text[0] != '-')) {
      return absl::InvalidArgumentError(absl::StrCat(prefix, "must be >= ", min));
    }
    return absl::InvalidArgumentError(absl::StrCat(prefix, "must be in [", min, ", ", max, "]"));
  }
  return value;
}

bool NumberRange::Contains(double v) const {
  if (!std::isfinite(v)) return false;
  if (min_open ? !(v > min) : !(v >= min)) return false;
  if (max_open ? !(v < max) : !(v <= max)) return false;
  return true;
}

std::string NumberRange::ToString() const {
  const bool has_min = std::isfinite(min), has_max = std::isfinite(max);
  if (has_min && has_max) {
    return absl::StrFormat("in %c%g, %g%c", min_open ? '(' : '[', min, max, max_open ? ')' : ']');
  }
  if (has_min) return absl::StrFormat("%s %g", min_open ? ">" : ">=", min);
  if (has_max) return absl::StrFormat("%s %g", max_open ? "<" : "<=", max);
  return "";
}

absl::StatusOr<double> ParseNumberInRange(std::string_view text, const NumberRange& range) {
  absl::StatusOr<double> value = ParseFiniteNumber(text);
  if (!value.ok()) return value.status();
  if (!range.Contains(*value)) {
    return absl::InvalidArgumentError(absl::StrCat("must be ", range.ToString()));
  }
  return *value;
}

absl::StatusOr<double> ParseFiniteNumber(std::string_view text) {
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() ||
      !std::isfinite(value)) {
    return absl::InvalidArgumentError("is not a finite number");
  }
  return value;
}

absl::StatusOr<bool> ParseBoolValue(std::string_view text) {
  const std::string lower = absl::AsciiStrToLower(AbslView(text));
  if (lower == "true" || lower == "1" || lower == "yes") return true;
  if (lower == "false" || lower == "0" || lower == "no") return false;
  return absl::InvalidArgumentError("is not a boolean; use true or false");
}

absl::StatusOr<uint64_t> ParseByteSizeValue(std::string_view text, uint64_t min_bytes) {
  absl::StatusOr<uint64_t> bytes = ParseByteSize(text);
  if (!bytes.ok()) {
    return absl::InvalidArgumentError(
        "is not a byte size; use e.g. 80GiB, 13.5GiB, 24GB, 512MiB or plain bytes");
  }
  if (*bytes < min_bytes) {
    return absl::InvalidArgumentError(min_bytes == 1
                                          ? std::string("must be > 0 bytes")
                                          : absl::StrCat("must be at least ", min_bytes, " bytes"));
  }
  return *bytes;
}

absl::StatusOr<double> ParseRate(std::string_view text) {
  std::string_view body = text;
  if (absl::EndsWithIgnoreCase(AbslView(body), "/s")) body.remove_suffix(2);
  double number = 0;
  std::string_view unit;
  const auto bad = [] {
    return absl::InvalidArgumentError(
        "is not a rate; use a number with a byte unit per second, e.g. 3.35TB/s, 25GB/s, "
        "900GiB/s");
  };
  if (!SplitNumber(body, &number, &unit) || number <= 0) return bad();
  if (unit.empty()) {
    return absl::InvalidArgumentError(
        "has no unit; write e.g. 25GB/s (decimal) or 25GiB/s (binary)");
  }
  absl::StatusOr<uint64_t> scale = ParseByteSize(absl::StrCat("1", AbslView(unit)));
  if (!scale.ok()) return bad();
  return number * static_cast<double>(*scale);
}

absl::StatusOr<double> ParseFlops(std::string_view text) {
  std::string_view body = text;
  for (std::string_view suffix : {"flop/s", "flops"}) {
    if (absl::EndsWithIgnoreCase(AbslView(body), AbslView(suffix)))
      body.remove_suffix(suffix.size());
  }
  double number = 0;
  std::string_view prefix;
  const auto bad = [] {
    return absl::InvalidArgumentError(
        "is not a FLOP/s rate > 0; use e.g. 989.4e12, 989.4T or 2.25P");
  };
  if (!SplitNumber(body, &number, &prefix) || number <= 0) return bad();
  static constexpr std::pair<char, double> kPrefixes[] = {
      {'k', 1e3}, {'m', 1e6}, {'g', 1e9}, {'t', 1e12}, {'p', 1e15}};
  if (prefix.empty()) return number;
  if (prefix.size() == 1) {
    for (const auto& [p, scale] : kPrefixes) {
      if (absl::ascii_tolower(static_cast<unsigned char>(prefix[0])) == p) return number * scale;
    }
  }
  return bad();
}

absl::StatusOr<std::string> ParseChoice(std::string_view text,
                                        const std::vector<std::string>& choices) {
  for (const std::string& c : choices) {
    if (absl::EqualsIgnoreCase(c, AbslView(text))) return c;
  }
  return absl::InvalidArgumentError(absl::StrCat("is not one of ", absl::StrJoin(choices, ", ")));
}

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

std::string FormatRate(double bytes_per_s) {
  static constexpr std::pair<double, const char*> kUnits[] = {
      {1e12, "TB/s"}, {1e9, "GB/s"}, {1e6, "MB/s"}, {1e3, "kB/s"}};
  for (const auto& [scale, unit] : kUnits) {
    if (bytes_per_s >= scale) return absl::StrFormat("%.4g %s", bytes_per_s / scale, unit);
  }
  return absl::StrFormat("%.4g B/s", bytes_per_s);
}

}  // namespace pagedkv::cli
