// Binary classification metrics for `chart eval`: AUROC, AUPRC (average precision), Brier score,
// expected calibration error and the calibration intercept and slope (calibration.h), with 95%
// percentile bootstrap intervals, plus the ROC,
// precision-recall and reliability curves the report draws. Torch-free; p and y are plain vectors.
//
// Conventions (checked against scikit-learn, see tests/test_eval_metrics.cpp):
//  - p[i] is the predicted probability that y[i] == 1; every p must be in [0, 1] (NaN is an
//    error), every y must be 0 or 1, and the sizes must match: otherwise chart::Error names the
//    first index at fault.
//  - AUROC is the Mann-Whitney statistic (tied scores count one half), sklearn roc_auc_score.
//  - AUPRC is average precision, sum_k (R_k - R_{k-1}) P_k over distinct thresholds (tied scores
//    form one threshold), sklearn average_precision_score; not the trapezoidal area.
//  - With no input, or with only one class present, AUROC and AUPRC are NaN (undefined, not 0.5).
//    With no input Brier and ECE are NaN too.
//  - ECE uses `bins` equal-width bins: bin k holds k/bins <= p < (k+1)/bins, p = 1 in the last.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

namespace chart {

struct BinaryMetrics {
  double auroc, auprc, brier, ece;
  int64_t n, n_pos;
  double calibration_intercept = NAN, calibration_slope = NAN;  // calibration.h; NaN with one class
};

struct Interval {  // a 95% percentile bootstrap interval; NaN bounds when it is undefined
  double lo, hi;
};

struct BinaryEvaluation {
  BinaryMetrics point;  // on the data as given
  Interval auroc, auprc, brier, ece, calibration_intercept, calibration_slope;
  int64_t bootstrap_samples;  // resamples the intervals are computed from
  int64_t bootstrap_redrawn;  // resamples drawn again because they held one class only
};

// Point estimates of the metrics: what `chart eval` reports for a task.
BinaryMetrics binary_metrics(const std::vector<double>& p, const std::vector<int>& y, int ece_bins = 10);

// Point estimates plus 95% intervals (2.5th and 97.5th percentiles, linearly interpolated) from
// `bootstrap_samples` resamples with replacement of the n predictions, deterministic given seed.
// A resample holding one class only is redrawn (up to 100 times each, then the evaluation
// fails); if the data itself holds one class, the AUROC/AUPRC intervals are NaN and no redraw
// is made. The calibration intervals leave out resamples without a finite fit (up to 5%). Sorts once: each resample is counts per sorted position, O(n) to score. ECE is biased
// upward, so its interval can sit above its point estimate on small samples.
BinaryEvaluation evaluate_binary(const std::vector<double>& p, const std::vector<int>& y,
                                 int64_t bootstrap_samples = 1000, uint64_t seed = 0, int ece_bins = 10);

struct Curve {
  std::vector<double> x, y;
};

// ROC curve, one point per distinct threshold from (0,0) to (1,1): x = false positive rate,
// y = true positive rate (sklearn roc_curve without drop_intermediate). Empty if one class.
Curve roc_curve(const std::vector<double>& p, const std::vector<int>& y);

// Precision-recall curve: x = recall, y = precision, one point per distinct threshold in order
// of increasing recall, starting at (0, 1) as sklearn does. Drawn as steps (precision holds
// from the previous recall up to the point's recall), its area is the AUPRC. Empty if no positives.
Curve precision_recall_curve(const std::vector<double>& p, const std::vector<int>& y);

struct CalibrationBin {
  double mean_predicted, fraction_positive;
  int64_t n;
};

// Reliability diagram: per equal-width bin of p (as for ECE), the mean prediction and the
// fraction of positives; empty bins are dropped.
std::vector<CalibrationBin> calibration_bins(const std::vector<double>& p, const std::vector<int>& y, int bins = 10);

}  // namespace chart
