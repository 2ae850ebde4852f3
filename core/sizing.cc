#include "pagedkv/core/sizing.h"

#include <charconv>
#include <cmath>
#include <limits>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "pagedkv/core/absl_compat.h"
#include "pagedkv/core/status.h"

namespace pagedkv {
namespace {

// Bounds that keep every product below 2^64 for any shape that passes ModelSpec::Validate():
// products are still checked, these only make the messages friendlier.
constexpr int64_t kMaxContextTokens = kMaxSizingContextTokens;

absl::StatusOr<uint64_t> CheckedMul(uint64_t a, uint64_t b, std::string_view what) {
  unsigned __int128 product = static_cast<unsigned __int128>(a) * b;
  if (product > std::numeric_limits<uint64_t>::max()) {
    return absl::InvalidArgumentError(absl::StrCat(AbslView(what), " overflows 64 bits (", a, " * ",
                                                   b, "); the shape or context is too large"));
  }
  return static_cast<uint64_t>(product);
}

absl::StatusOr<uint64_t> CheckedAdd(uint64_t a, uint64_t b, std::string_view what) {
  if (a > std::numeric_limits<uint64_t>::max() - b) {
    return absl::InvalidArgumentError(
        absl::StrCat(AbslView(what), " overflows 64 bits; the shape or context is too large"));
  }
  return a + b;
}

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

absl::StatusOr<SizingResult> ComputeSizing(const ModelSpec& model, const SizingOptions& options) {
  if (options.context_tokens < 1 || options.context_tokens > kMaxContextTokens) {
    return absl::InvalidArgumentError(absl::StrCat("context must be in [1, ", kMaxContextTokens,
                                                   "] tokens, got ", options.context_tokens));
  }
  if (options.block_size_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("block size must be >= 1 token, got ", options.block_size_tokens));
  }
  if (options.gpu_memory_bytes == 0) {
    return absl::InvalidArgumentError("GPU memory must be > 0 bytes, got 0");
  }
  if (!(options.gpu_memory_fraction > 0.0 && options.gpu_memory_fraction <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("GPU memory fraction must be in (0, 1], got ", options.gpu_memory_fraction));
  }
  if (options.encoder_tokens.has_value() &&
      (*options.encoder_tokens < 1 || *options.encoder_tokens > kMaxContextTokens)) {
    return absl::InvalidArgumentError(absl::StrCat("encoder length must be in [1, ",
                                                   kMaxContextTokens, "] tokens, got ",
                                                   *options.encoder_tokens));
  }
  ModelSpec spec = model;
  if (options.kv_dtype.has_value()) spec.kv_dtype = *options.kv_dtype;
  PAGEDKV_RETURN_IF_ERROR(spec.Validate());

  SizingResult r;
  r.model_name = spec.name;
  r.kv_dtype = spec.kv_dtype;
  r.context_tokens = options.context_tokens;
  r.block_size_tokens = options.block_size_tokens;
  r.gpu_memory_bytes = options.gpu_memory_bytes;
  r.weights_bytes = options.weights_bytes;
  r.gpu_memory_fraction = options.gpu_memory_fraction;

  const int64_t block = options.block_size_tokens;
  const int64_t context_blocks = CeilDiv(options.context_tokens, block);
  const uint64_t bytes_per_token_per_layer = spec.BytesPerTokenPerLayer();
  for (const KvGroup& group : spec.Groups()) {
    GroupSizing g;
    g.group_id = group.group_id;
    g.kind = group.kind;
    g.window_tokens = group.window_tokens;
    g.num_layers = static_cast<int32_t>(group.layers.size());
    PAGEDKV_ASSIGN_OR_RETURN(
        g.bytes_per_token, CheckedMul(g.num_layers, bytes_per_token_per_layer, "bytes per token"));
    PAGEDKV_ASSIGN_OR_RETURN(g.bytes_per_block,
                             CheckedMul(g.bytes_per_token, block, "bytes per block"));
    switch (group.kind) {
      case AttentionKind::kSliding:
        // The last `window` tokens straddle at most ceil(window / block) + 1 blocks; older pages
        // are released as the sequence grows.
        g.tokens_per_sequence =
            std::min<int64_t>(options.context_tokens, int64_t{group.window_tokens} + block);
        g.blocks_per_sequence =
            std::min<int64_t>(context_blocks, CeilDiv(group.window_tokens, block) + 1);
        break;
      case AttentionKind::kCross:
        r.encoder_tokens = options.encoder_tokens.value_or(kDefaultEncoderTokens);
        g.tokens_per_sequence = r.encoder_tokens;
        g.blocks_per_sequence = CeilDiv(r.encoder_tokens, block);
        break;
      case AttentionKind::kFull:
      case AttentionKind::kShares:  // never a group; kept for -Wswitch
        g.tokens_per_sequence = options.context_tokens;
        g.blocks_per_sequence = context_blocks;
        break;
    }
    PAGEDKV_ASSIGN_OR_RETURN(
        g.bytes_per_sequence,
        CheckedMul(g.bytes_per_block, g.blocks_per_sequence, "bytes per sequence"));
    PAGEDKV_ASSIGN_OR_RETURN(r.bytes_per_token,
                             CheckedAdd(r.bytes_per_token, g.bytes_per_token, "bytes per token"));
    PAGEDKV_ASSIGN_OR_RETURN(r.bytes_per_block,
                             CheckedAdd(r.bytes_per_block, g.bytes_per_block, "bytes per block"));
    PAGEDKV_ASSIGN_OR_RETURN(
        r.bytes_per_sequence,
        CheckedAdd(r.bytes_per_sequence, g.bytes_per_sequence, "bytes per sequence"));
    r.groups.push_back(g);
  }

