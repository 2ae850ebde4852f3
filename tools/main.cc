// The `pagedkv` command line: global options, then one subcommand from kCommands.
//   pagedkv [--log-level LEVEL] COMMAND [FLAGS...]     pagedkv COMMAND --help
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <iostream>
#include <new>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "pagedkv/core/logging.h"
#include "tools/internal/command.h"
#include "tools/internal/flags.h"

#ifndef PAGEDKV_VERSION
#define PAGEDKV_VERSION "unknown"
#endif

namespace pagedkv::cli {
int RunSimulateCommand(const CommandContext& ctx, absl::Span<const std::string> args);
int RunReportCommand(const CommandContext& ctx, absl::Span<const std::string> args);
#if defined(PAGEDKV_HAVE_SERVICE)
int RunServeCommand(const CommandContext& ctx, absl::Span<const std::string> args);
#endif
namespace {

// Adding a subcommand: write tools/<name>_command.cc with `int Run<Name>Command(ctx, args)`,
// declare it in tools/internal/command.h, add a row here and the file to tools/CMakeLists.txt.
constexpr Command kCommands[] = {
    {"size", "KV-cache bytes per token/block/sequence and what a GPU memory budget holds",
     RunSizeCommand},
    {"simulate", "replay a workload under each KV allocation policy and compare them",
     RunSimulateCommand},
    {"report", "rebuild report.html from the data files of a simulation", RunReportCommand},
#if defined(PAGEDKV_HAVE_SERVICE)
    {"serve", "serve the KV-cache manager over gRPC to engine processes (sessions, shared pools)",
     RunServeCommand},
#endif
};

std::string CommandNames() {
  std::string names;
  for (const Command& c : kCommands) {
    if (!names.empty()) names += ", ";
    names += c.name;
  }
  return names;
}

std::string GlobalHelp(const FlagSet& flags) {
  std::string text = flags.Help();
  text += "\nCommands:\n";
  for (const Command& c : kCommands) text += absl::StrFormat("  %-10s %s\n", c.name, c.summary);
  text += "\nRun 'pagedkv COMMAND --help' for the options of one command.\n";
  return text;
}

int Main(int argc, char** argv) {
  const CommandContext ctx{std::cout, std::cerr};
  const std::vector<std::string> args(argv + 1, argv + argc);
  bool version = false;
  FlagSet flags("pagedkv", "pagedkv: a paged KV-cache memory manager for LLM serving.");
  flags.AddBool("version", "print the version and exit", &version);
  AddCommonFlags(flags);
  flags.StopAtFirstPositional();
  absl::StatusOr<ParsedArgs> parsed = flags.Parse(args);
  if (!parsed.ok()) return ReportError(ctx, "pagedkv", parsed.status(), kExitUsage);
  if (parsed->help) {
    ctx.out << GlobalHelp(flags);
    return kExitOk;
  }
  if (version) {
    ctx.out << "pagedkv " << PAGEDKV_VERSION << "\n";
    return kExitOk;
  }
  if (parsed->rest.empty()) {
    ctx.err << GlobalHelp(flags);
    return ReportError(
        ctx, "pagedkv",
        absl::InvalidArgumentError(absl::StrCat("missing command; commands: ", CommandNames())),
        kExitUsage);
  }
  const std::string& name = parsed->rest.front();
  for (const Command& c : kCommands) {
    if (c.name == name) {
      return c.run(ctx, absl::MakeConstSpan(parsed->rest).subspan(1));
    }
  }
  return ReportError(
      ctx, "pagedkv",
      absl::InvalidArgumentError(absl::StrCat(
          "unknown command '", name, "'; commands: ", CommandNames(), " (run 'pagedkv --help')")),
      kExitUsage);
}

// Standard output must have reached its file: a full disk (/dev/full) or a closed descriptor
// turns a run that printed its results into a failure (exit 1), never a silent success.
int CheckStdout(int rc) {
  errno = 0;
  std::cout.flush();
  const bool failed = std::cout.fail() || std::fflush(stdout) != 0 || std::ferror(stdout) != 0;
  if (!failed) return rc;
  const int err = errno;
  std::cerr << "pagedkv: error: cannot write to standard output"
            << (err != 0 ? absl::StrCat(": ", std::strerror(err)) : std::string()) << "\n";
  return rc == kExitOk ? kExitFailure : rc;
}

}  // namespace
}  // namespace pagedkv::cli

int main(int argc, char** argv) {
  using pagedkv::cli::kExitFailure;
  // No exception may end the process with an abort and a core dump: the library returns Status,
  // but the standard library and the parsers throw (std::bad_alloc above all).
  int rc = kExitFailure;
  try {
    rc = pagedkv::cli::Main(argc, argv);
  } catch (const std::bad_alloc&) {
    std::cerr << "pagedkv: error: out of memory; use a smaller workload or model (see "
                 "--max-requests)\n";
    return kExitFailure;
  } catch (const std::exception& e) {
    std::cerr << "pagedkv: internal error: " << e.what() << "\n";
    return kExitFailure;
  } catch (...) {
    std::cerr << "pagedkv: internal error: an unknown exception\n";
    return kExitFailure;
  }
  return pagedkv::cli::CheckStdout(rc);
}
