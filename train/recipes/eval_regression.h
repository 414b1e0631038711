// `chart eval` of a head fine-tuned on float labels: the rows of eval.split, written to run.dir:
//   predictions.parquet   subject_id, prediction_time, float_value, predicted_float_value
//   eval.json             MAE, RMSE and R² with 95% intervals, the same for the train mean, and
//                         the calibration table by decile of the prediction
//   report.html           the same for a person
#pragma once
#include "core/config.h"
#include "train/checkpoint/pretrained.h"
#include "train/recipes/classify.h"

namespace chart {

// cfg and pre as open_evaluated_checkpoint (eval.h) left them.
int run_regression_eval(Config& cfg, Pretrained pre, const HeadClasses& head);

}  // namespace chart
