// ArgParser: the small flag parser behind every `pagedkv` subcommand. Flags are registered with a
// destination and a help line; Parse() accepts `--flag value`, `--flag=value` and boolean
// `--flag` / `--flag=true|false`, answers `--help`/`-h`, and reports unknown flags, missing
// values and bad numbers with InvalidArgument naming the flag and the value.
//
//   ArgParser p("pagedkv size", "KV-cache memory of a model");
//   p.AddInt("context", "TOKENS", "tokens per sequence", &context, /*min=*/1);
//   PAGEDKV_ASSIGN_OR_RETURN(ParsedArgs parsed, p.Parse(args));
//   if (parsed.help) std::cout << p.Help();
#ifndef PAGEDKV_TOOLS_INTERNAL_ARG_PARSER_H_
#define PAGEDKV_TOOLS_INTERNAL_ARG_PARSER_H_

#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace pagedkv::cli {

struct ParsedArgs {
  bool help = false;  // --help or -h was given (other flags may be partly applied)
  // Arguments from the first non-flag on (only with StopAtFirstPositional; else always empty).
  std::vector<std::string> rest;
};

class ArgParser {
 public:
  // `command` is how the user invokes it ("pagedkv size"); `summary` is one line for --help.
  ArgParser(std::string command, std::string summary);

  // Each Add* registers `--name`. The value currently in *out is shown as the default in --help
  // unless `default_text` is given ("" hides it). Sets *out only when the flag is given.
  void AddString(std::string name, std::string value_name, std::string help, std::string* out,
                 std::string default_text = kShowCurrent);
  void AddInt(std::string name, std::string value_name, std::string help, int64_t* out,
              int64_t min = std::numeric_limits<int64_t>::min(),
              int64_t max = std::numeric_limits<int64_t>::max(),
              std::string default_text = kShowCurrent);
  void AddDouble(std::string name, std::string value_name, std::string help, double* out,
                 std::string default_text = kShowCurrent);
  // Byte sizes such as 80GiB, 24GB, 512MiB or plain bytes (see ParseByteSize).
  void AddBytes(std::string name, std::string value_name, std::string help, uint64_t* out,
                std::string default_text = kShowCurrent);
  // `--name` sets true; `--name=true|false|1|0|yes|no` sets that value.
  void AddBool(std::string name, std::string help, bool* out);
  // Any other value: `parse` returns an error message (without the flag name) for a bad value.
  void AddCustom(std::string name, std::string value_name, std::string help,
                 std::function<absl::Status(std::string_view value)> parse,
                 std::string default_text = "");

  // Text after the flag list in --help (examples).
  void SetEpilog(std::string epilog) { epilog_ = std::move(epilog); }
  // Top-level parser: the first argument that is not a flag and everything after it go to
  // ParsedArgs::rest instead of being an error.
  void StopAtFirstPositional() { stop_at_positional_ = true; }

  // InvalidArgument naming the flag and value for unknown flags, missing values, bad values and
  // unexpected positional arguments; the message ends with a pointer to --help.
  absl::StatusOr<ParsedArgs> Parse(absl::Span<const std::string> args);

  // Whether `--name` appeared in the last Parse().
  bool IsSet(std::string_view name) const;
  std::string Help() const;
  const std::string& command() const { return command_; }

  static inline const std::string kShowCurrent = "\x01";  // sentinel: show *out's value

 private:
  struct Flag {
    std::string name;
    std::string value_name;  // empty for booleans
    std::string help;
    std::string default_text;
    std::function<absl::Status(std::string_view value)> parse;
    bool is_bool = false;
    bool seen = false;
  };
  Flag* Find(std::string_view name);
  void Add(Flag flag);
  absl::Status Error(std::string_view message) const;

  std::string command_;
  std::string summary_;
  std::string epilog_;
  bool stop_at_positional_ = false;
  std::vector<Flag> flags_;
};

}  // namespace pagedkv::cli

#endif  // PAGEDKV_TOOLS_INTERNAL_ARG_PARSER_H_
