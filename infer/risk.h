// Zero-shot risk from sampled trajectories, by two estimators of P(outcome within the horizon):
//   - hits: the fraction of trajectories that sampled an outcome code (ETHOS's estimate), with a
//     Wilson interval;
//   - expected: the mean over trajectories of the sum, over every step a trajectory was still
//     running, of the model's own probability of sampling an outcome code at that step.
// Both are unbiased for the same quantity: a trajectory's hit is the sum over its running steps
// of the indicator that the step's token is an outcome, and that indicator's expectation given
// the history so far is the probability the second estimator adds instead (the step's other
// randomness is averaged out analytically: a Rao-Blackwellised estimator). When the outcome is
// rare it varies far less (docs/quality.md measures it): a trajectory that does not sample the
// outcome still says how close it came, where its hit is a 0 like every other. Its interval is
// the normal one from the trajectories' spread, clipped to [0, 1].
#pragma once
#include <cstdint>
#include <vector>

#include "infer/engine.h"

namespace chart::infer {

struct RiskEstimate {
  int64_t samples = 0;
  double hit_fraction = 0, hit_low = 0, hit_high = 1;  // 95% Wilson interval
  double expected = 0, expected_low = 0, expected_high = 1;  // 95% normal interval, clipped
};

// Of n trajectories of one prompt, the first at `first`.
RiskEstimate estimate_risk(const TrajectoryResult* first, int64_t n);

// The 95% Wilson score interval of k successes in n trials.
std::pair<double, double> wilson_interval(int64_t k, int64_t n);

}  // namespace chart::infer
