// A small SVG plotting kit for the reports: axes with round ticks, polylines, legends, one plot
// area per figure. Output is plain SVG text (inline in a self-contained HTML page); text is
// HTML-escaped.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace chart::svg {

std::string html_escape(std::string_view s);

struct Axis {
  double lo, hi;
  std::vector<double> ticks;
  std::string label;
};
Axis unit_axis(std::string label);  // [0, 1] in steps of 0.2
// An axis over [lo, hi] widened to round numbers, with about five ticks of 1, 2 or 5 x 10^k.
Axis nice_axis(double lo, double hi, std::string label);

struct Style {
  std::string color;
  std::string dash;  // SVG stroke-dasharray, empty for solid
  double width = 2;
};
extern const char* const kPalette[6];
extern const Style kChance;           // grey dashes: chance, base rate, perfect calibration
Style series_style(size_t i);         // the i-th series: palette colour, the first solid

// One plot area inside an SVG, with its data ranges.
struct Frame {
  double left, top, width, height;
  Axis x, y;
  double px(double v) const { return left + (v - x.lo) / (x.hi - x.lo) * width; }
  double py(double v) const { return top + height - (v - y.lo) / (y.hi - y.lo) * height; }
};

constexpr double kWidth = 440, kLeft = 62, kRight = 18, kTitleH = 28, kLegendRowH = 17;

std::string text(double x, double y, std::string_view s, std::string_view attrs = "");
// Gridlines, the frame, ticks with labels (x labels only if x_labels) and the axis labels.
std::string axes(const Frame& f, bool x_labels = true);
// A polyline through the points in pixel space, dropping points within half a pixel of the last
// one kept (100k thresholds draw as a few hundred points). steps: precision-recall style, each
// point's y holds from the previous point's x.
std::string polyline(const Frame& f, const std::vector<double>& xs, const std::vector<double>& ys, const Style& st,
                     bool steps = false);

struct LegendEntry {
  std::string name;
  Style style;
  bool marker = false;
};
// Rows of legend entries between the title and the plot area, appended to s; returns the height used.
double legend(std::string& s, const std::vector<LegendEntry>& entries, double top);
// <svg ...> with a white background and the title.
std::string svg_open(double height, std::string_view title, std::string_view cls);
// A plot area below the title and the legend, down to `bottom` (leaving room for x labels).
Frame frame_below(double legend_h, double bottom, Axis x, Axis y);

}  // namespace chart::svg
