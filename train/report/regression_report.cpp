#include "train/report/regression_report.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/files.h"
#include "train/report/eval_report.h"
#include "train/report/html_page.h"
#include "train/report/svg_plot.h"

namespace chart {
namespace {

std::string num(double v) { return std::isfinite(v) ? fmt::format("{:.4g}", v) : "n/a"; }
std::string with_ci(double v, const Interval& ci) {
  return std::isfinite(ci.lo) ? fmt::format("{} ({}&ndash;{})", num(v), num(ci.lo), num(ci.hi)) : num(v);
}

std::string calibration_figure(const std::vector<RegressionBin>& bins) {
  if (bins.empty()) return "";
  Curve c;
  double lo = bins.front().mean_predicted, hi = lo;
  for (const auto& b : bins) {
    c.x.push_back(b.mean_predicted), c.y.push_back(b.mean_observed);
    lo = std::min({lo, b.mean_predicted, b.mean_observed}), hi = std::max({hi, b.mean_predicted, b.mean_observed});
  }
  const svg::Axis x = svg::nice_axis(lo, hi, "mean predicted value"), y = svg::nice_axis(lo, hi, "mean observed value");
  return "<div class=\"plots\">\n" +
         figure(curve_plot("Calibration by decile of the prediction", {{"model", c}}, x, y, false,
                           {"perfect calibration", svg::kChance}, {{x.lo, x.hi}, {x.lo, x.hi}}, "regression-calibration"),
                "Each point: a tenth of the rows, by predicted value. On the diagonal, predictions are right on average.") +
         "</div>\n";
}

}  // namespace

std::string render_regression_html(const RegressionReportInputs& in) {
  std::string h = page_open(in.title, in.facts);
  for (const auto& w : in.warnings) h += warning_html(w);
  const auto& m = in.model.point;
  h += fmt::format(
      "<h2>Overall</h2>\n<table class=\"metrics regression\">\n<tr><th>metric</th><th>model (95% CI)</th>"
      "<th>the train mean for every row</th></tr>\n"
      "<tr><td>mean absolute error</td><td>{}</td><td>{}</td></tr>\n"
      "<tr><td>root mean squared error</td><td>{}</td><td>{}</td></tr>\n"
      "<tr><td>R&sup2;</td><td>{}</td><td></td></tr>\n"
      "<tr><td>mean target / mean prediction</td><td>{} / {}</td><td></td></tr>\n<tr><td>rows</td><td>{}</td><td></td></tr>\n"
      "</table>\n<p class=\"note\">Intervals: {} bootstrap resamples of the rows. R&sup2; is 1 &minus; SSE/SST on these "
      "rows: 0 is predicting their own mean, below 0 worse than that.</p>\n",
      with_ci(m.mae, in.model.mae), num(in.baseline_mae), with_ci(m.rmse, in.model.rmse), num(in.baseline_rmse),
      with_ci(m.r2, in.model.r2), num(m.mean_target), num(m.mean_prediction), m.n, in.model.bootstrap_samples);
  if (std::isfinite(in.intervals.half_width)) {
    const auto& c = in.intervals;
    h += fmt::format("<h2>Prediction intervals</h2>\n<p>Each prediction &plusmn; {} (split-conformal, nominal coverage "
                     "{:.0f}%, calibrated on {} tuning rows): the target lies inside for {:.1f}% of these {} rows "
                     "(95% CI {:.1f}&ndash;{:.1f}%).</p>\n",
                     num(c.half_width), 100 * c.nominal, c.calibration_rows, 100 * c.coverage, c.n,
                     100 * c.coverage_ci.lo, 100 * c.coverage_ci.hi);
  }
  h += calibration_figure(in.calibration);
  return h + group_table_html(in.subgroups) + page_close();
}

void write_regression_report(const std::filesystem::path& path, const RegressionReportInputs& in) {
  write_file_atomic(path, render_regression_html(in));
}

}  // namespace chart
