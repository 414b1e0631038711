#include "train/validation/survival_metrics.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"
#include "train/validation/bootstrap.h"

namespace chart {

double PiecewiseHazards::cumulative(size_t row, double t) const {
  const auto& h = hazard[row];
  double H = 0;
  for (size_t k = 0; k < edges.size() && edges[k] < t; ++k) {
    const double hi = k + 1 < edges.size() ? std::min(t, edges[k + 1]) : t;
    H += h[k] * (hi - edges[k]);
  }
  return H;
}

double StepCurve::at(double t) const {
  const auto it = std::upper_bound(times.begin(), times.end(), t);
  return it == times.begin() ? 1.0 : values[size_t(it - times.begin()) - 1];
}

double StepCurve::before(double t) const {
  const auto it = std::lower_bound(times.begin(), times.end(), t);
  return it == times.begin() ? 1.0 : values[size_t(it - times.begin()) - 1];
}

StepCurve kaplan_meier(const std::vector<SurvivalObservation>& obs, const std::vector<double>& weights,
                       bool of_censoring) {
  std::vector<size_t> order(obs.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return obs[a].time < obs[b].time; });
  auto w = [&](size_t i) { return weights.empty() ? 1.0 : weights[i]; };
  double at_risk = 0;
  for (size_t i = 0; i < obs.size(); ++i) at_risk += w(i);
  StepCurve c;
  double s = 1;
  for (size_t a = 0; a < order.size();) {
    const double t = obs[order[a]].time;
    double d = 0, leaving = 0;
    size_t b = a;
    for (; b < order.size() && obs[order[b]].time == t; ++b) {
      leaving += w(order[b]);
      if (obs[order[b]].event != of_censoring) d += w(order[b]);
    }
    if (d > 0 && at_risk > 0) {
      s *= 1 - d / at_risk;
      c.times.push_back(t);
      c.values.push_back(s);
    }
    at_risk -= leaving;
    a = b;
  }
  return c;
}

namespace {

void check_inputs(const PiecewiseHazards& p, const std::vector<SurvivalObservation>& obs,
                  const std::vector<double>& horizons) {
  if (p.rows() != obs.size()) fail("survival metrics: {} predicted curves for {} observations", p.rows(), obs.size());
  if (horizons.empty()) fail("survival metrics: no horizon to evaluate at");
  for (size_t i = 0; i < obs.size(); ++i)
    if (!std::isfinite(obs[i].time) || obs[i].time < 0)
      fail("survival metrics: row {}: time to event {} is not a finite number of days >= 0", i, obs[i].time);
}

// What the metrics need of the predictions, computed once; each bootstrap replicate only
// reweights the rows.
struct Scorer {
  const std::vector<SurvivalObservation>& obs;
  std::vector<double> horizons, grid;
  double tau = 0;
  std::vector<std::vector<double>> s_grid, risk_h;  // [N][grid], [H][N]
  // C_td: for each event row i with t_i <= tau, the rows j at risk after t_i and whether
  // S_i(t_i) < S_j(t_i) (2), tie (1) or not (0).
  std::vector<size_t> c_rows;
  std::vector<std::vector<std::pair<uint32_t, uint8_t>>> c_pairs;

  Scorer(const PiecewiseHazards& p, const std::vector<SurvivalObservation>& o, std::vector<double> h)
      : obs(o), horizons(std::move(h)) {
    const size_t n = obs.size();
    double max_time = 0;
    for (const auto& x : obs) max_time = std::max(max_time, x.time);
    tau = std::min(*std::max_element(horizons.begin(), horizons.end()), max_time);
    for (int g = 0; g < kIbsGrid; ++g) grid.push_back(tau * g / (kIbsGrid - 1));
    s_grid.assign(n, std::vector<double>(grid.size()));
    for (size_t i = 0; i < n; ++i)
      for (size_t g = 0; g < grid.size(); ++g) s_grid[i][g] = p.survival(i, grid[g]);
    risk_h.assign(horizons.size(), std::vector<double>(n));
    for (size_t k = 0; k < horizons.size(); ++k)
      for (size_t i = 0; i < n; ++i) risk_h[k][i] = 1 - p.survival(i, horizons[k]);
    for (size_t i = 0; i < n; ++i) {
      if (!obs[i].event || obs[i].time > tau) continue;
      const double si = p.survival(i, obs[i].time);
      std::vector<std::pair<uint32_t, uint8_t>> pairs;
      for (size_t j = 0; j < n; ++j) {
        // At risk after t_i: a later time, or censored at t_i (censoring counts as after the event).
        if (j == i || !(obs[j].time > obs[i].time || (obs[j].time == obs[i].time && !obs[j].event))) continue;
        const double sj = p.survival(j, obs[i].time);
        pairs.emplace_back(uint32_t(j), si < sj ? 2 : si == sj ? 1 : 0);
      }
      if (!pairs.empty()) c_rows.push_back(i), c_pairs.push_back(std::move(pairs));
    }
  }

