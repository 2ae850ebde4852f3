#include "tools/internal/command.h"

#include <filesystem>
#include <string>

#include "pagedkv/core/logging.h"

namespace pagedkv::cli {

void AddCommonFlags(FlagSet& flags) {
  flags.AddCustom(
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

int ParseOrReport(FlagSet& flags, absl::Span<const std::string> args, const CommandContext& ctx) {
  absl::StatusOr<ParsedArgs> parsed = flags.Parse(args);
  if (!parsed.ok()) return ReportError(ctx, flags.command(), parsed.status(), kExitUsage);
  if (parsed->help) {
    ctx.out << flags.Help();
    return kHelpShown;
  }
  return kExitOk;
}

absl::StatusOr<ModelSpec> LoadModelArg(const std::string& name_or_path) {
  absl::StatusOr<ModelSpec> preset = ModelSpec::Preset(name_or_path);
  if (preset.ok()) return preset;
  const bool looks_like_path = name_or_path.find('/') != std::string::npos ||
                               name_or_path.ends_with(".json") ||
                               std::filesystem::exists(name_or_path);
  if (!looks_like_path) return preset.status();
  return ModelSpec::FromJsonFile(name_or_path);
}

}  // namespace pagedkv::cli
