#include "train/report/subgroup_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "train/report/svg_plot.h"

namespace chart {
namespace {
using namespace svg;

std::string num(double v) { return std::isnan(v) ? "n/a" : fmt::format("{:.3f}", v); }
std::string ci(double v, const Interval& i) {
  return std::isnan(i.lo) ? num(v) : fmt::format("{} ({}–{})", num(v), num(i.lo), num(i.hi));
}

// What a forest plot shows: one metric of each group, with its interval, on a fixed axis.
struct ForestMetric {
  const char* name;
  double BinaryMetrics::*point;
  Interval BinaryEvaluation::*interval;
  double lo, hi, step;
};

// One row per group: a dot at its value, whiskers over its interval, the overall value dashed.
std::string forest_plot(const SubgroupReport& r, const ForestMetric& m, double overall) {
  const double row_h = 22, top = kTitleH + 10, height = top + row_h * static_cast<double>(r.groups.size()) + 46;
  const double label_w = 150, left = label_w + 10, width = 640 - left - kRight;
  std::string s = fmt::format(R"(<svg xmlns="http://www.w3.org/2000/svg" width="640" height="{:.0f}" class="forest">)"
                              "\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
                              height);
  s += text(10, 18, fmt::format("{} by subgroup (95% interval)", m.name), R"(class="title")");
  Frame f{left, top, width, row_h * static_cast<double>(r.groups.size()), unit_axis(""), unit_axis("")};
  f.x.lo = m.lo, f.x.hi = m.hi, f.x.ticks = {};
  for (double t = m.lo; t <= m.hi + 1e-9; t += m.step) f.x.ticks.push_back(t);
  const double bottom = f.top + f.height;
  for (double t : f.x.ticks) {
    s += fmt::format(R"(<line class="grid" x1="{0:.1f}" x2="{0:.1f}" y1="{1:.1f}" y2="{2:.1f}"/>)", f.px(t), f.top,
                     bottom) + "\n";
    s += text(f.px(t), bottom + 14, fmt::format("{:.1f}", t), R"(text-anchor="middle")");
  }
  s += text(f.left + f.width / 2, bottom + 32, m.name, R"(text-anchor="middle")");
  const auto clampx = [&](double v) { return f.px(std::clamp(v, m.lo, m.hi)); };
  if (!std::isnan(overall))
    s += fmt::format(R"(<line x1="{0:.1f}" x2="{0:.1f}" y1="{1:.1f}" y2="{2:.1f}" stroke="#888" stroke-dasharray="5,4"/>)",
                     clampx(overall), f.top, bottom) + "\n";
  for (size_t i = 0; i < r.groups.size(); ++i) {
    const SubgroupResult& g = r.groups[i];
    const double y = f.top + row_h * (static_cast<double>(i) + 0.5);
    const char* color = g.warning.empty() ? kPalette[0] : "#e8a33d";
    s += text(10, y + 4, g.dimension + ": " + g.group + (g.warning.empty() ? "" : " *"));
    const double v = g.eval.point.*m.point;
    const Interval ci = g.eval.*m.interval;
    if (std::isnan(v)) {
      s += text(f.left + 4, y + 4, g.eval.point.n_pos == 0 || g.eval.point.n_pos == g.eval.point.n ? "one class only"
                                                                                                     : "undefined",
                R"(class="note")");
      continue;
    }
    if (!std::isnan(ci.lo))
      s += fmt::format(R"(<line x1="{:.1f}" x2="{:.1f}" y1="{:.1f}" y2="{:.1f}" stroke="{}" stroke-width="2"/>)",
                       clampx(ci.lo), clampx(ci.hi), y, y, color) + "\n";
    s += fmt::format(R"(<circle cx="{:.1f}" cy="{:.1f}" r="4.5" fill="{}"/>)", clampx(v), y, color) + "\n";
  }
  return s + "</svg>\n";
}

}  // namespace

std::string subgroup_section_html(const SubgroupReport& r, const BinaryEvaluation& overall) {
  std::string h = "<h2>Subgroups</h2>\n<table class=\"metrics subgroups\">\n<tr><th>subgroup</th><th>n</th>"
                  "<th>n positive</th><th>prevalence</th><th>AUROC</th><th>AUPRC</th><th>Brier</th><th>ECE</th>"
                  "<th>cal. slope</th>"
                  "<th></th></tr>\n";
  for (const SubgroupResult& g : r.groups) {
    const auto& m = g.eval.point;
    h += fmt::format("<tr><td>{}: {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
                     "<td>{}</td><td>{}</td><td>{}</td></tr>\n",
                     html_escape(g.dimension), html_escape(g.group), m.n, m.n_pos,
                     num(m.n ? double(m.n_pos) / double(m.n) : NAN), ci(m.auroc, g.eval.auroc),
                     ci(m.auprc, g.eval.auprc), ci(m.brier, g.eval.brier), ci(m.ece, g.eval.ece),
                     ci(m.calibration_slope, g.eval.calibration_slope),
                     g.warning.empty() ? "" : "few cases");
  }
  h += "</table>\n<p class=\"note\">";
  for (const SubgroupGap& gap : r.gaps)
    h += fmt::format("Largest AUROC gap by {}: {:.3f} ({} {} vs {} {}). ", html_escape(gap.dimension), gap.auroc_gap,
                     html_escape(gap.lowest), "lowest", html_escape(gap.highest), "highest");
  for (const auto& [dim, n] : r.unassigned)
    if (n > 0) h += fmt::format("{} rows have no {} group (not recorded for their subject). ", n, html_escape(dim));
  h += fmt::format("Groups with fewer than {} positives or negatives are marked \"few cases\" (orange in the plot): "
                   "their intervals are wide.</p>\n",
                   kFewSubgroupCases);
  const ForestMetric auroc{"AUROC", &BinaryMetrics::auroc, &BinaryEvaluation::auroc, 0.4, 1.0, 0.1};
  const ForestMetric slope{"calibration slope", &BinaryMetrics::calibration_slope,
                           &BinaryEvaluation::calibration_slope, 0.0, 2.0, 0.5};
  return h + "<div class=\"plots\">\n<figure style=\"width:640px\">\n" + forest_plot(r, auroc, overall.point.auroc) +
         "<figcaption>Dashed: the overall AUROC " + num(overall.point.auroc) + ".</figcaption>\n</figure>\n" +
         "<figure style=\"width:640px\">\n" + forest_plot(r, slope, overall.point.calibration_slope) +
         "<figcaption>Calibration slope (ideal 1; below 1: predictions too extreme for the group). Dashed: overall " +
         num(overall.point.calibration_slope) + ". Values beyond the axis sit at its edge.</figcaption>\n</figure>\n"
         "</div>\n";
}

Json GroupTable::json() const {
  Json j{{"groups", Json::array()}, {"unassigned_rows", Json::object()}};
  for (const auto& r : rows) {
    Json g = r.metrics;
    g["dimension"] = r.dimension, g["group"] = r.group, g["n"] = r.n;
    g["warning"] = r.warning.empty() ? Json() : Json(r.warning);
    j["groups"].push_back(std::move(g));
  }
  for (const auto& [dim, n] : unassigned) j["unassigned_rows"][dim] = n;
  return j;
}

std::string group_table_html(const GroupTable& t) {
  if (t.rows.empty()) return "";
  std::string h = "<h2>By subgroup</h2>\n<table class=\"metrics subgroups\">\n<tr><th>dimension</th><th>group</th><th>rows</th>";
  for (const auto& c : t.columns) h += "<th>" + html_escape(c) + "</th>";
  h += "<th></th></tr>\n";
  for (const auto& r : t.rows) {
    h += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td>", html_escape(r.dimension), html_escape(r.group), r.n);
    for (const auto& c : r.cells) h += "<td>" + c + "</td>";
    h += r.warning.empty() ? "<td></td></tr>\n" : "<td class=\"warning\">few cases: " + html_escape(r.warning) + "</td></tr>\n";
  }
  h += "</table>\n";
  std::string unassigned;
  for (const auto& [dim, n] : t.unassigned)
    if (n > 0) unassigned += fmt::format("{}{} rows in no {} group", unassigned.empty() ? "" : "; ", n, html_escape(dim));
  h += "<p class=\"note\">Each group is evaluated on its own rows, with the same bootstrap as the overall metrics. " +
       html_escape(t.note) +
       (unassigned.empty() ? std::string() : " " + unassigned + " (their subject's value is unknown).") + "</p>\n";
  return h;
}

}  // namespace chart
