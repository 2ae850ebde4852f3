#include "pagedkv/scheduler/report.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagedkv {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string TestData(const std::string& name) {
  return std::string(PAGEDKV_TEST_DATA_DIR) + "/" + name;
}

// A fresh directory under the build tree for files a test writes.
std::string FreshDir(const std::string& name) {
  const std::filesystem::path dir =
      std::filesystem::path(PAGEDKV_TEST_OUTPUT_DIR) / "report_test" / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

int Count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) {
    ++n;
  }
  return n;
}

// The <svg ...>...</svg> element with the given id ("" when absent).
std::string Svg(const std::string& html, const std::string& id) {
  const size_t at = html.find("id=\"" + id + "\"");
  if (at == std::string::npos) return "";
  const size_t begin = html.rfind("<svg", at);
  const size_t end = html.find("</svg>", at);
  if (begin == std::string::npos || end == std::string::npos) return "";
  return html.substr(begin, end + 6 - begin);
}

// The values of attribute `name` in `text`, in order. Scanned by hand: std::regex recurses per
// character and overflows the stack on the long coordinate lists of big charts.
std::vector<std::string> AttributeValues(const std::string& text, const std::string& name) {
  std::vector<std::string> out;
  const std::string key = name + "=\"";
  for (size_t pos = text.find(key); pos != std::string::npos; pos = text.find(key, pos)) {
    const size_t begin = pos + key.size();
    const size_t end = text.find('"', begin);
    if (end == std::string::npos) break;
    out.push_back(text.substr(begin, end - begin));
    pos = end;
  }
  return out;
}

// The `points` attribute values of the chart's polylines and polygons, in order.
std::vector<std::string> Polylines(const std::string& svg) {
  return AttributeValues(svg, " points");
}

std::string RenderOrDie(const std::string& dir, const ReportOptions& options = {}) {
  absl::StatusOr<std::string> html = RenderReport(dir, options);
  EXPECT_TRUE(html.ok()) << html.status();
  return html.ok() ? *html : "";
}

TEST(ReportTest, BasicReportHasEveryPlotWithOneSeriesPerPolicy) {
  const std::string html = RenderOrDie(TestData("report_basic"));
  ASSERT_THAT(html, HasSubstr("<!DOCTYPE html>"));
  EXPECT_EQ(Count(html, "<svg "), 6) << "utilization, waste, batch, queue, TTFT, TPOT";
  for (const char* id :
       {"utilization-chart", "batch-chart", "queue-chart", "ttft-chart", "tpot-chart"}) {
    const std::string svg = Svg(html, id);
    ASSERT_FALSE(svg.empty()) << id;
    EXPECT_EQ(Count(svg, "class=\"series-line\""), 3) << id;
    EXPECT_EQ(Count(svg, "class=\"legend-item\""), 3) << id;
    for (const char* policy : {"paged", "contiguous-max", "orca-pow2"}) {
      EXPECT_THAT(svg, HasSubstr(std::string("data-series=\"") + policy + "\"")) << id;
    }
    EXPECT_THAT(svg, HasSubstr("class=\"axis x-axis\"")) << id;
    EXPECT_THAT(svg, HasSubstr("class=\"axis y-axis\"")) << id;
  }
  EXPECT_THAT(Svg(html, "utilization-chart"), HasSubstr(">utilization (%)</text>"));
  EXPECT_THAT(Svg(html, "utilization-chart"), HasSubstr(">simulated time (s)</text>"));
  EXPECT_THAT(Svg(html, "batch-chart"), HasSubstr(">sequences</text>"));
  EXPECT_THAT(Svg(html, "ttft-chart"), HasSubstr(">requests (%)</text>"));
  EXPECT_THAT(Svg(html, "tpot-chart"), HasSubstr(">time per output token (s"));
  // The same policy has the same color in every chart (palette order = summary order).
  EXPECT_EQ(Count(html, "stroke=\"#0072B2\" stroke-width=\"1.8\""), 5);
}

TEST(ReportTest, SummaryTableHasOneRowPerPolicyAndTheRunContext) {
  const std::string html = RenderOrDie(TestData("report_basic"));
  EXPECT_EQ(Count(html, "<tr><td class=\"policy\">"), 3);
  EXPECT_THAT(html, HasSubstr("<dt>model</dt><dd>llama-2-7b</dd>"));
  EXPECT_THAT(html, HasSubstr("<dt>block_size</dt><dd>16</dd>"));
  EXPECT_THAT(html, HasSubstr("<b>synthetic-small</b>, 24 requests"));
  EXPECT_THAT(html, HasSubstr("<td>82.0%</td>"));    // paged kv_utilization_mean
  EXPECT_THAT(html, HasSubstr("<td>3.0 GiB</td>"));  // orca-pow2 copy_bytes
  EXPECT_THAT(html, HasSubstr("<title>pagedkv simulation report: synthetic-small</title>"));
  // One request of contiguous-max never started.
  EXPECT_THAT(html,
              HasSubstr("Requests without a first token (not in the CDFs): contiguous-max: 1"));
}

