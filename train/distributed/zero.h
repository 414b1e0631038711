// ZeRO stage 1: each rank keeps AdamW moments for (and steps) only the parameters it owns, then
// every rank's updated parameters are broadcast to the others.
#pragma once
#include <torch/torch.h>

#include <vector>

#include "train/distributed/dist.h"

namespace chart {

// ZeRO-1: the owning rank of each parameter, balancing element counts (greedy, largest first).
std::vector<int> shard_parameters(const std::vector<torch::Tensor>& params, int world_size);
// Each rank broadcasts the parameters it owns (one flat buffer per rank) to all others.
void gather_parameters(Dist& dist, const std::vector<torch::Tensor>& params, const std::vector<int>& owner);

}  // namespace chart
