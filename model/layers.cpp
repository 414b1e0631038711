#include "model/layers.h"

#include <cmath>

#include "kernels/attention.h"
#include "kernels/attention_check.h"

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
    : n_heads(c.n_heads),
      n_kv_heads(resolved_kv_heads(c)),
      head_dim(c.d_model / c.n_heads),
      mode(kernels::attention_mode(c.attention)) {
  wq = register_module("wq", Projection(c.d_model, n_heads * head_dim));
  wk = register_module("wk", Projection(c.d_model, n_kv_heads * head_dim));
  wv = register_module("wv", Projection(c.d_model, n_kv_heads * head_dim));
  wo = register_module("wo", Projection(n_heads * head_dim, c.d_model));
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
  const torch::Tensor a = time_slopes.defined() ? ages : torch::Tensor();
  if (check_next_forward) {
    check_next_forward = false;
    const kernels::AttentionPath path = kernels::attention_path(q, mode);
    if (path.cuda()) {
      auto kernel = [&](const auto& q_, const auto& k_, const auto& v_, const auto& s_, const auto& a_, const auto& sl_) {
        return kernels::attention(q_, k_, v_, s_, a_, sl_, mode);
      };
      kernels::require_attention_agrees(kernels::compare_attention(kernel, q, k, v, segments, a, time_slopes),
                                        kernels::path_name(path.kind));
    }
  }
  auto y = kernels::attention(q, k, v, segments, a, time_slopes, mode);
  return wo(y.transpose(1, 2).reshape({B, L, n_heads * head_dim}));
}

void KVCache::select_rows(const torch::Tensor& index) {
  for (auto& t : k) t = t.index_select(0, index);
  for (auto& t : v) t = t.index_select(0, index);
  ages = ages.index_select(0, index);
  valid = valid.index_select(0, index);
}

void KVCache::repeat_rows(int64_t times) {
  for (auto& t : k) t = t.repeat_interleave(times, 0);
  for (auto& t : v) t = t.repeat_interleave(times, 0);
  ages = ages.repeat_interleave(times, 0);
  valid = valid.repeat_interleave(times, 0);
}

torch::Tensor AttentionImpl::forward_cached(const torch::Tensor& x, const torch::Tensor& cos,
                                            const torch::Tensor& sin, KVCache& cache, int64_t layer,
                                            int64_t start) {
  using torch::indexing::Slice;
  const int64_t N = x.size(0), T = x.size(1), end = start + T;
  auto q = wq(x).view({N, T, n_heads, head_dim}).transpose(1, 2);
  auto k = wk(x).view({N, T, n_kv_heads, head_dim}).transpose(1, 2);
  auto v = wv(x).view({N, T, n_kv_heads, head_dim}).transpose(1, 2);
  q = apply_rotary(q, cos.slice(0, start, end), sin.slice(0, start, end));
  k = apply_rotary(k, cos.slice(0, start, end), sin.slice(0, start, end));
  cache.k[layer].index_put_({Slice(), Slice(), Slice(start, end)}, k);
  cache.v[layer].index_put_({Slice(), Slice(), Slice(start, end)}, v);
  auto keys = cache.k[layer].slice(2, 0, end), values = cache.v[layer].slice(2, 0, end);
  if (n_kv_heads != n_heads) {
    keys = keys.repeat_interleave(n_heads / n_kv_heads, 1);
    values = values.repeat_interleave(n_heads / n_kv_heads, 1);
  }
  // Query i (cache position start+i) sees real keys at positions <= its own; a padding query
  // sees itself, so its (ignored) output stays finite instead of a softmax over nothing.
  auto qpos = torch::arange(start, end, torch::dtype(torch::kLong).device(x.device())).view({T, 1});
  auto kpos = torch::arange(0, end, torch::dtype(torch::kLong).device(x.device())).view({1, end});
  auto allowed = (kpos <= qpos).unsqueeze(0) & cache.valid.slice(1, 0, end).unsqueeze(1);  // [N, T, end]
  allowed = (allowed | (kpos == qpos).unsqueeze(0)).unsqueeze(1);                          // [N, 1, T, end]
  torch::Tensor mask = allowed;
  if (time_slopes.defined()) {
    auto key_ages = cache.ages.slice(1, 0, end);                                               // [N, end]
    auto bias = kernels::time_decay_bias(key_ages.slice(1, start, end), key_ages, time_slopes);  // [N, H, T, end]
    mask = bias.masked_fill(allowed.logical_not(), -std::numeric_limits<float>::infinity()).to(q.dtype());
  }
  auto y = at::scaled_dot_product_attention(q, keys, values, mask);
  return wo(y.transpose(1, 2).reshape({N, T, n_heads * head_dim}));
}

torch::Tensor AttentionImpl::forward_rows(const torch::Tensor& x, const torch::Tensor& cos,
                                          const torch::Tensor& sin, KVCache& cache, int64_t layer,
                                          const torch::Tensor& positions, int64_t end) {
  using torch::indexing::Slice;
  const int64_t N = x.size(0);
  auto q = apply_rotary(wq(x).view({N, 1, n_heads, head_dim}).transpose(1, 2), cos, sin);
  auto k = apply_rotary(wk(x).view({N, 1, n_kv_heads, head_dim}).transpose(1, 2), cos, sin);
  auto v = wv(x).view({N, 1, n_kv_heads, head_dim}).transpose(1, 2);
  const auto rows = torch::arange(N, positions.options());
  cache.k[layer].index_put_({rows, Slice(), positions}, k.squeeze(2));
  cache.v[layer].index_put_({rows, Slice(), positions}, v.squeeze(2));
  auto y = kernels::decode_attention(q.reshape({N, n_heads, head_dim}), cache.k[layer], cache.v[layer], positions, end,
                                     cache.valid, time_slopes.defined() ? cache.ages : torch::Tensor(), time_slopes, mode);
  return wo(y.reshape({N, 1, n_heads * head_dim}));
}

SwiGLUImpl::SwiGLUImpl(int64_t d_model, int64_t d_ff) {
  w_gate = register_module("w_gate", Projection(d_model, d_ff));
  w_up = register_module("w_up", Projection(d_model, d_ff));
  w_down = register_module("w_down", Projection(d_ff, d_model));
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

torch::Tensor BlockImpl::forward_cached(torch::Tensor x, const torch::Tensor& cos, const torch::Tensor& sin,
                                        KVCache& cache, int64_t layer, int64_t start) {
  x = x + attn->forward_cached(attn_norm(x), cos, sin, cache, layer, start);
  return x + mlp(mlp_norm(x));
}

torch::Tensor BlockImpl::forward_rows(torch::Tensor x, const torch::Tensor& cos, const torch::Tensor& sin,
                                      KVCache& cache, int64_t layer, const torch::Tensor& positions, int64_t end) {
  x = x + attn->forward_rows(attn_norm(x), cos, sin, cache, layer, positions, end);
  return x + mlp(mlp_norm(x));
}

}  // namespace chart
