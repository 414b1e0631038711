#include "train/report/multiclass_report.h"

#include <fmt/format.h>

#include <cmath>

#include "core/files.h"
#include "train/report/html_page.h"
#include "train/report/svg_plot.h"

namespace chart {
namespace {
using svg::html_escape;

std::string num(double v) { return std::isfinite(v) ? fmt::format("{:.3f}", v) : "n/a"; }
std::string with_ci(double v, const Interval& ci) {
  return std::isfinite(ci.lo) ? fmt::format("{} ({}&ndash;{})", num(v), num(ci.lo), num(ci.hi)) : num(v);
}

std::string headline_html(const MulticlassEvaluation& e) {
  const auto& m = e.point;
  return fmt::format(
      "<h2>Overall</h2>\n<table class=\"metrics multiclass\">\n<tr><th>metric</th><th>value (95% CI)</th></tr>\n"
      "<tr><td>accuracy (most probable class)</td><td>{}</td></tr>\n"
      "<tr><td>always the most frequent class</td><td>{}</td></tr>\n"
      "<tr><td>macro AUROC (mean of one-vs-rest)</td><td>{}</td></tr>\n"
      "<tr><td>micro AUROC (pooled one-vs-rest)</td><td>{}</td></tr>\n"
      "<tr><td>log loss</td><td>{}</td></tr>\n<tr><td>rows</td><td>{}</td></tr>\n</table>\n"
      "<p class=\"note\">Intervals: {} bootstrap resamples of the rows. Chance is a macro AUROC of 0.5 and an accuracy "
      "of the most frequent class's share.</p>\n",
      with_ci(m.accuracy, e.accuracy), num(m.majority_rate), with_ci(m.macro_auroc, e.macro_auroc),
      with_ci(m.micro_auroc, e.micro_auroc), with_ci(m.log_loss, e.log_loss), m.n, e.bootstrap_samples);
}

std::string per_class_html(const MulticlassReportInputs& in) {
  std::string h =
      "<h2>By class</h2>\n<table class=\"metrics per-class\">\n<tr><th>class</th><th>rows</th><th>predicted</th>"
      "<th>AUROC vs rest (95% CI)</th><th>AUPRC</th><th>precision</th><th>recall</th></tr>\n";
  const auto& m = in.model.point;
  for (size_t c = 0; c < in.classes.size(); ++c) {
    const ClassMetrics& k = m.per_class[c];
    h += fmt::format("<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                     html_escape(in.classes[c]), k.support, k.predicted, with_ci(k.auroc, in.model.class_auroc[c]),
                     num(k.auprc), num(k.precision), num(k.recall));
  }
  return h + "</table>\n";
}

std::string confusion_html(const MulticlassReportInputs& in) {
  std::string h = "<h2>Confusion matrix</h2>\n<table class=\"metrics confusion\">\n<tr><th>true \\ predicted</th>";
  for (const auto& c : in.classes) h += "<th><code>" + html_escape(c) + "</code></th>";
  h += "</tr>\n";
  const auto& m = in.model.point;
  for (size_t r = 0; r < in.classes.size(); ++r) {
    h += "<tr><th><code>" + html_escape(in.classes[r]) + "</code></th>";
    for (size_t c = 0; c < in.classes.size(); ++c)
      h += fmt::format(r == c ? "<td><b>{}</b></td>" : "<td>{}</td>", m.confusion[r][c]);
    h += "</tr>\n";
  }
  return h + "</table>\n";
}

}  // namespace

std::string render_multiclass_html(const MulticlassReportInputs& in) {
  std::string h = page_open(in.title, in.facts);
  for (const auto& w : in.warnings) h += warning_html(w);
  h += headline_html(in.model) + per_class_html(in) + confusion_html(in);
  std::vector<Series> roc;
  for (const auto& s : in.roc)
    if (!s.curve.x.empty()) roc.push_back(s);
  if (!roc.empty())
    h += "<div class=\"plots\">\n" +
         figure(curve_plot("ROC, each class vs the rest", roc, svg::unit_axis("false positive rate"),
                           svg::unit_axis("true positive rate"), false, {"chance", svg::kChance}, {{0, 1}, {0, 1}},
                           "class-roc"),
                "One curve per class: its probability ranking its own rows above the others'.") +
         "</div>\n";
  h += "<p class=\"note\">Subgroups, operating thresholds and decision curves are reported for boolean tasks; for a "
       "multi-class task each class's one-vs-rest predictions are written in meds-evaluation's shape "
       "(predictions_by_class/) for any of them.</p>\n";
  return h + group_table_html(in.subgroups) + page_close();
}

void write_multiclass_report(const std::filesystem::path& path, const MulticlassReportInputs& in) {
  write_file_atomic(path, render_multiclass_html(in));
}

}  // namespace chart
