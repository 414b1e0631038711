#include "model/transformer.h"

#include <algorithm>
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

void ClinicalTransformerImpl::add_classifier(int64_t n_outputs) {
  if (cls_head) return;
  cls_head = register_module("cls_head", torch::nn::Linear(config.d_model, n_outputs));
  torch::NoGradGuard no_grad;
  cls_head->weight.normal_(0.0, 0.02);
  cls_head->bias.zero_();
  cls_head->to(tok_emb->weight.device());
}

torch::Tensor ClinicalTransformerImpl::features(const torch::Tensor& tokens, const torch::Tensor& ages,
                                                const torch::Tensor& segments, const torch::Tensor& last_index) {
  auto h = hidden(tokens, ages, segments);                                 // [B, L, d]
  auto idx = last_index.to(h.device()).view({-1, 1, 1}).expand({h.size(0), 1, h.size(2)});
  return h.gather(1, idx).squeeze(1);                                      // [B, d]
}

torch::Tensor ClinicalTransformerImpl::classify(const torch::Tensor& tokens, const torch::Tensor& ages,
                                                const torch::Tensor& segments, const torch::Tensor& last_index) {
  TORCH_CHECK(cls_head, "classify() needs add_classifier() first");
  return cls_head(features(tokens, ages, segments, last_index));
}

void ClinicalTransformerImpl::add_lora(int64_t rank, double alpha, const std::vector<std::string>& targets) {
  for (const auto& layer : *layers) {
    auto block = layer->as<Block>();
    for (const auto& t : targets) {
      Projection p = t == "wq" ? block->attn->wq : t == "wk" ? block->attn->wk : t == "wv" ? block->attn->wv
                   : t == "wo" ? block->attn->wo : t == "w_gate" ? block->mlp->w_gate
                   : t == "w_up" ? block->mlp->w_up : t == "w_down" ? block->mlp->w_down : nullptr;
      TORCH_CHECK(p, "add_lora: unknown projection ", t);
      p->add_lora(rank, alpha);
    }
  }
}

void ClinicalTransformerImpl::merge_lora() {
  for (const auto& layer : *layers) {
    auto block = layer->as<Block>();
    for (Projection p : {block->attn->wq, block->attn->wk, block->attn->wv, block->attn->wo, block->mlp->w_gate,
                         block->mlp->w_up, block->mlp->w_down})
      p->merge_lora();
  }
}

torch::Tensor ClinicalTransformerImpl::decode(const torch::Tensor& tokens, const torch::Tensor& ages,
                                              const torch::Tensor& valid, KVCache& cache) {
  using torch::indexing::Slice;
  const int64_t N = tokens.size(0), T = tokens.size(1), start = cache.length;
  TORCH_CHECK(start + T <= cache.capacity, "decode: the cache holds ", cache.capacity, " positions");
  cache.ages.index_put_({Slice(), Slice(start, start + T)}, ages.to(torch::kFloat32));
  cache.valid.index_put_({Slice(), Slice(start, start + T)}, valid);
  auto x = tok_emb(tokens);
  if (age_proj) x = x + age_proj(sinusoidal_age(ages, config.d_model).to(x.dtype()));
  auto [cos, sin] = rotary_tables(cache.capacity, config.d_model / config.n_heads, config.rope_theta, tokens.device());
  int64_t i = 0;
  for (const auto& layer : *layers) x = layer->as<Block>()->forward_cached(x, cos, sin, cache, i++, start);
  cache.length = start + T;
  auto h = norm(x.select(1, T - 1));  // [N, d]
  (void)N;
  return lm_head ? lm_head(h) : torch::nn::functional::linear(h, tok_emb->weight);
}

