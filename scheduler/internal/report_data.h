// Private reader of a simulation's data files for the HTML report (report.cc): summary.json,
// timeline.csv and requests.csv as written by WriteSimulationOutputs (metrics.h). CSV columns are
// found by header name, so extra or reordered columns are fine; errors name file:line.
//
//   PAGEDKV_ASSIGN_OR_RETURN(ReportSummary s, ReadReportSummary(dir + "/summary.json"));
#ifndef PAGEDKV_SCHEDULER_INTERNAL_REPORT_DATA_H_
#define PAGEDKV_SCHEDULER_INTERNAL_REPORT_DATA_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace pagedkv::internal {

// Numeric fields of one summary object by key (booleans count as 0/1); absent keys are absent.
struct ReportNumbers {
  std::map<std::string, double> numbers;
  // The value of `key`, or NaN when absent.
  double Get(std::string_view key) const;
};

// One entry of summary.json's "policies" array: one run (a policy, behind a router for a
// cluster run).
struct ReportPolicy : ReportNumbers {
  // The run's label: "policy", or "policy/router" when the entry names a router.
  std::string name;
  // Every string field other than "policy".
  std::map<std::string, std::string> strings;
  // A cluster run's "replicas" array, in order (empty otherwise).
  std::vector<ReportNumbers> replicas;
};

// "paged" or "paged/prefix-aware": how runs are named across the three files.
std::string RunLabel(std::string_view policy, std::string_view router);

struct ReportSummary {
  std::string workload_name;    // workload.name ("" when absent)
  std::string workload_source;  // workload.source
  double workload_num_requests = -1;
  // Other top-level scalar fields ("model", "gpu", "block_size", ...) in file order, as text.
  std::vector<std::pair<std::string, std::string>> context;
  std::vector<ReportPolicy> policies;
};

// InvalidArgument "path:line: ..." when the file is not JSON, "path: ..." when a field has the
// wrong type (policies not an array, an entry without a string "policy", a non-numeric metric).
absl::StatusOr<ReportSummary> ParseReportSummary(std::string_view text, std::string_view path);

// timeline.csv of one run (policy, and router when the file has a router column), rows in file
// order.
struct TimelineSeries {
  std::string policy;  // the run label
  std::vector<double> time_s;
  std::vector<double> running;
  std::vector<double> waiting;  // empty when the column is absent
  std::vector<double> swapped;  // empty when the column is absent
  std::vector<double> capacity_tokens;
  std::vector<double> used_tokens;
};

// Required columns: policy, time_s, running, capacity_tokens, used_tokens. InvalidArgument
// "path:line: ..." for a missing header, missing column, wrong field count or a bad number.
absl::StatusOr<std::vector<TimelineSeries>> ParseTimelineCsv(std::string_view text,
                                                             std::string_view path);

// requests.csv of one run.
struct LatencySeries {
  std::string policy;          // the run label
  std::vector<double> ttft_s;  // requests that produced a first token (ttft_s >= 0)
  std::vector<double> tpot_s;  // completed requests with more than one output token
  int64_t num_requests = 0;    // rows of this policy
};

// Required columns: policy, ttft_s, tpot_s; optional finish_s and output_tokens refine which
// rows count for TPOT. Errors as for ParseTimelineCsv.
absl::StatusOr<std::vector<LatencySeries>> ParseRequestsCsv(std::string_view text,
                                                            std::string_view path);

// Splits one CSV line; fields may be double-quoted ("" inside quotes is a quote). False for an
// unterminated quote.
bool SplitCsvQuoted(std::string_view line, std::vector<std::string>* fields);

}  // namespace pagedkv::internal

#endif  // PAGEDKV_SCHEDULER_INTERNAL_REPORT_DATA_H_
