// `chart eval` of a head fine-tuned on integer or categorical labels: the rows of eval.split,
// scored per class, and written to run.dir:
//   predictions.parquet     subject_id, prediction_time, the label, predicted_<label column>,
//                           predicted_probability//<class> per class (data/labels.h)
//   predictions_by_class/   one file per class in meds-evaluation's PredictionSchema (one vs rest)
//   eval.json               accuracy, macro and micro AUROC, log loss with 95% intervals; per class
//                           rows, AUROC, AUPRC, precision and recall; the confusion matrix
//   report.html             the same for a person, with each class's ROC curve
#pragma once
#include "core/config.h"
#include "train/checkpoint/pretrained.h"
#include "train/recipes/classify.h"

namespace chart {

// cfg and pre as open_evaluated_checkpoint (eval.h) left them.
int run_multiclass_eval(Config& cfg, Pretrained pre, const HeadClasses& head);

}  // namespace chart
