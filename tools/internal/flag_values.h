// The value grammar of `pagedkv` flags: integers in a range, finite numbers, booleans, choices,
// byte sizes (80GiB, 24GB), rates (3.35TB/s) and FLOP/s (989.4e12, 989.4T). Each parser returns
// the value or an InvalidArgument whose message completes "--flag 'VALUE' ..." (FlagSet adds the
// flag and the value), so every command words the same mistake the same way.
//
//   absl::StatusOr<double> bw = ParseRate("3.35TB/s");   // 3.35e12 bytes/s
#ifndef PAGEDKV_TOOLS_INTERNAL_FLAG_VALUES_H_
#define PAGEDKV_TOOLS_INTERNAL_FLAG_VALUES_H_

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace pagedkv::cli {

// Decimal integer in [min, max]: "is not an integer", "must be >= MIN", "must be in [MIN, MAX]",
// and for a number beyond 64 bits "is out of range; must be ..." with the same bounds.
absl::StatusOr<int64_t> ParseIntInRange(std::string_view text, int64_t min, int64_t max);
// A finite number (no NaN or infinity): "is not a finite number".
absl::StatusOr<double> ParseFiniteNumber(std::string_view text);

// An interval of finite numbers, each end closed or open; the default accepts any.
struct NumberRange {
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  bool min_open = false;  // min itself is excluded
  bool max_open = false;

  static NumberRange Positive() { return {0, std::numeric_limits<double>::infinity(), true}; }
  static NumberRange NonNegative() { return {0}; }
  static NumberRange AtLeast(double min) { return {min}; }
  // (0, 1]: a fraction that must leave something.
  static NumberRange PositiveFraction() { return {0, 1, true, false}; }
  // [0, 1): a fraction that must not take everything.
  static NumberRange FractionBelowOne() { return {0, 1, false, true}; }
  bool Contains(double v) const;
  // "> 0", ">= 1", "in (0, 1]", "in [0, 1)" (empty for any).
  std::string ToString() const;
};
// A finite number in `range`: "is not a finite number", "must be > 0", "must be in [0, 1)".
absl::StatusOr<double> ParseNumberInRange(std::string_view text, const NumberRange& range);
// true|false|1|0|yes|no (any case): "is not a boolean; use true or false".
absl::StatusOr<bool> ParseBoolValue(std::string_view text);
// A byte size: a number with a unit (GB/MB = powers of 1000, GiB/MiB = powers of 1024) or plain
// bytes: "is not a byte size; use e.g. ...", and "must be at least MIN bytes" below min_bytes.
absl::StatusOr<uint64_t> ParseByteSizeValue(std::string_view text, uint64_t min_bytes = 0);
// Bytes per second with a unit, e.g. 3.35TB/s, 25GB/s, 900GiB/s ("/s" optional); a plain number
// is refused (GB/s or bytes/s would be a guess).
absl::StatusOr<double> ParseRate(std::string_view text);
// FLOP/s: a plain number (989.4e12) or one with an SI prefix (989.4T, 2.25P), optionally
// followed by FLOP/s or FLOPS; > 0.
absl::StatusOr<double> ParseFlops(std::string_view text);
// One of `choices` (case-insensitive), returned as spelled in `choices`.
absl::StatusOr<std::string> ParseChoice(std::string_view text,
                                        const std::vector<std::string>& choices);
// Levenshtein distance, for did-you-mean hints.
size_t EditDistance(std::string_view a, std::string_view b);
// Human-readable rate: "3.35 TB/s".
std::string FormatRate(double bytes_per_s);

}  // namespace pagedkv::cli

#endif  // PAGEDKV_TOOLS_INTERNAL_FLAG_VALUES_H_
