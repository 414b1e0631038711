// The HTML report of a regression evaluation (`chart eval` of a head fine-tuned on float labels):
// MAE, RMSE and R² with intervals beside predicting the mean, and the calibration plot (mean
// observed against mean predicted value per decile of the prediction).
#pragma once
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "train/validation/regression_metrics.h"

#include "train/report/subgroup_report.h"

namespace chart {

struct RegressionReportInputs {
  std::string title;
  std::vector<std::pair<std::string, std::string>> facts;
  std::vector<std::string> warnings;
  RegressionEvaluation model;
  double baseline_mae = NAN, baseline_rmse = NAN;  // predicting the train mean for every row
  std::vector<RegressionBin> calibration;
  IntervalCoverage intervals;  // nominal NaN: none
  GroupTable subgroups;  // eval.subgroups: each group's headline metrics
};

std::string render_regression_html(const RegressionReportInputs& in);
void write_regression_report(const std::filesystem::path& path, const RegressionReportInputs& in);

}  // namespace chart
