#include "pagedkv/scheduler/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "internal/report_cluster.h"
#include "internal/report_data.h"
#include "internal/report_format.h"
#include "internal/report_svg.h"
#include "internal/w_text_file.h"
#include "pagedkv/core/absl_compat.h"
#include "pagedkv/core/status.h"

namespace pagedkv {
namespace {

using internal::Bytes;
using internal::Fixed;
using internal::Grouped;
using internal::HtmlEscape;
using internal::LatencySeries;
using internal::Percent;
using internal::ReportPolicy;
using internal::ReportSummary;
using internal::Seconds;
using internal::TimelineSeries;

// CDFs keep at most this many points per policy (quantiles), enough for a 700-pixel-wide plot.
constexpr size_t kMaxCdfPoints = 400;

// Colors of the waste breakdown, fixed so that every report reads the same way.
constexpr const char* kUsedColor = "#0072B2";
constexpr const char* kInternalColor = "#E69F00";
constexpr const char* kReservedColor = "#CC79A7";
constexpr const char* kRoundingColor = "#F0E442";
constexpr const char* kExternalColor = "#D55E00";
constexpr const char* kFreeColor = "#DDDDDD";

// The report's own style sheet: no fonts or images are fetched (system fonts only).
constexpr const char* kStyle = R"css(
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px auto;
       max-width: 1100px; padding: 0 16px; color: #1a1a1a; background: #fff; }
h1 { font-size: 1.5em; margin-bottom: 4px; }
h2 { font-size: 1.15em; margin-top: 32px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
p.lead { color: #444; margin-top: 0; }
p.note { background: #fff6e0; border-left: 4px solid #E69F00; padding: 6px 10px; }
p.explain { color: #333; max-width: 800px; }
dl.context { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; }
dl.context dt { font-weight: 600; } dl.context dd { margin: 0; font-family: monospace; }
.table-wrap { overflow-x: auto; }
table.summary { border-collapse: collapse; font-size: 13px; white-space: nowrap; }
table.summary th, table.summary td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
table.summary th { background: #f2f2f2; }
table.summary td.policy, table.summary th.policy { text-align: left; font-weight: 600; }
span.swatch { display: inline-block; width: 10px; height: 10px; margin-right: 6px; }
svg.chart { display: block; width: 100%; max-width: 960px; height: auto; margin: 8px 0 16px; }
svg.chart text { font-size: 12px; fill: #222; }
svg.chart .chart-title { font-size: 14px; font-weight: 600; text-anchor: middle; }
svg.chart .axis-label { font-size: 12px; fill: #444; }
svg.chart .tick { fill: #555; font-size: 11px; }
svg.chart .grid { stroke: #e6e6e6; stroke-width: 1; }
svg.chart .axis-line { stroke: #888; stroke-width: 1; }
svg.chart .empty { fill: #777; text-anchor: middle; font-style: italic; }
svg.chart .segment-label { fill: #fff; font-size: 11px; }
svg.chart .segment-label.on-light { fill: #222; }
footer { margin-top: 40px; color: #666; font-size: 12px; }
)css";

std::string JoinPath(const std::string& dir, std::string_view name) {
  return (std::filesystem::path(dir.empty() ? "." : dir) / std::string(name)).string();
}

// --- the policies, in a fixed order with fixed colors across all plots ---

struct PolicyOrder {
  std::vector<std::string> names;
  int IndexOf(const std::string& name) {
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i] == name) return static_cast<int>(i);
    }
    names.push_back(name);
    return static_cast<int>(names.size() - 1);
  }
};

std::string Swatch(int index) {
  return absl::StrCat("<span class=\"swatch\" style=\"background:", internal::SeriesColor(index),
                      "\"></span>");
}

std::string SummaryTable(const ReportSummary& summary, PolicyOrder& order) {
  struct Column {
    const char* header;
    const char* help;
    std::string (*cell)(const ReportPolicy&);
  };
  static const Column kColumns[] = {
      {"completed", "requests completed / requests in the workload",
       [](const ReportPolicy& p) {
         const double total = p.Get("requests_total");
         return std::isfinite(total)
                    ? absl::StrCat(Grouped(p.Get("requests_completed")), " / ", Grouped(total))
                    : Grouped(p.Get("requests_completed"));
       }},
      {"req/s", "completed requests per second of simulated time",
       [](const ReportPolicy& p) { return Fixed(p.Get("throughput_requests_per_s"), 2); }},
      {"out tok/s", "output tokens per second",
       [](const ReportPolicy& p) { return Grouped(p.Get("throughput_tokens_per_s")); }},
      {"TTFT p50", "median time to first token",
       [](const ReportPolicy& p) { return Seconds(p.Get("ttft_p50_s")); }},
      {"TTFT p99", "99th percentile time to first token",
       [](const ReportPolicy& p) { return Seconds(p.Get("ttft_p99_s")); }},
      {"TPOT p50", "median time per output token after the first",
       [](const ReportPolicy& p) { return Seconds(p.Get("tpot_p50_s")); }},
      {"TPOT p99", "99th percentile time per output token",
       [](const ReportPolicy& p) { return Seconds(p.Get("tpot_p99_s")); }},
      {"batch mean / max", "running sequences per step",
       [](const ReportPolicy& p) {
         return absl::StrCat(Fixed(p.Get("mean_batch_size"), 1), " / ",
                             Grouped(p.Get("max_batch_size")));
       }},
      {"KV used", "tokens stored / KV capacity, time-weighted mean",
       [](const ReportPolicy& p) { return Percent(p.Get("kv_utilization_mean")); }},
      {"internal frag", "allocated slots holding no token (partly filled pages)",
       [](const ReportPolicy& p) { return Percent(p.Get("internal_fragmentation_mean")); }},
      {"reserved unused", "slots reserved ahead for tokens not generated yet",
       [](const ReportPolicy& p) { return Percent(p.Get("reserved_unused_mean")); }},
      {"buddy rounding", "slots of buddy blocks past their reservation (orca-* policies)",
       [](const ReportPolicy& p) { return Percent(p.Get("rounding_mean")); }},
      {"external frag", "free slots in holes too small to use (contiguous policies)",
       [](const ReportPolicy& p) { return Percent(p.Get("external_fragmentation_mean")); }},
      {"shared saved", "capacity saved by sharing pages (prefix cache, n > 1, beams)",
       [](const ReportPolicy& p) { return Percent(p.Get("pages_saved_by_sharing_mean")); }},
      {"prefix hit", "prompt tokens served from the prefix cache, at every admission",
       [](const ReportPolicy& p) { return Percent(p.Get("prefix_hit_rate")); }},
      {"prefix reuse", "the same at first admissions only (no re-counting after preemptions)",
       [](const ReportPolicy& p) { return Percent(p.Get("prefix_reuse_ratio")); }},
      {"rejected", "requests that can never run: longer than max_model_len, or than the memory",
       [](const ReportPolicy& p) { return Grouped(p.Get("requests_rejected")); }},
      {"preemptions", "sequences preempted (recompute or swap)",
       [](const ReportPolicy& p) { return Grouped(p.Get("preemptions")); }},
      {"swap", "bytes swapped between GPU and host",
       [](const ReportPolicy& p) { return Bytes(p.Get("swap_bytes")); }},
      {"copy", "bytes copied (copy-on-write, reallocation)",
       [](const ReportPolicy& p) { return Bytes(p.Get("copy_bytes")); }},
  };
  if (summary.policies.empty()) {
    return "<p class=\"note\">summary.json lists no policies.</p>\n";
  }
  std::string out =
      "<div class=\"table-wrap\"><table class=\"summary\" id=\"summary-table\">\n<thead><tr>"
      "<th class=\"policy\">policy</th>";
  for (const Column& c : kColumns) {
    absl::StrAppend(&out, "<th title=\"", c.help, "\">", c.header, "</th>");
  }
  out += "</tr></thead>\n<tbody>\n";
  for (const ReportPolicy& p : summary.policies) {
    absl::StrAppend(&out, "<tr><td class=\"policy\">", Swatch(order.IndexOf(p.name)),
                    HtmlEscape(p.name), "</td>");
    for (const Column& c : kColumns) absl::StrAppend(&out, "<td>", c.cell(p), "</td>");
    out += "</tr>\n";
  }
  out += "</tbody></table></div>\n";
  return out;
}

// Empirical CDF in percent, thinned to kMaxCdfPoints quantiles; drawn as steps when small.
internal::ChartSeries CdfSeries(const std::string& policy, int color, std::vector<double> values) {
  internal::ChartSeries s{.name = policy, .color_index = color};
  values.erase(
      std::remove_if(values.begin(), values.end(), [](double v) { return !std::isfinite(v); }),
      values.end());
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  if (n == 0) return s;
  const auto pct = [n](size_t rank) { return 100.0 * static_cast<double>(rank) / n; };
  if (n <= kMaxCdfPoints) {
    for (size_t i = 0; i < n; ++i) {
      s.x.push_back(values[i]), s.y.push_back(pct(i));
      s.x.push_back(values[i]), s.y.push_back(pct(i + 1));
    }
  } else {
    for (size_t k = 0; k < kMaxCdfPoints; ++k) {
      const size_t i = k * (n - 1) / (kMaxCdfPoints - 1);
      s.x.push_back(values[i]), s.y.push_back(pct(i + 1));
    }
  }
  return s;
}

std::string CdfChart(std::string id, std::string title, std::string what,
                     const std::vector<LatencySeries>& latencies, bool tpot, PolicyOrder& order,
                     const std::string& empty_message) {
  internal::LineChart chart{.id = std::move(id), .title = std::move(title)};
  double lo = INFINITY, hi = 0;
  for (const LatencySeries& l : latencies) {
    const std::vector<double>& v = tpot ? l.tpot_s : l.ttft_s;
    for (double x : v) {
      if (x > 0) lo = std::min(lo, x), hi = std::max(hi, x);
    }
    chart.series.push_back(CdfSeries(l.policy, order.IndexOf(l.policy), v));
  }
  // Latencies under memory pressure span orders of magnitude: a log axis keeps both ends legible.
  chart.x_log = std::isfinite(lo) && hi / lo >= 10;
  chart.x_label = absl::StrCat(what, " (s", chart.x_log ? ", log scale" : "", ")");
  chart.y_label = "requests (%)";
  chart.y_min = 0, chart.y_max = 100;
  chart.empty_message = empty_message;
  return internal::RenderLineChart(chart);
}

enum class TimelineValue { kUtilization, kRunning, kWaiting };

std::string TimelineChart(std::string id, std::string title, std::string y_label,
                          const std::vector<TimelineSeries>& timelines, TimelineValue value,
                          PolicyOrder& order, const std::string& empty_message) {
  internal::LineChart chart{.id = std::move(id),
                            .title = std::move(title),
                            .x_label = "simulated time (s)",
                            .y_label = std::move(y_label)};
  chart.x_min = 0;
  chart.empty_message = empty_message;
  if (value == TimelineValue::kUtilization) chart.y_min = 0, chart.y_max = 100;
  for (const TimelineSeries& t : timelines) {
    internal::ChartSeries s{.name = t.policy, .color_index = order.IndexOf(t.policy)};
    for (size_t i = 0; i < t.time_s.size(); ++i) {
      double y = 0;
      switch (value) {
        case TimelineValue::kUtilization:
          if (!(t.capacity_tokens[i] > 0)) continue;
          y = 100.0 * t.used_tokens[i] / t.capacity_tokens[i];
          break;
        case TimelineValue::kRunning:
          y = t.running[i];
          break;
        case TimelineValue::kWaiting:
          if (t.waiting.empty()) continue;
          y = t.waiting[i] + (t.swapped.empty() ? 0 : t.swapped[i]);
          break;
      }
      s.x.push_back(t.time_s[i]);
      s.y.push_back(y);
    }
    chart.series.push_back(std::move(s));
  }
  return internal::RenderLineChart(chart);
}

std::string WasteChart(const ReportSummary& summary) {
  internal::StackedBarChart chart{
      .id = "waste-chart",
      .title = "Where the KV capacity goes (time-weighted mean per policy)",
      .x_label = "share of KV capacity (%)",
      .segments = {{"used by tokens", kUsedColor},
                   {"internal fragmentation", kInternalColor},
                   {"reserved but unused", kReservedColor},
                   {"buddy rounding", kRoundingColor},
                   {"external fragmentation", kExternalColor},
                   {"free", kFreeColor}},
      .x_max = 1,
      .value_scale = 100,
      .value_unit = "%",
      .empty_message = "summary.json lists no policies"};
  for (const ReportPolicy& p : summary.policies) {
    const auto get = [&](const char* key) {
      const double v = p.Get(key);
      return std::isfinite(v) && v > 0 ? v : 0.0;
    };
    std::vector<double> v = {get("kv_utilization_mean"), get("internal_fragmentation_mean"),
                             get("reserved_unused_mean"), get("rounding_mean"),
                             get("external_fragmentation_mean")};
    double sum = 0;
    for (double x : v) sum += x;
    v.push_back(std::max(0.0, 1.0 - sum));
    chart.categories.push_back(p.name);
    chart.values.push_back(std::move(v));
  }
  return internal::RenderStackedBarChart(chart);
}

// Reads an optional data file: its text, std::nullopt when absent, or the read error.
absl::StatusOr<std::optional<std::string>> ReadOptional(const std::string& path) {
  absl::StatusOr<std::string> text = internal::ReadWholeFile(path);
  if (absl::IsNotFound(text.status())) return std::optional<std::string>();
  if (!text.ok()) return text.status();
  return std::optional<std::string>(*std::move(text));
}

}  // namespace

absl::StatusOr<std::string> RenderReport(const std::string& dir, const ReportOptions& options) {
  const std::string summary_path = JoinPath(dir, "summary.json");
  absl::StatusOr<std::string> summary_text = internal::ReadWholeFile(summary_path);
  if (absl::IsNotFound(summary_text.status())) {
    return absl::NotFoundError(absl::StrCat(
        "no summary.json in '", dir,
        "'; pass the directory that `pagedkv simulate --out DIR` wrote (it holds summary.json, "
        "timeline.csv and requests.csv)"));
  }
  if (!summary_text.ok()) return summary_text.status();
  PAGEDKV_ASSIGN_OR_RETURN(ReportSummary summary,
                           internal::ParseReportSummary(*summary_text, summary_path));

  const std::string timeline_path = JoinPath(dir, "timeline.csv");
  PAGEDKV_ASSIGN_OR_RETURN(std::optional<std::string> timeline_text, ReadOptional(timeline_path));
  std::vector<TimelineSeries> timelines;
  if (timeline_text) {
    PAGEDKV_ASSIGN_OR_RETURN(timelines, internal::ParseTimelineCsv(*timeline_text, timeline_path));
  }
  const std::string requests_path = JoinPath(dir, "requests.csv");
  PAGEDKV_ASSIGN_OR_RETURN(std::optional<std::string> requests_text, ReadOptional(requests_path));
  std::vector<LatencySeries> latencies;
  if (requests_text) {
    PAGEDKV_ASSIGN_OR_RETURN(latencies, internal::ParseRequestsCsv(*requests_text, requests_path));
  }

  PolicyOrder order;
  for (const ReportPolicy& p : summary.policies) order.IndexOf(p.name);

  const std::string title =
      !options.title.empty() ? options.title
                             : absl::StrCat("pagedkv simulation report: ",
                                            summary.workload_name.empty() ? "(unnamed workload)"
                                                                          : summary.workload_name);
  std::string html = absl::StrCat(
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
      // Nothing may be fetched: the report works offline and leaks nothing when opened.
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
      "style-src 'unsafe-inline'\">\n",
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>",
      HtmlEscape(title), "</title>\n<style>", kStyle, "</style>\n</head>\n<body>\n<h1>",
      HtmlEscape(title), "</h1>\n");

  // What was simulated.
  std::string lead = "Workload ";
  absl::StrAppend(&lead, "<b>",
                  summary.workload_name.empty() ? "(unnamed)" : HtmlEscape(summary.workload_name),
                  "</b>");
  if (summary.workload_num_requests >= 0) {
    absl::StrAppend(&lead, ", ", Grouped(summary.workload_num_requests), " requests");
  }
  if (!summary.workload_source.empty()) {
    absl::StrAppend(&lead, ", from <code>", HtmlEscape(summary.workload_source), "</code>");
  }
  absl::StrAppend(&html, "<p class=\"lead\">", lead, ".</p>\n");
  if (!summary.context.empty()) {
    html += "<dl class=\"context\">\n";
    for (const auto& [key, value] : summary.context) {
      absl::StrAppend(&html, "<dt>", HtmlEscape(key), "</dt><dd>", HtmlEscape(value), "</dd>\n");
    }
    html += "</dl>\n";
  }

  html += "<h2 id=\"section-summary\">Summary</h2>\n";
  html += SummaryTable(summary, order);

  const std::string no_timeline =
      timeline_text ? "timeline.csv has no rows" : "timeline.csv not found: no timeline";
  const std::string no_requests =
      requests_text ? "requests.csv has no finished requests" : "requests.csv not found";
  if (!timeline_text) {
    absl::StrAppend(&html, "<p class=\"note\">", HtmlEscape(timeline_path),
                    " was not found: the plots over time are empty.</p>\n");
  }
  if (!requests_text) {
    absl::StrAppend(&html, "<p class=\"note\">", HtmlEscape(requests_path),
                    " was not found: the latency plots are empty.</p>\n");
  }

  html +=
      "<h2 id=\"section-utilization\">KV-cache utilization over time</h2>\n<p "
      "class=\"explain\">Tokens "
      "actually stored in the KV cache as a share of its capacity, per policy. Higher means the "
      "same memory holds more of the running batch; a policy that reserves memory it does not "
      "fill stays low even when no request can be admitted.</p>\n";
  html +=
      TimelineChart("utilization-chart", "KV-cache utilization (tokens stored / capacity)",
                    "utilization (%)", timelines, TimelineValue::kUtilization, order, no_timeline);

  html +=
      "<h2 id=\"section-waste\">Waste breakdown</h2>\n<p class=\"explain\">The KV capacity split "
      "into "
      "slots holding tokens, internal fragmentation (allocated slots not holding a token, such as "
      "the unfilled tail of a page), memory reserved for tokens not generated yet, the rounding "
      "of a buddy allocator's power-of-two blocks, external fragmentation (free memory in holes "
      "too small for a contiguous allocation), and what remains free. Time-weighted means over "
      "the run, from summary.json.</p>\n";
  html += WasteChart(summary);

  html +=
      "<h2 id=\"section-batch\">Batch size over time</h2>\n<p class=\"explain\">Sequences in the "
      "running "
      "batch at each step. Less waste lets more sequences run at once, which is where the "
      "throughput of a memory-bound decode comes from.</p>\n";
  html += TimelineChart("batch-chart", "Running batch size (sequences per step)", "sequences",
                        timelines, TimelineValue::kRunning, order, no_timeline);

  const bool has_waiting = std::any_of(timelines.begin(), timelines.end(),
                                       [](const TimelineSeries& t) { return !t.waiting.empty(); });
  if (has_waiting) {
    html +=
        "<h2 id=\"section-queue\">Queue over time</h2>\n<p class=\"explain\">Requests waiting for "
        "admission plus sequences swapped out to host memory: the backlog that memory pressure "
        "creates.</p>\n";
    html += TimelineChart("queue-chart", "Waiting + swapped requests", "requests", timelines,
                          TimelineValue::kWaiting, order, no_timeline);
  }

  html +=
      "<h2 id=\"section-latency\">Latency distributions</h2>\n<p class=\"explain\">Cumulative "
      "distributions over requests: the share of requests (y) whose latency is at most x. "
      "Time to first token (TTFT) includes queueing; time per output token (TPOT) is the mean gap "
      "between later tokens. Curves further left are better.</p>\n";
  html += CdfChart("ttft-chart", "Time to first token (CDF)", "time to first token", latencies,
                   /*tpot=*/false, order, no_requests);
  html += CdfChart("tpot-chart", "Time per output token (CDF)", "time per output token", latencies,
                   /*tpot=*/true, order, no_requests);
  std::string incomplete;
  for (const LatencySeries& l : latencies) {
    const int64_t missing = l.num_requests - static_cast<int64_t>(l.ttft_s.size());
    if (missing > 0) {
      absl::StrAppend(&incomplete, incomplete.empty() ? "" : ", ", HtmlEscape(l.policy), ": ",
                      missing);
    }
  }
  if (!incomplete.empty()) {
    absl::StrAppend(&html, "<p class=\"note\">Requests without a first token (not in the CDFs): ",
                    incomplete, ".</p>\n");
  }

  html += internal::ClusterSection(summary,
                                   [&order](const std::string& run) { return order.IndexOf(run); });

  absl::StrAppend(&html,
                  "<footer>Written by <code>pagedkv report</code> from summary.json, timeline.csv "
                  "and requests.csv in <code>",
                  HtmlEscape(dir),
                  "</code>. Rebuild it with <code>pagedkv report DIR</code>; the page needs no "
                  "network and runs no scripts.</footer>\n</body>\n</html>\n");
  return html;
}

absl::StatusOr<std::string> WriteReport(const std::string& dir, const ReportOptions& options) {
  PAGEDKV_ASSIGN_OR_RETURN(std::string html, RenderReport(dir, options));
  const std::string path =
      options.out_path.empty() ? JoinPath(dir, "report.html") : options.out_path;
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  std::error_code ec;
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  if (ec) {
    return absl::FailedPreconditionError(absl::StrCat("cannot create directory '", parent.string(),
                                                      "' for the report: ", ec.message()));
  }
  // Written to a temporary name and renamed, so a failed write never leaves half a report.
  const std::string tmp_path = path + ".tmp";
  {
    std::ofstream out(tmp_path, std::ios::binary | std::ios::trunc);
    out << html;
    out.close();
    if (!out) {
      std::remove(tmp_path.c_str());
      return absl::FailedPreconditionError(
          absl::StrCat("cannot write '", tmp_path, "'; check that the directory is writable"));
    }
  }
  std::filesystem::rename(tmp_path, path, ec);
  if (ec) {
    std::remove(tmp_path.c_str());
    return absl::FailedPreconditionError(
        absl::StrCat("cannot rename '", tmp_path, "' to '", path, "': ", ec.message()));
  }
  return path;
}

}  // namespace pagedkv
