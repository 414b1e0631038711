// The pretraining objective: next-token cross-entropy over positions with a target, plus, with
// model.time_head, the exponential waiting-time negative log-likelihood of the gap to the next
// token: -log(rate) + rate * dt  (dt in days, floored at one minute so same-time events count).
#pragma once
#include <torch/types.h>

#include "data/loader.h"
#include "model/transformer.h"

namespace chart {

struct LossParts {
  torch::Tensor total;       // what backward() is called on
  torch::Tensor next_token;  // cross-entropy (nats per token)
  torch::Tensor time;        // waiting-time NLL, undefined without a time head
};

// Each part is a sum over the batch's target positions divided by n_targets: by default the
// batch's own count (a mean). Training passes the count over every micro-batch of the step and
// every rank, so each target weighs the same however the global batch is split.
LossParts pretraining_loss(const ModelOutput& out, const data::Batch& batch, double n_targets = 0);
// The same with the count as a scalar tensor on the model's device (training: the step's count
// over every rank arrives by an all-reduce, and reading it on the host would stall a GPU).
LossParts pretraining_loss(const ModelOutput& out, const data::Batch& batch, const torch::Tensor& n_targets);

}  // namespace chart
