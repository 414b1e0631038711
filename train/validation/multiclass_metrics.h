// Multi-class classification metrics for `chart eval` on integer or categorical labels:
// accuracy, one-vs-rest AUROC per class, their macro mean and the micro (pooled) AUROC, the log
// loss, per-class precision, recall and average precision at the argmax, and the confusion
// matrix, with 95% percentile bootstrap intervals. Torch-free; p and y are plain vectors.
//
// Conventions (checked against scikit-learn, see tests/test_multiclass.cpp):
//  - p[i] holds row i's probability of each of the C classes (each in [0, 1]); y[i] is its class
//    in [0, C). Sizes that do not match, or a class out of range, are a chart::Error naming the row.
//  - The prediction is the most probable class (the first on a tie).
//  - A class's AUROC is that of "this class vs the rest" (binary_metrics.h); NaN when the class is
//    absent or is every row. The macro AUROC averages the defined ones (sklearn roc_auc_score
//    multi_class="ovr", average="macro" over classes present); the micro AUROC pools every
//    (row, class) pair into one binary problem.
//  - Log loss: the mean of -log p[i][y[i]], p clamped to [1e-15, 1].
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "train/validation/binary_metrics.h"

namespace chart {

struct ClassMetrics {
  int64_t support = 0;    // rows of this class
  int64_t predicted = 0;  // rows predicted as it
  double auroc = NAN, auprc = NAN, precision = NAN, recall = NAN;
};

struct MulticlassMetrics {
  int64_t n = 0, classes = 0;
  double accuracy = NAN, macro_auroc = NAN, micro_auroc = NAN, log_loss = NAN;
  double majority_rate = NAN;  // the accuracy of always predicting the most frequent class
  std::vector<ClassMetrics> per_class;
  std::vector<std::vector<int64_t>> confusion;  // [true class][predicted class]
};

struct MulticlassEvaluation {
  MulticlassMetrics point;
  Interval accuracy, macro_auroc, micro_auroc, log_loss;
  std::vector<Interval> class_auroc;  // per class
  int64_t bootstrap_samples = 0;
};

MulticlassMetrics multiclass_metrics(const std::vector<std::vector<double>>& p, const std::vector<int>& y,
                                     int64_t classes);

// Point estimates plus 95% intervals from `bootstrap_samples` resamples of the rows, deterministic
// given seed (the stream of bootstrap.h).
MulticlassEvaluation evaluate_multiclass(const std::vector<std::vector<double>>& p, const std::vector<int>& y,
                                         int64_t classes, int64_t bootstrap_samples = 1000, uint64_t seed = 0);

}  // namespace chart
