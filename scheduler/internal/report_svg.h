// Private SVG chart writers of the HTML report (report.cc): line charts (timelines, CDFs) and
// horizontal stacked bars (waste breakdown). Pure string building: every number written is finite
// (non-finite inputs are dropped) and every name is escaped, so the output is valid inline SVG.
//
//   LineChart chart{.id = "util", .title = "KV utilization", .x_label = "time (s)", ...};
//   std::string svg = RenderLineChart(chart);
#ifndef PAGEDKV_SCHEDULER_INTERNAL_REPORT_SVG_H_
#define PAGEDKV_SCHEDULER_INTERNAL_REPORT_SVG_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pagedkv::internal {

// Escapes & < > " ' for HTML text and attribute values.
std::string HtmlEscape(std::string_view text);

// The color of the index-th series (a color-blind-safe palette, repeated with dashes after it
// runs out: see DashFor).
std::string SeriesColor(int index);
// Stroke dash pattern for the index-th series: "" (solid) for the first palette round.
std::string SeriesDash(int index);

// About `target_count` round tick values (steps of 1, 2, 2.5 or 5 times a power of ten) covering
// [lo, hi]; the first tick <= lo and the last >= hi. lo < hi, both finite.
std::vector<double> NiceTicks(double lo, double hi, int target_count);
// Powers of ten covering [lo, hi], 0 < lo < hi.
std::vector<double> LogTicks(double lo, double hi);
// A tick label: the fewest decimals that tell ticks `step` apart; k / M / G suffixes from 10^4.
std::string FormatTick(double value, double step);

struct ChartSeries {
  std::string name;
  int color_index = 0;    // into SeriesColor / SeriesDash
  std::vector<double> x;  // same length as y; non-finite points are dropped
  std::vector<double> y;
};

struct LineChart {
  std::string id;  // unique within the page; prefixes element ids
  std::string title;
  std::string x_label;
  std::string y_label;
  std::vector<ChartSeries> series;
  // Fixed axis ranges; unset = from the data (y starts at 0 unless the data is negative).
  std::optional<double> x_min, x_max, y_min, y_max;
  bool x_log = false;  // log10 x axis (non-positive x values are dropped)
  // Text shown instead of the plot when no series has a point.
  std::string empty_message = "no data";
};

// <svg class="chart line-chart" id=...> with a <title>, grid, both axes with tick labels and axis
// labels, one <polyline class="series-line" data-series=NAME> per non-empty series and a legend.
// A series with more than two points per 2-pixel column (long timelines) is drawn as the column
// means, over a <polygon class="series-band"> spanning each column's min..max, so that spikes
// stay visible.
std::string RenderLineChart(const LineChart& chart);

struct BarSegment {
  std::string name;
  std::string color;
};

struct StackedBarChart {
  std::string id;
  std::string title;
  std::string x_label;                  // the value axis (horizontal)
  std::vector<std::string> categories;  // one bar each, top to bottom
  std::vector<BarSegment> segments;     // stacked left to right
  // values[category][segment] >= 0 (negative or non-finite values are drawn as 0).
  std::vector<std::vector<double>> values;
  double x_max = 0;        // the value axis range is [0, max(x_max, largest bar total)]
  double value_scale = 1;  // value labels and tooltips show value * value_scale
  std::string value_unit;  // appended to value labels, e.g. "%"
  std::string empty_message = "no data";
};

// <svg class="chart bar-chart"> with one <g class="bar" data-category=...> per category holding
// one <rect class="segment" data-segment=...> per non-zero segment (with a <title> tooltip), a
// value axis and a legend of the segments.
std::string RenderStackedBarChart(const StackedBarChart& chart);

}  // namespace pagedkv::internal

#endif  // PAGEDKV_SCHEDULER_INTERNAL_REPORT_SVG_H_
