// AdamW with decoupled weight decay on the parameter groups train.decay names, and the learning
// rate schedule: linear warmup, then cosine to min_lr, warmup-stable-decay (linear to min_lr over
// the last decay_fraction of the steps), or constant.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>

#include "core/config.h"
#include "model/transformer.h"

namespace chart {

// "matrices", "embeddings", "norms" or "other" for a parameter name of ClinicalTransformer.
std::string parameter_group(const std::string& name, const torch::Tensor& p);

// Two param groups: index 0 decays, index 1 does not. Parameter order within a group follows
// named_parameters(), so optimizer state saved by name maps back exactly.
std::unique_ptr<torch::optim::AdamW> make_optimizer(ClinicalTransformer& model, const TrainConfig& cfg);
// ZeRO-1: stepped[i] are the tensors stepped for the i-th of model->parameters() (views of its
// pieces in this rank's shard, or none), each in the group of that parameter.
std::unique_ptr<torch::optim::AdamW> make_optimizer(ClinicalTransformer& model, const TrainConfig& cfg,
                                                    const std::vector<std::vector<torch::Tensor>>& stepped);

double learning_rate(const TrainConfig& cfg, int64_t step);  // for optimizer step `step` (0-based)
void set_learning_rate(torch::optim::Optimizer& opt, double lr);

}  // namespace chart
