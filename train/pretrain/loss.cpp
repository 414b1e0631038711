#include "train/pretrain/loss.h"

#include <torch/torch.h>

#include "core/time.h"

namespace chart {

LossParts pretraining_loss(const ModelOutput& out, const data::Batch& batch, double n_targets) {
  const double n = n_targets > 0 ? n_targets : std::max<double>(1.0, batch.targets.ge(0).sum().item<double>());
  return pretraining_loss(out, batch, torch::tensor(static_cast<float>(n), out.logits.options().dtype(torch::kFloat32)));
}

LossParts pretraining_loss(const ModelOutput& out, const data::Batch& batch, const torch::Tensor& n) {
  namespace F = torch::nn::functional;
  LossParts l;
  const auto V = out.logits.size(-1);
  auto targets = batch.targets.to(out.logits.device());
  l.next_token = F::cross_entropy(out.logits.reshape({-1, V}).to(torch::kFloat32), targets.reshape({-1}),
                                  F::CrossEntropyFuncOptions().ignore_index(-1).reduction(torch::kSum)) / n;
  l.total = l.next_token;
  if (out.log_rate.defined()) {
    auto valid = targets.ge(0).to(torch::kFloat32);
    auto dt = batch.target_dt.to(out.log_rate.device()).clamp_min(kMinGapDays);
    auto log_rate = out.log_rate.to(torch::kFloat32);
    auto nll = -log_rate + log_rate.exp() * dt;
    l.time = (nll * valid).sum() / n;
    l.total = l.total + l.time;
  }
  return l;
}

}  // namespace chart
