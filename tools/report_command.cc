// `pagedkv report DIR`: rebuilds the self-contained report.html of a simulation from the data
// files `pagedkv simulate --out DIR` wrote (summary.json, timeline.csv, requests.csv). The HTML
// and SVG writer lives in scheduler/report.cc.
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "pagedkv/scheduler/report.h"
#include "tools/internal/command.h"

namespace pagedkv::cli {
namespace {

constexpr std::string_view kCommand = "pagedkv report";

}  // namespace

int RunReportCommand(const CommandContext& ctx, absl::Span<const std::string> args) {
  ReportOptions options;
  std::vector<std::string> positional;
  FlagSet flags(std::string(kCommand),
                "Rebuild DIR/report.html (inline SVG plots, no network) from the summary.json, "
                "timeline.csv and requests.csv that `pagedkv simulate --out DIR` wrote.");
  flags.AddPositionals("DIR", &positional);
  flags.AddString("out", "PATH", "where to write the HTML", &options.out_path, "DIR/report.html");
  flags.AddString("title", "TEXT", "page title", &options.title,
                  "pagedkv simulation report: <workload>");
  AddCommonFlags(flags);
  flags.SetEpilog(
      "Examples:\n"
      "  pagedkv report results/                  # writes results/report.html\n"
      "  pagedkv report results/ --out /tmp/r.html\n");
  // DIR may come before or after the flags.
  if (int rc = ParseOrReport(flags, args, ctx); rc != kExitOk) {
    return rc == kHelpShown ? kExitOk : rc;
  }
  if (positional.size() != 1) {
    return ReportError(
        ctx, kCommand,
        absl::InvalidArgumentError(absl::StrCat(
            positional.empty() ? "missing DIR"
                               : "expected one DIR, got " + std::to_string(positional.size()),
            "; usage: pagedkv report DIR [--out PATH] (see --help)")),
        kExitUsage);
  }
  // The report is written without timeline.csv or requests.csv (the plots that need one say
  // so), but never without a word: a copied directory may simply be incomplete.
  const std::string& dir = positional.front();
  if (std::filesystem::exists(std::filesystem::path(dir) / "summary.json")) {
    for (const char* name : {"timeline.csv", "requests.csv"}) {
      std::error_code ec;
      if (!std::filesystem::exists(std::filesystem::path(dir) / name, ec)) {
        ctx.err << kCommand << ": note: " << (std::filesystem::path(dir) / name).string()
                << " is missing; the report says so in place of the plots that need it\n";
      }
    }
  }
  absl::StatusOr<std::string> written = WriteReport(dir, options);
  if (!written.ok()) {
    // Missing or malformed input files are the user's to fix; anything else is a failure.
    const bool bad_input =
        absl::IsNotFound(written.status()) || absl::IsInvalidArgument(written.status());
    return ReportError(ctx, kCommand, written.status(), bad_input ? kExitUsage : kExitFailure);
  }
  ctx.out << "wrote " << *written << "\n";
  return kExitOk;
}

}  // namespace pagedkv::cli
