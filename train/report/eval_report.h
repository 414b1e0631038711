// The report `chart eval` writes: one self-contained HTML file (no scripts, no external assets)
// with a facts header, a metrics table with 95% intervals, and inline SVG plots drawn here: ROC,
// precision-recall, reliability diagram, and the loss curves of the runs behind the checkpoint.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "train/report/svg_plot.h"
#include "train/validation/binary_metrics.h"
#include "train/validation/decision_curve.h"
#include "train/validation/operating_point.h"
#include "train/validation/subgroups.h"

namespace chart {

struct Series {
  std::string name;  // legend text, e.g. "model" or "oracle"
  Curve curve;
};

// ROC or precision-recall as an SVG figure: a reference line (chance, base rate) under the
// series, the first series (the model) drawn last, on top. cls is the <svg>'s class.
std::string curve_plot(const std::string& title, const std::vector<Series>& series, svg::Axis x, svg::Axis y,
                       bool steps, const svg::LegendEntry& reference, const Curve& reference_line, std::string_view cls);

struct LossRun {
  std::string title;                    // e.g. "pretraining", "fine-tuning"
  std::filesystem::path metrics_jsonl;  // a run directory's metrics.jsonl; may be missing
};

struct ReportInputs {
  std::string title;
  std::vector<std::pair<std::string, std::string>> facts;  // shown in order: task, checkpoint...
  BinaryEvaluation model;
  std::optional<BinaryEvaluation> oracle;   // synthetic data: metrics of the true probabilities
  std::vector<Series> roc, pr;              // model first, then the oracle if any
  std::vector<CalibrationBin> calibration;  // the model's reliability diagram
  std::vector<LossRun> loss_runs;
  std::vector<std::string> warnings;        // shown above the metrics, e.g. too few positives
  std::optional<SubgroupReport> subgroups;  // metrics by sex, age band, ... (when the data is known)
  std::optional<OperatingPoint> operating_point;  // the metrics at the threshold chosen on tuning
  DecisionCurve decision;                         // net benefit of the model (empty: not drawn)
  std::optional<DecisionCurve> oracle_decision;   // and of the true probabilities, on synthetic data
};

// The whole report as one HTML document; pure apart from reading the loss runs' files.
std::string render_report_html(const ReportInputs& in);

// Renders the report and writes it to `html` atomically (write_file_atomic).
void write_report(const std::filesystem::path& html, const ReportInputs& in);

}  // namespace chart
