#include "internal/report_svg.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "pagedkv/core/absl_compat.h"

namespace pagedkv::internal {
namespace {

// Okabe-Ito colors without yellow (too pale on white), readable with most color-vision types.
constexpr const char* kPalette[] = {"#0072B2", "#E69F00", "#009E73", "#CC79A7",
                                    "#D55E00", "#56B4E9", "#000000"};
constexpr int kPaletteSize = sizeof(kPalette) / sizeof(kPalette[0]);
constexpr const char* kDashes[] = {"", "6 3", "2 3", "8 3 2 3"};
constexpr int kNumDashes = sizeof(kDashes) / sizeof(kDashes[0]);

// Geometry shared by the charts (SVG user units = CSS pixels at 100% zoom).
constexpr double kWidth = 760;
constexpr double kTitleHeight = 28;
constexpr double kLegendRowHeight = 20;
constexpr int kLegendPerRow = 4;
constexpr double kLegendItemWidth = (kWidth - 40) / kLegendPerRow;

// Coordinates with one decimal: enough for a screen, keeps the file small.
std::string Coord(double v) { return absl::StrFormat("%.1f", v); }

std::string Truncate(std::string_view text, size_t max_chars) {
  if (text.size() <= max_chars) return std::string(text);
  return absl::StrCat(AbslView(text.substr(0, max_chars - 1)), "\xE2\x80\xA6");  // ellipsis
}

std::string SvgOpen(std::string_view id, std::string_view css_class, double height,
                    std::string_view title) {
  const std::string eid = HtmlEscape(id);
  return absl::StrCat("<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart ",
                      AbslView(css_class), "\" id=\"", eid, "\" viewBox=\"0 0 ", Coord(kWidth), " ",
                      Coord(height), "\" width=\"", Coord(kWidth), "\" height=\"", Coord(height),
                      "\" role=\"img\" aria-labelledby=\"", eid, "-title\">\n", "<title id=\"", eid,
                      "-title\">", HtmlEscape(title), "</title>\n",
                      "<text class=\"chart-title\" x=\"", Coord(kWidth / 2), "\" y=\"18\">",
                      HtmlEscape(title), "</text>\n");
}

std::string EmptyChart(std::string_view id, std::string_view css_class, std::string_view title,
                       std::string_view message) {
  return absl::StrCat(SvgOpen(id, css_class, 80, title), "<text class=\"empty\" x=\"",
                      Coord(kWidth / 2), "\" y=\"54\">", HtmlEscape(message), "</text>\n</svg>\n");
}

struct LegendEntry {
  std::string name;
  std::string color;
  std::string dash;  // "" = solid line; "rect" = a filled swatch
};

double LegendHeight(size_t n) {
  if (n == 0) return 0;
  return kLegendRowHeight * static_cast<double>((n + kLegendPerRow - 1) / kLegendPerRow) + 8;
}

std::string Legend(const std::vector<LegendEntry>& entries, double top) {
  std::string out = "<g class=\"legend\">\n";
  for (size_t i = 0; i < entries.size(); ++i) {
    const double x = 20 + kLegendItemWidth * static_cast<double>(i % kLegendPerRow);
    const double y = top + kLegendRowHeight * static_cast<double>(i / kLegendPerRow) + 8;
    const LegendEntry& e = entries[i];
    absl::StrAppend(&out, "<g class=\"legend-item\"><title>", HtmlEscape(e.name), "</title>");
    if (e.dash == "rect") {
      absl::StrAppend(&out, "<rect x=\"", Coord(x), "\" y=\"", Coord(y), "\" width=\"14\" ",
                      "height=\"10\" fill=\"", e.color, "\"/>");
    } else {
      absl::StrAppend(
          &out, "<line x1=\"", Coord(x), "\" y1=\"", Coord(y + 5), "\" x2=\"", Coord(x + 18),
          "\" y2=\"", Coord(y + 5), "\" stroke=\"", e.color, "\" stroke-width=\"2.5\"",
          e.dash.empty() ? "" : absl::StrCat(" stroke-dasharray=\"", e.dash, "\""), "/>");
    }
    absl::StrAppend(&out, "<text x=\"", Coord(x + 24), "\" y=\"", Coord(y + 9), "\">",
                    HtmlEscape(Truncate(e.name, 26)), "</text></g>\n");
  }
  return out + "</g>\n";
}

// Whether dark text reads better than white on `color` ("#RRGGBB"), by perceived brightness.
bool IsLightColor(std::string_view color) {
  if (color.size() != 7 || color[0] != '#') return false;
  const auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return 0;
  };
  const auto channel = [&](size_t at) {
    return static_cast<double>(hex(color[at]) * 16 + hex(color[at + 1])) / 255;
  };
  return 0.299 * channel(1) + 0.587 * channel(3) + 0.114 * channel(5) > 0.55;
}

struct Point {
  double x, y;
};

// A dense series summarized per column of the plot: the mean point, and the lowest and highest y
// (at the column's mean x) for the band behind the line.
struct Binned {
  std::vector<Point> mean, low, high;
};

Binned Bin(const std::vector<Point>& points, double x0, double x1, int columns) {
  Binned out;
  const auto column = [&](double x) { return static_cast<int>((x - x0) / (x1 - x0) * columns); };
  size_t i = 0;
  while (i < points.size()) {
    const int col = column(points[i].x);
    double sum_x = 0, sum_y = 0, lo = points[i].y, hi = points[i].y;
    size_t j = i;
    for (; j < points.size() && column(points[j].x) == col; ++j) {
      sum_x += points[j].x, sum_y += points[j].y;
      lo = std::min(lo, points[j].y), hi = std::max(hi, points[j].y);
    }
    const double n = static_cast<double>(j - i);
    out.mean.push_back({sum_x / n, sum_y / n});
    out.low.push_back({sum_x / n, lo});
    out.high.push_back({sum_x / n, hi});
    i = j;
  }
  return out;
}

}  // namespace

