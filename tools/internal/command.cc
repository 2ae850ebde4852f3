#include "tools/internal/command.h"

#include <string>

#include "pagedkv/core/logging.h"

namespace pagedkv::cli {

void AddCommonFlags(ArgParser& parser) {
  parser.AddCustom(
      "log-level", "LEVEL", "log level: off|error|warn|info|debug|trace",
      [](std::string_view level) -> absl::Status {
        if (absl::Status s = SetLogLevel(level); !s.ok()) {
          return absl::InvalidArgumentError("is not a level; use off|error|warn|info|debug|trace");
        }
        return absl::OkStatus();
      },
      "$PAGEDKV_LOG, else warn");
}

int ReportError(const CommandContext& ctx, std::string_view command, const absl::Status& status,
                int exit_code) {
  ctx.err << command << ": error: " << status.message() << "\n";
  return exit_code;
}

int ParseOrReport(ArgParser& parser, absl::Span<const std::string> args,
                  const CommandContext& ctx) {
  absl::StatusOr<ParsedArgs> parsed = parser.Parse(args);
  if (!parsed.ok()) return ReportError(ctx, parser.command(), parsed.status(), kExitUsage);
  if (parsed->help) {
    ctx.out << parser.Help();
    return kHelpShown;
  }
  return kExitOk;
}

}  // namespace pagedkv::cli