TEST(ReportTest, WasteBreakdownStacksEachPolicysShares) {
  const std::string svg = Svg(RenderOrDie(TestData("report_basic")), "waste-chart");
  ASSERT_FALSE(svg.empty());
  EXPECT_EQ(Count(svg, "<g class=\"bar\""), 3);
  EXPECT_EQ(Count(svg, "class=\"legend-item\""), 6);  // used .. buddy rounding .. free
  // paged: used, internal, free (its reserved and external shares are 0 and not drawn).
  const size_t paged = svg.find("data-category=\"paged\"");
  const size_t cmax = svg.find("data-category=\"contiguous-max\"");
  ASSERT_NE(paged, std::string::npos);
  ASSERT_NE(cmax, std::string::npos);
  const std::string paged_bar = svg.substr(paged, cmax - paged);
  EXPECT_EQ(Count(paged_bar, "class=\"segment\""), 3);
  EXPECT_THAT(paged_bar, Not(HasSubstr("data-segment=\"reserved but unused\"")));
  const std::string cmax_bar = svg.substr(cmax, svg.find("</g>", cmax) - cmax);
  EXPECT_THAT(cmax_bar, HasSubstr("data-segment=\"reserved but unused\""));
  EXPECT_THAT(cmax_bar, HasSubstr("data-segment=\"external fragmentation\""));
  EXPECT_THAT(cmax_bar, HasSubstr("reserved but unused 66.0%"));
}

// A cluster run: runs are named policy/router in every plot and table, and the cluster section
// shows where prompt tokens came from and how the requests were spread, with a table per run.
TEST(ReportTest, ClusterSectionExplainsTheRouters) {
  const std::string html = RenderOrDie(TestData("report_cluster"));
  EXPECT_THAT(html, HasSubstr("id=\"section-cluster\""));
  EXPECT_THAT(html, HasSubstr("id=\"cluster-table\""));
  // The timeline and latency plots have one series per run, not one per policy.
  EXPECT_EQ(Count(Svg(html, "utilization-chart"), "<polyline class=\"series-line\""), 2);
  EXPECT_EQ(Count(Svg(html, "ttft-chart"), "<polyline class=\"series-line\""), 2);
  EXPECT_THAT(html, HasSubstr("paged/prefix-aware"));
  const std::string sources = Svg(html, "cluster-chart");
  ASSERT_FALSE(sources.empty());
  EXPECT_EQ(Count(sources, "<g class=\"bar\""), 2);
  // prefix-aware: 62.5% local cache, 12.5% remote tier, 25% computed.
  EXPECT_THAT(sources, HasSubstr("a replica&#39;s prefix cache 62.5%"));
  EXPECT_THAT(sources, HasSubstr("the remote tier 12.5%"));
  EXPECT_THAT(sources, HasSubstr("computed (prefill) 25.0%"));
  const std::string balance = Svg(html, "cluster-balance-chart");
  EXPECT_THAT(balance, HasSubstr("replica 0 75.0%"));  // prefix-aware sent 3 of 4 to replica 0
  EXPECT_EQ(Count(html, "<details>"), 2);
  EXPECT_THAT(html, HasSubstr("<td>1 / 3</td>"));  // fewest / most requests per replica
  // A one-replica report has no cluster section.
  EXPECT_THAT(RenderOrDie(TestData("report_basic")), Not(HasSubstr("section-cluster")));
}

TEST(ReportTest, CoordinatesMapDataExactly) {
  // report_escape: policy 1 uses 10% then 50% of capacity at t = 0 and 1 s. The plot spans
  // x 72..736 and y 276 (0%) .. 36 (100%).
  const std::string html = RenderOrDie(TestData("report_escape"));
  std::vector<std::string> lines = Polylines(Svg(html, "utilization-chart"));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "72.0,252.0 736.0,156.0");
  EXPECT_EQ(lines[1], "72.0,264.0 736.0,216.0");
  // Waste bars: label column 16 + 7 * 13 characters = 107, plot width 760 - 107 - 24 = 629.
  const std::string waste = Svg(html, "waste-chart");
  EXPECT_THAT(waste, HasSubstr("x=\"107.0\" y=\"44.0\" width=\"314.5\""));  // used 50%
  EXPECT_THAT(waste, HasSubstr("x=\"421.5\" y=\"44.0\" width=\"62.9\""));   // internal 10%
  EXPECT_THAT(waste, HasSubstr("x=\"484.4\" y=\"44.0\" width=\"251.6\""));  // free 40%
  // TTFT CDF of two requests as steps: 0% -> 50% at 0.5 s, 50% -> 100% at 0.7 s, linear axis.
  lines = Polylines(Svg(html, "ttft-chart"));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(Count(lines[0], ","), 4);
  EXPECT_THAT(Svg(html, "ttft-chart"), HasSubstr(">time to first token (s)</text>"));
}