std::string HtmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string SeriesColor(int index) { return kPalette[std::max(index, 0) % kPaletteSize]; }

std::string SeriesDash(int index) {
  return kDashes[(std::max(index, 0) / kPaletteSize) % kNumDashes];
}

std::vector<double> NiceTicks(double lo, double hi, int target_count) {
  if (!(hi > lo) || !std::isfinite(lo) || !std::isfinite(hi)) return {lo};
  const double raw = (hi - lo) / std::max(target_count, 1);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude * 10;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    if (m * magnitude >= raw) {
      step = m * magnitude;
      break;
    }
  }
  std::vector<double> ticks;
  const double first = std::floor(lo / step + 1e-9) * step;
  for (double t = first; ticks.size() < 100; t += step) {
    // Snap values such as 0.30000000000000004 to the printed value.
    ticks.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
    if (t >= hi - step * 1e-9) break;
  }
  return ticks;
}

std::vector<double> LogTicks(double lo, double hi) {
  std::vector<double> ticks;
  if (!(lo > 0) || !(hi > lo)) return {lo};
  for (double e = std::floor(std::log10(lo) + 1e-9); ticks.size() < 40; e += 1) {
    ticks.push_back(std::pow(10.0, e));
    if (ticks.back() >= hi * (1 - 1e-9)) break;
  }
  return ticks;
}

std::string FormatTick(double value, double step) {
  const double abs_value = std::abs(value);
  const char* suffix = "";
  double scaled = value;
  double scaled_step = step;
  if (abs_value >= 1e9) {
    scaled = value / 1e9, scaled_step = step / 1e9, suffix = "G";
  } else if (abs_value >= 1e6) {
    scaled = value / 1e6, scaled_step = step / 1e6, suffix = "M";
  } else if (abs_value >= 1e4) {
    scaled = value / 1e3, scaled_step = step / 1e3, suffix = "k";
  }
  int decimals = 0;
  if (scaled_step > 0 && scaled_step < 1) {
    decimals = static_cast<int>(std::ceil(-std::log10(scaled_step) - 1e-9));
    // Steps such as 2.5 * 10^k need one more decimal.
    const double shifted = scaled_step * std::pow(10.0, decimals);
    if (std::abs(shifted - std::round(shifted)) > 1e-6) ++decimals;
  } else if (scaled_step >= 1 && std::abs(scaled_step - std::round(scaled_step)) > 1e-6) {
    decimals = 1;
  }
  decimals = std::min(decimals, 9);
  return absl::StrCat(absl::StrFormat("%.*f", decimals, scaled), suffix);
}

