// `chart eval`: scores a fine-tuned checkpoint (init.checkpoint) on the label rows of one split
// (eval.split, default held_out), or an existing predictions file (eval.predictions, e.g. from
// `chart generate`), and writes to run.dir:
//   predictions.parquet   subject_id, prediction_time, boolean_value, predicted_boolean_value,
//                         predicted_boolean_probability (the meds-evaluation shape)
//   eval.json             auroc, auprc, brier, ece, each with a 95% bootstrap interval, n, ...;
//                         and the oracle's metrics when the labels carry true probabilities
//   report.html           ROC, precision-recall and calibration curves, loss curves of the
//                         fine-tuning and pretraining runs, the metrics table
// A head fine-tuned on integer or categorical labels is evaluated as a multi-class task
// (eval_multiclass.h).
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>

#include "core/config.h"
#include "core/json.h"
#include "train/checkpoint/pretrained.h"

namespace chart {

int run_eval(const Config& config);

// Shared by the boolean and multi-class evaluations. The fine-tuned checkpoint of init.checkpoint,
// its data.dir, model and context set in cfg; labels of another task than its head's are a
// chart::Error unless eval.other_task.
Pretrained open_evaluated_checkpoint(Config& cfg);
// task.name, else the checkpoint's task, else the labels' name.
std::string evaluated_task(const Config& cfg, const Pretrained& pre);
std::string now_utc();  // "2026-12-06 13:05 UTC", for reports
// eval.json in out, and out/model_card.json: the evaluated checkpoint's card (when it has one)
// with this evaluation and the governance answers (card.governance).
void write_evaluation(const std::filesystem::path& out, const Json& eval, const std::filesystem::path& evaluated,
                      const std::string& governance);

// Fewer than this many positive (or negative) rows: metrics are reported with a warning in the
// log, eval.json ("warnings") and report.html, and fine-tuning says what early stopping rests on.
constexpr int64_t kFewCases = 10;
// The warning for n rows of which n_positive are positive; "" when both classes have kFewCases.
std::string few_cases_warning(int64_t n, int64_t n_positive);

}  // namespace chart