torch::Tensor ClinicalTransformerImpl::decode_rows(const torch::Tensor& tokens, const torch::Tensor& ages,
                                                   const std::vector<int64_t>& positions, KVCache& cache) {
  const int64_t N = tokens.size(0);
  TORCH_CHECK(N == cache.ages.size(0) && static_cast<int64_t>(positions.size()) == N,
              "decode_rows: one token and one position per cache row");
  const int64_t end = *std::max_element(positions.begin(), positions.end()) + 1;
  TORCH_CHECK(end <= cache.capacity, "decode_rows: the cache holds ", cache.capacity, " positions");
  const auto dev = tokens.device();
  auto pos = torch::tensor(positions, torch::kInt64).to(dev);
  auto rows = torch::arange(N, pos.options());
  cache.ages.index_put_({rows, pos}, ages.to(torch::kFloat32));
  cache.valid.index_put_({rows, pos}, torch::ones({N}, torch::dtype(torch::kBool).device(dev)));
  auto x = tok_emb(tokens.view({N, 1}));
  if (age_proj) x = x + age_proj(sinusoidal_age(ages.view({N, 1}), config.d_model).to(x.dtype()));
  auto [cos, sin] = rotary_tables(cache.capacity, config.d_model / config.n_heads, config.rope_theta, dev);
  cos = cos.index_select(0, pos).view({N, 1, 1, -1});
  sin = sin.index_select(0, pos).view({N, 1, 1, -1});
  int64_t i = 0;
  for (const auto& layer : *layers) x = layer->as<Block>()->forward_rows(x, cos, sin, cache, i++, pos, end);
  auto h = norm(x.select(1, 0));
  return lm_head ? lm_head(h) : torch::nn::functional::linear(h, tok_emb->weight);
}

KVCache ClinicalTransformerImpl::new_cache(int64_t rows, int64_t capacity) const {
  KVCache c;
  const int64_t kv = resolved_kv_heads(config), hd = config.d_model / config.n_heads;
  auto opts = tok_emb->weight.options();
  for (int64_t i = 0; i < config.n_layers; ++i) {
    c.k.push_back(torch::zeros({rows, kv, capacity, hd}, opts));
    c.v.push_back(torch::zeros({rows, kv, capacity, hd}, opts));
  }
  c.ages = torch::zeros({rows, capacity}, opts.dtype(torch::kFloat32));
  c.valid = torch::zeros({rows, capacity}, opts.dtype(torch::kBool));
  c.capacity = capacity;
  return c;
}

void ClinicalTransformerImpl::slide_cache_row(KVCache& cache, int64_t row, int64_t length, int64_t keep) const {
  TORCH_CHECK(keep > 0 && keep <= length && length <= cache.capacity, "slide_cache_row: keep ", keep, " of ", length,
              " positions in a cache of ", cache.capacity);
  const int64_t drop = length - keep;
  if (drop == 0) return;
  auto [cos, sin] = rotary_tables(drop + 1, config.d_model / config.n_heads, config.rope_theta, cache.ages.device());
  cos = cos[drop];   // rotating by -drop positions: cos(-a) = cos(a), sin(-a) = -sin(a)
  sin = -sin[drop];
  for (size_t l = 0; l < cache.k.size(); ++l) {
    auto k = cache.k[l][row], v = cache.v[l][row];  // [kv, capacity, hd]
    k.narrow(1, 0, keep).copy_(apply_rotary(k.narrow(1, drop, keep), cos, sin));  // a new tensor: no overlap
    v.narrow(1, 0, keep).copy_(v.narrow(1, drop, keep).clone());
  }
  auto ages = cache.ages[row], valid = cache.valid[row];
  ages.narrow(0, 0, keep).copy_(ages.narrow(0, drop, keep).clone());
  valid.narrow(0, 0, keep).copy_(valid.narrow(0, drop, keep).clone());
  valid.narrow(0, keep, cache.capacity - keep).fill_(false);
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

namespace chart {

void ClinicalTransformerImpl::check_attention_on_next_forward() {
  layers->ptr<BlockImpl>(0)->attn->check_next_forward = true;
}

kernels::AttentionPath ClinicalTransformerImpl::attention_path(torch::Device device, torch::ScalarType dtype) const {
  return kernels::attention_path(device, dtype, config.d_model / config.n_heads, kernels::attention_mode(config.attention));
}

}  // namespace chart
