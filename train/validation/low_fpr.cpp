#include "train/validation/low_fpr.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "core/error.h"

namespace chart {

TprAtFpr tpr_at_fpr(const std::vector<double>& score, const std::vector<int>& y, double target_fpr) {
  if (score.size() != y.size()) fail("tpr_at_fpr: {} scores for {} labels", score.size(), y.size());
  if (!(target_fpr >= 0 && target_fpr < 1)) fail("tpr_at_fpr: the target false-positive rate {} is not in [0, 1)", target_fpr);
  std::vector<double> neg;
  for (size_t i = 0; i < y.size(); ++i)
    if (!y[i]) neg.push_back(score[i]);
  TprAtFpr r{target_fpr, std::numeric_limits<double>::quiet_NaN(), 0, 0, 0, static_cast<int64_t>(neg.size())};
  for (int v : y) r.positives += v != 0;
  if (neg.empty()) return r;
  std::sort(neg.begin(), neg.end(), std::greater<>());
  // At most m negatives may be flagged: the threshold is the (m+1)-th highest negative score.
  const auto m = static_cast<size_t>(std::floor(target_fpr * double(neg.size()) + 1e-9));
  const double threshold = neg[m];
  for (size_t i = 0; i < y.size(); ++i)
    if (score[i] > threshold) (y[i] ? r.true_positives : r.false_positives) += 1;
  r.fpr = double(r.false_positives) / double(r.negatives);
  return r;
}

}  // namespace chart
