#include "train/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <optional>
#include <string_view>

#include "core/files.h"

namespace chart {
namespace {

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

// ---- metrics.jsonl: one flat JSON object per line --------------------------------------------

struct FlatObject {
  std::map<std::string, double> numbers;  // null is NaN; true/false are dropped
  std::map<std::string, std::string> strings;
};

// Parses exactly one flat object {"k": "v" | number | true | false | null, ...}; nullopt if the
// line is anything else (nested values included).
class LineParser {
 public:
  explicit LineParser(std::string_view s) : s_(s) {}

  std::optional<FlatObject> object() {
    FlatObject obj;
    if (!eat('{')) return std::nullopt;
    if (!eat('}')) {
      do {
        std::optional<std::string> key = string();
        if (!key || !eat(':')) return std::nullopt;
        ws();
        if (peek() == '"') {
          std::optional<std::string> v = string();
          if (!v) return std::nullopt;
          obj.strings[*key] = *v;
        } else if (word("true") || word("false")) {
        } else if (word("null")) {
          obj.numbers[*key] = std::nan("");
        } else {
          std::optional<double> v = number();
          if (!v) return std::nullopt;
          obj.numbers[*key] = *v;
        }
      } while (eat(','));
      if (!eat('}')) return std::nullopt;
    }
    ws();
    if (i_ != s_.size()) return std::nullopt;
    return obj;
  }

 private:
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\r')) ++i_;
  }
  bool eat(char c) {
    ws();
    if (peek() != c) return false;
    ++i_;
    return true;
  }
  bool word(std::string_view w) {
    if (s_.substr(i_, w.size()) != w) return false;
    i_ += w.size();
    return true;
  }
  std::optional<double> number() {
    size_t start = i_;
    while (i_ < s_.size() && std::string_view("+-.0123456789eE").find(s_[i_]) != std::string_view::npos) ++i_;
    std::string text(s_.substr(start, i_ - start));
    if (text.empty()) return std::nullopt;
    char* end = nullptr;
    double v = std::strtod(text.c_str(), &end);
    if (end != text.c_str() + text.size()) return std::nullopt;
    return v;
  }
  std::optional<std::string> string() {
    if (!eat('"')) return std::nullopt;
    std::string out;
    while (i_ < s_.size()) {
      char c = s_[i_++];
      if (c == '"') return out;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i_ >= s_.size()) return std::nullopt;
      char e = s_[i_++];
      static constexpr std::string_view kFrom = "\"\\/bfnrt", kTo = "\"\\/\b\f\n\r\t";
      if (size_t k = kFrom.find(e); k != std::string_view::npos) {
        out += kTo[k];
      } else if (e == 'u' && i_ + 4 <= s_.size() &&
                 std::all_of(s_.begin() + i_, s_.begin() + i_ + 4,
                             [](unsigned char h) { return std::isxdigit(h) != 0; })) {
        // A surrogate half becomes an (invalid) 3-byte sequence: harmless for a split name.
        append_utf8(out, static_cast<unsigned>(std::stoul(std::string(s_.substr(i_, 4)), nullptr, 16)));
        i_ += 4;
      } else {
        return std::nullopt;
      }
    }
    return std::nullopt;  // unterminated
  }
  static void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  std::string_view s_;
  size_t i_ = 0;
};

// ---- SVG plots ---------------------------------------------------------------------------------

struct Axis {
  double lo, hi;
  std::vector<double> ticks;
  std::string label;
};

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

std::string tick_label(double v, const Axis& a) {
  double step = a.ticks.size() > 1 ? a.ticks[1] - a.ticks[0] : 1;
  int decimals = std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9)));
  return fmt::format("{:.{}f}", v, decimals);
}

struct Style {
  std::string color;
  std::string dash;  // SVG stroke-dasharray, empty for solid
  double width = 2;
};

const char* const kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"};
const Style kChance{"#888888", "5,4", 1.2};

// One plot area inside an SVG, with its data ranges.
struct Frame {
  double left, top, width, height;
  Axis x, y;
  double px(double v) const { return left + (v - x.lo) / (x.hi - x.lo) * width; }
  double py(double v) const { return top + height - (v - y.lo) / (y.hi - y.lo) * height; }
};

