#include "train/recipes/eval_multiclass.h"

#include <fmt/ranges.h>

#include "core/error.h"
#include "core/files.h"
#include "core/json.h"
#include "core/log.h"
#include "data/coverage.h"
#include "data/examples.h"
#include "data/labels.h"
#include "train/interop/load_pretrained.h"
#include "train/recipes/eval.h"
#include "train/recipes/eval_subgroups.h"
#include "train/report/multiclass_report.h"

namespace chart {
namespace fs = std::filesystem;
namespace {

Json interval(const Interval& ci) { return Json::array({ci.lo, ci.hi}); }

Json multiclass_json(const MulticlassEvaluation& e, const std::vector<std::string>& classes) {
  const auto& m = e.point;
  Json j{{"accuracy", m.accuracy},       {"accuracy_ci", interval(e.accuracy)},
         {"macro_auroc", m.macro_auroc}, {"macro_auroc_ci", interval(e.macro_auroc)},
         {"micro_auroc", m.micro_auroc}, {"micro_auroc_ci", interval(e.micro_auroc)},
         {"log_loss", m.log_loss},       {"log_loss_ci", interval(e.log_loss)},
         {"majority_rate", m.majority_rate}, {"n", m.n}, {"bootstrap", e.bootstrap_samples}};
  j["per_class"] = Json::array();
  for (size_t c = 0; c < classes.size(); ++c) {
    const ClassMetrics& k = m.per_class[c];
    j["per_class"].push_back({{"class", classes[c]}, {"support", k.support}, {"predicted", k.predicted},
                              {"auroc", k.auroc}, {"auroc_ci", interval(e.class_auroc[c])}, {"auprc", k.auprc},
                              {"precision", k.precision}, {"recall", k.recall}});
  }
  j["confusion"] = m.confusion;  // [true class][predicted class], in the order of "classes"
  return j;
}

// The evaluated rows' labels as the head's classes, and warnings for classes with few rows.
std::vector<data::Example> labelled_rows(const Config& cfg, const HeadClasses& head, const data::TokenDataset& ds,
                                         std::vector<std::string>& warnings) {
  data::LabelSet set = data::read_label_set(cfg.task.labels);
  if (set.column != head.column)
    throw Error(fmt::format("{}: labels in '{}', but the head was fine-tuned on '{}' labels", cfg.task.labels, set.column,
                            head.column),
                fmt::format("pass {} labels of its task", head.column));
  data::use_classes(set, head.classes, cfg.task.labels);
  auto examples = data::make_examples(ds, set.rows, cfg.task.labels);
  std::vector<data::Example> ex = std::move(examples.by_split[cfg.eval.split]);
  if (ex.empty()) fail("{}: no label rows of subjects in the {} split of {}", cfg.task.labels, cfg.eval.split, cfg.data.dir);
  std::vector<int64_t> rows(head.classes.size(), 0);
  for (const auto& e : ex) ++rows[size_t(e.row.class_index)];
  for (size_t c = 0; c < rows.size(); ++c)
    if (rows[c] < kFewCases)
      warnings.push_back(fmt::format("class '{}' has {} of the {} rows: its AUROC {}", head.classes[c], rows[c], ex.size(),
                                     rows[c] == 0 ? "is undefined and the macro mean leaves it out"
                                                  : "rests on very few patients (wide interval)"));
  return ex;
}

}  // namespace

int run_multiclass_eval(Config& cfg, Pretrained pre, const HeadClasses& head) {
  const auto& ec = cfg.eval;
  const std::string task = evaluated_task(cfg, pre);
  auto ds = data::TokenDataset::open(cfg.data.dir);
  check_vocab(pre, ds.vocab_hash(), cfg.data.dir);
  MulticlassReportInputs report;
  const auto ex = labelled_rows(cfg, head, ds, report.warnings);
  info("eval: task {}: {} classes of {} ({}), {} label rows of the {} split of {}, checkpoint {}", task,
       head.classes.size(), head.column, fmt::join(head.classes, ", "), ex.size(), ec.split, cfg.data.dir,
       pre.dir.string());
  DeviceChoice dev = choose_device(cfg.train.device, cfg.train.precision);
  ClinicalTransformer model = load_classifier(pre, dev);
  auto p = predict_class_probabilities(model, ds, ex, finetune_context(cfg), ec.batch_size, dev, head.slice());
  for (auto& row : p)  // scored as written: float32 in predictions.parquet
    for (double& q : row) q = static_cast<float>(q);
  std::vector<int> y;
  std::vector<data::LabelRow> rows;
  for (const auto& e : ex) y.push_back(e.row.class_index), rows.push_back(e.row);
  const auto C = static_cast<int64_t>(head.classes.size());
  report.model = evaluate_multiclass(p, y, C, ec.bootstrap, static_cast<uint64_t>(cfg.train.seed));
  report.classes = head.classes;
  for (int64_t c = 0; c < C; ++c) {
    std::vector<double> score;
    std::vector<int> is;
    for (size_t i = 0; i < y.size(); ++i) score.push_back(p[i][size_t(c)]), is.push_back(y[i] == c);
    report.roc.push_back({head.classes[size_t(c)], roc_curve(score, is)});
  }
  report.subgroups = evaluate_groups(
      subgroup_dimensions(ds, rows, ec), rows.size(), {"accuracy (95% CI)", "macro AUROC (95% CI)", "log loss"},
      [&](const std::vector<size_t>& idx) {
        std::vector<std::vector<double>> gp;
        std::vector<int> gy;
        for (size_t i : idx) gp.push_back(p[i]), gy.push_back(y[i]);
        const MulticlassEvaluation g = evaluate_multiclass(gp, gy, C, ec.bootstrap, static_cast<uint64_t>(cfg.train.seed));
        GroupScore s{{cell_with_interval(g.point.accuracy, g.accuracy), cell_with_interval(g.point.macro_auroc, g.macro_auroc),
                      cell_with_interval(g.point.log_loss, {NAN, NAN})},
                     {{"accuracy", g.point.accuracy}, {"accuracy_ci", Json::array({g.accuracy.lo, g.accuracy.hi})},
                      {"macro_auroc", g.point.macro_auroc}, {"macro_auroc_ci", Json::array({g.macro_auroc.lo, g.macro_auroc.hi})},
                      {"log_loss", g.point.log_loss}},
                     ""};
        std::vector<int64_t> per_class(size_t(C), 0);
        for (int c : gy) ++per_class[size_t(c)];
        const int64_t fewest = *std::min_element(per_class.begin(), per_class.end());
        if (fewest < kFewSubgroupCases)
          s.warning = fmt::format("a class has only {} of its {} rows; its metrics are unreliable", fewest, idx.size());
        return s;
      });
  const auto& m = report.model.point;
  if (!(m.accuracy > m.majority_rate))
    report.warnings.push_back(fmt::format("accuracy {:.3f} is no better than always predicting the most frequent class "
                                          "({:.3f})", m.accuracy, m.majority_rate));
  for (const auto& w : report.warnings) warn("eval: {}", w);
  report.title = fmt::format("chart eval: {} ({} split, {} classes)", task, ec.split, C);
  report.facts = {{"task", task}, {"checkpoint", pre.dir.string()}, {"labels", cfg.task.labels},
                  {"label column", head.column}, {"classes", fmt::format("{}", fmt::join(head.classes, ", "))},
                  {"date", now_utc()}};
  const Json coverage = data::coverage_summary(cfg.data.dir, ec.split, 10);

  const fs::path out = cfg.run.dir;
  fs::create_directories(out);
  data::write_class_predictions(out / "predictions.parquet", rows, p, head.column, head.classes,
                                out / "predictions_by_class");
  Json ev;
  ev["task"] = task;
  ev["task_type"] = "multiclass";
  ev["split"] = ec.split;
  ev["source"] = pre.dir.string();
  ev["label_column"] = head.column;
  ev["classes"] = head.classes;
  ev["coverage"] = coverage;
  ev["model"] = multiclass_json(report.model, head.classes);
  ev["subgroups"] = report.subgroups.json();
  ev["accuracy"] = m.accuracy;
  ev["macro_auroc"] = m.macro_auroc;
  ev["micro_auroc"] = m.micro_auroc;
  ev["log_loss"] = m.log_loss;
  ev["n"] = m.n;
  ev["warnings"] = report.warnings;
  write_evaluation(out, ev, pre.dir, cfg.card.governance);
  write_multiclass_report(out / "report.html", report);
  info("eval: task {}: {} rows, {} classes: accuracy {:.4f} [{:.4f}, {:.4f}] (most frequent class {:.4f}), macro AUROC "
       "{:.4f} [{:.4f}, {:.4f}], micro AUROC {:.4f}, log loss {:.4f}",
       task, m.n, C, m.accuracy, report.model.accuracy.lo, report.model.accuracy.hi, m.majority_rate, m.macro_auroc,
       report.model.macro_auroc.lo, report.model.macro_auroc.hi, m.micro_auroc, m.log_loss);
  info("eval: wrote {}, {}, {}", (out / "eval.json").string(), (out / "predictions.parquet").string(),
       (out / "report.html").string());
  return 0;
}

}  // namespace chart
