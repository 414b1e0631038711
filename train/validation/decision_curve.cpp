#include "train/validation/decision_curve.h"

#include <algorithm>

#include "core/error.h"

namespace chart {

DecisionCurve decision_curve(const std::vector<double>& p, const std::vector<int>& y, std::vector<double> thresholds) {
  if (p.size() != y.size()) fail("eval: {} predictions but {} labels", p.size(), y.size());
  if (thresholds.empty())
    for (int k = 1; k <= 99; ++k) thresholds.push_back(k / 100.0);
  DecisionCurve c;
  c.thresholds = thresholds;
  const double n = static_cast<double>(p.size());
  const double prevalence = n > 0 ? static_cast<double>(std::count(y.begin(), y.end(), 1)) / n : 0;
  for (double t : thresholds) {
    if (!(t > 0 && t < 1)) fail("decision curve: threshold {} is not in (0, 1)", t);
    double tp = 0, fp = 0;
    for (size_t i = 0; i < p.size(); ++i)
      if (p[i] >= t) (y[i] ? tp : fp) += 1;
    const double odds = t / (1 - t);
    c.net_benefit.push_back(n > 0 ? tp / n - fp / n * odds : 0);
    c.treat_all.push_back(prevalence - (1 - prevalence) * odds);
  }
  return c;
}

}  // namespace chart
