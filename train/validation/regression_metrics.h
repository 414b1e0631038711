// Regression metrics for `chart eval` on float labels: mean absolute error, root mean squared
// error and R² (1 - SSE / SST, sklearn r2_score), with 95% percentile bootstrap intervals, and a
// calibration table (the mean prediction and mean observed value per decile of the prediction).
// Torch-free; predictions and targets are plain vectors, finite, of one size (else chart::Error
// naming the row).
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "train/validation/binary_metrics.h"

namespace chart {

struct RegressionMetrics {
  int64_t n = 0;
  double mae = NAN, rmse = NAN, r2 = NAN;  // r2 NaN when every target is the same
  double mean_target = NAN, mean_prediction = NAN;
};

struct RegressionEvaluation {
  RegressionMetrics point;
  Interval mae, rmse, r2;
  int64_t bootstrap_samples = 0;
};

struct RegressionBin {
  double mean_predicted, mean_observed;
  int64_t n;
};

RegressionMetrics regression_metrics(const std::vector<double>& predicted, const std::vector<double>& target);
RegressionEvaluation evaluate_regression(const std::vector<double>& predicted, const std::vector<double>& target,
                                         int64_t bootstrap_samples = 1000, uint64_t seed = 0);
// Rows sorted by prediction, cut into `bins` groups of (nearly) equal size.
std::vector<RegressionBin> regression_calibration(const std::vector<double>& predicted,
                                                  const std::vector<double>& target, int bins = 10);

}  // namespace chart
