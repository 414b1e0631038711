// Time-to-event metrics for `chart eval` on a piecewise-exponential head: predicted survival
// curves against right-censored observations.
//
//   C_td      Antolini's time-dependent concordance: over pairs where i has its event at t_i
//             (t_i <= tau) and j is still at risk after t_i, the share with S_i(t_i) < S_j(t_i)
//             (ties in S count a half). Reduces to Harrell's C when the curves do not cross.
//   Brier(t)  Graf's inverse-probability-of-censoring weighted Brier score: events by t weigh
//             1/G(t_i-), rows still at risk at t weigh 1/G(t), rows censored before t nothing;
//             G is the Kaplan-Meier curve of the censoring times.
//   IBS       Brier(t) integrated over [0, tau] (trapezoids on kIbsGrid points) and divided by tau;
//             beside it the same for the Kaplan-Meier curve of the evaluated rows given to every
//             row (the reference a model must beat).
//   at each horizon H: the cumulative/dynamic AUROC of the risk 1 - S(H) (cases: events by H,
//             weighed 1/G(t_i-); controls: rows at risk after H), Brier(H), and the mean
//             predicted risk beside the Kaplan-Meier risk 1 - KM(H).
// Intervals: 95% percentile bootstrap over rows (bootstrap.h). Torch-free; times in days.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "train/validation/binary_metrics.h"

namespace chart {

// Per-row hazards, constant on pieces [edges[k], edges[k+1]) (the last piece open-ended).
struct PiecewiseHazards {
  std::vector<double> edges;                 // K lower edges in days, edges[0] = 0, increasing
  std::vector<std::vector<double>> hazard;   // [N][K] events per day
  size_t rows() const { return hazard.size(); }
  double cumulative(size_t row, double t) const;  // the integral of the hazard over [0, t]
  double survival(size_t row, double t) const { return std::exp(-cumulative(row, t)); }
};

struct SurvivalObservation {
  double time = 0;     // days from prediction time to the event, or to the last record (censored)
  bool event = false;  // the event was observed at `time`
};

// A right-continuous step function: value(t) = values[i] for the last times[i] <= t; 1 before
// the first step.
struct StepCurve {
  std::vector<double> times, values;
  double at(double t) const;
  double before(double t) const;  // the left limit at t
};
// Kaplan-Meier estimate of P(T > t), each row weighted (bootstrap counts; empty: all 1). With
// `of_censoring`, the curve of the censoring times (events count as still uncensored).
StepCurve kaplan_meier(const std::vector<SurvivalObservation>& obs, const std::vector<double>& weights = {},
                       bool of_censoring = false);

struct HorizonMetrics {
  double horizon = 0;  // days
  double auroc = NAN, brier = NAN, brier_km = NAN;
  double mean_predicted_risk = NAN, observed_risk_km = NAN;
  int64_t cases = 0, controls = 0, censored = 0;  // events by H, at risk after H, censored before H
};

struct SurvivalMetrics {
  int64_t n = 0, events = 0;
  double tau = 0;  // days: the largest horizon, or less where censoring leaves no row at risk
  double c_td = NAN, ibs = NAN, ibs_km = NAN;
  std::vector<HorizonMetrics> horizons;
};

struct SurvivalEvaluation {
  SurvivalMetrics point;
  Interval c_td, ibs;
  std::vector<Interval> auroc, brier;  // per horizon
  int64_t bootstrap_samples = 0;
  // The report's curves on kIbsGrid points of [0, tau]: Brier(t) of the model and of KM, and the
  // mean predicted survival beside KM.
  std::vector<double> grid, brier_model, brier_reference, mean_survival, km_survival;
};

constexpr int kIbsGrid = 100;

// chart::Error when the sizes disagree, a time is negative or not finite, or `horizons` is empty.
SurvivalMetrics survival_metrics(const PiecewiseHazards& predicted, const std::vector<SurvivalObservation>& obs,
                                 const std::vector<double>& horizons);
SurvivalEvaluation evaluate_survival(const PiecewiseHazards& predicted, const std::vector<SurvivalObservation>& obs,
                                     const std::vector<double>& horizons, int64_t bootstrap_samples = 1000,
                                     uint64_t seed = 0);

}  // namespace chart
