// Logistic recalibration (Cox 1958; Van Calster et al. 2019's "weak calibration"): how the
// outcome's log-odds follow the prediction's, logit P(y=1) = a + b logit(p).
//  - calibration slope: b of the two-parameter fit. 1 is ideal; below 1 the predictions are too
//    extreme (overfitting), above 1 too modest.
//  - calibration intercept (calibration-in-the-large): a of the fit with b fixed at 1 (logit(p)
//    as an offset). 0 is ideal; below 0 the model overestimates risk on average, above 0 underestimates.
// Both are maximum likelihood by damped Newton steps, as statsmodels' Logit with an offset gives.
// p is clipped to [1e-6, 1 - 1e-6] before the logit (a probability of exactly 0 or 1 has no log-odds).
#pragma once
#include <cstdint>
#include <vector>

namespace chart {

struct LogisticCalibration {
  double intercept, slope;  // NaN when undefined: one class only, or the fit diverges (perfect separation)
};

double clipped_logit(double p);

// logit[i] = clipped_logit(p[i]); y[i] in {0, 1}; row i counted w[i] times (once each if w is null).
LogisticCalibration fit_logistic_calibration(const std::vector<double>& logit, const std::vector<uint8_t>& y,
                                             const uint32_t* w = nullptr);

}  // namespace chart
