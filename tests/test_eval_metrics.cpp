// train/eval_metrics and train/report: binary metrics against hand-computed cases and brute
// force (scikit-learn agrees to 1e-14 on random tied data, checked by hand), bootstrap
// intervals, bad input, and the HTML report's plots, escaping and loss curves.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <regex>

#include "core/error.h"
#include "core/mix.h"
#include "tests/test_util.h"
#include "train/validation/binary_metrics.h"
#include "train/validation/low_fpr.h"
#include "train/report/eval_report.h"
#include "train/recipes/eval.h"
#include "train/report/loss_curves.h"
#include "train/recipes/eval_subgroups.h"
#include "train/validation/subgroups.h"
#include "train/validation/calibration.h"
#include "train/validation/decision_curve.h"
#include "train/validation/operating_point.h"

namespace chart {
namespace {
using testing::TempDir;

// Random probabilities rounded to `decimals` (ties) and labels that depend on them.
void random_data(size_t n, int decimals, uint64_t seed, std::vector<double>* p, std::vector<int>* y) {
  p->clear();
  y->clear();
  double scale = std::pow(10.0, decimals);
  for (size_t i = 0; i < n; ++i) {
    double u = static_cast<double>(mix(seed * 1000003 + 2 * i) >> 11) / 9007199254740992.0;
    double v = static_cast<double>(mix(seed * 1000003 + 2 * i + 1) >> 11) / 9007199254740992.0;
    p->push_back(std::round(u * scale) / scale);
    y->push_back(v < 0.2 + 0.6 * u ? 1 : 0);
  }
}

TEST(BinaryMetrics, PerfectReversedAndTiedRankings) {
  std::vector<double> p = {0.1, 0.2, 0.8, 0.9};
  BinaryMetrics perfect = binary_metrics(p, {0, 0, 1, 1});
  EXPECT_DOUBLE_EQ(perfect.auroc, 1.0);
  EXPECT_DOUBLE_EQ(perfect.auprc, 1.0);
  BinaryMetrics reversed = binary_metrics(p, {1, 1, 0, 0});
  EXPECT_DOUBLE_EQ(reversed.auroc, 0.0);
  EXPECT_DOUBLE_EQ(reversed.auprc, 0.5 * (1.0 / 3) + 0.5 * (2.0 / 4));  // P at R=.5 is 1/3, at R=1 2/4
  BinaryMetrics tied = binary_metrics({0.5, 0.5, 0.5, 0.5, 0.5}, {1, 0, 0, 1, 0});
  EXPECT_DOUBLE_EQ(tied.auroc, 0.5);
  EXPECT_DOUBLE_EQ(tied.auprc, 0.4);  // one threshold: precision = prevalence
  EXPECT_EQ(tied.n, 5);
  EXPECT_EQ(tied.n_pos, 2);
}

TEST(BinaryMetrics, SmallCasesByHand) {
  // scikit-learn's documented example: roc_auc 0.75, average_precision 0.8333...
  BinaryMetrics m = binary_metrics({0.1, 0.4, 0.35, 0.8}, {0, 0, 1, 1});
  EXPECT_DOUBLE_EQ(m.auroc, 0.75);
  EXPECT_NEAR(m.auprc, 5.0 / 6, 1e-15);
  // A tie between a positive and a negative: it counts half in AUROC and is one threshold in AP
  // (pairs: 0.5 vs 0.5 -> 1/2, the other three -> 1; thresholds 0.9: P=1 R=1/2, 0.5: P=2/3 R=1).
  BinaryMetrics t = binary_metrics({0.5, 0.5, 0.2, 0.9}, {1, 0, 0, 1});
  EXPECT_DOUBLE_EQ(t.auroc, 3.5 / 4);
  EXPECT_NEAR(t.auprc, 0.5 * 1 + 0.5 * (2.0 / 3), 1e-15);
  BinaryMetrics t2 = binary_metrics({0.5, 0.5, 0.2, 0.9}, {0, 1, 0, 1});  // order inside a tie is irrelevant
  EXPECT_DOUBLE_EQ(t2.auprc, t.auprc);
  EXPECT_DOUBLE_EQ(binary_metrics({0.2, 0.7}, {0, 1}).brier, (0.04 + 0.09) / 2);
}

TEST(BinaryMetrics, MatchesBruteForceOnTiedRandomData) {
  std::vector<double> p;
  std::vector<int> y;
  random_data(700, 1, 3, &p, &y);  // 11 distinct values: heavy ties
  double pairs = 0, wins = 0;
  for (size_t i = 0; i < p.size(); ++i)
    for (size_t j = 0; j < p.size(); ++j)
      if (y[i] == 1 && y[j] == 0) pairs += 1, wins += p[i] > p[j] ? 1 : p[i] == p[j] ? 0.5 : 0;
  // Average precision by its definition: each distinct threshold, recall gained x precision.
  double pos = std::count(y.begin(), y.end(), 1), ap = 0, prev_recall = 0;
  for (int k = 10; k >= 0; --k) {
    double tp = 0, all = 0;
    for (size_t i = 0; i < p.size(); ++i)
      if (p[i] >= k / 10.0 - 1e-9) all += 1, tp += y[i];
    if (all == 0) continue;
    ap += (tp / pos - prev_recall) * (tp / all);
    prev_recall = tp / pos;
  }
  BinaryMetrics m = binary_metrics(p, y);
  EXPECT_NEAR(m.auroc, wins / pairs, 1e-12);
  EXPECT_NEAR(m.auprc, ap, 1e-12);
}

TEST(BinaryMetrics, EceOfCalibratedAndMiscalibratedPredictions) {
  std::vector<int> y = {1, 0, 0, 0, 1, 1, 1, 0};
  std::vector<double> calibrated = {0.25, 0.25, 0.25, 0.25, 0.75, 0.75, 0.75, 0.75};
  std::vector<double> overconfident = {0.05, 0.05, 0.05, 0.05, 0.95, 0.95, 0.95, 0.95};
  EXPECT_NEAR(binary_metrics(calibrated, y).ece, 0.0, 1e-15);
  EXPECT_NEAR(binary_metrics(overconfident, y).ece, 0.2, 1e-15);
  // p = 1 falls in the last bin, p = 0 in the first.
  EXPECT_NEAR(binary_metrics({0.0, 1.0}, {0, 1}).ece, 0.0, 1e-15);
  std::vector<CalibrationBin> bins = calibration_bins(overconfident, y, 10);
  ASSERT_EQ(bins.size(), 2u);  // eight empty bins dropped
  EXPECT_DOUBLE_EQ(bins[0].mean_predicted, 0.05);
  EXPECT_DOUBLE_EQ(bins[0].fraction_positive, 0.25);
  EXPECT_EQ(bins[1].n, 4);
  EXPECT_DOUBLE_EQ(bins[1].fraction_positive, 0.75);
}

TEST(BinaryMetrics, DegenerateInputsAreNaN) {
  BinaryMetrics empty = binary_metrics({}, {});
  EXPECT_TRUE(std::isnan(empty.auroc) && std::isnan(empty.auprc) && std::isnan(empty.brier) && std::isnan(empty.ece));
  EXPECT_EQ(empty.n, 0);
  BinaryMetrics one_class = binary_metrics({0.2, 0.9}, {0, 0});
  EXPECT_TRUE(std::isnan(one_class.auroc) && std::isnan(one_class.auprc));
  EXPECT_NEAR(one_class.brier, (0.04 + 0.81) / 2, 1e-15);
  BinaryEvaluation e = evaluate_binary({0.2, 0.9, 0.4}, {1, 1, 1}, 50, 1);
  EXPECT_TRUE(std::isnan(e.auroc.lo) && std::isnan(e.auprc.hi));
  EXPECT_TRUE(std::isfinite(e.brier.lo) && e.brier.lo <= e.brier.hi);
  EXPECT_EQ(e.bootstrap_redrawn, 0);
  EXPECT_TRUE(roc_curve({0.2, 0.9}, {0, 0}).x.empty());
  EXPECT_TRUE(precision_recall_curve({0.2, 0.9}, {0, 0}).x.empty());
  BinaryEvaluation none = evaluate_binary({}, {}, 100, 1);
  EXPECT_TRUE(std::isnan(none.brier.lo));
}

TEST(BinaryMetrics, BadInputNamesTheIndex) {
  auto message = [](auto f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message([] { binary_metrics({0.1, 0.2}, {0}); }).find("2 predictions but 1 labels"), std::string::npos);
  EXPECT_NE(message([] { binary_metrics({0.1, 0.2, 1.5}, {0, 1, 1}); }).find("prediction 2 is 1.5"), std::string::npos);
  EXPECT_NE(message([] { binary_metrics({NAN, 0.2}, {0, 1}); }).find("prediction 0"), std::string::npos);
  EXPECT_NE(message([] { binary_metrics({-0.1}, {0}); }).find("prediction 0"), std::string::npos);
  EXPECT_NE(message([] { evaluate_binary({0.1, 0.2}, {0, 2}); }).find("label 1 is 2"), std::string::npos);
  EXPECT_NE(message([] { roc_curve({0.1}, {0, 1}); }).find("1 predictions but 2"), std::string::npos);
  EXPECT_NE(message([] { calibration_bins({0.1}, {0}, 0); }).find("0 calibration bins"), std::string::npos);
}

TEST(BinaryEvaluation, BootstrapIntervalsContainPointNarrowWithNAndFollowTheSeed) {
  std::vector<double> p;
  std::vector<int> y;
  random_data(250, 2, 5, &p, &y);
  BinaryEvaluation small = evaluate_binary(p, y, 400, 11);
  random_data(4000, 2, 5, &p, &y);
  BinaryEvaluation large = evaluate_binary(p, y, 400, 11);
  for (const BinaryEvaluation* e : {&small, &large}) {
    EXPECT_EQ(e->bootstrap_samples, 400);
    EXPECT_LT(e->auroc.lo, e->point.auroc);
    EXPECT_GT(e->auroc.hi, e->point.auroc);
    EXPECT_LT(e->auprc.lo, e->point.auprc);
    EXPECT_GT(e->auprc.hi, e->point.auprc);
    EXPECT_LT(e->brier.lo, e->point.brier);
    EXPECT_GT(e->brier.hi, e->point.brier);
    EXPECT_LT(e->ece.lo, e->ece.hi);
  }
  // 16x the data: intervals about 4x narrower; require at least 2x.
  EXPECT_LT(2 * (large.auroc.hi - large.auroc.lo), small.auroc.hi - small.auroc.lo);
  EXPECT_LT(2 * (large.auprc.hi - large.auprc.lo), small.auprc.hi - small.auprc.lo);
  EXPECT_LT(2 * (large.brier.hi - large.brier.lo), small.brier.hi - small.brier.lo);

  BinaryEvaluation again = evaluate_binary(p, y, 400, 11), other = evaluate_binary(p, y, 400, 12);
  EXPECT_EQ(again.auroc.lo, large.auroc.lo);
  EXPECT_EQ(again.auprc.hi, large.auprc.hi);
  EXPECT_EQ(again.ece.lo, large.ece.lo);
  EXPECT_NE(other.auroc.lo, large.auroc.lo);
  EXPECT_EQ(other.point.auroc, large.point.auroc);
}

TEST(BinaryEvaluation, OneClassResamplesAreRedrawn) {
  // One positive in ten: about a third of the resamples miss it and are drawn again.
  std::vector<double> p = {0.9, 0.1, 0.2, 0.3, 0.1, 0.4, 0.2, 0.3, 0.5, 0.6};
  std::vector<int> y = {1, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  BinaryEvaluation e = evaluate_binary(p, y, 300, 2);
  EXPECT_GT(e.bootstrap_redrawn, 30);
  EXPECT_TRUE(std::isfinite(e.auroc.lo) && std::isfinite(e.auprc.lo));
  EXPECT_DOUBLE_EQ(e.point.auroc, 1.0);
}

// Outcomes drawn from logit P(y) = a + b logit(p): the fit recovers a planted slope, and at the
// maximum the score equations hold (the residuals sum to zero, alone and times logit p).
TEST(Calibration, RecoversAPlantedInterceptAndSlope) {
  std::vector<double> p, l;
  std::vector<int> y;
  std::vector<uint8_t> y8;
  for (uint64_t i = 0; i < 200000; ++i) {
    const double u = (static_cast<double>(mix(2 * i) >> 11) + 0.5) / 9007199254740992.0;
    const double v = static_cast<double>(mix(2 * i + 1) >> 11) / 9007199254740992.0;
    const double pi = 0.02 + 0.9 * u, eta = -0.4 + 0.6 * clipped_logit(pi);
    p.push_back(pi), l.push_back(clipped_logit(pi));
    y.push_back(v < 1 / (1 + std::exp(-eta))), y8.push_back(static_cast<uint8_t>(y.back()));
  }
  const LogisticCalibration c = fit_logistic_calibration(l, y8);
  EXPECT_NEAR(c.slope, 0.6, 0.02);
  const BinaryMetrics m = binary_metrics(p, y);
  EXPECT_DOUBLE_EQ(m.calibration_slope, c.slope);
  // The intercept with the slope held at 1: sum(y - sigmoid(a + logit p)) = 0.
  double r = 0;
  for (size_t i = 0; i < p.size(); ++i) r += y[i] - 1 / (1 + std::exp(-(c.intercept + l[i])));
  EXPECT_NEAR(r / static_cast<double>(p.size()), 0, 1e-9);
  EXPECT_LT(c.intercept, -0.1);  // outcomes rarer than predicted: risk overestimated
  // Perfectly calibrated predictions: intercept ~0, slope ~1.
  std::vector<int> yc;
  for (size_t i = 0; i < p.size(); ++i)
    yc.push_back(static_cast<double>(mix(7 * i + 3) >> 11) / 9007199254740992.0 < p[i]);
  const BinaryMetrics good = binary_metrics(p, yc);
  EXPECT_NEAR(good.calibration_slope, 1, 0.03);
  EXPECT_NEAR(good.calibration_intercept, 0, 0.02);
  // One class only, or perfect separation: undefined, not a number that looks like a fit.
  EXPECT_TRUE(std::isnan(binary_metrics({0.2, 0.4}, {1, 1}).calibration_slope));
  EXPECT_TRUE(std::isnan(binary_metrics({0.1, 0.2, 0.8, 0.9}, {0, 0, 1, 1}).calibration_slope));
  const BinaryEvaluation e = evaluate_binary(p, yc, 50, 1);
  EXPECT_LE(e.calibration_slope.lo, good.calibration_slope);
  EXPECT_GE(e.calibration_slope.hi, good.calibration_slope);
}

TEST(OperatingPoint, RulesPickTheirThresholdAndMetricsCountByHand) {
  // Sorted by p: 0.9+ 0.8+ 0.7- 0.6+ 0.4- 0.3- 0.2+ 0.1-  (4 positive, 4 negative)
  const std::vector<double> p = {0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1};
  const std::vector<int> y = {1, 1, 0, 1, 0, 0, 1, 0};
  // Youden J: t=0.8: 2/4-0 = .5; t=0.6: 3/4-1/4 = .5; t=0.2: 1-3/4; the first maximum (0.8) wins.
  EXPECT_DOUBLE_EQ(choose_threshold(p, y, parse_threshold_rule("youden", 0.5)), 0.8);
  EXPECT_DOUBLE_EQ(choose_threshold(p, y, parse_threshold_rule("sensitivity:0.75", 0.5)), 0.6);
  EXPECT_DOUBLE_EQ(choose_threshold(p, y, parse_threshold_rule("sensitivity:1", 0.5)), 0.2);
  EXPECT_DOUBLE_EQ(choose_threshold(p, y, parse_threshold_rule("alert_rate:0.5", 0.5)), 0.6);
  EXPECT_DOUBLE_EQ(choose_threshold(p, y, parse_threshold_rule("fixed", 0.33)), 0.33);
  const ThresholdMetrics m = metrics_at_threshold(p, y, 0.6);  // flags 0.9 0.8 0.7 0.6: TP 3, FP 1
  EXPECT_EQ(m.tp, 3);
  EXPECT_EQ(m.fp, 1);
  EXPECT_EQ(m.tn, 3);
  EXPECT_EQ(m.fn, 1);
  EXPECT_DOUBLE_EQ(m.sensitivity, 0.75);
  EXPECT_DOUBLE_EQ(m.specificity, 0.75);
  EXPECT_DOUBLE_EQ(m.ppv, 0.75);
  EXPECT_DOUBLE_EQ(m.npv, 0.75);
  EXPECT_DOUBLE_EQ(m.f1, 0.75);
  EXPECT_DOUBLE_EQ(m.alert_rate, 0.5);
  EXPECT_TRUE(std::isnan(metrics_at_threshold(p, y, 0.95).ppv));  // nobody flagged: no PPV
  const OperatingPoint op = evaluate_at_threshold(p, y, 0.6, 200, 3);
  EXPECT_LE(op.alert_rate.lo, 0.5);
  EXPECT_GE(op.alert_rate.hi, 0.5);
  for (const char* bad : {"youdn", "sensitivity:", "sensitivity:1.5", "alert_rate:x", "alert_rate:0"}) {
    try {
      parse_threshold_rule(bad, 0.5);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("eval.threshold_rule"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(choose_threshold({0.2, 0.3}, {0, 0}, parse_threshold_rule("youden", 0.5)), Error);
}

TEST(DecisionCurve, NetBenefitByHandAgainstTreatAll) {
  const std::vector<double> p = {0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1};
  const std::vector<int> y = {1, 1, 0, 1, 0, 0, 1, 0};
  const DecisionCurve c = decision_curve(p, y, {0.25, 0.5, 0.75});
  // t = 0.5: flags 0.9..0.6: TP 3, FP 1 -> 3/8 - 1/8; treat all: 4/8 - 4/8.
  EXPECT_DOUBLE_EQ(c.net_benefit[1], 3.0 / 8 - 1.0 / 8);
  EXPECT_DOUBLE_EQ(c.treat_all[1], 0.0);
  // t = 0.25: flags 0.9..0.3: TP 3, FP 3 -> 3/8 - 3/8 / 3; treat all 1/2 - 1/2 / 3.
  EXPECT_NEAR(c.net_benefit[0], 3.0 / 8 - 3.0 / 8 / 3, 1e-15);
  EXPECT_NEAR(c.treat_all[0], 0.5 - 0.5 / 3, 1e-15);
  EXPECT_EQ(decision_curve(p, y).thresholds.size(), 99u);
  EXPECT_THROW(decision_curve(p, y, {1.0}), Error);
}

TEST(Curves, RocAndPrecisionRecallPoints) {
  std::vector<double> p = {0.1, 0.4, 0.35, 0.8};
  std::vector<int> y = {0, 0, 1, 1};
  Curve roc = roc_curve(p, y);
  EXPECT_EQ(roc.x, (std::vector<double>{0, 0, 0.5, 0.5, 1}));
  EXPECT_EQ(roc.y, (std::vector<double>{0, 0.5, 0.5, 1, 1}));
  Curve pr = precision_recall_curve(p, y);
  EXPECT_EQ(pr.x, (std::vector<double>{0, 0.5, 0.5, 1, 1}));
  EXPECT_EQ(pr.y, (std::vector<double>{1, 1, 0.5, 2.0 / 3, 0.5}));
  Curve tied = roc_curve({0.5, 0.5, 0.5}, {1, 0, 1});  // one threshold: straight to (1,1)
  EXPECT_EQ(tied.x, (std::vector<double>{0, 1}));
}

// ---- report ----------------------------------------------------------------------------------

ReportInputs perfect_inputs() {
  std::vector<double> p = {0.1, 0.2, 0.3, 0.7, 0.8, 0.9};
  std::vector<int> y = {0, 0, 0, 1, 1, 1};
  ReportInputs in;
  in.title = "readmission";
  in.facts = {{"task", "<script>alert(1)</script>"}, {"checkpoint", "a & b"}};
  in.model = evaluate_binary(p, y, 50, 1);
  in.roc = {{"model", roc_curve(p, y)}};
  in.pr = {{"model", precision_recall_curve(p, y)}};
  in.calibration = calibration_bins(p, y);
  return in;
}

std::string svg_of_class(const std::string& html, const std::string& cls) {
  size_t start = html.find("<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"" + cls + "\"");
  if (start == std::string::npos) return "";
  return html.substr(start, html.find("</svg>", start) - start);
}

TEST(Report, HasThePlotsAndEscapesCallerText) {
  TempDir dir;
  ReportInputs in = perfect_inputs();
  in.oracle = in.model;
  in.roc.push_back({"oracle <b>", in.roc[0].curve});
  in.loss_runs = {{"pretraining", dir / "missing" / "metrics.jsonl"}};
  std::string html = render_report_html(in);
  for (const char* cls : {"roc", "pr", "calibration", "loss"}) EXPECT_FALSE(svg_of_class(html, cls).empty()) << cls;
  EXPECT_EQ(html.find("<script>"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
  EXPECT_NE(html.find("a &amp; b"), std::string::npos);
  EXPECT_NE(html.find("oracle &lt;b&gt;"), std::string::npos);
  EXPECT_NE(html.find("oracle (true probabilities)"), std::string::npos);  // the metrics table row
  EXPECT_NE(html.find("no metrics (file not found)"), std::string::npos);
  // Self-contained: no scripts, no links or sources; the only URL is the SVG namespace.
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("src="), std::string::npos);
  EXPECT_EQ(html.find("href="), std::string::npos);
  EXPECT_EQ(std::regex_replace(html, std::regex("http://www.w3.org/2000/svg"), "").find("http"), std::string::npos);
  write_report(dir / "report.html", in);
  std::ifstream f(dir / "report.html");
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(f), {}), html);
}

TEST(Report, PerfectRocPolylineGoesThroughTopLeft) {
  std::string roc = svg_of_class(render_report_html(perfect_inputs()), "roc");
  std::smatch frame, line;
  ASSERT_TRUE(std::regex_search(roc, frame, std::regex(R"re(<rect x="([0-9.]+)" y="([0-9.]+)"[^>]*class="frame")re")));
  // The first series polyline is the chance diagonal, the model comes after it.
  std::string model = roc.substr(roc.rfind("<polyline"));
  ASSERT_TRUE(std::regex_search(model, line, std::regex(R"re(points="([^"]*)")re")));
  std::string top_left = frame[1].str() + "," + frame[2].str();
  EXPECT_NE((" " + line[1].str() + " ").find(" " + top_left + " "), std::string::npos) << line[1] << " vs " << top_left;
}

TEST(Report, RendersAnUndefinedEvaluation) {
  ReportInputs in;  // one class only: AUROC and AUPRC undefined, curves empty
  in.title = "empty";
  in.model = evaluate_binary({0.1, 0.3}, {0, 0}, 20, 1);
  in.roc = {{"model", roc_curve({0.1, 0.3}, {0, 0})}};
  in.pr = {{"model", precision_recall_curve({0.1, 0.3}, {0, 0})}};
  std::string html = render_report_html(in);
  EXPECT_NE(html.find("<td>n/a</td>"), std::string::npos);
  EXPECT_EQ(html.find("nan"), std::string::npos);
  EXPECT_FALSE(svg_of_class(html, "calibration").empty());
}

TEST(Report, LossCurvesFromMetricsJsonl) {
  TempDir dir;
  {
    std::ofstream f(dir / "metrics.jsonl");
    f << R"({"step": 20, "split": "train", "loss": 2.5, "lr": 1e-3})"
      << "\n"
      << R"({"step": 10, "split": "train", "loss": 3.0})"
      << "\n"
      << R"({"step": 10, "split": "tuning", "loss": 3.25, "note": "a \"quoted\" \u00e9"})"
      << "\n"
      << R"({"step": 30, "split": "train", "loss": null})"
      << "\n"  // diverged: skipped
      << R"({"step": 40, "split": "train", "loss": 2.0, "x": {"a": 1}})"
      << "\n"  // nested: skipped
      << R"({"step": 50, "split": "train")"
      << "\n"   // truncated: skipped
      << "\n";  // blank: ignored
  }
  LossCurves lc = read_loss_curves(dir / "metrics.jsonl");
  EXPECT_TRUE(lc.found);
  EXPECT_EQ(lc.skipped_lines, 3);
  ASSERT_EQ(lc.by_split.size(), 2u);
  EXPECT_EQ(lc.by_split["train"], (std::vector<std::pair<double, double>>{{10, 3.0}, {20, 2.5}}));
  EXPECT_EQ(lc.by_split["tuning"], (std::vector<std::pair<double, double>>{{10, 3.25}}));

  { std::ofstream empty(dir / "empty.jsonl"); }
  EXPECT_TRUE(read_loss_curves(dir / "empty.jsonl").found);
  EXPECT_FALSE(read_loss_curves(dir / "nope.jsonl").found);

  ReportInputs in = perfect_inputs();
  in.loss_runs = {{"fine-tuning", dir / "metrics.jsonl"}, {"pretraining", dir / "empty.jsonl"}};
  std::string html = render_report_html(in);
  std::string loss = svg_of_class(html, "loss");
  EXPECT_NE(loss.find(">train<"), std::string::npos);
  EXPECT_NE(loss.find(">tuning<"), std::string::npos);
  EXPECT_NE(loss.find("<polyline"), std::string::npos);
  EXPECT_NE(html.find("3 lines skipped"), std::string::npos);
  EXPECT_NE(html.find(">no metrics<"), std::string::npos);  // the empty run
}

// Metrics resting on a handful of patients are shown, with a warning that says so.
TEST(Report, FewPositivesOrNegativesGetAWarningInTheReport) {
  EXPECT_EQ(few_cases_warning(185, 40), "");
  const std::string two = few_cases_warning(185, 2);
  EXPECT_NE(two.find("only 2 of the 185 rows are positive"), std::string::npos) << two;
  EXPECT_NE(few_cases_warning(50, 45).find("only 5 of the 50 rows are negative"), std::string::npos);
  ReportInputs in;
  in.title = "t";
  in.warnings.push_back(two);
  const std::string html = render_report_html(in);
  EXPECT_NE(html.find("<p class=\"warning\"><b>Warning:</b> only 2 of the 185 rows are positive"), std::string::npos);
}

// Each group is scored as its own rows would be; rows in no group are counted; a small group is
// kept with a warning; the gap is between the lowest and highest AUROC of a dimension.
TEST(Subgroups, EachGroupIsItsOwnEvaluationAndSmallGroupsAreFlaggedNotHidden) {
  std::vector<double> p;
  std::vector<int> y;
  SubgroupDimension sex{"sex", {}};
  uint64_t s = 7;
  for (int i = 0; i < 400; ++i) {
    s = mix(s);
    const int label = (s >> 20) % 5 == 0;
    const bool female = i % 2 == 0;
    // Women's predictions separate the classes well, men's barely; a few rows have no sex.
    const double noise = static_cast<double>((s >> 33) % 1000) / 1000.0;
    p.push_back(female ? 0.3 * noise + 0.7 * label : 0.9 * noise + 0.1 * label);
    y.push_back(label);
    sex.group_of_row.push_back(i % 50 == 49 ? "" : female ? "F" : "M");
  }
  SubgroupDimension tiny{"site", std::vector<std::string>(400, "A")};
  for (int i = 0; i < 12; ++i) tiny.group_of_row[size_t(i)] = "B";  // 12 rows: few positives
  const SubgroupReport r = evaluate_subgroups(p, y, {sex, tiny}, 50, 3, 10);
  ASSERT_EQ(r.groups.size(), 4u);
  EXPECT_EQ(r.unassigned[0], (std::pair<std::string, int64_t>{"sex", 8}));
  std::vector<double> fp;
  std::vector<int> fy;
  for (size_t i = 0; i < p.size(); ++i)
    if (sex.group_of_row[i] == "F") fp.push_back(p[i]), fy.push_back(y[i]);
  const BinaryEvaluation f = evaluate_binary(fp, fy, 50, 3, 10);
  EXPECT_EQ(r.groups[0].group, "F");
  EXPECT_EQ(r.groups[0].eval.point.auroc, f.point.auroc);
  EXPECT_EQ(r.groups[0].eval.auroc.lo, f.auroc.lo);
  EXPECT_GT(r.groups[0].eval.point.auroc, r.groups[1].eval.point.auroc + 0.2);
  ASSERT_FALSE(r.gaps.empty());
  EXPECT_EQ(r.gaps[0].lowest, "M");
  EXPECT_EQ(r.gaps[0].highest, "F");
  EXPECT_NEAR(r.gaps[0].auroc_gap, r.groups[0].eval.point.auroc - r.groups[1].eval.point.auroc, 1e-15);
  EXPECT_TRUE(r.groups[0].warning.empty());
  EXPECT_EQ(r.gaps.size(), 1u);  // site: only A is large enough, so no gap for site
  EXPECT_EQ(r.groups[3].group, "B");
  EXPECT_FALSE(r.groups[3].warning.empty());
  EXPECT_EQ(r.groups[3].eval.point.n, 12);
  // In the report: a row per group, the small one marked, and the forest plot.
  ReportInputs in;
  in.model = evaluate_binary(p, y, 0);
  in.subgroups = r;
  const std::string html = render_report_html(in);
  EXPECT_NE(html.find("site: B</td>"), std::string::npos);
  EXPECT_NE(html.find("few cases"), std::string::npos);
  EXPECT_NE(html.find("class=\"forest\""), std::string::npos);
  EXPECT_NE(html.find("Largest AUROC gap by sex"), std::string::npos);
}

TEST(Subgroups, AgeBandsByLowerEdges) {
  const std::vector<std::string> edges = {"18", "40", "65", "80"};
  EXPECT_EQ(age_band(17.9, edges), "<18");
  EXPECT_EQ(age_band(18, edges), "18-40");
  EXPECT_EQ(age_band(64.99, edges), "40-65");
  EXPECT_EQ(age_band(80, edges), ">=80");
  EXPECT_THROW(load_config("", {"eval.age_bands=[40, 18]"}), Error);
}

TEST(TprAtFpr, CountsWhatIsStrictlyAboveTheThresholdTheTargetAllows) {
  const std::vector<double> neg = {0.9, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.04, 0.03, 0.02}, pos = {0.95, 0.8, 0.6, 0.1};
  std::vector<double> s;
  std::vector<int> y;
  for (double v : neg) s.push_back(v), y.push_back(0);
  for (double v : pos) s.push_back(v), y.push_back(1);
  auto at = [&](double target) { return tpr_at_fpr(s, y, target); };
  EXPECT_EQ(at(0).true_positives, 1);  // above every negative: only 0.95
  EXPECT_EQ(at(0).fpr, 0);
  EXPECT_EQ(at(0.05).true_positives, 1) << "a target below 1/n is the same as 0";
  EXPECT_EQ(at(0.1).true_positives, 3);
  EXPECT_DOUBLE_EQ(at(0.1).fpr, 0.1);
  EXPECT_DOUBLE_EQ(at(0.1).tpr(), 0.75);
  EXPECT_EQ(at(0.19).false_positives, 1);
  EXPECT_EQ(at(0.5).true_positives, 3) << "0.1 is not above the 6th negative (0.1)";
  // Ties with the threshold are not flagged: the reached rate never exceeds the target.
  const TprAtFpr tied = tpr_at_fpr({0.5, 0.5, 0.5}, {0, 0, 1}, 0.5);
  EXPECT_EQ(tied.true_positives, 0);
  EXPECT_EQ(tied.fpr, 0);
  EXPECT_THROW(tpr_at_fpr(s, y, 1.0), Error);
  EXPECT_THROW(tpr_at_fpr({0.1}, {0, 1}, 0.1), Error);
  EXPECT_TRUE(std::isnan(tpr_at_fpr({0.1, 0.2}, {1, 1}, 0.1).fpr)) << "no negatives, no rate";
}

}  // namespace
}  // namespace chart
