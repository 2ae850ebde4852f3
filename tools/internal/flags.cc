#include "tools/internal/flags.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "pagedkv/core/absl_compat.h"
#include "pagedkv/core/sizing.h"
#include "tools/internal/flag_values.h"

namespace pagedkv::cli {
namespace {

std::string Resolve(const std::string& default_text, std::string current) {
  return default_text == FlagSet::kShowCurrent ? std::move(current) : default_text;
}

}  // namespace

// One registered flag. CLI11 stores the text of its last occurrence in `value`; `parse` checks and
// converts it after CLI11 is done.
struct FlagSet::Flag {
  std::string name;
  std::string value_name;  // empty for booleans
  std::string help;
  std::string default_text;
  std::function<absl::Status(std::string_view)> parse;
  bool is_bool = false;
  std::string group;
  std::string value;
  CLI::Option* option = nullptr;
};

FlagSet::FlagSet(std::string command, std::string summary)
    : command_(std::move(command)),
      summary_(std::move(summary)),
      app_(std::make_unique<CLI::App>(summary_, command_)) {
  // Unknown flags and stray arguments are collected, then reported in our words with a hint.
  app_->allow_extras();
  app_->set_help_flag();
  app_->add_flag("-h,--help", help_value_, "show this help and exit");
  app_->formatter_fn([this](const CLI::App*, std::string, CLI::AppFormatMode) { return Help(); });
}

FlagSet::~FlagSet() = default;

void FlagSet::StopAtFirstPositional() {
  stop_at_positional_ = true;
  app_->prefix_command();
}

void FlagSet::Add(std::string name, std::string value_name, std::string help,
                  std::string default_text, std::function<absl::Status(std::string_view)> parse,
                  bool is_bool) {
  // Registering a flag twice is a programming error in the command; the first one wins so the
  // parser stays usable.
  if (Find(name) != nullptr) return;
  Flag& f = flags_.emplace_back();
  f.name = std::move(name);
  f.value_name = std::move(value_name);
  f.help = std::move(help);
  f.default_text = std::move(default_text);
  f.parse = std::move(parse);
  f.is_bool = is_bool;
  f.group = group_;
  if (is_bool) {
    f.option = app_->add_flag("--" + f.name + "{true}", f.value, f.help);
  } else {
    f.option = app_->add_option("--" + f.name, f.value, f.help)->type_name(f.value_name);
  }
  f.option->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
}

FlagSet::Flag* FlagSet::Find(std::string_view name) {
  for (Flag& f : flags_) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

void FlagSet::AddString(std::string name, std::string value_name, std::string help,
                        std::string* out, std::string default_text) {
  Add(
      std::move(name), std::move(value_name), std::move(help), Resolve(default_text, *out),
      [out](std::string_view v) {
        *out = std::string(v);
        return absl::OkStatus();
      },
      false);
}

void FlagSet::AddInt(std::string name, std::string value_name, std::string help, int64_t* out,
                     int64_t min, int64_t max, std::string default_text) {
  Add(
      std::move(name), std::move(value_name), std::move(help),
      Resolve(default_text, std::to_string(*out)),
      [out, min, max](std::string_view v) -> absl::Status {
        absl::StatusOr<int64_t> value = ParseIntInRange(v, min, max);
        if (!value.ok()) return value.status();
        *out = *value;
        return absl::OkStatus();
      },
      false);
}

void FlagSet::AddDouble(std::string name, std::string value_name, std::string help, double* out,
                        std::string default_text, NumberRange range) {
  Add(
      std::move(name), std::move(value_name), std::move(help),
      Resolve(default_text, absl::StrFormat("%g", *out)),
      [out, range](std::string_view v) -> absl::Status {
        absl::StatusOr<double> value = ParseNumberInRange(v, range);
        if (!value.ok()) return value.status();
        *out = *value;
        return absl::OkStatus();
      },
      false);
}

void FlagSet::AddBytes(std::string name, std::string value_name, std::string help, uint64_t* out,
                       std::string default_text, uint64_t min_bytes) {
  Add(
      std::move(name), std::move(value_name), std::move(help),
      Resolve(default_text, FormatBytes(*out)),
      [out, min_bytes](std::string_view v) -> absl::Status {
        absl::StatusOr<uint64_t> value = ParseByteSizeValue(v, min_bytes);
        if (!value.ok()) return value.status();
        *out = *value;
        return absl::OkStatus();
      },
      false);
}

void FlagSet::AddRate(std::string name, std::string value_name, std::string help, double* out,
                      std::string default_text) {
  Add(
      std::move(name), std::move(value_name), std::move(help),
      Resolve(default_text, FormatRate(*out)),
      [out](std::string_view v) -> absl::Status {
        absl::StatusOr<double> value = ParseRate(v);
        if (!value.ok()) return value.status();
        *out = *value;
        return absl::OkStatus();
      },
      false);
}

void FlagSet::AddFlops(std::string name, std::string value_name, std::string help, double* out,
                       std::string default_text) {
  Add(
      std::move(name), std::move(value_name), std::move(help),
      Resolve(default_text, absl::StrFormat("%g", *out)),
      [out](std::string_view v) -> absl::Status {
        absl::StatusOr<double> value = ParseFlops(v);
        if (!value.ok()) return value.status();
        *out = *value;
        return absl::OkStatus();
      },
      false);
}

void FlagSet::AddBool(std::string name, std::string help, bool* out) {
  Add(
      std::move(name), "", std::move(help), "",
      [out](std::string_view v) -> absl::Status {
        absl::StatusOr<bool> value = ParseBoolValue(v);
        if (!value.ok()) return value.status();
        *out = *value;
        return absl::OkStatus();
      },
      true);
}

void FlagSet::AddChoice(std::string name, std::string help, std::vector<std::string> choices,
                        std::string* out, std::string default_text) {
  std::string value_name;
  for (const std::string& c : choices)
    absl::StrAppend(&value_name, value_name.empty() ? "" : "|", c);
  Add(
      std::move(name), std::move(value_name), std::move(help), Resolve(default_text, *out),
      [out, choices = std::move(choices)](std::string_view v) -> absl::Status {
        absl::StatusOr<std::string> value = ParseChoice(v, choices);
        if (!value.ok()) return value.status();
        *out = *value;
        return absl::OkStatus();
      },
      false);
}

void FlagSet::AddCustom(std::string name, std::string value_name, std::string help,
                        std::function<absl::Status(std::string_view)> parse,
                        std::string default_text) {
  Add(std::move(name), std::move(value_name), std::move(help), std::move(default_text),
      std::move(parse), false);
}

void FlagSet::AddPositionals(std::string value_name, std::vector<std::string>* out) {
  positional_name_ = std::move(value_name);
  positionals_ = out;
  app_->add_option(positional_name_, *out);
}

absl::Status FlagSet::Error(std::string_view message) const {
  return absl::InvalidArgumentError(
      absl::StrCat(AbslView(message), "; run '", command_, " --help' for the options"));
}

absl::Status FlagSet::UnexpectedArgument(const std::string& arg) const {
  if (arg.size() < 2 || arg[0] != '-') {
    return Error(absl::StrCat("unexpected argument '", arg, "'"));
  }
  if (arg[1] != '-') {
    return Error(absl::StrCat("unknown flag '", arg, "' (flags are written --name)"));
  }
  const std::string_view body = std::string_view(arg).substr(2, arg.find('=') - 2);
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

absl::StatusOr<ParsedArgs> FlagSet::Parse(absl::Span<const std::string> args) {
  for (Flag& f : flags_) f.value.clear();
  if (positionals_ != nullptr) positionals_->clear();
  help_value_.clear();
  app_->clear();
  // CLI11 takes the arguments last-first.
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app_->parse(reversed);
  } catch (const CLI::ArgumentMismatch& e) {
    // "--name: 1 required VALUE missing": a flag at the end, or written --name= with nothing.
    for (const Flag& f : flags_) {
      if (absl::StartsWith(e.what(), absl::StrCat("--", f.name, ":"))) {
        return Error(
            absl::StrCat("flag --", f.name, " needs a value (--", f.name, " ", f.value_name, ")"));
      }
    }
    return Error(e.what());
  } catch (const CLI::ParseError& e) {
    return Error(e.what());
  }
  ParsedArgs parsed;
  parsed.help = !help_value_.empty();
  std::vector<std::string> remaining = app_->remaining();
  if (stop_at_positional_) {
    // Everything from the first positional on belongs to the subcommand; "--" ends the flags.
    size_t first = 0;
    while (first < remaining.size() && remaining[first] != "--" && remaining[first].size() > 1 &&
           remaining[first][0] == '-') {
      if (!parsed.help) return UnexpectedArgument(remaining[first]);
      ++first;
    }
    if (first < remaining.size() && remaining[first] == "--") ++first;
    parsed.rest.assign(remaining.begin() + static_cast<std::ptrdiff_t>(first), remaining.end());
  } else {
    for (const std::string& arg : remaining) {
      if (arg != "--") return UnexpectedArgument(arg);
    }
  }
  for (Flag& f : flags_) {
    if (f.option->count() == 0) continue;
    if (absl::Status s = f.parse(f.value); !s.ok()) {
      return Error(absl::StrCat("--", f.name, " '", f.value, "' ", s.message()));
    }
  }
  return parsed;
}

bool FlagSet::IsSet(std::string_view name) const {
  for (const Flag& f : flags_) {
    if (f.name == name) return f.option->count() > 0;
  }
  return false;
}

std::string FlagSet::Help() const {
  constexpr size_t kWidth = 100;  // wrap descriptions at this column
  std::string usage = absl::StrCat("Usage: ", command_, " [OPTIONS]");
  if (stop_at_positional_) absl::StrAppend(&usage, " COMMAND [ARGS...]");
  if (positionals_ != nullptr) absl::StrAppend(&usage, " ", positional_name_);
  std::string text = absl::StrCat(usage, "\n\n", summary_, "\n\nOptions:\n");
  struct Row {
    std::string left;
    std::vector<std::string> words;  // the description; "(default: X)" stays one word
    std::string group;
  };
  std::vector<Row> rows;
  rows.push_back({"-h, --help", absl::StrSplit("show this help and exit", ' '), ""});
  for (const Flag& f : flags_) {
    Row row{absl::StrCat("--", f.name), absl::StrSplit(f.help, ' ', absl::SkipEmpty()), f.group};
    if (!f.is_bool) absl::StrAppend(&row.left, " ", f.value_name);
    if (!f.default_text.empty())
      row.words.push_back(absl::StrCat("(default: ", f.default_text, ")"));
    rows.push_back(std::move(row));
  }
  size_t width = 0;
  for (const Row& r : rows) width = std::max(width, r.left.size());
  const size_t indent = 2 + width + 2;
  std::string group;
  for (const Row& r : rows) {
    if (r.group != group) {
      group = r.group;
      absl::StrAppend(&text, "\n", group, ":\n");
    }
    std::string line = absl::StrCat("  ", r.left, std::string(width - r.left.size() + 2, ' '));
    bool first = true;
    for (const std::string& word : r.words) {
      if (!first && line.size() + 1 + word.size() > kWidth) {
        absl::StrAppend(&text, line, "\n");
        line = std::string(indent, ' ') + word;
        continue;
      }
      absl::StrAppend(&line, first ? "" : " ", word);
      first = false;
    }
    absl::StrAppend(&text, line, "\n");
  }
  if (!epilog_.empty()) absl::StrAppend(&text, "\n", epilog_);
  if (!text.empty() && text.back() != '\n') text.push_back('\n');
  return text;
}

}  // namespace pagedkv::cli
