#include "model/transformer.h"

#include <cmath>

namespace chart {

ClinicalTransformerImpl::ClinicalTransformerImpl(const ModelConfig& c, int64_t vocab)
    : config(c), vocab_size(vocab) {
  tok_emb = register_module("tok_emb", torch::nn::Embedding(vocab, c.d_model));
  if (c.time_encoding == "sinusoidal")
    age_proj = register_module("age_proj", torch::nn::Linear(torch::nn::LinearOptions(c.d_model, c.d_model).bias(false)));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.n_layers; ++i) layers->push_back(Block(c));
  norm = register_module("norm", RMSNorm(c.d_model, c.norm_eps));
  if (!c.tie_embeddings)
    lm_head = register_module("lm_head", torch::nn::Linear(torch::nn::LinearOptions(c.d_model, vocab).bias(false)));
  if (c.time_head) time_head = register_module("time_head", torch::nn::Linear(c.d_model, 1));
  init_weights();
}

void ClinicalTransformerImpl::init_weights() {
  // GPT-2 style: N(0, 0.02), residual output projections scaled by 1/sqrt(2 n_layers) so the
  // residual stream's variance does not grow with depth.
  torch::NoGradGuard no_grad;
  const double residual_std = 0.02 / std::sqrt(2.0 * config.n_layers);
  for (auto& p : named_parameters()) {
    const std::string& name = p.key();
    auto& t = p.value();
    if (name.find("norm") != std::string::npos || name.find("time_slopes") != std::string::npos) continue;
    if (name.find("bias") != std::string::npos) {
      t.zero_();
    } else if (name.find("attn.wo") != std::string::npos || name.find("mlp.w_down") != std::string::npos) {
      t.normal_(0.0, residual_std);
    } else {
      t.normal_(0.0, 0.02);
    }
  }
}

torch::Tensor ClinicalTransformerImpl::hidden(const torch::Tensor& tokens, const torch::Tensor& ages,
                                              const torch::Tensor& segments) {
  const int64_t L = tokens.size(1);
  auto x = tok_emb(tokens);
  if (age_proj) x = x + age_proj(sinusoidal_age(ages, config.d_model).to(x.dtype()));
  auto [cos, sin] = rotary_tables(L, config.d_model / config.n_heads, config.rope_theta, tokens.device());
  for (const auto& layer : *layers) x = layer->as<Block>()->forward(x, cos, sin, segments, ages);
  return norm(x);
}

ModelOutput ClinicalTransformerImpl::forward(const torch::Tensor& tokens, const torch::Tensor& ages,
                                             const torch::Tensor& segments) {
  auto h = hidden(tokens, ages, segments);
  ModelOutput out;
  out.logits = lm_head ? lm_head(h) : torch::nn::functional::linear(h, tok_emb->weight);
  if (time_head) out.log_rate = time_head(h).squeeze(-1);
  return out;
}

int64_t ClinicalTransformerImpl::parameter_count() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

double ClinicalTransformerImpl::flops_per_token(int64_t context) const {
  double matrix_params = 0;
  for (const auto& p : named_parameters())
    if (p.value().dim() == 2 && p.key() != "tok_emb.weight") matrix_params += p.value().numel();
  if (!lm_head) matrix_params += double(vocab_size) * config.d_model;  // the tied output projection
  return 6.0 * matrix_params + 12.0 * config.n_layers * config.d_model * context;
}

}  // namespace chart
