// `pagedkv report DIR`: rebuilds the self-contained report.html of a simulation from the data
// files `pagedkv simulate --out DIR` wrote (summary.json, timeline.csv, requests.csv). The HTML
// and SVG writer lives in scheduler/report.cc.
#include <string>
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
  ArgParser parser(std::string(kCommand) + " DIR",
                   "Rebuild DIR/report.html (inline SVG plots, no network) from the summary.json, "
                   "timeline.csv and requests.csv that `pagedkv simulate --out DIR` wrote.");
  parser.AddString("out", "PATH", "where to write the HTML", &options.out_path, "DIR/report.html");
  parser.AddString("title", "TEXT", "page title", &options.title,
                   "pagedkv simulation report: <workload>");
  AddCommonFlags(parser);
  parser.SetEpilog(
      "Examples:\n"
      "  pagedkv report results/                  # writes results/report.html\n"
      "  pagedkv report results/ --out /tmp/r.html\n");
  // DIR may come before or after the flags: parse up to the first positional, then the rest.
  parser.StopAtFirstPositional();
  absl::StatusOr<ParsedArgs> head = parser.Parse(args);
  if (!head.ok()) return ReportError(ctx, kCommand, head.status(), kExitUsage);
  std::vector<std::string> positional;
  ParsedArgs parsed = *std::move(head);
  while (!parsed.help && !parsed.rest.empty()) {
    positional.push_back(parsed.rest.front());
    absl::StatusOr<ParsedArgs> tail = parser.Parse(absl::MakeConstSpan(parsed.rest).subspan(1));
    if (!tail.ok()) return ReportError(ctx, kCommand, tail.status(), kExitUsage);
    parsed = *std::move(tail);
  }
  if (parsed.help) {
    ctx.out << parser.Help();
    return kExitOk;
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
  absl::StatusOr<std::string> written = WriteReport(positional.front(), options);
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