  double c_td(const std::vector<double>& w) const {
    double conc = 0, comp = 0;
    for (size_t a = 0; a < c_rows.size(); ++a) {
      const double wi = w[c_rows[a]];
      if (wi == 0) continue;
      for (const auto& [j, v] : c_pairs[a]) conc += wi * w[j] * v * 0.5, comp += wi * w[j];
    }
    return comp > 0 ? conc / comp : NAN;
  }

  // Graf's Brier score at t of survival predictions s(i); G the censoring curve, g_event[i] its
  // left limit at row i's time.
  template <class Survival>
  double brier(double t, const Survival& s, const StepCurve& G, const std::vector<double>& g_event,
               const std::vector<double>& w) const {
    double sum = 0, total = 0;
    const double g_t = G.at(t);
    for (size_t i = 0; i < obs.size(); ++i) {
      total += w[i];
      if (w[i] == 0) continue;
      const double si = s(i);
      if (obs[i].time <= t && obs[i].event) sum += w[i] * si * si / g_event[i];
      else if (obs[i].time > t && g_t > 0) sum += w[i] * (1 - si) * (1 - si) / g_t;
    }
    return total > 0 ? sum / total : NAN;
  }

  double integrate(const std::vector<double>& v) const {
    if (!(tau > 0)) return NAN;
    double area = 0;
    for (size_t g = 1; g < grid.size(); ++g) area += 0.5 * (v[g] + v[g - 1]) * (grid[g] - grid[g - 1]);
    return area / tau;
  }

  // Cumulative/dynamic AUROC of risk_h[k] at horizon H, cases weighed by 1/G(t_i-).
  double auroc_at(size_t k, const std::vector<double>& g_event, const std::vector<double>& w) const {
    const double H = horizons[k];
    std::vector<std::pair<double, double>> controls;  // (risk, weight)
    for (size_t j = 0; j < obs.size(); ++j)
      if (obs[j].time > H && w[j] > 0) controls.emplace_back(risk_h[k][j], w[j]);
    std::sort(controls.begin(), controls.end());
    std::vector<double> below(controls.size() + 1, 0);
    for (size_t j = 0; j < controls.size(); ++j) below[j + 1] = below[j] + controls[j].second;
    double num = 0, cases = 0;
    for (size_t i = 0; i < obs.size(); ++i) {
      if (!(obs[i].event && obs[i].time <= H) || w[i] == 0) continue;
      const double a = w[i] / g_event[i], r = risk_h[k][i];
      const size_t lo = size_t(std::lower_bound(controls.begin(), controls.end(), std::pair<double, double>{r, -INFINITY}) - controls.begin());
      const size_t hi = size_t(std::upper_bound(controls.begin(), controls.end(), std::pair<double, double>{r, INFINITY}) - controls.begin());
      num += a * (below[lo] + 0.5 * (below[hi] - below[lo]));
      cases += a;
    }
    return cases > 0 && below.back() > 0 ? num / (cases * below.back()) : NAN;
  }

