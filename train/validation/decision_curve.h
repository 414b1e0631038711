// Decision curve analysis (Vickers & Elkin 2006): the net benefit of acting on the model at each
// threshold probability t, NB(t) = TP/n - FP/n * t / (1 - t), against treating everyone
// (prevalence - (1 - prevalence) t / (1 - t)) and treating no one (0). A model is useful at t
// where its curve lies above both.
#pragma once
#include <vector>

namespace chart {

struct DecisionCurve {
  std::vector<double> thresholds, net_benefit, treat_all;
};

// thresholds: each in (0, 1); default 0.01, 0.02, ..., 0.99.
DecisionCurve decision_curve(const std::vector<double>& p, const std::vector<int>& y,
                             std::vector<double> thresholds = {});

}  // namespace chart
