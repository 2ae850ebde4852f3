// The `pagedkv` subcommand table. A subcommand is one function plus one row in kCommands
// (tools/main.cc); its flags and --help come from a FlagSet (flags.h, on CLI11) it builds itself.
//
//   int RunSize(const CommandContext& ctx, absl::Span<const std::string> args);
//   {"size", "KV-cache bytes per token/block/sequence and what a GPU budget holds", RunSize},
#ifndef PAGEDKV_TOOLS_INTERNAL_COMMAND_H_
#define PAGEDKV_TOOLS_INTERNAL_COMMAND_H_

#include <ostream>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "pagedkv/core/model_spec.h"
#include "tools/internal/flags.h"

namespace pagedkv::cli {

// Process exit codes of every subcommand.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // the work itself failed (I/O, internal error)
inline constexpr int kExitUsage = 2;    // bad command line or bad input values

struct CommandContext {
  std::ostream& out;  // results (tables, JSON)
  std::ostream& err;  // errors and diagnostics
};

using CommandFn = int (*)(const CommandContext& ctx, absl::Span<const std::string> args);

struct Command {
  std::string_view name;
  std::string_view summary;  // one line, shown by `pagedkv --help`
  CommandFn run;
};

// Flags every subcommand accepts: --log-level LEVEL (same as the global option).
void AddCommonFlags(FlagSet& flags);

// Runs `flags` over `args`. Returns kExitOk to continue, or the exit code to return at once:
// kExitUsage after printing the error (naming the flag and value) to ctx.err, or -1 after
// printing --help to ctx.out (the caller then returns kExitOk).
inline constexpr int kHelpShown = -1;
int ParseOrReport(FlagSet& flags, absl::Span<const std::string> args, const CommandContext& ctx);

// Prints "<command>: error: <message>" to ctx.err and returns `exit_code`.
int ReportError(const CommandContext& ctx, std::string_view command, const absl::Status& status,
                int exit_code);

// The value of a --model flag: a preset name, or else a path to a model JSON file (taken as a path
// when it contains '/', ends in .json or names an existing file; otherwise the preset error, which
// lists the presets, is returned).
absl::StatusOr<ModelSpec> LoadModelArg(const std::string& name_or_path);

// Subcommands (one file each).
int RunSizeCommand(const CommandContext& ctx, absl::Span<const std::string> args);

}  // namespace pagedkv::cli

#endif  // PAGEDKV_TOOLS_INTERNAL_COMMAND_H_