std::string RenderLineChart(const LineChart& chart) {
  // Finite points per series, sorted by x (timelines and CDFs are already in x order).
  std::vector<std::vector<Point>> points(chart.series.size());
  double data_x_lo = INFINITY, data_x_hi = -INFINITY, data_y_lo = INFINITY, data_y_hi = -INFINITY;
  for (size_t s = 0; s < chart.series.size(); ++s) {
    const ChartSeries& series = chart.series[s];
    const size_t n = std::min(series.x.size(), series.y.size());
    for (size_t i = 0; i < n; ++i) {
      const double x = series.x[i], y = series.y[i];
      if (!std::isfinite(x) || !std::isfinite(y) || (chart.x_log && !(x > 0))) continue;
      points[s].push_back({x, y});
      data_x_lo = std::min(data_x_lo, x);
      data_x_hi = std::max(data_x_hi, x);
      data_y_lo = std::min(data_y_lo, y);
      data_y_hi = std::max(data_y_hi, y);
    }
    std::stable_sort(points[s].begin(), points[s].end(),
                     [](const Point& a, const Point& b) { return a.x < b.x; });
  }
  if (!std::isfinite(data_x_lo)) {
    return EmptyChart(chart.id, "line-chart", chart.title, chart.empty_message);
  }

  // Axis ranges, widened to round ticks unless fixed.
  double x_lo = chart.x_min.value_or(data_x_lo);
  double x_hi = chart.x_max.value_or(data_x_hi);
  if (chart.x_log) {
    x_lo = std::max(x_lo, 1e-12);
    if (!(x_hi > x_lo)) x_hi = x_lo * 10;
  } else if (!(x_hi > x_lo)) {
    x_hi = x_lo + 1;
  }
  double y_lo = chart.y_min.value_or(std::min(0.0, data_y_lo));
  double y_hi = chart.y_max.value_or(data_y_hi);
  if (!(y_hi > y_lo)) y_hi = y_lo + 1;
  std::vector<double> x_ticks = chart.x_log ? LogTicks(x_lo, x_hi) : NiceTicks(x_lo, x_hi, 6);
  std::vector<double> y_ticks = NiceTicks(y_lo, y_hi, 5);
  if (chart.x_log) {
    x_lo = x_ticks.front(), x_hi = std::max(x_ticks.back(), x_lo * 10);
  } else {
    if (!chart.x_min) x_lo = x_ticks.front();
    if (!chart.x_max) x_hi = x_ticks.back();
  }
  if (!chart.y_min) y_lo = y_ticks.front();
  if (!chart.y_max) y_hi = y_ticks.back();
  if (!(x_hi > x_lo)) x_hi = x_lo + 1;
  if (!(y_hi > y_lo)) y_hi = y_lo + 1;
  const double x_step = x_ticks.size() > 1 ? x_ticks[1] - x_ticks[0] : 1;
  const double y_step = y_ticks.size() > 1 ? y_ticks[1] - y_ticks[0] : 1;

  constexpr double kLeft = 72, kRight = 24, kTop = kTitleHeight + 8, kPlotHeight = 240;
  const double plot_w = kWidth - kLeft - kRight;
  const double plot_bottom = kTop + kPlotHeight;
  std::vector<LegendEntry> legend;
  for (const ChartSeries& s : chart.series) {
    legend.push_back({s.name, SeriesColor(s.color_index), SeriesDash(s.color_index)});
  }
  const double legend_top = plot_bottom + 44;
  const double height = legend_top + LegendHeight(legend.size());

  const auto px = [&](double x) {
    const double t =
        chart.x_log ? (std::log10(x) - std::log10(x_lo)) / (std::log10(x_hi) - std::log10(x_lo))
                    : (x - x_lo) / (x_hi - x_lo);
    return kLeft + std::clamp(t, -0.02, 1.02) * plot_w;
  };
  const auto py = [&](double y) {
    const double t = (y - y_lo) / (y_hi - y_lo);
    return plot_bottom - std::clamp(t, -0.02, 1.02) * kPlotHeight;
  };

  std::string out = SvgOpen(chart.id, "line-chart", height, chart.title);
  // Grid and ticks.
  out += "<g class=\"axis y-axis\">\n";
  for (double t : y_ticks) {
    if (t < y_lo - y_step * 1e-6 || t > y_hi + y_step * 1e-6) continue;
    const std::string y = Coord(py(t));
    absl::StrAppend(&out, "<line class=\"grid\" x1=\"", Coord(kLeft), "\" y1=\"", y, "\" x2=\"",
                    Coord(kLeft + plot_w), "\" y2=\"", y, "\"/><text class=\"tick\" x=\"",
                    Coord(kLeft - 6), "\" y=\"", y, "\" dy=\"4\" text-anchor=\"end\">",
                    FormatTick(t, y_step), "</text>\n");
  }
  absl::StrAppend(&out, "<text class=\"axis-label\" transform=\"translate(16 ",
                  Coord(kTop + kPlotHeight / 2), ") rotate(-90)\" text-anchor=\"middle\">",
                  HtmlEscape(chart.y_label), "</text>\n</g>\n");
  out += "<g class=\"axis x-axis\">\n";
  for (double t : x_ticks) {
    if (!chart.x_log && (t < x_lo - x_step * 1e-6 || t > x_hi + x_step * 1e-6)) continue;
    const std::string x = Coord(px(t));
    absl::StrAppend(&out, "<line class=\"grid\" x1=\"", x, "\" y1=\"", Coord(kTop), "\" x2=\"", x,
                    "\" y2=\"", Coord(plot_bottom), "\"/><text class=\"tick\" x=\"", x, "\" y=\"",
                    Coord(plot_bottom + 16), "\" text-anchor=\"middle\">",
                    chart.x_log ? FormatTick(t, t) : FormatTick(t, x_step), "</text>\n");
  }
  absl::StrAppend(&out, "<line class=\"axis-line\" x1=\"", Coord(kLeft), "\" y1=\"",
                  Coord(plot_bottom), "\" x2=\"", Coord(kLeft + plot_w), "\" y2=\"",
                  Coord(plot_bottom), "\"/>\n<text class=\"axis-label\" x=\"",
                  Coord(kLeft + plot_w / 2), "\" y=\"", Coord(plot_bottom + 36),
                  "\" text-anchor=\"middle\">", HtmlEscape(chart.x_label), "</text>\n</g>\n");
  // Series. A series with more than two points per 2-pixel column is drawn as its per-column mean
  // over a light band from the column's lowest to highest value: the trend stays readable and
  // spikes stay visible.
  const int columns = static_cast<int>(plot_w / 2);
  const auto coords_of = [&](const std::vector<Point>& pts, std::string* coords) {
    coords->reserve(coords->size() + pts.size() * 12);
    for (const Point& p : pts) absl::StrAppend(coords, Coord(px(p.x)), ",", Coord(py(p.y)), " ");
  };
  std::vector<std::vector<Point>> line_points(chart.series.size());
  std::string bands;
  for (size_t s = 0; s < chart.series.size(); ++s) {
    const bool dense = !chart.x_log && points[s].size() > static_cast<size_t>(2 * columns);
    if (!dense) {
      line_points[s] = points[s];
      continue;
    }
    Binned binned = Bin(points[s], x_lo, x_hi, columns);
    line_points[s] = std::move(binned.mean);
    std::reverse(binned.low.begin(), binned.low.end());
    std::string coords;
    coords_of(binned.high, &coords);
    coords_of(binned.low, &coords);
    coords.pop_back();
    absl::StrAppend(&bands, "<polygon class=\"series-band\" data-series=\"",
                    HtmlEscape(chart.series[s].name), "\" fill=\"",
                    SeriesColor(chart.series[s].color_index),
                    "\" fill-opacity=\"0.18\" stroke=\"none\" points=\"", coords, "\"/>\n");
  }
  out += "<g class=\"series\">\n";
  out += bands;
  for (size_t s = 0; s < chart.series.size(); ++s) {
    if (line_points[s].empty()) continue;
    const ChartSeries& series = chart.series[s];
    std::string coords;
    coords_of(line_points[s], &coords);
    coords.pop_back();
    const std::string dash = SeriesDash(series.color_index);
    absl::StrAppend(
        &out, "<polyline class=\"series-line\" data-series=\"", HtmlEscape(series.name),
        "\" fill=\"none\" stroke=\"", SeriesColor(series.color_index), "\" stroke-width=\"1.8\"",
        dash.empty() ? "" : absl::StrCat(" stroke-dasharray=\"", dash, "\""), " points=\"", coords,
        "\"><title>", HtmlEscape(series.name), "</title></polyline>\n");
  }
  out += "</g>\n";
  out += Legend(legend, legend_top);
  out += "</svg>\n";
  return out;
}

