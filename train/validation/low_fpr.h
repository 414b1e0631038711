// The true-positive rate at a low false-positive rate: the stricter reading of a membership
// attack (Carlini et al., "Membership Inference Attacks From First Principles"), since an AUROC
// averages over every threshold and can sit near 0.5 while a few people are exposed with
// certainty.
#pragma once
#include <cstdint>
#include <limits>
#include <vector>

namespace chart {

struct TprAtFpr {
  double target_fpr;   // asked for
  double fpr;          // reached: negatives strictly above the threshold / negatives (<= target)
  int64_t true_positives, positives, false_positives, negatives;
  double tpr() const {
    return positives ? double(true_positives) / double(positives) : std::numeric_limits<double>::quiet_NaN();
  }
};

// At the lowest threshold whose false-positive rate is at most target_fpr, counting a row as
// flagged when its score is strictly above it: with n negatives the reachable rates are 0 (above
// every negative), 1/n, 2/n, ... so a target below 1/n measures the positives above every
// negative. target_fpr in [0, 1).
TprAtFpr tpr_at_fpr(const std::vector<double>& score, const std::vector<int>& y, double target_fpr);

}  // namespace chart
