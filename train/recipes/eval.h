// `chart eval`: scores a fine-tuned checkpoint (init.checkpoint) on the label rows of one split
// (eval.split, default held_out), or an existing predictions file (eval.predictions, e.g. from
// `chart generate`), and writes to run.dir:
//   predictions.parquet   subject_id, prediction_time, boolean_value, predicted_boolean_value,
//                         predicted_boolean_probability (the meds-evaluation shape)
//   eval.json             auroc, auprc, brier, ece, each with a 95% bootstrap interval, n, ...;
//                         and the oracle's metrics when the labels carry true probabilities
//   report.html           ROC, precision-recall and calibration curves, loss curves of the
//                         fine-tuning and pretraining runs, the metrics table
#pragma once
#include <cstdint>
#include <string>

#include "core/config.h"

namespace chart {

int run_eval(const Config& config);

// Fewer than this many positive (or negative) rows: metrics are reported with a warning in the
// log, eval.json ("warnings") and report.html, and fine-tuning says what early stopping rests on.
constexpr int64_t kFewCases = 10;
// The warning for n rows of which n_positive are positive; "" when both classes have kFewCases.
std::string few_cases_warning(int64_t n, int64_t n_positive);

}  // namespace chart
