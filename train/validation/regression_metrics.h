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
// Split-conformal prediction intervals. The half-width q is the ceil((n + 1) coverage)-th smallest
// absolute residual of n calibration rows (another split than the one evaluated), so that
// [prediction - q, prediction + q] holds an exchangeable new row's target with probability at
// least `coverage`; NaN when n is too small for that rank (n + 1 < 1 / (1 - coverage)).
double conformal_half_width(const std::vector<double>& predicted, const std::vector<double>& target, double coverage);
struct IntervalCoverage {
  double nominal = NAN, half_width = NAN;
  double coverage = NAN;  // the share of evaluated rows whose target lies in their interval
  Interval coverage_ci;   // its 95% Wilson score interval
  int64_t n = 0, calibration_rows = 0;
};
IntervalCoverage interval_coverage(const std::vector<double>& predicted, const std::vector<double>& target,
                                   double half_width, double nominal, int64_t calibration_rows);

// Rows sorted by prediction, cut into `bins` groups of (nearly) equal size.
std::vector<RegressionBin> regression_calibration(const std::vector<double>& predicted,
                                                  const std::vector<double>& target, int bins = 10);

}  // namespace chart
