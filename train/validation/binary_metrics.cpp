#include "train/validation/binary_metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/error.h"
#include "train/validation/bootstrap.h"
#include "train/validation/calibration.h"

namespace chart {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

void check_inputs(const std::vector<double>& p, const std::vector<int>& y, int bins) {
  if (p.size() != y.size())
    throw Error(fmt::format("eval: {} predictions but {} labels", p.size(), y.size()),
                "pass one predicted probability per label");
  for (size_t i = 0; i < p.size(); ++i) {
    if (!(p[i] >= 0.0 && p[i] <= 1.0))  // also rejects NaN
      throw Error(fmt::format("eval: prediction {} is {}, not a probability in [0, 1]", i, p[i]),
                  "pass probabilities (after the sigmoid/softmax), not logits");
    if (y[i] != 0 && y[i] != 1) fail("eval: label {} is {}, not 0 or 1", i, y[i]);
  }
  if (bins < 1) fail("eval: {} calibration bins; need at least 1", bins);
}

int bin_of(double p, int bins) { return std::min(static_cast<int>(p * bins), bins - 1); }

// The predictions sorted once by decreasing p, with tied scores grouped: all that a metric
// needs, so that a bootstrap resample is only a count per sorted position.
struct Sorted {
  std::vector<double> p;
  std::vector<uint8_t> y;
  std::vector<int32_t> bin;
  std::vector<double> logit;      // clipped_logit(p), for the calibration fit
  std::vector<size_t> group_end;  // one past the last position of each run of equal p
};

Sorted sort_predictions(const std::vector<double>& p, const std::vector<int>& y, int bins) {
  std::vector<size_t> order(p.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return p[a] > p[b]; });
  Sorted s;
  for (size_t i : order) {
    s.p.push_back(p[i]);
    s.y.push_back(static_cast<uint8_t>(y[i]));
    s.bin.push_back(bin_of(p[i], bins));
    s.logit.push_back(clipped_logit(p[i]));
  }
  for (size_t i = 1; i <= s.p.size(); ++i)
    if (i == s.p.size() || s.p[i] != s.p[i - 1]) s.group_end.push_back(i);
  return s;
}

// The metrics of the sorted predictions, position i counted w[i] times (all once if w is
// null). One pass: per tie group, negatives score the positives above plus half the tied ones
// (AUROC), and each group adds recall gained x precision so far (average precision).
BinaryMetrics score(const Sorted& s, const uint32_t* w, int bins, std::vector<double>& bin_sums) {
  bin_sums.assign(2 * static_cast<size_t>(bins), 0.0);  // per bin: sum of p, sum of y
  double tp = 0, fp = 0, auc = 0, ap = 0, sq = 0;
  size_t i = 0;
  for (size_t end : s.group_end) {
    double gtp = 0, gfp = 0;
    for (; i < end; ++i) {  // branch-free: a third of a resample's weights are 0
      double wi = w ? w[i] : 1.0, yi = s.y[i], wy = wi * yi;
      gtp += wy;
      gfp += wi - wy;
      sq += wi * (s.p[i] - yi) * (s.p[i] - yi);
      bin_sums[2 * s.bin[i]] += wi * s.p[i];
      bin_sums[2 * s.bin[i] + 1] += wy;
    }
    auc += gfp * (tp + 0.5 * gtp);
    tp += gtp;
    fp += gfp;
    if (gtp > 0) ap += gtp * tp / (tp + fp);
  }
  double n = tp + fp, ece = 0;
  for (int b = 0; b < bins; ++b) ece += std::abs(bin_sums[2 * b] - bin_sums[2 * b + 1]);
  bool both = tp > 0 && fp > 0;
  BinaryMetrics m{both ? auc / (tp * fp) : kNaN, both ? ap / tp : kNaN,   n > 0 ? sq / n : kNaN,
                  n > 0 ? ece / n : kNaN,        static_cast<int64_t>(n), static_cast<int64_t>(tp)};
  const LogisticCalibration c = fit_logistic_calibration(s.logit, s.y, w);
  m.calibration_intercept = c.intercept;
  m.calibration_slope = c.slope;
  return m;
}

}  // namespace

BinaryMetrics binary_metrics(const std::vector<double>& p, const std::vector<int>& y, int ece_bins) {
  check_inputs(p, y, ece_bins);
  std::vector<double> scratch;
  return score(sort_predictions(p, y, ece_bins), nullptr, ece_bins, scratch);
}

