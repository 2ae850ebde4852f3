// FlagSet: the flags of one `pagedkv` command, parsed by CLI11 (Debian libcli11-dev). CLI11 reads
// the command line (`--flag value`, `--flag=value`, boolean `--flag` / `--flag=false`, `-h`,
// `--`, positionals, stopping at a subcommand); FlagSet keeps the one place where values are
// checked (flag_values.h) and errors are worded: they name the flag and the value, say what to
// do, suggest the closest flag for a misspelled one, and end with a pointer to --help.
//
//   FlagSet flags("pagedkv size", "KV-cache memory of a model");
//   flags.AddInt("context", "TOKENS", "tokens per sequence", &context, /*min=*/1);
//   PAGEDKV_ASSIGN_OR_RETURN(ParsedArgs parsed, flags.Parse(args));
//   if (parsed.help) std::cout << flags.Help();   // grouped, wrapped at 100 columns
#ifndef PAGEDKV_TOOLS_INTERNAL_FLAGS_H_
#define PAGEDKV_TOOLS_INTERNAL_FLAGS_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "tools/internal/flag_values.h"

namespace CLI {
class App;
}  // namespace CLI

namespace pagedkv::cli {

struct ParsedArgs {
  bool help = false;  // --help or -h was given (other flags may be partly applied)
  // Arguments from the first positional on (only with StopAtFirstPositional; else empty).
  std::vector<std::string> rest;
};

class FlagSet {
 public:
  // `command` is how the user invokes it ("pagedkv size"); `summary` is the --help description.
  FlagSet(std::string command, std::string summary);
  ~FlagSet();
  FlagSet(const FlagSet&) = delete;
  FlagSet& operator=(const FlagSet&) = delete;

  // Each Add* registers `--name`. The value currently in *out is shown as the default in --help
  // unless `default_text` is given ("" hides it). *out is set only when the flag is given.
  void AddString(std::string name, std::string value_name, std::string help, std::string* out,
                 std::string default_text = kShowCurrent);
  void AddInt(std::string name, std::string value_name, std::string help, int64_t* out,
              int64_t min = std::numeric_limits<int64_t>::min(),
              int64_t max = std::numeric_limits<int64_t>::max(),
              std::string default_text = kShowCurrent);
  // A finite number in `range` (NumberRange in flag_values.h; the default accepts any).
  void AddDouble(std::string name, std::string value_name, std::string help, double* out,
                 std::string default_text = kShowCurrent, NumberRange range = {});
  // Byte sizes such as 80GiB, 24GB, 512MiB or plain bytes, at least min_bytes.
  void AddBytes(std::string name, std::string value_name, std::string help, uint64_t* out,
                std::string default_text = kShowCurrent, uint64_t min_bytes = 0);
  // Bytes per second with a unit (3.35TB/s), stored as bytes/s.
  void AddRate(std::string name, std::string value_name, std::string help, double* out,
               std::string default_text = kShowCurrent);
  // FLOP/s: 989.4e12 or 989.4T.
  void AddFlops(std::string name, std::string value_name, std::string help, double* out,
                std::string default_text = kShowCurrent);
  // `--name` sets true; `--name=true|false|1|0|yes|no` sets that value.
  void AddBool(std::string name, std::string help, bool* out);
  // One of `choices` (case-insensitive); *out gets the spelling in `choices`.
  void AddChoice(std::string name, std::string help, std::vector<std::string> choices,
                 std::string* out, std::string default_text = kShowCurrent);
  // Any other value: `parse` returns an error completing "--name 'VALUE' ..." for a bad one.
  void AddCustom(std::string name, std::string value_name, std::string help,
                 std::function<absl::Status(std::string_view value)> parse,
                 std::string default_text = "");
  // Positional arguments (any number, anywhere among the flags), e.g. `pagedkv report DIR`.
  void AddPositionals(std::string value_name, std::vector<std::string>* out);

  // Flags added after this call are listed under `title` in --help ("Cluster", "Output", ...).
  void StartGroup(std::string title) { group_ = std::move(title); }
  // Text after the flag list in --help (examples).
  void SetEpilog(std::string epilog) { epilog_ = std::move(epilog); }
  // Top-level parser: the first positional argument and everything after it are returned in
  // ParsedArgs::rest (a subcommand and its flags) instead of being an error.
  void StopAtFirstPositional();

  // InvalidArgument naming the flag and value for unknown flags, missing values, bad values and
  // unexpected positional arguments; the message ends with a pointer to --help.
  absl::StatusOr<ParsedArgs> Parse(absl::Span<const std::string> args);

  // Whether `--name` appeared in the last Parse().
  bool IsSet(std::string_view name) const;
  std::string Help() const;
  const std::string& command() const { return command_; }

  static inline const std::string kShowCurrent = "\x01";  // sentinel: show *out's value

 private:
  struct Flag;
  void Add(std::string name, std::string value_name, std::string help, std::string default_text,
           std::function<absl::Status(std::string_view)> parse, bool is_bool);
  Flag* Find(std::string_view name);
  absl::Status Error(std::string_view message) const;
  absl::Status UnexpectedArgument(const std::string& arg) const;

  std::string command_;
  std::string summary_;
  std::string epilog_;
  bool stop_at_positional_ = false;
  std::string positional_name_;
  std::vector<std::string>* positionals_ = nullptr;
  std::deque<Flag> flags_;  // stable addresses: CLI11 writes into Flag::value
  std::unique_ptr<CLI::App> app_;
  std::string help_value_;
  std::string group_;  // the group of flags added now ("" = the first, untitled one)
};

}  // namespace pagedkv::cli

#endif  // PAGEDKV_TOOLS_INTERNAL_FLAGS_H_
