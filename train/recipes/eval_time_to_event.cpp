#include "train/recipes/eval_time_to_event.h"

#include <fmt/ranges.h>

#include "core/error.h"
#include "core/json.h"
#include "core/log.h"
#include "data/coverage.h"
#include "data/examples.h"
#include "data/labels.h"
#include "data/time_to_event.h"
#include "train/interop/load_pretrained.h"
#include "train/recipes/eval.h"
#include "train/recipes/eval_subgroups.h"
#include "train/recipes/time_to_event.h"
#include "train/report/survival_report.h"

namespace chart {
namespace fs = std::filesystem;
namespace {

Json interval(const Interval& ci) { return Json::array({ci.lo, ci.hi}); }

Json survival_json(const SurvivalEvaluation& e, const std::vector<std::string>& names) {
  const auto& m = e.point;
  Json j{{"c_td", m.c_td}, {"c_td_ci", interval(e.c_td)}, {"ibs", m.ibs}, {"ibs_ci", interval(e.ibs)},
         {"ibs_kaplan_meier", m.ibs_km}, {"tau_days", m.tau}, {"n", m.n}, {"n_events", m.events},
         {"bootstrap", e.bootstrap_samples}};
  j["horizons"] = Json::array();
  for (size_t k = 0; k < m.horizons.size(); ++k) {
    const auto& h = m.horizons[k];
    j["horizons"].push_back({{"horizon", names[k]}, {"days", h.horizon}, {"auroc", h.auroc},
                             {"auroc_ci", interval(e.auroc[k])}, {"brier", h.brier}, {"brier_ci", interval(e.brier[k])},
                             {"brier_kaplan_meier", h.brier_km}, {"mean_predicted_risk", h.mean_predicted_risk},
                             {"kaplan_meier_risk", h.observed_risk_km}, {"cases", h.cases}, {"controls", h.controls},
                             {"censored", h.censored}});
  }
  return j;
}

// Per horizon, the rows whose status then is known, in meds-evaluation's PredictionSchema.
void write_by_horizon(const fs::path& dir, const std::vector<data::Example>& ex, const PiecewiseHazards& p,
                      const std::vector<double>& days, const std::vector<std::string>& names, double threshold) {
  fs::create_directories(dir);
  for (size_t k = 0; k < days.size(); ++k) {
    std::vector<data::Prediction> preds;
    for (size_t i = 0; i < ex.size(); ++i) {
      const auto& row = ex[i].row;
      const bool by_then = row.label && row.value <= days[k];
      if (!by_then && row.value <= days[k]) continue;  // censored before the horizon: unknown
      data::Prediction q{row, 1 - p.survival(i, days[k])};
      q.row.label = by_then;
      preds.push_back(q);
    }
    data::write_predictions(dir / fmt::format("{:02d}_{}.parquet", k, names[k]), preds, threshold);
  }
}

std::vector<std::string> warnings_of(const SurvivalMetrics& m, const SurvivalEvaluation& e) {
  std::vector<std::string> w;
  if (m.events < kFewCases)
    w.push_back(fmt::format("only {} of the {} rows have the event: every metric rests on very few patients", m.events, m.n));
  for (const auto& h : m.horizons)
    if (h.cases < kFewCases)
      w.push_back(fmt::format("only {} event(s) by {:.0f} days: that horizon's AUROC and Brier score rest on very few "
                              "patients (its AUROC interval is left out when resamples lack a case)", h.cases, h.horizon));
  if (std::isfinite(e.c_td.lo) && e.c_td.lo <= 0.5)
    w.push_back(fmt::format("the C_td interval [{:.3f}, {:.3f}] reaches 0.5: no evidence that the model orders risk "
                            "better than chance", e.c_td.lo, e.c_td.hi));
  if (!(m.ibs < m.ibs_km))
    w.push_back(fmt::format("the integrated Brier score {:.4f} is no better than the Kaplan-Meier curve's for every row "
                            "({:.4f})", m.ibs, m.ibs_km));
  return w;
}

}  // namespace

int run_time_to_event_eval(Config& cfg, Pretrained pre, const HeadClasses& head) {
  const auto& ec = cfg.eval;
  const std::string task = evaluated_task(cfg, pre);
  auto ds = data::TokenDataset::open(cfg.data.dir);
  check_vocab(pre, ds.vocab_hash(), cfg.data.dir);
  const auto edges = data::piece_edges_days(head.time_pieces, pre.dir.string() + " finetune.yaml time_pieces");
  std::vector<double> days = data::piece_edges_days(ec.horizons, "eval.horizons");
  days.erase(days.begin());
  auto examples = data::make_examples(ds, data::read_prediction_times(cfg.task.labels), cfg.task.labels);
  auto& ex = examples.by_split[ec.split];
  if (ex.empty()) fail("{}: no prediction times of subjects in the {} split of {}", cfg.task.labels, ec.split, cfg.data.dir);
  data::add_times_to_event(ds, ex, data::code_token_mask(ds.vocab(), head.event_codes, "the head's event codes"));
  info("eval: task {}: time to [{}], {} prediction times of the {} split of {}, checkpoint {}", task,
       fmt::join(head.event_codes, ", "), ex.size(), ec.split, cfg.data.dir, pre.dir.string());
  DeviceChoice dev = choose_device(cfg.train.device, cfg.train.precision);
  ClinicalTransformer model = load_classifier(pre, dev);
  PiecewiseHazards p = predict_hazards(model, ds, ex, finetune_context(cfg), ec.batch_size, dev, edges, head.slice());
  for (auto& row : p.hazard)
    for (double& h : row) h = static_cast<float>(h);  // as a float head gives them
  SurvivalReportInputs report;
  report.horizon_names = ec.horizons;
  const auto obs = observations(ex);
  report.model = evaluate_survival(p, obs, days, ec.bootstrap, static_cast<uint64_t>(cfg.train.seed));
  std::vector<data::LabelRow> labelled;
  for (const auto& e : ex) labelled.push_back(e.row);
  report.subgroups = evaluate_groups(
      subgroup_dimensions(ds, labelled, ec), ex.size(),
      {"events", "C_td (95% CI)", "integrated Brier (95% CI)", "Kaplan-Meier's"}, [&](const std::vector<size_t>& idx) {
        PiecewiseHazards gp;
        gp.edges = p.edges;
        std::vector<SurvivalObservation> go;
        for (size_t i : idx) gp.hazard.push_back(p.hazard[i]), go.push_back(obs[i]);
        const SurvivalEvaluation g = evaluate_survival(gp, go, days, ec.bootstrap, static_cast<uint64_t>(cfg.train.seed));
        GroupScore s{{std::to_string(g.point.events), cell_with_interval(g.point.c_td, g.c_td),
                      cell_with_interval(g.point.ibs, g.ibs), cell_with_interval(g.point.ibs_km, {NAN, NAN})},
                     {{"n_events", g.point.events}, {"c_td", g.point.c_td}, {"c_td_ci", interval(g.c_td)},
                      {"ibs", g.point.ibs}, {"ibs_ci", interval(g.ibs)}, {"ibs_kaplan_meier", g.point.ibs_km}},
                     ""};
        if (g.point.events < kFewSubgroupCases)
          s.warning = fmt::format("only {} event(s) in {} rows; its metrics are unreliable", g.point.events, idx.size());
        return s;
      });
  const auto& m = report.model.point;
  report.warnings = warnings_of(m, report.model);
  for (const auto& w : report.warnings) warn("eval: {}", w);
  report.title = fmt::format("chart eval: {} ({} split, time to event)", task, ec.split);
  report.facts = {{"task", task}, {"checkpoint", pre.dir.string()}, {"prediction times", cfg.task.labels},
                  {"event", fmt::format("first of [{}] after prediction time; censored at the last event",
                                        fmt::join(head.event_codes, ", "))},
                  {"time pieces", fmt::format("{}", fmt::join(head.time_pieces, ", "))}, {"date", now_utc()}};

  const fs::path out = cfg.run.dir;
  fs::create_directories(out);
  std::vector<data::LabelRow> rows;
  std::vector<std::vector<double>> survival;
  for (size_t i = 0; i < ex.size(); ++i) {
    rows.push_back(ex[i].row);
    survival.emplace_back();
    for (double d : days) survival.back().push_back(p.survival(i, d));
  }
  data::write_survival_predictions(out / "predictions.parquet", rows, ec.horizons, survival);
  write_by_horizon(out / "predictions_by_horizon", ex, p, days, ec.horizons, ec.threshold);
  Json ev{{"task", task}, {"task_type", "time_to_event"}, {"split", ec.split}, {"source", pre.dir.string()},
          {"event_codes", head.event_codes}, {"time_pieces", head.time_pieces},
          {"coverage", data::coverage_summary(cfg.data.dir, ec.split, 10)}, {"model", survival_json(report.model, ec.horizons)},
          {"subgroups", report.subgroups.json()},
          {"c_td", m.c_td}, {"ibs", m.ibs}, {"n", m.n}, {"n_events", m.events}, {"warnings", report.warnings}};
  write_evaluation(out, ev, pre.dir, cfg.card.governance);
  write_survival_report(out / "report.html", report);
  info("eval: task {}: {} rows ({} events): C_td {:.4f} [{:.4f}, {:.4f}], integrated Brier {:.4f} (Kaplan-Meier {:.4f})",
       task, m.n, m.events, m.c_td, report.model.c_td.lo, report.model.c_td.hi, m.ibs, m.ibs_km);
  info("eval: wrote {}, {}, {}", (out / "eval.json").string(), (out / "predictions.parquet").string(),
       (out / "report.html").string());
  return 0;
}

}  // namespace chart
