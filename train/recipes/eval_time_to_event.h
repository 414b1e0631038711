// `chart eval` of a time-to-event head (task.event_codes at fine-tuning): the prediction times of
// task.labels in eval.split, their times to the event codes from the record (censored at the last
// event), and written to run.dir:
//   predictions.parquet         subject_id, prediction_time, time_to_event_days, event_observed,
//                               predicted_survival//<horizon> per eval.horizons (data/labels.h)
//   predictions_by_horizon/     one file per horizon in meds-evaluation's PredictionSchema: the
//                               rows whose status then is known, boolean_value = the event came by
//                               then, predicted_boolean_probability = 1 - S(horizon)
//   eval.json                   C_td, integrated Brier score (and Kaplan-Meier's), per horizon
//                               AUROC, Brier and risk, with 95% intervals (survival_metrics.h)
//   report.html                 the same for a person, with the survival and Brier curves
#pragma once
#include "core/config.h"
#include "train/checkpoint/pretrained.h"
#include "train/recipes/classify.h"

namespace chart {

// cfg and pre as open_evaluated_checkpoint (eval.h) left them.
int run_time_to_event_eval(Config& cfg, Pretrained pre, const HeadClasses& head);

}  // namespace chart
