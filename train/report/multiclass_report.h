// The HTML report of a multi-class evaluation (`chart eval` of a head fine-tuned on integer or
// categorical labels): accuracy beside the majority-class rate, macro and micro AUROC with
// intervals, a table per class, the confusion matrix and each class's one-vs-rest ROC curve.
#pragma once
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "train/report/eval_report.h"
#include "train/validation/multiclass_metrics.h"

#include "train/report/subgroup_report.h"

namespace chart {

struct MulticlassReportInputs {
  std::string title;
  std::vector<std::pair<std::string, std::string>> facts;
  std::vector<std::string> warnings;
  std::vector<std::string> classes;  // in the head's order
  MulticlassEvaluation model;
  std::vector<Series> roc;  // one per class, this class vs the rest (empty curves are skipped)
  GroupTable subgroups;  // eval.subgroups: each group's headline metrics
};

std::string render_multiclass_html(const MulticlassReportInputs& in);
// Through a temporary file and a rename.
void write_multiclass_report(const std::filesystem::path& path, const MulticlassReportInputs& in);

}  // namespace chart
