#include "tools/internal/arg_parser.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "pagedkv/core/absl_compat.h"
#include "pagedkv/core/sizing.h"

namespace pagedkv::cli {
namespace {

// Levenshtein distance, for "did you mean" on unknown flags.
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

std::string Resolve(const std::string& default_text, std::string current) {
  return default_text == ArgParser::kShowCurrent ? std::move(current) : default_text;
}

std::string FormatDouble(double v) { return absl::StrFormat("%g", v); }

}  // namespace

ArgParser::ArgParser(std::string command, std::string summary)
    : command_(std::move(command)), summary_(std::move(summary)) {}

void ArgParser::Add(Flag flag) {
  // Registering a flag twice is a programming error in the subcommand; the first one wins so the
  // parser stays usable.
  if (Find(flag.name) == nullptr) flags_.push_back(std::move(flag));
}

ArgParser::Flag* ArgParser::Find(std::string_view name) {
  for (Flag& f : flags_) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

void ArgParser::AddString(std::string name, std::string value_name, std::string help,
                          std::string* out, std::string default_text) {
  std::string shown = Resolve(default_text, *out);
  Add({std::move(name), std::move(value_name), std::move(help), std::move(shown),
       [out](std::string_view v) {
         *out = std::string(v);
         return absl::OkStatus();
       }});
}

void ArgParser::AddInt(std::string name, std::string value_name, std::string help, int64_t* out,
                       int64_t min, int64_t max, std::string default_text) {
  std::string shown = Resolve(default_text, std::to_string(*out));
  Add({std::move(name), std::move(value_name), std::move(help), std::move(shown),
       [out, min, max](std::string_view v) -> absl::Status {
         int64_t value = 0;
         const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), value);
         if (v.empty() || ec == std::errc::invalid_argument || end != v.data() + v.size()) {
           return absl::InvalidArgumentError("is not an integer");
         }
         if (ec == std::errc::result_out_of_range || value < min || value > max) {
           std::string range;
           if (max == std::numeric_limits<int64_t>::max()) {
             range = absl::StrCat("must be >= ", min);
           } else {
             range = absl::StrCat("must be in [", min, ", ", max, "]");
           }
           return absl::InvalidArgumentError(range);
         }
         *out = value;
         return absl::OkStatus();
       }});
}

void ArgParser::AddDouble(std::string name, std::string value_name, std::string help, double* out,
                          std::string default_text) {
  std::string shown = Resolve(default_text, FormatDouble(*out));
  Add({std::move(name), std::move(value_name), std::move(help), std::move(shown),
       [out](std::string_view v) -> absl::Status {
         double value = 0;
         const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), value);
         if (v.empty() || ec != std::errc() || end != v.data() + v.size() ||
             !std::isfinite(value)) {
           return absl::InvalidArgumentError("is not a finite number");
         }
         *out = value;
         return absl::OkStatus();
       }});
}

void ArgParser::AddBytes(std::string name, std::string value_name, std::string help, uint64_t* out,
                         std::string default_text) {
  std::string shown = Resolve(default_text, FormatBytes(*out));
  Add({std::move(name), std::move(value_name), std::move(help), std::move(shown),
       [out](std::string_view v) -> absl::Status {
         absl::StatusOr<uint64_t> bytes = ParseByteSize(v);
         if (!bytes.ok()) {
           return absl::InvalidArgumentError(
               "is not a byte size; use e.g. 80GiB, 13.5GiB, 24GB, 512MiB or plain bytes");
         }
         *out = *bytes;
         return absl::OkStatus();
       }});
}

void ArgParser::AddBool(std::string name, std::string help, bool* out) {
  Flag flag{std::move(name), "", std::move(help), "", [out](std::string_view v) -> absl::Status {
              const std::string lower = absl::AsciiStrToLower(AbslView(v));
              if (lower == "true" || lower == "1" || lower == "yes") {
                *out = true;
              } else if (lower == "false" || lower == "0" || lower == "no") {
                *out = false;
              } else {
                return absl::InvalidArgumentError("is not a boolean; use true or false");
              }
              return absl::OkStatus();
            }};
  flag.is_bool = true;
  Add(std::move(flag));
}

