#include "train/validation/regression_metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "train/validation/bootstrap.h"

namespace chart {
namespace {

void check_inputs(const std::vector<double>& predicted, const std::vector<double>& target) {
  if (predicted.size() != target.size())
    fail("regression metrics: {} predictions but {} targets", predicted.size(), target.size());
  for (size_t i = 0; i < target.size(); ++i)
    if (!std::isfinite(predicted[i]) || !std::isfinite(target[i]))
      fail("regression metrics: row {} has prediction {} and target {}: both must be finite", i, predicted[i], target[i]);
}

// The metrics with row i counted w[i] times (a bootstrap resample; all ones for the data itself).
RegressionMetrics weighted(const std::vector<double>& p, const std::vector<double>& t, const std::vector<uint32_t>* w) {
  RegressionMetrics m;
  double n = 0, sum_t = 0, sum_p = 0;
  for (size_t i = 0; i < t.size(); ++i) {
    const double k = w ? (*w)[i] : 1.0;
    n += k, sum_t += k * t[i], sum_p += k * p[i];
  }
  m.n = static_cast<int64_t>(n);
  if (n == 0) return m;
  m.mean_target = sum_t / n, m.mean_prediction = sum_p / n;
  double abs = 0, sse = 0, sst = 0;
  for (size_t i = 0; i < t.size(); ++i) {
    const double k = w ? (*w)[i] : 1.0, e = p[i] - t[i], d = t[i] - m.mean_target;
    abs += k * std::fabs(e), sse += k * e * e, sst += k * d * d;
  }
  m.mae = abs / n;
  m.rmse = std::sqrt(sse / n);
  m.r2 = sst > 0 ? 1 - sse / sst : NAN;
  return m;
}

}  // namespace

RegressionMetrics regression_metrics(const std::vector<double>& predicted, const std::vector<double>& target) {
  check_inputs(predicted, target);
  return weighted(predicted, target, nullptr);
}

RegressionEvaluation evaluate_regression(const std::vector<double>& predicted, const std::vector<double>& target,
                                         int64_t bootstrap_samples, uint64_t seed) {
  RegressionEvaluation e;
  e.point = regression_metrics(predicted, target);
  e.bootstrap_samples = bootstrap_samples;
  std::vector<double> mae, rmse, r2;
  SplitMix64 rng{seed};
  std::vector<uint32_t> counts(target.size());
  for (int64_t b = 0; b < bootstrap_samples && !target.empty(); ++b) {
    draw_resample(rng, counts);
    const RegressionMetrics m = weighted(predicted, target, &counts);
    mae.push_back(m.mae), rmse.push_back(m.rmse), r2.push_back(m.r2);
  }
  e.mae = percentile_interval(mae);
  e.rmse = percentile_interval(rmse);
  e.r2 = percentile_interval(r2, 0.05);  // a resample of one repeated target has no R²
  return e;
}

std::vector<RegressionBin> regression_calibration(const std::vector<double>& predicted,
                                                  const std::vector<double>& target, int bins) {
  check_inputs(predicted, target);
  std::vector<size_t> order(target.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return predicted[a] < predicted[b]; });
  std::vector<RegressionBin> out;
  const size_t n = order.size();
  for (int k = 0; k < bins && n > 0; ++k) {
    const size_t from = n * size_t(k) / size_t(bins), to = n * size_t(k + 1) / size_t(bins);
    if (from == to) continue;
    RegressionBin b{0, 0, static_cast<int64_t>(to - from)};
    for (size_t i = from; i < to; ++i) b.mean_predicted += predicted[order[i]], b.mean_observed += target[order[i]];
    b.mean_predicted /= double(b.n), b.mean_observed /= double(b.n);
    out.push_back(b);
  }
  return out;
}

double conformal_half_width(const std::vector<double>& predicted, const std::vector<double>& target, double coverage) {
  if (predicted.size() != target.size()) fail("conformal: {} predictions for {} targets", predicted.size(), target.size());
  std::vector<double> r;
  for (size_t i = 0; i < predicted.size(); ++i) r.push_back(std::abs(target[i] - predicted[i]));
  const double n = static_cast<double>(r.size());
  const auto rank = static_cast<size_t>(std::ceil((n + 1) * coverage));
  if (r.empty() || rank > r.size()) return NAN;
  std::nth_element(r.begin(), r.begin() + static_cast<std::ptrdiff_t>(rank - 1), r.end());
  return r[rank - 1];
}

IntervalCoverage interval_coverage(const std::vector<double>& predicted, const std::vector<double>& target,
                                   double half_width, double nominal, int64_t calibration_rows) {
  IntervalCoverage c;
  c.nominal = nominal, c.half_width = half_width, c.calibration_rows = calibration_rows;
  c.n = static_cast<int64_t>(predicted.size());
  if (c.n == 0 || !std::isfinite(half_width)) return c;
  double in = 0;
  for (size_t i = 0; i < predicted.size(); ++i) in += std::abs(target[i] - predicted[i]) <= half_width;
  const double n = static_cast<double>(c.n), p = in / n, z = 1.959963984540054;
  c.coverage = p;
  const double centre = (p + z * z / (2 * n)) / (1 + z * z / n);
  const double spread = z * std::sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n);
  c.coverage_ci = {centre - spread, centre + spread};
  return c;
}

}  // namespace chart
