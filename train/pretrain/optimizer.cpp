#include "train/pretrain/optimizer.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace chart {

std::string parameter_group(const std::string& name, const torch::Tensor& p) {
  if (name == "tok_emb.weight") return "embeddings";
  if (name.find("norm.weight") != std::string::npos) return "norms";
  if (p.dim() == 2) return "matrices";
  return "other";
}

std::unique_ptr<torch::optim::AdamW> make_optimizer(ClinicalTransformer& model, const TrainConfig& cfg) {
  std::vector<std::vector<torch::Tensor>> stepped;
  for (const auto& p : model->parameters()) stepped.push_back({p});
  return make_optimizer(model, cfg, stepped);
}

std::unique_ptr<torch::optim::AdamW> make_optimizer(ClinicalTransformer& model, const TrainConfig& cfg,
                                                    const std::vector<std::vector<torch::Tensor>>& stepped) {
  std::vector<torch::Tensor> decay, no_decay;
  const auto named = model->named_parameters();
  if (stepped.size() != named.size()) fail("make_optimizer: {} parameter lists for {} parameters", stepped.size(), named.size());
  for (size_t i = 0; i < named.size(); ++i) {
    const auto& p = named[i];
    if (!p.value().requires_grad()) continue;
    const std::string g = parameter_group(p.key(), p.value());  // the parameter's group, not a piece's
    bool d = std::find(cfg.decay.begin(), cfg.decay.end(), g) != cfg.decay.end();
    for (const auto& t : stepped[i]) (d ? decay : no_decay).push_back(t);
  }
  auto base = torch::optim::AdamWOptions(cfg.lr).betas({cfg.beta1, cfg.beta2}).eps(cfg.eps);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(
                                 torch::optim::AdamWOptions(base).weight_decay(cfg.weight_decay)));
  groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(
                                    torch::optim::AdamWOptions(base).weight_decay(0.0)));
  return std::make_unique<torch::optim::AdamW>(groups, base);
}

double learning_rate(const TrainConfig& c, int64_t step) {
  if (c.warmup_steps > 0 && step < c.warmup_steps) return c.lr * double(step + 1) / double(c.warmup_steps);
  if (c.schedule == "constant") return c.lr;
  const double total = std::max<int64_t>(1, c.steps - c.warmup_steps);
  const double t = std::clamp(double(step - c.warmup_steps) / total, 0.0, 1.0);
  if (c.schedule == "cosine") return c.min_lr + 0.5 * (c.lr - c.min_lr) * (1.0 + std::cos(M_PI * t));
  // wsd: hold the peak, then decay linearly over the last decay_fraction of the steps.
  const double stable = 1.0 - c.decay_fraction;
  if (t <= stable || c.decay_fraction <= 0) return c.lr;
  return c.lr + (c.min_lr - c.lr) * (t - stable) / c.decay_fraction;
}

void set_learning_rate(torch::optim::Optimizer& opt, double lr) {
  for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
}

}  // namespace chart
