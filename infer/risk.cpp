#include "infer/risk.h"

#include <algorithm>
#include <cmath>

namespace chart::infer {
namespace {
constexpr double kZ = 1.959963984540054;  // the normal's 97.5% quantile
}

std::pair<double, double> wilson_interval(int64_t k, int64_t n) {
  if (n <= 0) return {0.0, 1.0};
  const double p = double(k) / double(n), z2 = kZ * kZ, nn = double(n);
  const double centre = (p + z2 / (2 * nn)) / (1 + z2 / nn);
  const double half = kZ * std::sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn)) / (1 + z2 / nn);
  // At k = 0 (k = n) the bound is 0 (1) exactly; rounding would leave it a hair off.
  return {k == 0 ? 0.0 : std::max(0.0, centre - half), k == n ? 1.0 : std::min(1.0, centre + half)};
}

RiskEstimate estimate_risk(const TrajectoryResult* first, int64_t n) {
  RiskEstimate r;
  r.samples = n;
  if (n <= 0) return r;
  int64_t hits = 0;
  double sum = 0, sum_sq = 0;
  for (int64_t k = 0; k < n; ++k) {
    hits += first[k].hit;
    sum += first[k].expected;
    sum_sq += first[k].expected * first[k].expected;
  }
  r.hit_fraction = double(hits) / double(n);
  std::tie(r.hit_low, r.hit_high) = wilson_interval(hits, n);
  const double mean = sum / double(n);
  r.expected = std::clamp(mean, 0.0, 1.0);
  if (n > 1) {
    const double var = std::max(0.0, (sum_sq - double(n) * mean * mean) / double(n - 1));
    const double half = kZ * std::sqrt(var / double(n));
    r.expected_low = std::clamp(mean - half, 0.0, 1.0);
    r.expected_high = std::clamp(mean + half, 0.0, 1.0);
  }
  return r;
}

}  // namespace chart::infer
