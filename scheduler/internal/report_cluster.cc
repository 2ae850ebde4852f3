#include "internal/report_cluster.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "internal/report_format.h"
#include "internal/report_svg.h"

namespace pagedkv::internal {
namespace {

double Or0(double v) { return std::isfinite(v) && v > 0 ? v : 0.0; }

std::string Swatch(int index) {
  return absl::StrCat("<span class=\"swatch\" style=\"background:", SeriesColor(index),
                      "\"></span>");
}

// Where the prompt tokens of each run came from, as shares of the prompt tokens looked up.
std::string SourceChart(const std::vector<const ReportPolicy*>& runs) {
  StackedBarChart chart{
      .id = "cluster-chart",
      .title = "Where prompt tokens came from (share of prompt tokens looked up at admission)",
      .x_label = "share of prompt tokens (%)",
      .segments = {{"a replica's prefix cache", "#009E73"},
                   {"the remote tier", "#56B4E9"},
                   {"computed (prefill)", "#D55E00"}},
      .x_max = 1,
      .value_scale = 100,
      .value_unit = "%",
      .empty_message = "no cluster runs"};
  for (const ReportPolicy* p : runs) {
    const double hit = std::min(Or0(p->Get("prefix_hit_rate")), 1.0);
    const double remote = std::min(Or0(p->Get("remote_hit_rate")), hit);
    chart.categories.push_back(p->name);
    chart.values.push_back({hit - remote, remote, 1.0 - hit});
  }
  return RenderStackedBarChart(chart);
}

// Replica i of n: a ramp from dark to light blue, so that every replica of a large cluster gets
// its own shade (the series palette repeats after seven colors).
std::string ReplicaColor(size_t i, size_t n) {
  const double t = n > 1 ? static_cast<double>(i) / static_cast<double>(n - 1) : 0.0;
  const auto mix = [t](int dark, int light) {
    return static_cast<int>(std::lround(dark + (light - dark) * t));
  };
  return absl::StrFormat("#%02X%02X%02X", mix(0x08, 0xC6), mix(0x30, 0xDB), mix(0x6B, 0xEF));
}

// Each router's spread: the share of the requests each replica received.
std::string BalanceChart(const std::vector<const ReportPolicy*>& runs) {
  StackedBarChart chart{.id = "cluster-balance-chart",
                        .title = "Requests routed to each replica (share of the run's requests)",
                        .x_label = "share of requests (%)",
                        .x_max = 1,
                        .value_scale = 100,
                        .value_unit = "%",
                        .empty_message = "no cluster runs"};
  size_t most = 0;
  for (const ReportPolicy* p : runs) most = std::max(most, p->replicas.size());
  for (size_t i = 0; i < most; ++i) {
    chart.segments.push_back({absl::StrCat("replica ", i), ReplicaColor(i, most)});
  }
  for (const ReportPolicy* p : runs) {
    double total = 0;
    for (const ReportNumbers& r : p->replicas) total += Or0(r.Get("requests_total"));
    std::vector<double> shares(most, 0.0);
    for (size_t i = 0; i < p->replicas.size(); ++i) {
      shares[i] = total > 0 ? Or0(p->replicas[i].Get("requests_total")) / total : 0.0;
    }
    chart.categories.push_back(p->name);
    chart.values.push_back(std::move(shares));
  }
  return RenderStackedBarChart(chart);
}

std::string RunTable(const std::vector<const ReportPolicy*>& runs,
                     const std::function<int(const std::string&)>& color_of) {
  std::string out =
      "<div class=\"table-wrap\"><table class=\"summary\" id=\"cluster-table\">\n<thead><tr>"
      "<th class=\"policy\">run</th><th>replicas</th>"
      "<th title=\"prompt tokens served from cache, at every admission\">prefix hit</th>"
      "<th title=\"the same at first admissions only\">prefix reuse</th>"
      "<th title=\"prompt tokens loaded from the shared remote tier\">remote hit</th>"
      "<th title=\"prefill tokens computed, recomputation included\">prefill tokens</th>"
      "<th>TTFT p50</th><th>TTFT p99</th>"
      "<th title=\"fewest / most requests a replica received\">requests per replica</th>"
      "<th title=\"least / most simulated time a replica spent in steps\">busy per replica</th>"
      "</tr></thead>\n<tbody>\n";
  for (const ReportPolicy* p : runs) {
    double lo_req = INFINITY, hi_req = 0, lo_busy = INFINITY, hi_busy = 0;
    for (const ReportNumbers& r : p->replicas) {
      lo_req = std::min(lo_req, Or0(r.Get("requests_total")));
      hi_req = std::max(hi_req, Or0(r.Get("requests_total")));
      lo_busy = std::min(lo_busy, Or0(r.Get("busy_s")));
      hi_busy = std::max(hi_busy, Or0(r.Get("busy_s")));
    }
    absl::StrAppend(
        &out, "<tr><td class=\"policy\">", Swatch(color_of(p->name)), HtmlEscape(p->name),
        "</td><td>", p->replicas.size(), "</td><td>", Percent(p->Get("prefix_hit_rate")),
        "</td><td>", Percent(p->Get("prefix_reuse_ratio")), "</td><td>",
        Percent(p->Get("remote_hit_rate")), "</td><td>", Grouped(p->Get("prompt_tokens_computed")),
        "</td><td>", Seconds(p->Get("ttft_p50_s")), "</td><td>", Seconds(p->Get("ttft_p99_s")),
        "</td><td>", Grouped(lo_req), " / ", Grouped(hi_req), "</td><td>", Seconds(lo_busy), " / ",
        Seconds(hi_busy), "</td></tr>\n");
  }
  out += "</tbody></table></div>\n";
  return out;
}

std::string ReplicaTable(const ReportPolicy& p) {
  std::string out = absl::StrCat(
      "<details><summary>Replicas of ", HtmlEscape(p.name),
      "</summary>\n<div class=\"table-wrap\"><table class=\"summary\">\n<thead><tr><th>replica</th>"
      "<th>requests</th><th>completed</th><th>TTFT p50</th><th>TTFT p99</th><th>KV used</th>"
      "<th>prefix hit</th><th>prefix reuse</th><th>remote hit</th><th>prefill tokens</th>"
      "<th>preemptions</th><th>busy</th></tr></thead>\n<tbody>\n");
  for (size_t i = 0; i < p.replicas.size(); ++i) {
    const ReportNumbers& r = p.replicas[i];
    absl::StrAppend(
        &out, "<tr><td>", i, "</td><td>", Grouped(r.Get("requests_total")), "</td><td>",
        Grouped(r.Get("requests_completed")), "</td><td>", Seconds(r.Get("ttft_p50_s")),
        "</td><td>", Seconds(r.Get("ttft_p99_s")), "</td><td>",
        Percent(r.Get("kv_utilization_mean")), "</td><td>", Percent(r.Get("prefix_hit_rate")),
        "</td><td>", Percent(r.Get("prefix_reuse_ratio")), "</td><td>",
        Percent(r.Get("remote_hit_rate")), "</td><td>", Grouped(r.Get("prompt_tokens_computed")),
        "</td><td>", Grouped(r.Get("preemptions")), "</td><td>", Seconds(r.Get("busy_s")),
        "</td></tr>\n");
  }
  out += "</tbody></table></div></details>\n";
  return out;
}

}  // namespace

std::string ClusterSection(const ReportSummary& summary,
                           const std::function<int(const std::string& run)>& color_of) {
  std::vector<const ReportPolicy*> runs;
  for (const ReportPolicy& p : summary.policies) {
    if (!p.replicas.empty()) runs.push_back(&p);
  }
  if (runs.empty()) return "";
  std::string html =
      "<h2 id=\"section-cluster\">Cluster: replicas behind a router</h2>\n<p class=\"explain\">"
      "Each run spreads the workload over several replicas (one GPU each, its own prefix cache). "
      "A request whose prompt starts with pages a replica already holds skips computing them. "
      "Round-robin and least-loaded routing ignore where those pages are, so the turns of one "
      "conversation land on replicas that never saw its prefix; prefix-aware routing sends each "
      "request to the replica holding the longest cached prefix of its prompt (within a bound on "
      "load imbalance), so more of each prompt comes from memory, fewer prefill tokens are "
      "computed and the first token comes sooner. With a shared remote tier, prefixes computed "
      "anywhere can be loaded instead of recomputed, at the tier's latency and bandwidth.</p>\n";
  html += SourceChart(runs);
  html += RunTable(runs, color_of);
  html +=
      "<p class=\"explain\">How evenly each router spread the requests. Prefix-aware routing "
      "trades some balance for cache hits; its balance bound keeps a popular prefix from "
      "piling every request onto one replica.</p>\n";
  html += BalanceChart(runs);
  for (const ReportPolicy* p : runs) html += ReplicaTable(*p);
  return html;
}

}  // namespace pagedkv::internal
