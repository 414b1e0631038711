#include "model/projection.h"

#include <cmath>

namespace chart {

LoraAdapterImpl::LoraAdapterImpl(int64_t in, int64_t out, int64_t rank) {
  // A as a Kaiming-uniform layer would be initialised, B zero: the adapter's product starts at 0.
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  a = register_parameter("a", torch::empty({rank, in}).uniform_(-bound, bound));
  b = register_parameter("b", torch::zeros({out, rank}));
}

ProjectionImpl::ProjectionImpl(int64_t in, int64_t out) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  weight = register_parameter("weight", torch::empty({out, in}).uniform_(-bound, bound));
}

torch::Tensor ProjectionImpl::forward(const torch::Tensor& x) {
  auto y = torch::nn::functional::linear(x, weight);
  if (lora) y = y + lora_scale * torch::nn::functional::linear(torch::nn::functional::linear(x, lora->a), lora->b);
  return y;
}

void ProjectionImpl::add_lora(int64_t rank, double alpha) {
  if (lora) return;
  lora = register_module("lora", LoraAdapter(weight.size(1), weight.size(0), rank));
  lora->to(weight.device());
  lora_scale = alpha / static_cast<double>(rank);
}

void ProjectionImpl::merge_lora() {
  if (!lora) return;
  torch::NoGradGuard no_grad;
  weight.add_(torch::matmul(lora->b, lora->a).to(weight.dtype()), lora_scale);
  unregister_module("lora");
  lora = nullptr;
  lora_scale = 0;
}

}  // namespace chart
