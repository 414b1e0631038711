// `chart predict`: predictions for prediction times that have no labels, in meds-evaluation's
// PredictionSchema shape, from a fine-tuned checkpoint (its classification head) or from a
// pretrained one (zero-shot: generate.* says which outcome and horizon are scored).
//   the data   data.dir, a token dataset on the checkpoint's vocabulary, or predict.meds, a raw
//              MEDS dataset tokenized into run.dir/tokens on that vocabulary first (coverage.json
//              there counts the codes the model does not know);
//   the times  predict.times=labels: task.labels' (subject_id, prediction_time); a boolean_value
//              is carried into predictions.parquet untouched, never read by the model;
//              predict.times=last: each subject of predict.split at its last event.
// Writes run.dir/predictions.parquet, predict.json (what was predicted
// from what, and the data's coverage), config.yaml; zero-shot also risk.parquet with intervals.
// An existing run.dir/predictions.parquet is refused.
#pragma once

#include "core/config.h"

namespace chart {

int run_predict(const Config& config);

}  // namespace chart