TEST(ReportTest, EscapesEveryNameFromTheDataFiles) {
  const std::string html = RenderOrDie(TestData("report_escape"));
  EXPECT_THAT(html, Not(HasSubstr("<script")));
  EXPECT_THAT(html, Not(HasSubstr("paged<16>")));
  EXPECT_THAT(html, HasSubstr("&lt;script&gt;alert(&#39;w&#39;)&lt;/script&gt;"));
  EXPECT_THAT(html, HasSubstr("data-series=\"paged&lt;16&gt;&amp;&quot;x&quot;\""));
  EXPECT_THAT(html, HasSubstr("data-category=\"paged&lt;16&gt;&amp;&quot;x&quot;\""));
  EXPECT_THAT(html, HasSubstr("<code>a&amp;b.csv</code>"));
  EXPECT_THAT(html, HasSubstr("<dd>m&lt;1&gt;</dd>"));
}

TEST(ReportTest, IsSelfContained) {
  for (const char* dir : {"report_basic", "report_escape", "report_summary_only"}) {
    const std::string html = RenderOrDie(TestData(dir));
    EXPECT_THAT(html, Not(HasSubstr("<script"))) << dir;
    EXPECT_THAT(html, Not(HasSubstr("<link"))) << dir;
    EXPECT_THAT(html, Not(HasSubstr("src="))) << dir;
    EXPECT_THAT(html, Not(HasSubstr("href="))) << dir;
    EXPECT_THAT(html, Not(HasSubstr("url("))) << dir;
    EXPECT_THAT(html, Not(HasSubstr("@import"))) << dir;
    EXPECT_THAT(html, HasSubstr("Content-Security-Policy\" content=\"default-src 'none'")) << dir;
    // The only URL is the SVG namespace.
    EXPECT_EQ(Count(html, "https://"), 0) << dir;
    EXPECT_EQ(Count(html, "http://"), Count(html, "xmlns=\"http://www.w3.org/2000/svg\"")) << dir;
    // Element ids are unique (aria-labelledby and in-page links rely on them).
    std::set<std::string> ids;
    for (const std::string& id : AttributeValues(html, " id")) {
      EXPECT_TRUE(ids.insert(id).second) << dir << ": duplicate id " << id;
    }
    // Every coordinate list is finite numbers only (no nan or inf).
    for (const std::string& points : Polylines(html)) {
      EXPECT_EQ(points.find_first_not_of("-0123456789., "), std::string::npos) << points;
      EXPECT_FALSE(points.empty());
    }
  }
}

TEST(ReportTest, MissingCsvFilesGiveEmptyPlotsAndANote) {
  const std::string html = RenderOrDie(TestData("report_summary_only"));
  EXPECT_THAT(html, HasSubstr("timeline.csv was not found"));
  EXPECT_THAT(html, HasSubstr("requests.csv was not found"));
  EXPECT_THAT(Svg(html, "utilization-chart"), HasSubstr("class=\"empty\""));
  EXPECT_THAT(Svg(html, "ttft-chart"), HasSubstr("requests.csv not found"));
  EXPECT_EQ(Count(Svg(html, "waste-chart"), "<g class=\"bar\""), 3);
  EXPECT_EQ(Count(html, "<tr><td class=\"policy\">"), 3);
}

TEST(ReportTest, MissingSummaryIsNotFound) {
  absl::StatusOr<std::string> html = RenderReport(TestData("no_such_dir"));
  ASSERT_FALSE(html.ok());
  EXPECT_EQ(html.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(html.status().message()), HasSubstr("no summary.json in"));
  EXPECT_THAT(std::string(html.status().message()), HasSubstr("no_such_dir"));
}

struct BadCase {
  const char* dir;
  std::vector<std::string> message_parts;
};

