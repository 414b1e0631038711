#include "train/validation/operating_point.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include <fmt/format.h>

#include "core/error.h"
#include "train/validation/bootstrap.h"

namespace chart {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double ratio(double a, double b) { return b > 0 ? a / b : kNaN; }

ThresholdMetrics from_counts(double tp, double fp, double tn, double fn) {
  const double n = tp + fp + tn + fn;
  return {ratio(tp, tp + fn), ratio(tn, tn + fp), ratio(tp, tp + fp), ratio(tn, tn + fn),
          ratio(2 * tp, 2 * tp + fp + fn), ratio(tp + fp, n),
          static_cast<int64_t>(tp), static_cast<int64_t>(fp), static_cast<int64_t>(tn), static_cast<int64_t>(fn)};
}

ThresholdMetrics weighted_metrics(const std::vector<double>& p, const std::vector<int>& y, const uint32_t* w,
                                  double threshold) {
  double tp = 0, fp = 0, tn = 0, fn = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    const double wi = w ? w[i] : 1.0;
    const bool flagged = p[i] >= threshold;
    (y[i] ? (flagged ? tp : fn) : (flagged ? fp : tn)) += wi;
  }
  return from_counts(tp, fp, tn, fn);
}

double parse_target(const std::string& rule, const std::string& value) {
  try {
    size_t used = 0;
    const double v = std::stod(value, &used);
    if (used == value.size() && v > 0 && v <= 1) return v;
  } catch (const std::exception&) {
  }
  throw Error(fmt::format("eval.threshold_rule: '{}' needs a share in (0, 1] after the colon", rule),
              "e.g. sensitivity:0.8 or alert_rate:0.1");
}

}  // namespace

ThresholdRule parse_threshold_rule(const std::string& rule, double fixed_threshold) {
  if (rule == "youden") return {ThresholdRule::kYouden, 0, rule};
  if (rule == "fixed") {
    if (!(fixed_threshold >= 0 && fixed_threshold <= 1))
      fail("eval.threshold: {} is not a probability in [0, 1]", fixed_threshold);
    return {ThresholdRule::kFixed, fixed_threshold, rule};
  }
  const size_t colon = rule.find(':');
  const std::string kind = rule.substr(0, colon);
  if (colon != std::string::npos && kind == "sensitivity")
    return {ThresholdRule::kSensitivity, parse_target(rule, rule.substr(colon + 1)), rule};
  if (colon != std::string::npos && kind == "alert_rate")
    return {ThresholdRule::kAlertRate, parse_target(rule, rule.substr(colon + 1)), rule};
  throw Error(fmt::format("eval.threshold_rule: '{}' is not a rule", rule),
              "use youden, sensitivity:S (e.g. sensitivity:0.8), alert_rate:A (e.g. alert_rate:0.1) or fixed "
              "(eval.threshold)");
}

double choose_threshold(const std::vector<double>& p, const std::vector<int>& y, const ThresholdRule& rule) {
  if (rule.kind == ThresholdRule::kFixed) return rule.target;
  const double pos = static_cast<double>(std::count(y.begin(), y.end(), 1)), neg = static_cast<double>(y.size()) - pos;
  if (pos == 0 || neg == 0)
    throw Error(fmt::format("eval.threshold_rule {}: the {} rows it is chosen on hold one class only", rule.text,
                            y.size()),
                "choose it on rows with both outcomes, or --set eval.threshold_rule=fixed");
  std::vector<size_t> order(p.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return p[a] > p[b]; });
  // Lower the threshold one distinct value at a time; each step flags the tied rows together.
  double tp = 0, fp = 0, best = -INFINITY, chosen = p[order.front()];
  for (size_t i = 0; i < order.size();) {
    const double t = p[order[i]];
    for (; i < order.size() && p[order[i]] == t; ++i) (y[order[i]] ? tp : fp) += 1;
    if (rule.kind == ThresholdRule::kYouden) {
      if (const double j = tp / pos - fp / neg; j > best) best = j, chosen = t;
    } else if (rule.kind == ThresholdRule::kSensitivity ? tp / pos >= rule.target
                                                        : (tp + fp) / static_cast<double>(p.size()) >= rule.target) {
      return t;
    }
  }
  return chosen;
}

ThresholdMetrics metrics_at_threshold(const std::vector<double>& p, const std::vector<int>& y, double threshold) {
  if (p.size() != y.size()) fail("eval: {} predictions but {} labels", p.size(), y.size());
  return weighted_metrics(p, y, nullptr, threshold);
}

OperatingPoint evaluate_at_threshold(const std::vector<double>& p, const std::vector<int>& y, double threshold,
                                     int64_t bootstrap_samples, uint64_t seed) {
  OperatingPoint op;
  op.threshold = threshold;
  op.point = metrics_at_threshold(p, y, threshold);
  if (p.empty() || bootstrap_samples <= 0) {
    op.sensitivity = op.specificity = op.ppv = op.npv = op.f1 = op.alert_rate = {kNaN, kNaN};
    return op;
  }
  std::vector<double> sens, spec, ppv, npv, f1, alert;
  std::vector<uint32_t> counts(p.size());
  SplitMix64 rng{seed};
  for (int64_t b = 0; b < bootstrap_samples; ++b) {
    draw_resample(rng, counts);
    const ThresholdMetrics m = weighted_metrics(p, y, counts.data(), threshold);
    sens.push_back(m.sensitivity), spec.push_back(m.specificity), ppv.push_back(m.ppv), npv.push_back(m.npv);
    f1.push_back(m.f1), alert.push_back(m.alert_rate);
  }
  // A resample with no positives (or none flagged) has no sensitivity (or PPV): up to 5% are left out.
  op.sensitivity = percentile_interval(sens, 0.05);
  op.specificity = percentile_interval(spec, 0.05);
  op.ppv = percentile_interval(ppv, 0.05);
  op.npv = percentile_interval(npv, 0.05);
  op.f1 = percentile_interval(f1, 0.05);
  op.alert_rate = percentile_interval(alert, 0.05);
  return op;
}

}  // namespace chart
