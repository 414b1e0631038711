// The piecewise-exponential time-to-event head (MOTOR-style): one output per time piece, the log
// of a hazard (events per day) that is constant on the piece. A row at risk for e_k days of
// piece k, with its event (d = 1) or censoring at t, has log-likelihood
//   d * log h_{k(t)} - sum_k h_k e_k,
// and survival S(t) = exp(-sum_k h_k e_k(t)). Targets come from data/time_to_event.h.
#pragma once
#include <torch/torch.h>

#include <vector>

#include "data/examples.h"
#include "model/device.h"
#include "model/transformer.h"
#include "train/recipes/classify.h"
#include "train/validation/survival_metrics.h"

namespace chart {

// The mean negative log-likelihood of a batch: log_hazard [B, K], duration [B] days, event [B]
// (1 observed, 0 censored); edges the K lower piece edges in days (edges[0] = 0).
torch::Tensor piecewise_exponential_nll(const torch::Tensor& log_hazard, const torch::Tensor& duration,
                                        const torch::Tensor& event, const std::vector<double>& edges);

// Each piece's hazard estimated from the rows alone (events in it / days at risk in it), the
// head's starting point; a piece nobody reaches takes the one before it.
std::vector<double> piece_hazards(const std::vector<data::Example>& examples, const std::vector<double>& edges);

// What survival metrics take of examples whose row.value and row.label hold the time and event.
std::vector<SurvivalObservation> observations(const std::vector<data::Example>& examples);

// The head's hazards for each example (batched, eval mode, no gradients).
PiecewiseHazards predict_hazards(ClinicalTransformer& model, const data::TokenDataset& ds,
                                 const std::vector<data::Example>& examples, int64_t context, int64_t batch_size,
                                 const DeviceChoice& dev, const std::vector<double>& edges, HeadSlice slice = {});

}  // namespace chart