void ArgParser::AddCustom(std::string name, std::string value_name, std::string help,
                          std::function<absl::Status(std::string_view)> parse,
                          std::string default_text) {
  Add({std::move(name), std::move(value_name), std::move(help), std::move(default_text),
       std::move(parse)});
}

absl::Status ArgParser::Error(std::string_view message) const {
  return absl::InvalidArgumentError(
      absl::StrCat(AbslView(message), "; run '", command_, " --help' for the options"));
}

absl::StatusOr<ParsedArgs> ArgParser::Parse(absl::Span<const std::string> args) {
  ParsedArgs parsed;
  for (Flag& f : flags_) f.seen = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      parsed.help = true;
      continue;
    }
    if (arg == "--") {  // everything after "--" is positional
      if (i + 1 >= args.size()) break;
      if (stop_at_positional_) {
        parsed.rest.assign(args.begin() + i + 1, args.end());
        return parsed;
      }
      return Error(absl::StrCat("unexpected argument '", args[i + 1], "'"));
    }
    if (arg.size() < 2 || arg[0] != '-') {
      if (stop_at_positional_) {
        parsed.rest.assign(args.begin() + i, args.end());
        return parsed;
      }
      return Error(absl::StrCat("unexpected argument '", arg, "'"));
    }
    if (arg[1] != '-') {
      return Error(absl::StrCat("unknown flag '", arg, "' (flags are written --name)"));
    }
    std::string_view body = std::string_view(arg).substr(2);
    std::optional<std::string_view> inline_value;
    if (const size_t eq = body.find('='); eq != std::string_view::npos) {
      inline_value = body.substr(eq + 1);
      body = body.substr(0, eq);
    }
    Flag* flag = Find(body);
    if (flag == nullptr) {
      std::string message = absl::StrCat("unknown flag '--", AbslView(body), "'");
      const Flag* best = nullptr;
      size_t best_distance = 3;  // suggest only close names
      for (const Flag& f : flags_) {
        const size_t d = EditDistance(body, f.name);
        if (d < best_distance) {
          best = &f;
          best_distance = d;
        }
      }
      if (best != nullptr) absl::StrAppend(&message, " (did you mean '--", best->name, "'?)");
      return Error(message);
    }
    std::string_view value;
    if (inline_value.has_value()) {
      value = *inline_value;
    } else if (flag->is_bool) {
      value = "true";
    } else {
      if (i + 1 >= args.size()) {
        return Error(absl::StrCat("flag --", flag->name, " needs a value (--", flag->name, " ",
                                  flag->value_name, ")"));
      }
      value = args[++i];
    }
    if (absl::Status s = flag->parse(value); !s.ok()) {
      return Error(absl::StrCat("--", flag->name, " '", AbslView(value), "' ", s.message()));
    }
    flag->seen = true;
  }
  return parsed;
}

bool ArgParser::IsSet(std::string_view name) const {
  for (const Flag& f : flags_) {
    if (f.name == name) return f.seen;
  }
  return false;
}

std::string ArgParser::Help() const {
  std::string text = absl::StrCat(
      "Usage: ", command_, stop_at_positional_ ? " [OPTIONS] COMMAND [ARGS...]" : " [OPTIONS]",
      "\n\n", summary_, "\n\nOptions:\n");
  std::vector<std::pair<std::string, std::string>> rows;
  rows.emplace_back("-h, --help", "show this help and exit");
  for (const Flag& f : flags_) {
    std::string left = absl::StrCat("--", f.name);
    if (!f.is_bool) absl::StrAppend(&left, " ", f.value_name);
    std::string right = f.help;
    if (!f.default_text.empty()) absl::StrAppend(&right, " (default: ", f.default_text, ")");
    rows.emplace_back(std::move(left), std::move(right));
  }
  size_t width = 0;
  for (const auto& [left, right] : rows) width = std::max(width, left.size());
  for (const auto& [left, right] : rows) {
    absl::StrAppend(&text, "  ", left, std::string(width - left.size() + 2, ' '), right, "\n");
  }
  if (!epilog_.empty()) absl::StrAppend(&text, "\n", epilog_);
  if (!text.empty() && text.back() != '\n') text.push_back('\n');
  return text;
}

}  // namespace pagedkv::cli