BinaryEvaluation evaluate_binary(const std::vector<double>& p, const std::vector<int>& y, int64_t bootstrap_samples,
                                 uint64_t seed, int ece_bins) {
  check_inputs(p, y, ece_bins);
  if (bootstrap_samples < 0) fail("eval: {} bootstrap samples; need 0 or more", bootstrap_samples);
  Sorted s = sort_predictions(p, y, ece_bins);
  std::vector<double> scratch;
  BinaryEvaluation e{};
  e.point = score(s, nullptr, ece_bins, scratch);
  const size_t n = p.size();
  const bool both = e.point.n_pos > 0 && e.point.n_pos < e.point.n;
  if (n == 0) bootstrap_samples = 0;

  std::vector<double> auroc, auprc, brier, ece, intercept, slope;
  std::vector<uint32_t> counts(n);
  SplitMix64 rng{seed};
  for (int64_t b = 0; b < bootstrap_samples; ++b) {
    for (int attempt = 0;; ++attempt) {
      draw_resample(rng, counts);
      BinaryMetrics m = score(s, counts.data(), ece_bins, scratch);
      if (!both || (m.n_pos > 0 && m.n_pos < m.n)) {
        auroc.push_back(m.auroc);
        auprc.push_back(m.auprc);
        brier.push_back(m.brier);
        ece.push_back(m.ece);
        intercept.push_back(m.calibration_intercept);
        slope.push_back(m.calibration_slope);
        break;
      }
      ++e.bootstrap_redrawn;
      if (attempt == 100)
        throw Error(fmt::format("eval: 100 bootstrap resamples in a row held one class only ({} of {} "
                                "labels positive)",
                                e.point.n_pos, e.point.n),
                    "evaluate on more labels, or with bootstrap_samples = 0");
    }
  }
  e.bootstrap_samples = bootstrap_samples;
  e.auroc = percentile_interval(auroc);
  e.auprc = percentile_interval(auprc);
  e.brier = percentile_interval(brier);
  e.ece = percentile_interval(ece);
  // A small resample can separate the classes perfectly (no finite slope): up to 5% such are left out.
  e.calibration_intercept = percentile_interval(intercept, 0.05);
  e.calibration_slope = percentile_interval(slope, 0.05);
  return e;
}

Curve roc_curve(const std::vector<double>& p, const std::vector<int>& y) {
  check_inputs(p, y, 1);
  Sorted s = sort_predictions(p, y, 1);
  double pos = std::count(s.y.begin(), s.y.end(), 1), neg = static_cast<double>(s.y.size()) - pos;
  Curve c;
  if (pos == 0 || neg == 0) return c;
  c.x.push_back(0);
  c.y.push_back(0);
  double tp = 0, fp = 0;
  size_t i = 0;
  for (size_t end : s.group_end) {
    for (; i < end; ++i) (s.y[i] ? tp : fp) += 1;
    c.x.push_back(fp / neg);
    c.y.push_back(tp / pos);
  }
  return c;
}

Curve precision_recall_curve(const std::vector<double>& p, const std::vector<int>& y) {
  check_inputs(p, y, 1);
  Sorted s = sort_predictions(p, y, 1);
  double pos = std::count(s.y.begin(), s.y.end(), 1);
  Curve c;
  if (pos == 0) return c;
  c.x.push_back(0);
  c.y.push_back(1);
  double tp = 0, fp = 0;
  size_t i = 0;
  for (size_t end : s.group_end) {
    for (; i < end; ++i) (s.y[i] ? tp : fp) += 1;
    c.x.push_back(tp / pos);
    c.y.push_back(tp / (tp + fp));
  }
  return c;
}

std::vector<CalibrationBin> calibration_bins(const std::vector<double>& p, const std::vector<int>& y, int bins) {
  check_inputs(p, y, bins);
  std::vector<CalibrationBin> all(static_cast<size_t>(bins), CalibrationBin{0, 0, 0});
  for (size_t i = 0; i < p.size(); ++i) {
    CalibrationBin& b = all[static_cast<size_t>(bin_of(p[i], bins))];
    b.mean_predicted += p[i];
    b.fraction_positive += y[i];
    b.n += 1;
  }
  std::vector<CalibrationBin> kept;
  for (CalibrationBin b : all) {
    if (b.n == 0) continue;
    b.mean_predicted /= static_cast<double>(b.n);
    b.fraction_positive /= static_cast<double>(b.n);
    kept.push_back(b);
  }
  return kept;
}

}  // namespace chart
