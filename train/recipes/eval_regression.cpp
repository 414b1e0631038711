#include "train/recipes/eval_regression.h"

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
#include "train/report/regression_report.h"

namespace chart {
namespace fs = std::filesystem;
namespace {

Json interval(const Interval& ci) { return Json::array({ci.lo, ci.hi}); }

Json regression_json(const RegressionReportInputs& r) {
  const auto& m = r.model.point;
  Json j{{"mae", m.mae}, {"mae_ci", interval(r.model.mae)}, {"rmse", m.rmse}, {"rmse_ci", interval(r.model.rmse)},
         {"r2", m.r2}, {"r2_ci", interval(r.model.r2)}, {"mean_target", m.mean_target},
         {"mean_prediction", m.mean_prediction}, {"n", m.n}, {"bootstrap", r.model.bootstrap_samples},
         {"train_mean_mae", r.baseline_mae}, {"train_mean_rmse", r.baseline_rmse}};
  j["calibration"] = Json::array();
  for (const auto& b : r.calibration)
    j["calibration"].push_back({{"mean_predicted", b.mean_predicted}, {"mean_observed", b.mean_observed}, {"n", b.n}});
  return j;
}

Json interval_json(const IntervalCoverage& c) {
  if (!std::isfinite(c.half_width)) return Json();
  return {{"method", "split-conformal on the tuning split"}, {"nominal", c.nominal}, {"half_width", c.half_width},
          {"calibration_rows", c.calibration_rows}, {"coverage", c.coverage}, {"coverage_ci", interval(c.coverage_ci)},
          {"n", c.n}};
}

// Split-conformal intervals: the half-width from the tuning split's absolute residuals, their
// coverage on the evaluated rows. None when eval.interval_coverage is 0, when the tuning split is
// the one evaluated (calibrated and scored on the same rows), or when it has too few rows.
void add_intervals(const Config& cfg, const data::TokenDataset& ds, data::ExampleSplits& examples,
                   ClinicalTransformer& model, const DeviceChoice& dev, const HeadClasses& head,
                   const std::vector<double>& p, const std::vector<double>& y, RegressionReportInputs& report) {
  const auto& ec = cfg.eval;
  if (!(ec.interval_coverage > 0)) return;
  const auto& tuning = examples.by_split["tuning"];
  std::string why;
  if (ec.split == "tuning") why = "the tuning split is the one evaluated, and the intervals are calibrated on it";
  std::vector<double> tp, ty;
  if (why.empty()) {
    tp = predict_values(model, ds, tuning, finetune_context(cfg), ec.batch_size, dev, head);
    for (auto& q : tp) q = static_cast<float>(q);
    for (const auto& e : tuning) ty.push_back(static_cast<float>(e.row.value));
  }
  const double q = why.empty() ? conformal_half_width(tp, ty, ec.interval_coverage) : NAN;
  if (why.empty() && !std::isfinite(q))
    why = fmt::format("{} tuning rows are too few for {:.0f}% split-conformal intervals", tuning.size(),
                      100 * ec.interval_coverage);
  if (!why.empty()) {
    report.warnings.push_back("no prediction intervals: " + why);
    return;
  }
  report.intervals = interval_coverage(p, y, q, ec.interval_coverage, static_cast<int64_t>(tuning.size()));
  info("eval: {:.0f}% prediction intervals: +/- {:.4g} (split-conformal on {} tuning rows) cover {:.1f}% of the {} rows",
       100 * ec.interval_coverage, q, tuning.size(), 100 * report.intervals.coverage, report.intervals.n);
}

}  // namespace

int run_regression_eval(Config& cfg, Pretrained pre, const HeadClasses& head) {
  const auto& ec = cfg.eval;
  const std::string task = evaluated_task(cfg, pre);
  auto ds = data::TokenDataset::open(cfg.data.dir);
  check_vocab(pre, ds.vocab_hash(), cfg.data.dir);
  const data::LabelSet set = data::read_label_set(cfg.task.labels);
  if (!set.regression())
    throw Error(fmt::format("{}: labels in '{}', but the head was fine-tuned on float_value labels", cfg.task.labels,
                            set.column),
                "pass float_value labels of its task");
  auto examples = data::make_examples(ds, set.rows, cfg.task.labels);
  const auto& ex = examples.by_split[ec.split];
  if (ex.empty()) fail("{}: no label rows of subjects in the {} split of {}", cfg.task.labels, ec.split, cfg.data.dir);
  info("eval: task {}: regression on float_value, {} label rows of the {} split of {}, checkpoint {}", task, ex.size(),
       ec.split, cfg.data.dir, pre.dir.string());
  DeviceChoice dev = choose_device(cfg.train.device, cfg.train.precision);
  ClinicalTransformer model = load_classifier(pre, dev);
  auto p = predict_values(model, ds, ex, finetune_context(cfg), ec.batch_size, dev, head);
  std::vector<double> y, mean(ex.size(), head.target_mean);
  std::vector<data::LabelRow> rows;
  for (auto& q : p) q = static_cast<float>(q);  // scored as written: float32 in predictions.parquet
  for (const auto& e : ex) y.push_back(static_cast<float>(e.row.value)), rows.push_back(e.row);
  RegressionReportInputs report;
  report.model = evaluate_regression(p, y, ec.bootstrap, static_cast<uint64_t>(cfg.train.seed));
  add_intervals(cfg, ds, examples, model, dev, head, p, y, report);
  const RegressionMetrics baseline = regression_metrics(mean, y);
  report.baseline_mae = baseline.mae, report.baseline_rmse = baseline.rmse;
  report.calibration = regression_calibration(p, y, static_cast<int>(cfg.eval.ece_bins));
  report.subgroups = evaluate_groups(
      subgroup_dimensions(ds, rows, ec), rows.size(), {"MAE (95% CI)", "RMSE (95% CI)", "R² (95% CI)"},
      [&](const std::vector<size_t>& idx) {
        std::vector<double> gp, gy;
        for (size_t i : idx) gp.push_back(p[i]), gy.push_back(y[i]);
        const RegressionEvaluation g = evaluate_regression(gp, gy, ec.bootstrap, static_cast<uint64_t>(cfg.train.seed));
        GroupScore s{{cell_with_interval(g.point.mae, g.mae), cell_with_interval(g.point.rmse, g.rmse),
                      cell_with_interval(g.point.r2, g.r2)},
                     {{"mae", g.point.mae}, {"mae_ci", interval(g.mae)}, {"rmse", g.point.rmse}, {"rmse_ci", interval(g.rmse)},
                      {"r2", g.point.r2}, {"r2_ci", interval(g.r2)}},
                     ""};
        if (idx.size() < size_t(kFewSubgroupCases)) s.warning = fmt::format("only {} rows; its metrics are unreliable", idx.size());
        return s;
      });
  report.subgroups.note = "R² within a group compares the errors to the spread of that group's own targets: a group "
                          "narrow in the target (an age band, for an age target) can have R² below 0 with errors no "
                          "larger than elsewhere; read it beside MAE and RMSE.";
  const auto& m = report.model.point;
  if (ex.size() < size_t(kFewCases))
    report.warnings.push_back(fmt::format("only {} rows: every metric rests on very few patients", ex.size()));
  if (!(m.rmse < baseline.rmse))
    report.warnings.push_back(fmt::format("RMSE {:.4g} is no better than predicting the train mean for every row ({:.4g})",
                                          m.rmse, baseline.rmse));
  for (const auto& w : report.warnings) warn("eval: {}", w);
  report.title = fmt::format("chart eval: {} ({} split, regression)", task, ec.split);
  report.facts = {{"task", task}, {"checkpoint", pre.dir.string()}, {"labels", cfg.task.labels},
                  {"label column", "float_value"},
                  {"train targets", fmt::format("mean {:.4g}, sd {:.4g}", head.target_mean, head.target_std)},
                  {"date", now_utc()}};

  const fs::path out = cfg.run.dir;
  fs::create_directories(out);
  data::write_value_predictions(out / "predictions.parquet", rows, p, report.intervals.half_width);
  Json ev{{"task", task}, {"task_type", "regression"}, {"split", ec.split}, {"source", pre.dir.string()},
          {"label_column", "float_value"}, {"coverage", data::coverage_summary(cfg.data.dir, ec.split, 10)},
          {"model", regression_json(report)}, {"prediction_interval", interval_json(report.intervals)},
          {"subgroups", report.subgroups.json()}, {"mae", m.mae}, {"rmse", m.rmse}, {"r2", m.r2}, {"n", m.n},
          {"warnings", report.warnings}};
  write_evaluation(out, ev, pre.dir, cfg.card.governance);
  write_regression_report(out / "report.html", report);
  info("eval: task {}: {} rows: MAE {:.4g} [{:.4g}, {:.4g}], RMSE {:.4g} (train mean {:.4g}), R² {:.4f} [{:.4f}, {:.4f}]",
       task, m.n, m.mae, report.model.mae.lo, report.model.mae.hi, m.rmse, baseline.rmse, m.r2, report.model.r2.lo,
       report.model.r2.hi);
  info("eval: wrote {}, {}, {}", (out / "eval.json").string(), (out / "predictions.parquet").string(),
       (out / "report.html").string());
  return 0;
}

}  // namespace chart