  // Exact for a fraction of 1 (the default); otherwise rounded down to whole bytes.
  const uint64_t usable_bytes =
      options.gpu_memory_fraction == 1.0
          ? options.gpu_memory_bytes
          : static_cast<uint64_t>(std::floor(static_cast<long double>(options.gpu_memory_bytes) *
                                             options.gpu_memory_fraction));
  if (options.weights_bytes > usable_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "weights (", FormatBytes(options.weights_bytes), " = ", options.weights_bytes,
        " bytes) do not fit in the usable GPU memory (", FormatBytes(usable_bytes), " = ",
        usable_bytes, " bytes = GPU memory * fraction ", options.gpu_memory_fraction,
        "); give a larger GPU memory or smaller weights"));
  }
  r.budget_bytes = usable_bytes - options.weights_bytes;
  r.num_blocks = r.budget_bytes / r.bytes_per_block;
  PAGEDKV_ASSIGN_OR_RETURN(r.max_tokens, CheckedMul(r.num_blocks, block, "max tokens"));
  r.max_sequences = r.budget_bytes / r.bytes_per_sequence;
  return r;
}

absl::StatusOr<uint64_t> ParseByteSize(std::string_view text) {
  const auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bad byte size '", AbslView(text), "': ", AbslView(why),
        "; expected a number with an optional unit, e.g. 80GiB, 13.5GiB, 24GB, 512MiB, 4096"));
  };
  std::string_view s = text;
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  size_t pos = 0;
  while (pos < s.size() && absl::ascii_isdigit(s[pos])) ++pos;
  const std::string_view int_digits = s.substr(0, pos);
  std::string_view frac_digits;
  if (pos < s.size() && s[pos] == '.') {
    const size_t start = ++pos;
    while (pos < s.size() && absl::ascii_isdigit(s[pos])) ++pos;
    frac_digits = s.substr(start, pos - start);
  }
  if (int_digits.empty() && frac_digits.empty()) return bad("no number");
  std::string_view unit_text = s.substr(pos);
  while (!unit_text.empty() && unit_text.front() == ' ') unit_text.remove_prefix(1);
  const std::string unit = absl::AsciiStrToLower(AbslView(unit_text));

  uint64_t multiplier = 0;
  struct Unit {
    const char* name;
    uint64_t multiplier;
  };
  static constexpr Unit kUnits[] = {
      {"", 1},
      {"b", 1},
      {"kb", 1000},
      {"mb", 1000 * 1000},
      {"gb", 1000ull * 1000 * 1000},
      {"tb", 1000ull * 1000 * 1000 * 1000},
      {"kib", 1ull << 10},
      {"mib", 1ull << 20},
      {"gib", 1ull << 30},
      {"tib", 1ull << 40},
      {"ki", 1ull << 10},
      {"mi", 1ull << 20},
      {"gi", 1ull << 30},
      {"ti", 1ull << 40},
  };
  for (const Unit& u : kUnits) {
    if (unit == u.name) multiplier = u.multiplier;
  }
  if (multiplier == 0) {
    if (unit == "k" || unit == "m" || unit == "g" || unit == "t") {
      return bad(absl::StrCat("unit '", AbslView(unit_text), "' is ambiguous; write ", unit,
                              "ib (binary) or ", unit, "b (decimal)"));
    }
    return bad(absl::StrCat("unknown unit '", AbslView(unit_text), "'"));
  }

  uint64_t whole = 0;
  if (!int_digits.empty()) {
    const auto [end, ec] =
        std::from_chars(int_digits.data(), int_digits.data() + int_digits.size(), whole);
    if (ec != std::errc() || end != int_digits.data() + int_digits.size()) {
      return bad("number too large");
    }
  }
  absl::StatusOr<uint64_t> bytes = CheckedMul(whole, multiplier, "byte size");
  if (!bytes.ok()) return bad("number too large");
  if (!frac_digits.empty()) {
    // The fractional part in long double: exact for the usual "13.5GiB"; rounded down otherwise.
    long double fraction = 0;
    long double scale = 1;
    for (char c : frac_digits.substr(0, 30)) {
      scale /= 10;
      fraction += (c - '0') * scale;
    }
    const long double extra = std::floor(fraction * static_cast<long double>(multiplier));
    if (*bytes > std::numeric_limits<uint64_t>::max() - static_cast<uint64_t>(extra)) {
      return bad("number too large");
    }
    *bytes += static_cast<uint64_t>(extra);
  }
  return *bytes;
}

std::string FormatBytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  long double value = static_cast<long double>(bytes) / 1024;
  int unit = 0;
  while (value >= 1024 && unit + 1 < 6) {
    value /= 1024;
    ++unit;
  }
  return absl::StrFormat("%.2f %s", static_cast<double>(value), kUnits[unit]);
}

}  // namespace pagedkv
