// The HTML report of a time-to-event evaluation (`chart eval` of a piecewise-exponential head):
// C_td and the integrated Brier score beside the Kaplan-Meier reference, per-horizon AUROC, Brier
// and risk, the mean predicted survival curve against Kaplan-Meier, and Brier(t).
#pragma once
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "train/validation/survival_metrics.h"

#include "train/report/subgroup_report.h"

namespace chart {

struct SurvivalReportInputs {
  std::string title;
  std::vector<std::pair<std::string, std::string>> facts;
  std::vector<std::string> warnings;
  std::vector<std::string> horizon_names;  // as configured ("365d"), one per horizon
  SurvivalEvaluation model;
  GroupTable subgroups;  // eval.subgroups: each group's headline metrics
};

std::string render_survival_html(const SurvivalReportInputs& in);
void write_survival_report(const std::filesystem::path& path, const SurvivalReportInputs& in);

}  // namespace chart
