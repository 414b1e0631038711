// The model at one threshold, as a clinic would run it: predict positive when p >= threshold.
// The threshold is chosen on one set of rows (the tuning split) by a stated rule and applied
// unchanged to another (held_out), so the held_out numbers are not tuned on themselves.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "train/validation/binary_metrics.h"

namespace chart {

// eval.threshold_rule: "youden" (maximise sensitivity + specificity - 1), "sensitivity:S" (the
// highest threshold whose sensitivity is at least S), "alert_rate:A" (the highest threshold
// flagging at least a share A of the rows), or "fixed" (eval.threshold as given).
struct ThresholdRule {
  enum Kind { kFixed, kYouden, kSensitivity, kAlertRate } kind = kYouden;
  double target = 0;  // S or A; for kFixed the threshold itself
  std::string text;   // as written, for the report
};

// Parses a rule; `fixed_threshold` is eval.threshold. Errors name eval.threshold_rule.
ThresholdRule parse_threshold_rule(const std::string& rule, double fixed_threshold);

// The threshold the rule picks on (p, y): one of the distinct values of p (or the fixed one).
// Fails, naming what is missing, when the rows hold one class only (the rule is undefined).
double choose_threshold(const std::vector<double>& p, const std::vector<int>& y, const ThresholdRule& rule);

struct ThresholdMetrics {
  double sensitivity, specificity, ppv, npv, f1, alert_rate;  // NaN where the denominator is 0
  int64_t tp, fp, tn, fn;
};

struct OperatingPoint {
  double threshold = 0;
  std::string rule, chosen_on;  // e.g. "youden", "tuning split (812 rows)"
  ThresholdMetrics point{};
  Interval sensitivity{}, specificity{}, ppv{}, npv{}, f1{}, alert_rate{};  // 95% bootstrap intervals
};

ThresholdMetrics metrics_at_threshold(const std::vector<double>& p, const std::vector<int>& y, double threshold);

// The metrics at `threshold` with percentile bootstrap intervals (the threshold held fixed).
OperatingPoint evaluate_at_threshold(const std::vector<double>& p, const std::vector<int>& y, double threshold,
                                     int64_t bootstrap_samples, uint64_t seed);

}  // namespace chart
