#include "train/report/svg_plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <utility>

namespace chart::svg {

std::string html_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
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

Axis unit_axis(std::string label) { return {0, 1, {0, 0.2, 0.4, 0.6, 0.8, 1.0}, std::move(label)}; }

// An axis over [lo, hi] widened to round numbers, with about five ticks of 1, 2 or 5 x 10^k.
Axis nice_axis(double lo, double hi, std::string label) {
  if (!(hi > lo)) {
    double pad = std::max(std::abs(lo) * 0.1, 0.5);
    lo -= pad;
    hi += pad;
  }
  double raw = (hi - lo) / 5, mag = std::pow(10.0, std::floor(std::log10(raw))), norm = raw / mag;
  double step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  Axis a{std::floor(lo / step) * step, std::ceil(hi / step) * step, {}, std::move(label)};
  for (double t = a.lo; t <= a.hi + step * 1e-9; t += step) a.ticks.push_back(std::abs(t) < step * 1e-9 ? 0 : t);
  return a;
}

static std::string tick_label(double v, const Axis& a) {
  double step = a.ticks.size() > 1 ? a.ticks[1] - a.ticks[0] : 1;
  int decimals = std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9)));
  return fmt::format("{:.{}f}", v, decimals);
}

const char* const kPalette[6] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"};
const Style kChance{"#888888", "5,4", 1.2};

static std::string style_attrs(const Style& s) {
  std::string a = fmt::format(R"(fill="none" stroke="{}" stroke-width="{}")", s.color, s.width);
  if (!s.dash.empty()) a += fmt::format(R"( stroke-dasharray="{}")", s.dash);
  return a;
}

std::string text(double x, double y, std::string_view s, std::string_view attrs) {
  return fmt::format(R"(<text x="{:.1f}" y="{:.1f}" {}>{}</text>)", x, y, attrs, html_escape(s)) + "\n";
}

// Gridlines, the frame, ticks with labels (x labels only if x_labels) and the axis labels.
std::string axes(const Frame& f, bool x_labels) {
  std::string s;
  for (double t : f.x.ticks) {
    double x = f.px(t);
    s += fmt::format(R"(<line x1="{0:.1f}" y1="{1:.1f}" x2="{0:.1f}" y2="{2:.1f}" class="grid"/>)", x, f.top,
                     f.top + f.height) +
         "\n";
    s += fmt::format(R"(<line x1="{0:.1f}" y1="{1:.1f}" x2="{0:.1f}" y2="{2:.1f}" class="tick"/>)", x, f.top + f.height,
                     f.top + f.height + 4) +
         "\n";
    if (x_labels) s += text(x, f.top + f.height + 17, tick_label(t, f.x), R"(text-anchor="middle")");
  }
  for (double t : f.y.ticks) {
    double y = f.py(t);
    s += fmt::format(R"(<line x1="{0:.1f}" y1="{1:.1f}" x2="{2:.1f}" y2="{1:.1f}" class="grid"/>)", f.left, y,
                     f.left + f.width) +
         "\n";
    s += fmt::format(R"(<line x1="{0:.1f}" y1="{1:.1f}" x2="{2:.1f}" y2="{1:.1f}" class="tick"/>)", f.left - 4, y,
                     f.left) +
         "\n";
    s += text(f.left - 7, y + 4, tick_label(t, f.y), R"(text-anchor="end")");
  }
  s += fmt::format(R"(<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" class="frame"/>)", f.left, f.top,
                   f.width, f.height) +
       "\n";
  if (x_labels) s += text(f.left + f.width / 2, f.top + f.height + 36, f.x.label, R"(text-anchor="middle")");
  double cy = f.top + f.height / 2;
  s += text(16, cy, f.y.label, fmt::format(R"x(text-anchor="middle" transform="rotate(-90 16 {:.1f})")x", cy));
  return s;
}

// A polyline through the points in pixel space, dropping points within half a pixel of the last
// one kept (100k thresholds draw as a few hundred points). steps: precision-recall style, each
// point's y holds from the previous point's x.
std::string polyline(const Frame& f, const std::vector<double>& xs, const std::vector<double>& ys, const Style& st,
                     bool steps) {
  std::string pts;
  double lx = NAN, ly = NAN;
  auto add = [&](double x, double y, bool last) {
    double X = f.px(x), Y = f.py(y);
    if (!last && std::abs(X - lx) < 0.5 && std::abs(Y - ly) < 0.5) return;  // false while lx is NaN
    pts += fmt::format("{:.1f},{:.1f} ", X, Y);
    lx = X, ly = Y;
  };
  std::vector<std::pair<double, double>> p;
  for (size_t i = 0; i < std::min(xs.size(), ys.size()); ++i) {
    if (!std::isfinite(xs[i]) || !std::isfinite(ys[i])) continue;
    if (steps && !p.empty()) p.emplace_back(p.back().first, ys[i]);
    p.emplace_back(xs[i], ys[i]);
  }
  for (size_t i = 0; i < p.size(); ++i) add(p[i].first, p[i].second, i + 1 == p.size());
  if (pts.empty()) return "";
  pts.pop_back();
  return fmt::format(R"(<polyline class="series" points="{}" {} stroke-linejoin="round"/>)", pts, style_attrs(st)) +
         "\n";
}

// Rows of legend entries between the title and the plot area; returns the height used.
double legend(std::string& s, const std::vector<LegendEntry>& entries, double top) {
  double x = kLeft, y = top + 12, right = kWidth - kRight;
  for (const LegendEntry& e : entries) {
    double w = 30 + 6.6 * static_cast<double>(e.name.size()) + 16;
    if (x + w > right && x > kLeft) x = kLeft, y += kLegendRowH;
    s += fmt::format(R"(<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" {}/>)", x, y - 4, x + 24, y - 4,
                     style_attrs(e.style)) +
         "\n";
    if (e.marker)
      s += fmt::format(R"(<circle cx="{:.1f}" cy="{:.1f}" r="3.5" fill="{}"/>)", x + 12, y - 4, e.style.color) + "\n";
    s += text(x + 30, y, e.name);
    x += w;
  }
  return entries.empty() ? 0 : y - top + 8;
}

std::string svg_open(double height, std::string_view title, std::string_view cls) {
  return fmt::format(
             R"(<svg xmlns="http://www.w3.org/2000/svg" class="{}" width="{}" height="{}" viewBox="0 0 {} {}">)", cls,
             kWidth, height, kWidth, height) +
         "\n" + R"(<rect width="100%" height="100%" fill="white"/>)" + "\n" +
         text(kWidth / 2, 19, title, R"(class="title" text-anchor="middle")");
}

// A plot area below the title and the legend, down to `bottom` (leaving room for x labels).
Frame frame_below(double legend_h, double bottom, Axis x, Axis y) {
  double top = kTitleH + legend_h + 6;
  return {kLeft, top, kWidth - kLeft - kRight, bottom - top, std::move(x), std::move(y)};
}

Style series_style(size_t i) { return {kPalette[i % std::size(kPalette)], i == 0 ? "" : "7,3", 2}; }

}  // namespace chart::svg
