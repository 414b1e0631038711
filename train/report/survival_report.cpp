#include "train/report/survival_report.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/files.h"
#include "train/report/eval_report.h"
#include "train/report/html_page.h"
#include "train/report/svg_plot.h"

namespace chart {
namespace {

std::string num(double v) { return std::isfinite(v) ? fmt::format("{:.3f}", v) : "n/a"; }
std::string with_ci(double v, const Interval& ci) {
  return std::isfinite(ci.lo) ? fmt::format("{} ({}&ndash;{})", num(v), num(ci.lo), num(ci.hi)) : num(v);
}

std::string horizon_rows(const SurvivalReportInputs& in) {
  std::string rows;
  const auto& e = in.model;
  for (size_t k = 0; k < e.point.horizons.size(); ++k) {
    const auto& h = e.point.horizons[k];
    rows += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} / {}</td><td>{} / {} / {}</td></tr>\n",
                        in.horizon_names.at(k), with_ci(h.auroc, e.auroc[k]), with_ci(h.brier, e.brier[k]),
                        num(h.brier_km), num(h.mean_predicted_risk), num(h.observed_risk_km), h.cases, h.controls,
                        h.censored);
  }
  return rows;
}

std::string curves(const SurvivalEvaluation& e) {
  if (e.grid.size() < 2) return "";
  const svg::Axis x = svg::nice_axis(0, e.grid.back(), "days after prediction time");
  double top = 0;
  for (size_t g = 0; g < e.grid.size(); ++g) top = std::max({top, e.brier_model[g], e.brier_reference[g]});
  Curve survival{e.grid, e.mean_survival}, km{e.grid, e.km_survival};
  Curve brier{e.grid, e.brier_model}, brier_km{e.grid, e.brier_reference};
  return "<div class=\"plots\">\n" +
         figure(curve_plot("Survival: mean predicted against Kaplan-Meier", {{"model (mean of rows)", survival}}, x,
                           svg::unit_axis("probability of no event"), false, {"Kaplan-Meier", svg::kChance}, km,
                           "survival-curves"),
                "The mean of the rows' predicted survival curves beside the Kaplan-Meier curve of the same rows: "
                "apart, the model's risk is off on average.") +
         figure(curve_plot("Brier score over time", {{"model", brier}}, x, svg::nice_axis(0, top, "Brier score (IPCW)"),
                           false, {"Kaplan-Meier for every row", svg::kChance}, brier_km, "brier-curve"),
                "Graf's inverse-probability-of-censoring weighted Brier score at each time; below the reference, the "
                "model tells rows apart better than the population curve.") +
         "</div>\n";
}

}  // namespace

std::string render_survival_html(const SurvivalReportInputs& in) {
  std::string h = page_open(in.title, in.facts);
  for (const auto& w : in.warnings) h += warning_html(w);
  const auto& e = in.model;
  const auto& m = e.point;
  h += fmt::format(
      "<h2>Overall (up to {:.0f} days)</h2>\n<table class=\"metrics survival\">\n<tr><th>metric</th><th>model (95% CI)"
      "</th><th>Kaplan-Meier for every row</th></tr>\n"
      "<tr><td>time-dependent concordance (Antolini C<sub>td</sub>)</td><td>{}</td><td>0.500</td></tr>\n"
      "<tr><td>integrated Brier score</td><td>{}</td><td>{}</td></tr>\n"
      "<tr><td>rows / with the event</td><td>{} / {}</td><td></td></tr>\n</table>\n",
      m.tau, with_ci(m.c_td, e.c_td), with_ci(m.ibs, e.ibs), num(m.ibs_km), m.n, m.events);
  h += "<h2>At each horizon</h2>\n<table class=\"metrics horizons\">\n<tr><th>horizon</th><th>AUROC (95% CI)</th>"
       "<th>Brier (95% CI)</th><th>Brier of Kaplan-Meier</th><th>mean predicted / Kaplan-Meier risk</th>"
       "<th>events by then / at risk after / censored before</th></tr>\n" +
       horizon_rows(in) + "</table>\n";
  h += fmt::format(
      "<p class=\"note\">Intervals: {} bootstrap resamples of the rows. AUROC at a horizon is cumulative/dynamic: "
      "events by then (weighted by the inverse probability of remaining uncensored) against rows still event-free "
      "after it. Rows censored before a horizon count in neither group; the Brier scores weight for them instead. "
      "The Kaplan-Meier reference is fitted on these same rows.</p>\n",
      e.bootstrap_samples);
  h += curves(e);
  return h + group_table_html(in.subgroups) + page_close();
}

void write_survival_report(const std::filesystem::path& path, const SurvivalReportInputs& in) {
  write_file_atomic(path, render_survival_html(in));
}

}  // namespace chart
