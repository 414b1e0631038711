#include "train/report/eval_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/files.h"
#include "train/report/html_page.h"
#include "train/report/loss_curves.h"
#include "train/report/subgroup_report.h"
#include "train/report/svg_plot.h"

namespace chart {
using namespace svg;

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

namespace {

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

// Net benefit against threshold probability: the model (and the oracle), treat-all and treat-none.
// Drawn up to 0.5 unless the outcome is common (thresholds beyond it rarely matter clinically);
// curves below a quarter of the axis' height under zero are cut at its edge.
std::string decision_plot(const DecisionCurve& model, const std::optional<DecisionCurve>& oracle, double prevalence) {
  const double x_hi = prevalence > 0.3 ? 1.0 : 0.5;
  const double y_hi = std::max(0.01, prevalence * 1.1), y_lo = -0.25 * y_hi;
  Axis x = unit_axis("threshold probability");
  x.hi = x_hi;
  if (x_hi < 1) x.ticks = {0, 0.1, 0.2, 0.3, 0.4, 0.5};
  Axis y = nice_axis(y_lo, y_hi, "net benefit");
  std::vector<LegendEntry> entries{{"model", series_style(0)}};
  if (oracle) entries.push_back({"oracle (true probability)", series_style(1)});
  const Style all{"#777", "2,3", 1.6};
  entries.push_back({"treat all", all});
  entries.push_back({"treat none", kChance});
  std::string s = svg_open(400, "Decision curve", "decision"), body;
  Frame f = frame_below(legend(body, entries, kTitleH), 400 - 46, x, y);
  s += axes(f) + body + polyline(f, {0, x_hi}, {0, 0}, kChance);
  auto draw = [&](const std::vector<double>& nb, const Style& st) {
    std::vector<double> xs, ys;
    for (size_t i = 0; i < model.thresholds.size() && model.thresholds[i] <= x_hi + 1e-9; ++i)
      xs.push_back(model.thresholds[i]), ys.push_back(std::clamp(nb[i], f.y.lo, f.y.hi));
    s += polyline(f, xs, ys, st);
  };
  draw(model.treat_all, all);
  if (oracle) draw(oracle->net_benefit, series_style(1));
  draw(model.net_benefit, series_style(0));
  return s + "</svg>\n";
}

// The metrics at the operating threshold, with how it was chosen.
std::string operating_point_html(const OperatingPoint& op) {
  const auto& m = op.point;
  std::string h = "<h2>At a threshold</h2>\n";
  h += fmt::format("<p>Flag a patient when the predicted probability is at least <b>{:.4f}</b>: rule <code>{}</code>, "
                   "chosen on {}, applied unchanged here.</p>\n",
                   op.threshold, html_escape(op.rule), html_escape(op.chosen_on));
  h += "<table class=\"metrics operating\">\n<tr><th>sensitivity</th><th>specificity</th><th>PPV</th><th>NPV</th>"
       "<th>F1</th><th>alert rate</th><th>TP</th><th>FP</th><th>TN</th><th>FN</th></tr>\n";
  h += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
                   "<td>{}</td><td>{}</td></tr>\n</table>\n",
                   with_interval(m.sensitivity, op.sensitivity), with_interval(m.specificity, op.specificity),
                   with_interval(m.ppv, op.ppv), with_interval(m.npv, op.npv), with_interval(m.f1, op.f1),
                   with_interval(m.alert_rate, op.alert_rate), m.tp, m.fp, m.tn, m.fn);
  return h + "<p class=\"note\">Alert rate: the share of rows flagged. Intervals: bootstrap with the threshold held "
             "fixed.</p>\n";
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

}  // namespace

std::string render_report_html(const ReportInputs& in) {
  std::string h = page_open(in.title, in.facts);
  for (const auto& w : in.warnings) h += warning_html(w);

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
  h += "</table>\n<table class=\"metrics calibration-fit\">\n<tr><th></th><th>calibration intercept (ideal 0)</th>"
       "<th>calibration slope (ideal 1)</th></tr>\n";
  auto fit_row = [&](const std::string& name, const BinaryEvaluation& e) {
    h += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td></tr>\n", name,
                     with_interval(e.point.calibration_intercept, e.calibration_intercept),
                     with_interval(e.point.calibration_slope, e.calibration_slope));
  };
  fit_row("model", in.model);
  if (in.oracle) fit_row("oracle (true probabilities)", *in.oracle);
  h += "</table>\n<p class=\"note\">";
  h += in.model.bootstrap_samples > 0
           ? fmt::format("In parentheses: 95% percentile bootstrap intervals from {} resamples{}. ",
                         in.model.bootstrap_samples,
                         in.model.bootstrap_redrawn > 0
                             ? fmt::format(" ({} resamples holding one class were redrawn)", in.model.bootstrap_redrawn)
                             : "")
           : std::string("No bootstrap intervals. ");
  h += "AUPRC is average precision; ECE uses equal-width bins. Calibration intercept: the log-odds correction with "
       "the slope held at 1 (below 0: risk overestimated on average); slope: of the outcome's log-odds on the "
       "prediction's (below 1: predictions too extreme).</p>\n";

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
  if (!in.decision.thresholds.empty())
    h += figure(decision_plot(in.decision, in.oracle_decision, base),
                "Net benefit = TP/n &minus; FP/n &times; t/(1&minus;t) at threshold probability t. The model helps "
                "where its curve lies above both treat all and treat none.");
  h += "</div>\n";
  if (in.operating_point) h += operating_point_html(*in.operating_point);
  if (in.subgroups && !in.subgroups->groups.empty()) h += subgroup_section_html(*in.subgroups, in.model);

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
  return h + page_close();
}

void write_report(const std::filesystem::path& html, const ReportInputs& in) {
  write_file_atomic(html, render_report_html(in));
}

}  // namespace chart
