// ReportWriter: builds a self-contained report.html (inline SVG plots, no scripts, no network)
// from the files a simulation writes into its output directory: summary.json, timeline.csv and
// requests.csv. Used at the end of `pagedkv simulate` and by `pagedkv report DIR`.
//
//   PAGEDKV_RETURN_IF_ERROR(WriteReport("results/"));            // writes results/report.html
//   PAGEDKV_ASSIGN_OR_RETURN(std::string html, RenderReport("results/"));
#ifndef PAGEDKV_SCHEDULER_REPORT_H_
#define PAGEDKV_SCHEDULER_REPORT_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace pagedkv {

struct ReportOptions {
  // Where to write the HTML; empty = <dir>/report.html.
  std::string out_path;
  // Page title; empty = "pagedkv simulation report: <workload name>".
  std::string title;
};

// Reads <dir>/summary.json (required), <dir>/timeline.csv and <dir>/requests.csv (each optional:
// the plots that need a missing file say so instead), and returns the HTML document. What each
// plot shows: docs/report.md.
// NotFound when summary.json is missing; InvalidArgument "file:line: ..." when a file is malformed
// (CSV columns are matched by header name; required ones are listed in docs/report.md).
absl::StatusOr<std::string> RenderReport(const std::string& dir, const ReportOptions& options = {});

// RenderReport, then writes the document to options.out_path (default <dir>/report.html),
// creating its parent directories; written under a temporary name and renamed, so a failure never
// leaves half a file. Returns the path written; RenderReport's errors, or FailedPrecondition when
// the file cannot be written.
absl::StatusOr<std::string> WriteReport(const std::string& dir, const ReportOptions& options = {});

}  // namespace pagedkv

#endif  // PAGEDKV_SCHEDULER_REPORT_H_
