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
  torch::Tensor next_token;  // mean cross-entropy (nats per token)
  torch::Tensor time;        // mean waiting-time NLL, undefined without a time head
};

LossParts pretraining_loss(const ModelOutput& out, const data::Batch& batch);

}  // namespace chart
