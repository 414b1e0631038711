// Time-to-event fine-tuning and evaluation: the piecewise-exponential head's loss, the survival
// metrics against hand-worked values and against scikit-survival's on the same curves, and end
// to end on `chart synth` data: the time to MEDS_DEATH from each prediction time, learned from
// the record (censored at the last event), ordered clearly better than chance and scored better
// than the Kaplan-Meier curve; eval and predict write the shapes promised.
#include <gtest/gtest.h>

#include <arrow/api.h>

#include <fmt/format.h>

#include <random>
#include <set>

#include "core/error.h"
#include "core/files.h"
#include "core/json.h"
#include "data/parquet_table.h"
#include "finetune_pipeline.h"
#include "test_util.h"
#include "train/recipes/time_to_event.h"
#include "train/validation/subgroups.h"
#include "train/validation/survival_metrics.h"

namespace chart {
namespace {
namespace fs = std::filesystem;

TEST(SurvivalMetrics, KaplanMeierOfKnownData) {
  // Times 1, 2+, 3, 4 (2 censored): S = 3/4 after 1, then 3/4 * 1/2 after 3, then 0.
  const std::vector<SurvivalObservation> obs{{1, true}, {2, false}, {3, true}, {4, true}};
  const StepCurve km = kaplan_meier(obs);
  EXPECT_DOUBLE_EQ(km.at(0.5), 1.0);
  EXPECT_DOUBLE_EQ(km.at(1), 0.75);
  EXPECT_DOUBLE_EQ(km.before(1), 1.0);
  EXPECT_DOUBLE_EQ(km.at(2.5), 0.75);
  EXPECT_DOUBLE_EQ(km.at(3), 0.375);
  EXPECT_DOUBLE_EQ(km.at(10), 0.0);
  // The censoring curve: one censoring at 2 among 3 at risk.
  const StepCurve g = kaplan_meier(obs, {}, true);
  EXPECT_DOUBLE_EQ(g.at(1.5), 1.0);
  EXPECT_NEAR(g.at(2), 2.0 / 3.0, 1e-12);
}

// Rows of constant hazards (one piece): S_i(t) = exp(-h_i t).
PiecewiseHazards constant(const std::vector<double>& h) {
  PiecewiseHazards p;
  p.edges = {0};
  for (double x : h) p.hazard.push_back({x});
  return p;
}

TEST(SurvivalMetrics, ConcordanceOrdersAndBrierOfUncensoredRows) {
  const std::vector<SurvivalObservation> obs{{1, true}, {2, true}, {3, true}, {4, true}};
  EXPECT_DOUBLE_EQ(survival_metrics(constant({4, 3, 2, 1}), obs, {10}).c_td, 1.0);  // earliest event, highest hazard
  EXPECT_DOUBLE_EQ(survival_metrics(constant({1, 2, 3, 4}), obs, {10}).c_td, 0.0);
  EXPECT_DOUBLE_EQ(survival_metrics(constant({1, 1, 1, 1}), obs, {10}).c_td, 0.5);
  // Uncensored: no weights, Brier(t) = mean (1[T > t] - S(t))^2. At t = 2.5 rows 3 and 4 are alive.
  const auto m = survival_metrics(constant({0.1, 0.2, 0.3, 0.4}), obs, {2.5});
  double expected = 0;
  for (int i = 0; i < 4; ++i) {
    const double s = std::exp(-0.1 * (i + 1) * 2.5), alive = i >= 2;
    expected += (alive - s) * (alive - s) / 4;
  }
  EXPECT_NEAR(m.horizons[0].brier, expected, 1e-12);
  EXPECT_EQ(m.horizons[0].cases, 2);
  EXPECT_EQ(m.horizons[0].controls, 2);
  // Cases (events by 2.5: rows 1, 2) against controls (3, 4) by risk 1 - S(2.5): the cases have the lower hazards.
  EXPECT_DOUBLE_EQ(m.horizons[0].auroc, 0.0);
  EXPECT_THROW(survival_metrics(constant({1, 2}), obs, {1}), Error);
  EXPECT_THROW(survival_metrics(constant({1, 2, 3, 4}), {{1, true}, {-2, true}, {3, true}, {4, true}}, {1}), Error);
}

// Proportional hazards on two pieces, times drawn from them, random censoring: the curves never
// cross, so Antolini's C_td equals Harrell's C of the hazard ratio.
struct Simulated {
  PiecewiseHazards p;
  std::vector<SurvivalObservation> obs;
  std::vector<double> ratio;
};
Simulated simulate(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> z;
  std::exponential_distribution<double> unit(1.0);
  std::uniform_real_distribution<double> censor(50, 800);
  Simulated s;
  s.p.edges = {0, 100};
  for (int i = 0; i < n; ++i) {
    const double r = std::exp(0.8 * z(rng));
    s.ratio.push_back(r);
    const double h0 = 0.004 * r, h1 = 0.001 * r;
    s.p.hazard.push_back({h0, h1});
    // Invert the cumulative hazard at a unit exponential draw.
    const double e = unit(rng);
    const double t = e < h0 * 100 ? e / h0 : 100 + (e - h0 * 100) / h1;
    const double c = censor(rng);
    s.obs.push_back({std::min(t, c), t <= c});
  }
  return s;
}

TEST(SurvivalMetrics, MatchScikitSurvival) {
  const Simulated s = simulate(400, 3);
  std::vector<double> horizons{60, 200, 400};
  double max_time = 0;
  for (const auto& o : s.obs) max_time = std::max(max_time, o.time);
  const SurvivalEvaluation e = evaluate_survival(s.p, s.obs, {max_time + 1}, 0);
  const SurvivalMetrics m = survival_metrics(s.p, s.obs, horizons);
  Json in;
  for (size_t i = 0; i < s.obs.size(); ++i) {
    in["time"].push_back(s.obs[i].time), in["event"].push_back(s.obs[i].event), in["score"].push_back(s.ratio[i]);
    Json surv = Json::array(), risk = Json::array();
    for (double t : {30.0, 150.0, 300.0, 500.0}) surv.push_back(s.p.survival(i, t));
    for (double h : horizons) risk.push_back(1 - s.p.survival(i, h));
    in["survival"].push_back(surv), in["risk"].push_back(risk);
  }
  in["grid"] = {30.0, 150.0, 300.0, 500.0};
  in["horizons"] = horizons;
  testing::TempDir dir;
  write_file_atomic(dir / "in.json", in.dump());
  std::string out;
  ASSERT_EQ(testing::run_python(fmt::format("{} {} {}", (testing::source_dir() / "tests/survival_reference.py").string(),
                                            (dir / "in.json").string(), (dir / "out.json").string()), &out), 0)
      << out << "\n(scikit-survival comes with scripts/requirements.txt)";
  const Json ref = parse_json(read_file(dir / "out.json"), "out.json");
  EXPECT_NEAR(e.point.c_td, ref["harrell_c"].get<double>(), 1e-9);
  EXPECT_GT(e.point.c_td, 0.6);  // the simulated ratio carries the signal
  for (size_t k = 0; k < horizons.size(); ++k) {
    EXPECT_NEAR(m.horizons[k].auroc, ref["auroc"][k].get<double>(), 1e-9) << horizons[k];
  }
  const std::vector<double> grid{30, 150, 300, 500};
  const SurvivalMetrics at_grid = survival_metrics(s.p, s.obs, grid);
  for (size_t k = 0; k < grid.size(); ++k)
    EXPECT_NEAR(at_grid.horizons[k].brier, ref["brier"][k].get<double>(), 1e-9) << grid[k];
  // The model that generated the data beats the population curve.
  EXPECT_LT(m.ibs, m.ibs_km);
}

TEST(SurvivalMetrics, BootstrapIntervalsHoldThePoint) {
  const Simulated s = simulate(300, 9);
  const SurvivalEvaluation e = evaluate_survival(s.p, s.obs, {100, 300}, 200, 1);
  EXPECT_LT(e.c_td.lo, e.point.c_td);
  EXPECT_GT(e.c_td.hi, e.point.c_td);
  EXPECT_GT(e.c_td.lo, 0.55);
  EXPECT_LT(e.ibs.lo, e.point.ibs);
  ASSERT_EQ(e.auroc.size(), 2u);
  EXPECT_LT(e.auroc[1].lo, e.point.horizons[1].auroc);
  EXPECT_EQ(e.grid.size(), size_t(kIbsGrid));
  EXPECT_NEAR(e.km_survival.front(), 1.0, 1e-12);
}

TEST(PiecewiseExponential, LossIsTheLikelihoodAndTheRowEstimateMinimisesIt) {
  // Two pieces [0, 10) and [10, inf). A row with its event at 15 spent 10 days in the first and
  // 5 in the second: NLL = 10 h0 + 5 h1 - log h1.
  const std::vector<double> edges{0, 10};
  auto z = torch::tensor({{std::log(0.02f), std::log(0.05f)}});
  const double nll = piecewise_exponential_nll(z, torch::tensor({15.0f}), torch::tensor({1.0f}), edges).item<double>();
  EXPECT_NEAR(nll, 10 * 0.02 + 5 * 0.05 - std::log(0.05), 1e-5);
  // Censored at 4: only the exposure counts.
  const double cens = piecewise_exponential_nll(z, torch::tensor({4.0f}), torch::tensor({0.0f}), edges).item<double>();
  EXPECT_NEAR(cens, 4 * 0.02, 1e-6);
  // piece_hazards (events / exposure per piece) is the maximum-likelihood constant hazard.
  std::vector<data::Example> ex(4);
  const double t[] = {3, 8, 12, 30};
  const bool d[] = {true, false, true, false};
  for (int i = 0; i < 4; ++i) ex[i].row.value = t[i], ex[i].row.label = d[i];
  const auto h = piece_hazards(ex, edges);
  EXPECT_NEAR(h[0], 1.0 / (3 + 8 + 10 + 10), 1e-12);
  EXPECT_NEAR(h[1], 1.0 / (2 + 20), 1e-12);
  auto loss = [&](double s0, double s1) {
    auto zz = torch::tensor({std::log(h[0] * s0), std::log(h[1] * s1)}, torch::kFloat64).to(torch::kFloat32).repeat({4, 1});
    return piecewise_exponential_nll(zz, torch::tensor({3.0f, 8.0f, 12.0f, 30.0f}), torch::tensor({1.0f, 0.0f, 1.0f, 0.0f}),
                                     edges).item<double>();
  };
  EXPECT_LT(loss(1, 1), loss(1.2, 1));
  EXPECT_LT(loss(1, 1), loss(0.8, 1));
  EXPECT_LT(loss(1, 1), loss(1, 1.2));
  EXPECT_LT(loss(1, 1), loss(1, 0.8));
}

double number(const Json& j, const char* key) { return j.at(key).get<double>(); }

TEST(TimeToEvent, DeathIsLearnedFromTheRecordAndEvalAndPredictWriteItsShapes) {
  Pipeline p(800, 60);
  const fs::path ft = p.dir / "ft", ev = p.dir / "ev";
  const std::string tte = "--set 'task.event_codes=[MEDS_DEATH]' --set 'task.time_pieces=[180d,365d,730d,1825d]' "
                          "--set 'eval.horizons=[365d,730d,1825d]'";
  std::string out;
  ASSERT_EQ(testing::run_chart(fmt::format("finetune {} --set init.checkpoint={} --set task.labels={} --set run.dir={} "
                                           "--set train.threads=2 --set finetune.context=64 --set train.steps=300 "
                                           "--set train.eval_every=100 {}",
                                           testing::config("finetune/probe.yaml"), p.pretrain.string(), p.labels.string(),
                                           ft.string(), tte), &out), 0) << out;
  const std::string summary = read_file(ft / "checkpoints" / "step_300" / "finetune.yaml");
  EXPECT_NE(summary.find("label_column: time_to_event"), std::string::npos) << summary;
  EXPECT_NE(summary.find("tuning_c_td:"), std::string::npos) << summary;
  ASSERT_EQ(testing::run_chart(fmt::format("eval {} --set init.checkpoint={} --set task.labels={} --set run.dir={} "
                                           "--set eval.bootstrap=200 --set train.threads=2 {}",
                                           testing::config("finetune/full.yaml"), ft.string(), p.labels.string(),
                                           ev.string(), tte), &out), 0) << out;
  const Json j = parse_json(read_file(ev / "eval.json"), "eval.json");
  std::fprintf(stderr, "held_out C_td %.3f [%.3f, %.3f], IBS %.4f (Kaplan-Meier %.4f), n %.0f, events %.0f\n",
               number(j, "c_td"), j["model"]["c_td_ci"][0].get<double>(), j["model"]["c_td_ci"][1].get<double>(),
               number(j, "ibs"), number(j["model"], "ibs_kaplan_meier"), number(j, "n"), number(j, "n_events"));
  EXPECT_EQ(j["task_type"], "time_to_event");
  EXPECT_GT(j["model"]["c_td_ci"][0].get<double>(), 0.6) << j.dump();  // clearly better than chance (0.5)
  EXPECT_LT(number(j, "ibs"), number(j["model"], "ibs_kaplan_meier")) << j.dump();
  ASSERT_EQ(j["model"]["horizons"].size(), 3u);
  // Every metric by subgroup too (eval.subgroups: sex and age bands), small groups flagged.
  std::set<std::string> dims;
  for (const auto& g : j["subgroups"]["groups"]) {
    dims.insert(g["dimension"].get<std::string>());
    if (g["n_events"].get<int64_t>() < kFewSubgroupCases) EXPECT_TRUE(g["warning"].is_string()) << g.dump();
  }
  EXPECT_EQ(dims, (std::set<std::string>{"age", "sex"}));
  // The targets, against MEDS itself: the first MEDS_DEATH after prediction_time, else the last event.
  ASSERT_EQ(testing::run_python(fmt::format("{} times {} {}", fixture_py(), p.meds.string(), (ev / "predictions.parquet").string()),
                                &out), 0) << out;
  // predictions.parquet: the observed time and event, and the survival at each horizon, falling.
  auto t = data::read_parquet_table(ev / "predictions.parquet");
  ASSERT_NE(t->GetColumnByName("time_to_event_days"), nullptr) << t->schema()->ToString();
  ASSERT_NE(t->GetColumnByName("event_observed"), nullptr);
  auto s1 = std::static_pointer_cast<arrow::FloatArray>(t->GetColumnByName("predicted_survival//365d")->chunk(0));
  auto s5 = std::static_pointer_cast<arrow::FloatArray>(t->GetColumnByName("predicted_survival//1825d")->chunk(0));
  for (int64_t i = 0; i < s1->length(); ++i) EXPECT_GE(s1->Value(i), s5->Value(i));
  // Each horizon in meds-evaluation's PredictionSchema, scored by meds-evaluation.
  std::string files;
  for (const auto& f : fs::directory_iterator(ev / "predictions_by_horizon")) files += " " + f.path().string();
  if (!python().empty()) {
    const int rc = testing::run_python((testing::source_dir() / "tests/check_meds_schemas.py").string() + " predictions" + files, &out);
    if (rc != 77) EXPECT_EQ(rc, 0) << out;
  }
  const std::string html = read_file(ev / "report.html");
  EXPECT_NE(html.find("class=\"survival-curves\""), std::string::npos);
  EXPECT_NE(html.find("class=\"brier-curve\""), std::string::npos);
  EXPECT_NE(html.find("class=\"metrics subgroups\""), std::string::npos);
  // chart predict writes the survival without the observed outcome.
  ASSERT_EQ(testing::run_chart(fmt::format("predict {} --set init.checkpoint={} --set task.labels={} --set run.dir={} "
                                           "--set predict.split=held_out {}",
                                           testing::config("finetune/full.yaml"), ft.string(), p.labels.string(),
                                           (p.dir / "pred").string(), tte), &out), 0) << out;
  auto pt = data::read_parquet_table(p.dir / "pred" / "predictions.parquet");
  EXPECT_EQ(pt->GetColumnByName("event_observed"), nullptr);
  EXPECT_NE(pt->GetColumnByName("predicted_survival//730d"), nullptr);
  // An event code the vocabulary lacks is named.
  EXPECT_EQ(testing::run_chart(fmt::format("finetune {} --set init.checkpoint={} --set task.labels={} --set run.dir={} "
                                           "--set 'task.event_codes=[NO_SUCH_CODE]'",
                                           testing::config("finetune/probe.yaml"), p.pretrain.string(), p.labels.string(),
                                           (p.dir / "ft-bad").string()), &out), 1) << out;
  EXPECT_NE(out.find("task.event_codes: no token of the vocabulary matches 'NO_SUCH_CODE'"), std::string::npos) << out;
}

}  // namespace
}  // namespace chart
