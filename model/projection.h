// The transformer's bias-free linear projections, y = x W^T, with an optional LoRA adapter
// (Hu et al. 2021) for fine-tuning:
//   y = x W^T + (alpha / r) (x A^T) B^T     A: [r, in] small random, B: [out, r] zeros,
// so an adapted model starts out equal to its base. merge_lora() folds the adapter into W
// (W += (alpha / r) B A) and removes it, leaving a plain model that saves and exports as one.
// The weight keeps the name "weight", so checkpoints read the same with or without adapters.
#pragma once
#include <torch/torch.h>

namespace chart {

struct LoraAdapterImpl : torch::nn::Module {
  LoraAdapterImpl(int64_t in, int64_t out, int64_t rank);
  torch::Tensor a, b;
};
TORCH_MODULE(LoraAdapter);

struct ProjectionImpl : torch::nn::Module {
  ProjectionImpl(int64_t in, int64_t out);
  torch::Tensor forward(const torch::Tensor& x);
  void add_lora(int64_t rank, double alpha);
  void merge_lora();
  bool has_lora() const { return !lora.is_empty(); }

  torch::Tensor weight;  // [out, in]
  LoraAdapter lora{nullptr};
  double lora_scale = 0;
};
TORCH_MODULE(Projection);

}  // namespace chart