TEST(ReportTest, MalformedFilesNameFileAndLine) {
  const BadCase cases[] = {
      {"report_bad_json", {"report_bad_json/summary.json:4: not valid JSON"}},
      {"report_bad_timeline", {"report_bad_timeline/timeline.csv:3:", "column running", "'two'"}},
      {"report_bad_requests",
       {"report_bad_requests/requests.csv:5:", "expected 4 fields as in the header, got 3"}},
      {"report_bad_field", {"summary.json: policies[0].ttft_p50_s is \"fast\", expected a number"}},
  };
  for (const BadCase& c : cases) {
    absl::StatusOr<std::string> html = RenderReport(TestData(c.dir));
    ASSERT_FALSE(html.ok()) << c.dir;
    EXPECT_EQ(html.status().code(), absl::StatusCode::kInvalidArgument) << c.dir;
    for (const std::string& part : c.message_parts) {
      EXPECT_THAT(std::string(html.status().message()), HasSubstr(part)) << c.dir;
    }
  }
}

TEST(ReportTest, CsvHeaderMustNameRequiredColumns) {
  const std::string dir = FreshDir("bad_header");
  WriteText(dir + "/summary.json", "{\"policies\": [{\"policy\": \"paged\"}]}\n");
  WriteText(dir + "/timeline.csv", "policy,time_s,running\npaged,0,1\n");
  absl::StatusOr<std::string> html = RenderReport(dir);
  ASSERT_FALSE(html.ok());
  EXPECT_THAT(std::string(html.status().message()),
              HasSubstr("timeline.csv:1: header lacks column(s) capacity_tokens, used_tokens"));
  WriteText(dir + "/timeline.csv", "");
  html = RenderReport(dir);
  ASSERT_FALSE(html.ok());
  EXPECT_THAT(std::string(html.status().message()), HasSubstr("timeline.csv:1: no header"));
}

TEST(ReportTest, EmptyPolicyListStillRenders) {
  const std::string dir = FreshDir("no_policies");
  WriteText(dir + "/summary.json", "{\"workload\": {\"name\": \"w\"}, \"policies\": []}\n");
  const std::string html = RenderOrDie(dir);
  EXPECT_THAT(html, HasSubstr("summary.json lists no policies"));
  EXPECT_EQ(Count(html, "<polyline"), 0);
}

TEST(ReportTest, LongTimelinesAreDrawnAsMeansOverAMinMaxBand) {
  const std::string dir = FreshDir("long_timeline");
  WriteText(dir + "/summary.json", "{\"policies\": [{\"policy\": \"paged\"}]}\n");
  std::string csv = "policy,time_s,running,capacity_tokens,used_tokens\n";
  for (int i = 0; i < 20000; ++i) {
    // 50% everywhere except one step at 100%.
    csv += "paged," + std::to_string(i * 0.01) + ",1,1000," + (i == 12345 ? "1000" : "500") + "\n";
  }
  WriteText(dir + "/timeline.csv", csv);
  const std::string svg = Svg(RenderOrDie(dir), "utilization-chart");
  std::vector<std::string> points = Polylines(svg);  // the band first, then the line
  ASSERT_EQ(points.size(), 2u);
  EXPECT_EQ(Count(svg, "<polygon class=\"series-band\" data-series=\"paged\""), 1);
  EXPECT_THAT(points[0], HasSubstr(",36.0"));  // the 100% spike is the band's top there
  // One mean point per 2-pixel column (664 / 2), all near 50% (y = 156) except the spike's column.
  const int line_points = Count(points[1], ",");
  EXPECT_LE(line_points, 333);
  EXPECT_GE(line_points, 300);
  EXPECT_GE(Count(points[1], ",156.0"), line_points - 1);
}

TEST(ReportTest, WriteReportWritesNextToTheDataOrToOutPath) {
  const std::string dir = FreshDir("write");
  for (const char* name : {"summary.json", "timeline.csv", "requests.csv"}) {
    std::filesystem::copy_file(TestData("report_escape") + "/" + name, dir + "/" + name);
  }
  absl::StatusOr<std::string> path = WriteReport(dir);
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(*path, dir + "/report.html");
  EXPECT_EQ(ReadText(*path), RenderOrDie(dir));
  EXPECT_FALSE(std::filesystem::exists(*path + ".tmp"));

  ReportOptions options{.out_path = dir + "/nested/deeper/custom.html", .title = "My <run>"};
  path = WriteReport(dir, options);
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(*path, options.out_path);
  const std::string html = ReadText(*path);
  EXPECT_THAT(html, HasSubstr("<title>My &lt;run&gt;</title>"));
  EXPECT_THAT(html, HasSubstr("<h1>My &lt;run&gt;</h1>"));
}

TEST(ReportTest, WriteReportFailsCleanlyOnBadInput) {
  const std::string dir = FreshDir("write_bad");
  absl::StatusOr<std::string> path = WriteReport(dir);
  ASSERT_FALSE(path.ok());
  EXPECT_EQ(path.status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(std::filesystem::exists(dir + "/report.html"));
}

}  // namespace
}  // namespace pagedkv