std::string RenderStackedBarChart(const StackedBarChart& chart) {
  if (chart.categories.empty() || chart.segments.empty()) {
    return EmptyChart(chart.id, "bar-chart", chart.title, chart.empty_message);
  }
  const auto value_at = [&](size_t c, size_t s) {
    if (c >= chart.values.size() || s >= chart.values[c].size()) return 0.0;
    const double v = chart.values[c][s];
    return std::isfinite(v) && v > 0 ? v : 0.0;
  };
  double largest = 0;
  size_t longest_label = 4;
  for (size_t c = 0; c < chart.categories.size(); ++c) {
    double total = 0;
    for (size_t s = 0; s < chart.segments.size(); ++s) total += value_at(c, s);
    largest = std::max(largest, total);
    longest_label = std::max(longest_label, std::min<size_t>(chart.categories[c].size(), 30));
  }
  double x_hi = std::max(chart.x_max, largest);
  if (!(x_hi > 0)) x_hi = 1;
  std::vector<double> ticks = NiceTicks(0, x_hi, 5);
  x_hi = std::max(x_hi, ticks.back());
  const double step = ticks.size() > 1 ? ticks[1] - ticks[0] : x_hi;

  constexpr double kBarHeight = 26, kBarGap = 12, kRight = 24, kTop = kTitleHeight + 10;
  const double left = std::clamp(16 + 7.0 * static_cast<double>(longest_label), 90.0, 240.0);
  const double plot_w = kWidth - left - kRight;
  const double plot_h = static_cast<double>(chart.categories.size()) * (kBarHeight + kBarGap);
  const double plot_bottom = kTop + plot_h;
  std::vector<LegendEntry> legend;
  for (const BarSegment& s : chart.segments) legend.push_back({s.name, s.color, "rect"});
  const double legend_top = plot_bottom + 44;
  const double height = legend_top + LegendHeight(legend.size());
  const auto px = [&](double v) { return left + v / x_hi * plot_w; };

  std::string out = SvgOpen(chart.id, "bar-chart", height, chart.title);
  out += "<g class=\"axis x-axis\">\n";
  for (double t : ticks) {
    const std::string x = Coord(px(t));
    absl::StrAppend(&out, "<line class=\"grid\" x1=\"", x, "\" y1=\"", Coord(kTop), "\" x2=\"", x,
                    "\" y2=\"", Coord(plot_bottom), "\"/><text class=\"tick\" x=\"", x, "\" y=\"",
                    Coord(plot_bottom + 16), "\" text-anchor=\"middle\">",
                    FormatTick(t * chart.value_scale, step * chart.value_scale), "</text>\n");
  }
  absl::StrAppend(&out, "<text class=\"axis-label\" x=\"", Coord(left + plot_w / 2), "\" y=\"",
                  Coord(plot_bottom + 36), "\" text-anchor=\"middle\">", HtmlEscape(chart.x_label),
                  "</text>\n</g>\n");
  for (size_t c = 0; c < chart.categories.size(); ++c) {
    const double y = kTop + static_cast<double>(c) * (kBarHeight + kBarGap) + kBarGap / 2;
    const std::string name = HtmlEscape(chart.categories[c]);
    absl::StrAppend(&out, "<g class=\"bar\" data-category=\"", name, "\">\n",
                    "<text class=\"category\" x=\"", Coord(left - 8), "\" y=\"",
                    Coord(y + kBarHeight / 2 + 4), "\" text-anchor=\"end\"><title>", name,
                    "</title>", HtmlEscape(Truncate(chart.categories[c], 30)), "</text>\n");
    double start = 0;
    for (size_t s = 0; s < chart.segments.size(); ++s) {
      const double v = value_at(c, s);
      if (v <= 0) continue;
      const double x0 = px(start), x1 = px(start + v);
      const std::string label =
          absl::StrFormat("%.1f%s", v * chart.value_scale, AbslView(chart.value_unit));
      absl::StrAppend(&out, "<rect class=\"segment\" data-segment=\"",
                      HtmlEscape(chart.segments[s].name), "\" x=\"", Coord(x0), "\" y=\"", Coord(y),
                      "\" width=\"", Coord(std::max(x1 - x0, 0.5)), "\" height=\"",
                      Coord(kBarHeight), "\" fill=\"", chart.segments[s].color, "\"><title>", name,
                      ": ", HtmlEscape(chart.segments[s].name), " ", HtmlEscape(label),
                      "</title></rect>\n");
      // Label segments wide enough to hold their value.
      if (x1 - x0 >= 44) {
        absl::StrAppend(&out, "<text class=\"segment-label",
                        IsLightColor(chart.segments[s].color) ? " on-light" : "", "\" x=\"",
                        Coord((x0 + x1) / 2), "\" y=\"", Coord(y + kBarHeight / 2 + 4),
                        "\" text-anchor=\"middle\">", HtmlEscape(label), "</text>\n");
      }
      start += v;
    }
    out += "</g>\n";
  }
  absl::StrAppend(&out, "<line class=\"axis-line\" x1=\"", Coord(left), "\" y1=\"", Coord(kTop),
                  "\" x2=\"", Coord(left), "\" y2=\"", Coord(plot_bottom), "\"/>\n");
  out += Legend(legend, legend_top);
  out += "</svg>\n";
  return out;
}

}  // namespace pagedkv::internal