  SurvivalMetrics metrics(const std::vector<double>& w, SurvivalEvaluation* curves = nullptr) const {
    SurvivalMetrics m;
    m.tau = tau;
    for (size_t i = 0; i < obs.size(); ++i) m.n += int64_t(w[i]), m.events += obs[i].event ? int64_t(w[i]) : 0;
    const StepCurve G = kaplan_meier(obs, w, true), km = kaplan_meier(obs, w, false);
    std::vector<double> g_event(obs.size());
    for (size_t i = 0; i < obs.size(); ++i) g_event[i] = G.before(obs[i].time);
    m.c_td = c_td(w);
    std::vector<double> bm(grid.size()), bk(grid.size());
    for (size_t g = 0; g < grid.size(); ++g) {
      bm[g] = brier(grid[g], [&](size_t i) { return s_grid[i][g]; }, G, g_event, w);
      bk[g] = brier(grid[g], [&](size_t) { return km.at(grid[g]); }, G, g_event, w);
    }
    m.ibs = integrate(bm), m.ibs_km = integrate(bk);
    for (size_t k = 0; k < horizons.size(); ++k) {
      HorizonMetrics h;
      h.horizon = horizons[k];
      h.auroc = auroc_at(k, g_event, w);
      h.brier = brier(h.horizon, [&](size_t i) { return 1 - risk_h[k][i]; }, G, g_event, w);
      h.brier_km = brier(h.horizon, [&](size_t) { return km.at(h.horizon); }, G, g_event, w);
      double risk = 0, total = 0;
      for (size_t i = 0; i < obs.size(); ++i) {
        risk += w[i] * risk_h[k][i], total += w[i];
        if (obs[i].time <= h.horizon) (obs[i].event ? h.cases : h.censored) += int64_t(w[i]);
        else h.controls += int64_t(w[i]);
      }
      h.mean_predicted_risk = total > 0 ? risk / total : NAN;
      h.observed_risk_km = 1 - km.at(h.horizon);
      m.horizons.push_back(h);
    }
    if (curves) {
      curves->grid = grid, curves->brier_model = bm, curves->brier_reference = bk;
      for (size_t g = 0; g < grid.size(); ++g) {
        double s = 0;
        for (size_t i = 0; i < obs.size(); ++i) s += s_grid[i][g];
        curves->mean_survival.push_back(obs.empty() ? NAN : s / double(obs.size()));
        curves->km_survival.push_back(km.at(grid[g]));
      }
    }
    return m;
  }
};

}  // namespace

SurvivalMetrics survival_metrics(const PiecewiseHazards& predicted, const std::vector<SurvivalObservation>& obs,
                                 const std::vector<double>& horizons) {
  check_inputs(predicted, obs, horizons);
  return Scorer(predicted, obs, horizons).metrics(std::vector<double>(obs.size(), 1.0));
}

SurvivalEvaluation evaluate_survival(const PiecewiseHazards& predicted, const std::vector<SurvivalObservation>& obs,
                                     const std::vector<double>& horizons, int64_t bootstrap_samples, uint64_t seed) {
  check_inputs(predicted, obs, horizons);
  const Scorer scorer(predicted, obs, horizons);
  SurvivalEvaluation e;
  e.point = scorer.metrics(std::vector<double>(obs.size(), 1.0), &e);
  e.bootstrap_samples = bootstrap_samples;
  std::vector<double> c, ibs;
  std::vector<std::vector<double>> auroc(horizons.size()), brier(horizons.size());
  SplitMix64 rng{seed};
  std::vector<uint32_t> counts(obs.size());
  std::vector<double> w(obs.size());
  for (int64_t b = 0; b < bootstrap_samples; ++b) {
    draw_resample(rng, counts);
    for (size_t i = 0; i < w.size(); ++i) w[i] = counts[i];
    const SurvivalMetrics m = scorer.metrics(w);
    c.push_back(m.c_td), ibs.push_back(m.ibs);
    for (size_t k = 0; k < horizons.size(); ++k)
      auroc[k].push_back(m.horizons[k].auroc), brier[k].push_back(m.horizons[k].brier);
  }
  // A resample may hold no comparable pair or no case by H: up to 5% of them may be undefined.
  e.c_td = percentile_interval(c, 0.05), e.ibs = percentile_interval(ibs, 0.05);
  for (size_t k = 0; k < horizons.size(); ++k)
    e.auroc.push_back(percentile_interval(auroc[k], 0.05)), e.brier.push_back(percentile_interval(brier[k], 0.05));
  return e;
}

}  // namespace chart
