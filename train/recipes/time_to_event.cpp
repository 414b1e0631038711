#include "train/recipes/time_to_event.h"

#include <cmath>

#include "core/error.h"
#include "train/recipes/classify.h"

namespace chart {

namespace {

// Days at risk in each piece [B, K] for durations [B].
torch::Tensor exposure(const torch::Tensor& duration, const std::vector<double>& edges) {
  std::vector<double> width;
  for (size_t k = 0; k < edges.size(); ++k)
    width.push_back(k + 1 < edges.size() ? edges[k + 1] - edges[k] : std::numeric_limits<double>::infinity());
  auto opts = torch::dtype(torch::kFloat32).device(duration.device());
  auto lo = torch::tensor(std::vector<float>(edges.begin(), edges.end()), opts);
  auto w = torch::tensor(std::vector<float>(width.begin(), width.end()), opts);
  return torch::minimum(torch::clamp_min(duration.unsqueeze(1) - lo, 0.0), w);
}

}  // namespace

torch::Tensor piecewise_exponential_nll(const torch::Tensor& log_hazard, const torch::Tensor& duration,
                                        const torch::Tensor& event, const std::vector<double>& edges) {
  TORCH_CHECK(log_hazard.size(1) == static_cast<int64_t>(edges.size()), "one output per piece");
  const auto z = log_hazard.to(torch::kFloat32);
  const auto e = exposure(duration.to(torch::kFloat32), edges);
  // The piece the row's time falls in: the last edge below it (a time on an edge belongs to the piece before).
  auto lo = torch::tensor(std::vector<float>(edges.begin(), edges.end()), e.options());
  auto piece = (duration.unsqueeze(1) > lo).sum(1).sub(1).clamp_min(0).to(torch::kLong);
  auto log_h_at_t = z.gather(1, piece.unsqueeze(1)).squeeze(1);
  return (torch::exp(z).mul(e).sum(1) - event.to(torch::kFloat32) * log_h_at_t).mean();
}

std::vector<double> piece_hazards(const std::vector<data::Example>& examples, const std::vector<double>& edges) {
  const size_t K = edges.size();
  std::vector<double> events(K, 0), days(K, 0);
  for (const auto& ex : examples) {
    const double t = ex.row.value;
    for (size_t k = 0; k < K && edges[k] < t; ++k) {
      const double hi = k + 1 < K ? std::min(t, edges[k + 1]) : t;
      days[k] += hi - edges[k];
      if (ex.row.label && (k + 1 == K || t <= edges[k + 1])) events[k] += 1;
    }
  }
  std::vector<double> h(K);
  for (size_t k = 0; k < K; ++k) {
    // Half an event where none was seen: the head starts low there, not at log 0.
    if (days[k] > 0) h[k] = std::max(events[k], 0.5) / days[k];
    else h[k] = k > 0 ? h[k - 1] : 1e-4;
  }
  return h;
}

std::vector<SurvivalObservation> observations(const std::vector<data::Example>& examples) {
  std::vector<SurvivalObservation> obs;
  for (const auto& ex : examples) obs.push_back({ex.row.value, ex.row.label});
  return obs;
}

PiecewiseHazards predict_hazards(ClinicalTransformer& model, const data::TokenDataset& ds,
                                 const std::vector<data::Example>& examples, int64_t context, int64_t batch_size,
                                 const DeviceChoice& dev, const std::vector<double>& edges, HeadSlice slice) {
  PiecewiseHazards p;
  p.edges = edges;
  for (auto& row : predict_outputs(model, ds, examples, context, batch_size, dev, slice)) {
    if (row.size() != edges.size()) fail("a time-to-event head has {} outputs for {} pieces", row.size(), edges.size());
    for (double& z : row) z = std::exp(z);
    p.hazard.push_back(std::move(row));
  }
  return p;
}

}  // namespace chart
