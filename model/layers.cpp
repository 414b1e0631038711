#include "model/layers.h"

#include <cmath>

#include "kernels/attention.h"

namespace chart {

int64_t resolved_d_ff(const ModelConfig& c) {
  if (c.d_ff > 0) return c.d_ff;
  int64_t ff = (8 * c.d_model + 2) / 3;
  return (ff + 63) / 64 * 64;
}

int64_t resolved_kv_heads(const ModelConfig& c) { return c.n_kv_heads > 0 ? c.n_kv_heads : c.n_heads; }

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_) : eps(eps_) {
  weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  auto xf = x.to(torch::kFloat32);
  auto y = xf * torch::rsqrt(xf.pow(2).mean(-1, true) + eps);
  return (y * weight.to(torch::kFloat32)).to(x.dtype());
}

std::pair<torch::Tensor, torch::Tensor> rotary_tables(int64_t length, int64_t head_dim, double theta,
                                                      torch::Device device) {
  auto opts = torch::dtype(torch::kFloat32).device(device);
  auto inv_freq = 1.0 / torch::pow(theta, torch::arange(0, head_dim, 2, opts) / double(head_dim));
  auto angles = torch::outer(torch::arange(length, opts), inv_freq);  // [L, D/2]
  auto emb = torch::cat({angles, angles}, -1);                        // [L, D]
  return {emb.cos(), emb.sin()};
}

torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  auto x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  auto rotated = torch::cat({-x2, x1}, -1);
  return (x * cos.to(x.dtype()) + rotated * sin.to(x.dtype()));
}

torch::Tensor sinusoidal_age(const torch::Tensor& ages_years, int64_t d_model) {
  auto opts = torch::dtype(torch::kFloat32).device(ages_years.device());
  const int64_t half = d_model / 2;
  auto freq = torch::exp(torch::arange(half, opts) * (-std::log(10000.0) / half));  // [half]
  auto days = ages_years.to(torch::kFloat32).unsqueeze(-1) * 365.25;              // [B, L, 1]
  auto angles = days * freq;                                                       // [B, L, half]
  auto enc = torch::cat({angles.sin(), angles.cos()}, -1);
  if (enc.size(-1) < d_model) enc = torch::nn::functional::pad(enc, torch::nn::functional::PadFuncOptions({0, 1}));
  return enc;
}

AttentionImpl::AttentionImpl(const ModelConfig& c)
    : n_heads(c.n_heads), n_kv_heads(resolved_kv_heads(c)), head_dim(c.d_model / c.n_heads) {
  auto lin = [](int64_t in, int64_t out) { return torch::nn::LinearOptions(in, out).bias(false); };
  wq = register_module("wq", torch::nn::Linear(lin(c.d_model, n_heads * head_dim)));
  wk = register_module("wk", torch::nn::Linear(lin(c.d_model, n_kv_heads * head_dim)));
  wv = register_module("wv", torch::nn::Linear(lin(c.d_model, n_kv_heads * head_dim)));
  wo = register_module("wo", torch::nn::Linear(lin(n_heads * head_dim, c.d_model)));
  if (c.time_bias) {
    // ALiBi-style geometric slopes, one per head, then learned: some heads look far back in time.
    auto h = torch::arange(1, n_heads + 1, torch::kFloat32);
    time_slopes = register_parameter("time_slopes", torch::pow(2.0, -8.0 * h / double(n_heads)));
  }
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& cos,
                                     const torch::Tensor& sin, const torch::Tensor& segments,
                                     const torch::Tensor& ages) {
  const int64_t B = x.size(0), L = x.size(1);
  auto q = wq(x).view({B, L, n_heads, head_dim}).transpose(1, 2);
  auto k = wk(x).view({B, L, n_kv_heads, head_dim}).transpose(1, 2);
  auto v = wv(x).view({B, L, n_kv_heads, head_dim}).transpose(1, 2);
  q = apply_rotary(q, cos, sin);
  k = apply_rotary(k, cos, sin);
  auto y = kernels::attention(q, k, v, segments, time_slopes.defined() ? ages : torch::Tensor(), time_slopes);
  return wo(y.transpose(1, 2).reshape({B, L, n_heads * head_dim}));
}

SwiGLUImpl::SwiGLUImpl(int64_t d_model, int64_t d_ff) {
  auto lin = [](int64_t in, int64_t out) { return torch::nn::LinearOptions(in, out).bias(false); };
  w_gate = register_module("w_gate", torch::nn::Linear(lin(d_model, d_ff)));
  w_up = register_module("w_up", torch::nn::Linear(lin(d_model, d_ff)));
  w_down = register_module("w_down", torch::nn::Linear(lin(d_ff, d_model)));
}

torch::Tensor SwiGLUImpl::forward(const torch::Tensor& x) {
  return w_down(torch::silu(w_gate(x)) * w_up(x));
}

BlockImpl::BlockImpl(const ModelConfig& c) : dropout(c.dropout) {
  attn_norm = register_module("attn_norm", RMSNorm(c.d_model, c.norm_eps));
  attn = register_module("attn", Attention(c));
  mlp_norm = register_module("mlp_norm", RMSNorm(c.d_model, c.norm_eps));
  mlp = register_module("mlp", SwiGLU(c.d_model, resolved_d_ff(c)));
}

torch::Tensor BlockImpl::forward(torch::Tensor x, const torch::Tensor& cos, const torch::Tensor& sin,
                                 const torch::Tensor& segments, const torch::Tensor& ages) {
  auto a = attn(attn_norm(x), cos, sin, segments, ages);
  if (dropout > 0) a = torch::dropout(a, dropout, is_training());
  x = x + a;
  auto m = mlp(mlp_norm(x));
  if (dropout > 0) m = torch::dropout(m, dropout, is_training());
  return x + m;
}

}  // namespace chart
