// The transformer's building blocks: RMSNorm, rotary embeddings, grouped-query attention with an
// optional time-decay bias, the SwiGLU MLP, a pre-norm block, and the sinusoidal age encoding.
#pragma once
#include <torch/torch.h>

#include "core/config.h"
#include "kernels/attention_dispatch.h"
#include "model/projection.h"

namespace chart {

// x / rms(x) * weight, computed in float32 whatever the input dtype.
struct RMSNormImpl : torch::nn::Module {
  RMSNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;
  double eps;
};
TORCH_MODULE(RMSNorm);

// Rotary position embedding in the "rotate half" layout (as Llama and Hugging Face use), so an
// exported model keeps its meaning. cos/sin: [L, D].
std::pair<torch::Tensor, torch::Tensor> rotary_tables(int64_t length, int64_t head_dim, double theta,
                                                      torch::Device device);
torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

// Each token's age as sin/cos features of the age in days, added to its embedding (as Delphi-2M
// encodes age): [B, L] years -> [B, L, d_model].
torch::Tensor sinusoidal_age(const torch::Tensor& ages_years, int64_t d_model);

// Keys and values of every position decoded so far, per layer, in buffers of `capacity`
// positions, plus each position's age and whether it is a real token (not left padding).
struct KVCache {
  std::vector<torch::Tensor> k, v;  // per layer [N, n_kv_heads, capacity, head_dim]
  torch::Tensor ages;               // [N, capacity] float32
  torch::Tensor valid;              // [N, capacity] bool
  int64_t length = 0;               // positions filled
  int64_t capacity = 0;
  // Keeps rows `index` [M] only (finished trajectories leave the batch).
  void select_rows(const torch::Tensor& index);
  // Repeats each row `times` times in place (one prompt, many sampled futures).
  void repeat_rows(int64_t times);
};

struct AttentionImpl : torch::nn::Module {
  explicit AttentionImpl(const ModelConfig& c);
  // x: [B, L, d]; segments [B, L]; ages [B, L] (used only with time_bias)
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& segments, const torch::Tensor& ages);
  // New positions [N, T, d] at cache positions [start, start+T): their keys/values go into
  // layer `layer` of the cache (whose ages/valid are already filled for them).
  torch::Tensor forward_cached(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                               KVCache& cache, int64_t layer, int64_t start);
  // One new token per row, x [N, 1, d], each at its own cache position positions [N] (rows at
  // different lengths, as continuous batching keeps them); cos/sin [N, 1, 1, D] are those rows'
  // rotary angles. A row attends to its valid keys at or below its position; `end` = max + 1.
  torch::Tensor forward_rows(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                             KVCache& cache, int64_t layer, const torch::Tensor& positions, int64_t end);
  int64_t n_heads, n_kv_heads, head_dim;
  Projection wq{nullptr}, wk{nullptr}, wv{nullptr}, wo{nullptr};
  torch::Tensor time_slopes;  // [n_heads], only with model.time_bias
  kernels::AttentionMode mode = kernels::AttentionMode::kAuto;  // model.attention
  // Set before the first forward that should check the kernels against the reference (on the
  // CUDA path only); cleared by that forward, which throws if they disagree.
  bool check_next_forward = false;
};
TORCH_MODULE(Attention);

struct SwiGLUImpl : torch::nn::Module {
  SwiGLUImpl(int64_t d_model, int64_t d_ff);
  torch::Tensor forward(const torch::Tensor& x);
  Projection w_gate{nullptr}, w_up{nullptr}, w_down{nullptr};
};
TORCH_MODULE(SwiGLU);

struct BlockImpl : torch::nn::Module {
  explicit BlockImpl(const ModelConfig& c);
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& segments, const torch::Tensor& ages);
  torch::Tensor forward_cached(torch::Tensor x, const torch::Tensor& cos, const torch::Tensor& sin, KVCache& cache,
                               int64_t layer, int64_t start);
  torch::Tensor forward_rows(torch::Tensor x, const torch::Tensor& cos, const torch::Tensor& sin, KVCache& cache,
                             int64_t layer, const torch::Tensor& positions, int64_t end);
  RMSNorm attn_norm{nullptr}, mlp_norm{nullptr};
  Attention attn{nullptr};
  SwiGLU mlp{nullptr};
  double dropout;
};
TORCH_MODULE(Block);

int64_t resolved_d_ff(const ModelConfig& c);       // model.d_ff, or 8/3 d_model rounded to 64
int64_t resolved_kv_heads(const ModelConfig& c);   // model.n_kv_heads, or n_heads

}  // namespace chart