constexpr double kWidth = 440, kLeft = 62, kRight = 18, kTitleH = 28, kLegendRowH = 17;

std::string style_attrs(const Style& s) {
  std::string a = fmt::format(R"(fill="none" stroke="{}" stroke-width="{}")", s.color, s.width);
  if (!s.dash.empty()) a += fmt::format(R"( stroke-dasharray="{}")", s.dash);
  return a;
}

std::string text(double x, double y, std::string_view s, std::string_view attrs = "") {
  return fmt::format(R"(<text x="{:.1f}" y="{:.1f}" {}>{}</text>)", x, y, attrs, html_escape(s)) + "\n";
}

// Gridlines, the frame, ticks with labels (x labels only if x_labels) and the axis labels.
std::string axes(const Frame& f, bool x_labels = true) {
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
                     bool steps = false) {
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

struct LegendEntry {
  std::string name;
  Style style;
  bool marker = false;
};

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

// ROC or precision-recall: a reference line (chance, base rate) under the series, the first
// series (the model) drawn last, on top.
std::string curve_plot(const std::string& title, const std::vector<Series>& series, Axis x, Axis y, bool steps,
                       const LegendEntry& reference, const Curve& reference_line, std::string_view cls) {
  std::vector<LegendEntry> entries;
  for (size_t i = 0; i < series.size(); ++i) entries.push_back({series[i].name, series_style(i)});
  entries.push_back(reference);
  std::string s = svg_open(400, title, cls), body;
  Frame f = frame_below(legend(body, entries, kTitleH), 400 - 46, std::move(x), std::move(y));
  s += axes(f) + body + polyline(f, reference_line.x, reference_line.y, reference.style);
  for (size_t i = series.size(); i-- > 0;)
    s += polyline(f, series[i].curve.x, series[i].curve.y, series_style(i), steps);
  return s + "</svg>\n";
}

std::string fmt3(double v) { return std::isnan(v) ? "n/a" : fmt::format("{:.3f}", v); }

std::string with_interval(double v, const Interval& ci) {
  if (std::isnan(ci.lo)) return fmt3(v);
  return fmt::format("{} ({}&ndash;{})", fmt3(v), fmt3(ci.lo), fmt3(ci.hi));
}

double prevalence(const BinaryMetrics& m) { return m.n > 0 ? static_cast<double>(m.n_pos) / m.n : NAN; }

std::string calibration_plot(const std::vector<CalibrationBin>& bins) {
  const double height = 480;
  Style model = series_style(0);
  std::string s = svg_open(height, "Calibration (reliability diagram)", "calibration"), body;
  double legend_h = legend(body, {{"model", model, true}, {"perfectly calibrated", kChance}}, kTitleH);
  // Main panel: fraction positive against mean prediction; below it, predictions per bin.
  Frame f =
      frame_below(legend_h, height - 46 - 86, unit_axis("mean predicted probability"), unit_axis("fraction positive"));
  int64_t max_n = 1;
  for (const CalibrationBin& b : bins) max_n = std::max(max_n, b.n);
  Axis counts = nice_axis(0, static_cast<double>(max_n), "count");
  counts.ticks = {counts.lo, counts.hi};
  Frame h{f.left, f.top + f.height + 14, f.width, 58, unit_axis("mean predicted probability"), counts};
  s += axes(f, false) + axes(h) + body + polyline(f, {0, 1}, {0, 1}, kChance);
  std::vector<double> xs, ys;
  for (const CalibrationBin& b : bins) xs.push_back(b.mean_predicted), ys.push_back(b.fraction_positive);
  s += polyline(f, xs, ys, model);
  for (const CalibrationBin& b : bins) {
    double r = 2.5 + 5.5 * std::sqrt(static_cast<double>(b.n) / max_n);  // area grows with the count
    s += fmt::format(R"(<circle cx="{:.1f}" cy="{:.1f}" r="{:.1f}" fill="{}" fill-opacity="0.75" stroke="white"/>)",
                     f.px(b.mean_predicted), f.py(b.fraction_positive), r, model.color) +
         "\n";
    double top = h.py(static_cast<double>(b.n));
    s += fmt::format(R"(<rect x="{:.1f}" y="{:.1f}" width="12" height="{:.1f}" fill="{}" fill-opacity="0.6"/>)",
                     h.px(b.mean_predicted) - 6, top, h.top + h.height - top, model.color) +
         "\n";
  }
  return s + "</svg>\n";
}

std::string loss_plot(const std::string& title, const LossCurves& lc) {
  std::vector<LegendEntry> entries;
  double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
  size_t i = 0;
  for (const auto& [split, pts] : lc.by_split) {
    entries.push_back({split, {kPalette[i++ % std::size(kPalette)], "", 1.8}, pts.size() <= 40});
    for (auto [x, y] : pts)
      xlo = std::min(xlo, x), xhi = std::max(xhi, x), ylo = std::min(ylo, y), yhi = std::max(yhi, y);
  }
  bool empty = entries.empty();
  std::string s = svg_open(400, title, "loss"), body;
  Frame f =
      frame_below(legend(body, entries, kTitleH), 400 - 46, empty ? unit_axis("step") : nice_axis(xlo, xhi, "step"),
                  empty ? unit_axis("loss") : nice_axis(ylo, yhi, "loss"));
  if (empty) f.x.ticks = f.y.ticks = {};
  s += axes(f) + body;
  if (empty)
    s += text(f.left + f.width / 2, f.top + f.height / 2, lc.found ? "no metrics" : "no metrics (file not found)",
              R"(text-anchor="middle" class="note")");
  i = 0;
  for (const auto& [split, pts] : lc.by_split) {
    const LegendEntry& e = entries[i++];
    std::vector<double> xs, ys;
    for (auto [x, y] : pts) xs.push_back(x), ys.push_back(y);
    s += polyline(f, xs, ys, e.style);
    if (e.marker)
      for (auto [x, y] : pts)
        s +=
            fmt::format(R"(<circle cx="{:.1f}" cy="{:.1f}" r="3" fill="{}"/>)", f.px(x), f.py(y), e.style.color) + "\n";
  }
  return s + "</svg>\n";
}

std::string figure(const std::string& svg, const std::string& caption_html) {
  return "<figure>\n" + svg + "<figcaption>" + caption_html + "</figcaption>\n</figure>\n";
}

const char* const kCss =
    R"(body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:24px auto;max-width:960px;color:#222;padding:0 16px}
h1{font-size:22px;margin-bottom:8px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;font-size:14px}th,td{padding:4px 10px;border-bottom:1px solid #e4e4e4;text-align:left}
table.metrics td{text-align:right;font-variant-numeric:tabular-nums}table.metrics td:first-child{text-align:left}
table.facts th{color:#555;font-weight:600}.note{color:#666;font-size:13px}
.plots{display:flex;flex-wrap:wrap;gap:16px}figure{margin:0;width:440px}
figcaption{font-size:13px;color:#333;margin-top:4px;line-height:1.4}
svg text{font-family:Helvetica,Arial,sans-serif;font-size:11px;fill:#333}svg text.title{font-size:14px;font-weight:600;fill:#111}
svg text.note{font-size:14px;fill:#888}svg .grid{stroke:#e8e8e8;stroke-width:1}svg .tick{stroke:#555;stroke-width:1}
svg .frame{fill:none;stroke:#555;stroke-width:1})";

}  // namespace

LossCurves read_loss_curves(const std::filesystem::path& metrics_jsonl) {
  LossCurves lc;
  std::ifstream in(metrics_jsonl);
  if (!in) return lc;
  lc.found = true;
  std::string line;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::optional<FlatObject> o = LineParser(line).object();
    auto number = [&](const char* key) {
      auto it = o->numbers.find(key);
      return it == o->numbers.end() ? NAN : it->second;
    };
    if (!o || !o->strings.count("split") || !std::isfinite(number("step")) || !std::isfinite(number("loss"))) {
      ++lc.skipped_lines;
      continue;
    }
    lc.by_split[o->strings["split"]].emplace_back(number("step"), number("loss"));
  }
  for (auto& [split, pts] : lc.by_split)
    std::stable_sort(pts.begin(), pts.end(), [](auto& a, auto& b) { return a.first < b.first; });
  return lc;
}

std::string render_report_html(const ReportInputs& in) {
  std::string h = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>" +
                  html_escape(in.title) + "</title>\n<style>\n" + kCss + "\n</style>\n</head>\n<body>\n<h1>" +
                  html_escape(in.title) + "</h1>\n<table class=\"facts\">\n";
  for (const auto& [k, v] : in.facts) h += "<tr><th>" + html_escape(k) + "</th><td>" + html_escape(v) + "</td></tr>\n";
  h += "</table>\n";

  h += "<h2>Metrics</h2>\n<table class=\"metrics\">\n<tr><th></th><th>AUROC</th><th>AUPRC</th><th>Brier</th>"
       "<th>ECE</th><th>n</th><th>n positive</th><th>prevalence</th></tr>\n";
  auto row = [&](const std::string& name, const BinaryEvaluation& e) {
    h += fmt::format(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n", name,
        with_interval(e.point.auroc, e.auroc), with_interval(e.point.auprc, e.auprc),
        with_interval(e.point.brier, e.brier), with_interval(e.point.ece, e.ece), e.point.n, e.point.n_pos,
        fmt3(prevalence(e.point)));
  };
  row("model", in.model);
  if (in.oracle) row("oracle (true probabilities)", *in.oracle);
  h += "</table>\n<p class=\"note\">";
  h += in.model.bootstrap_samples > 0
           ? fmt::format("In parentheses: 95% percentile bootstrap intervals from {} resamples{}. ",
                         in.model.bootstrap_samples,
                         in.model.bootstrap_redrawn > 0
                             ? fmt::format(" ({} resamples holding one class were redrawn)", in.model.bootstrap_redrawn)
                             : "")
           : std::string("No bootstrap intervals. ");
  h += "AUPRC is average precision; ECE uses equal-width bins.</p>\n";

  auto caption = [&](const char* metric, double BinaryMetrics::*field, Interval BinaryEvaluation::*ci) {
    std::string c = fmt::format("{} (95% CI): model {}", metric, with_interval(in.model.point.*field, in.model.*ci));
    if (in.oracle) c += fmt::format("; oracle {}", with_interval(in.oracle->point.*field, (*in.oracle).*ci));
    return c + ".";
  };
  double base = prevalence(in.model.point);
  h += "<h2>Discrimination and calibration</h2>\n<div class=\"plots\">\n";
  h += figure(curve_plot("ROC curve", in.roc, unit_axis("false positive rate"), unit_axis("true positive rate"), false,
                         {"chance", kChance}, {{0, 1}, {0, 1}}, "roc"),
              caption("AUROC", &BinaryMetrics::auroc, &BinaryEvaluation::auroc));
  h += figure(curve_plot("Precision-recall curve", in.pr, unit_axis("recall"), unit_axis("precision"), true,
                         {"base rate " + fmt3(base), kChance}, {{0, 1}, {base, base}}, "pr"),
              caption("AUPRC", &BinaryMetrics::auprc, &BinaryEvaluation::auprc));
  h += figure(calibration_plot(in.calibration), caption("ECE", &BinaryMetrics::ece, &BinaryEvaluation::ece) + " " +
                                                    caption("Brier", &BinaryMetrics::brier, &BinaryEvaluation::brier) +
                                                    " Marker area and the bars below: predictions per bin.");
  h += "</div>\n";

  if (!in.loss_runs.empty()) {
    h += "<h2>Training loss</h2>\n<div class=\"plots\">\n";
    for (const LossRun& run : in.loss_runs) {
      LossCurves lc = read_loss_curves(run.metrics_jsonl);
      std::string cap = "<code>" + html_escape(run.metrics_jsonl.string()) + "</code>";
      if (!lc.found) cap += ": not found.";
      if (lc.skipped_lines > 0)
        cap += fmt::format(" {} line{} skipped (malformed, or without step, split and a finite loss).",
                           lc.skipped_lines, lc.skipped_lines == 1 ? "" : "s");
      h += figure(loss_plot(run.title, lc), cap);
    }
    h += "</div>\n";
  }
  return h + "</body>\n</html>\n";
}

void write_report(const std::filesystem::path& html, const ReportInputs& in) {
  write_file_atomic(html, render_report_html(in));
}

}  // namespace chart
