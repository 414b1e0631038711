// What each token means to a sampled trajectory (its clock, outcomes and stops), and drawing the
// next token from the model's logits.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "core/config.h"
#include "data/vocab.h"

namespace chart {

struct TokenRoles {
  std::vector<int64_t> advance_us;  // time a time-interval token moves the clock; 0 otherwise
  std::vector<uint8_t> outcome, stop;
  torch::Tensor banned;             // [V] bool: never sampled ([PAD], [BOS])
};

// From generate.outcome_codes and stop_codes ("X*" matches a prefix). A time-interval token
// advances the clock by the middle of its interval; the open-ended last one by its lower edge (the
// tokenizer repeats it per span). Throws chart::Error for an outcome code no token matches.
TokenRoles token_roles(const data::Vocab& vocab, const GenerateConfig& g);

// One token per row of logits [N, V]: temperature, top-k (0: all), banned tokens never drawn.
// Draws from torch's global generator, so a row's token depends on the whole batch.
torch::Tensor sample_next(torch::Tensor logits, const torch::Tensor& banned, double temperature, int64_t top_k);

// The sampling distribution of each row of logits [N, V] (temperature, top-k, banned tokens at
// zero), as float32 where the logits are (sampling_distribution) or copied to the CPU.
torch::Tensor sampling_distribution(torch::Tensor logits, const torch::Tensor& banned, double temperature, int64_t top_k);
torch::Tensor next_token_probabilities(torch::Tensor logits, const torch::Tensor& banned, double temperature,
                                       int64_t top_k);

// Each row's token at its uniform u[n] (the inverse of its CDF, as draw_token) and its
// probability of an outcome token (`outcome_ids` [K] int64), computed where `probs` [N, V] float32
// is: only these 2N numbers leave the device, not the N x V probabilities. As tensor operations
// (`tensor_ops`, the default off the CPU) the tokens on the CPU are draw_token's exactly (the same
// float64 running sums); on a GPU the scan adds in another order, which can move a draw whose u
// falls within rounding of a CDF step. On the CPU the default is draw_token's loop itself (0.13
// against 0.29 ms for 256 rows of 197 tokens: a dozen small tensor operations cost more there).
struct Draws {
  std::vector<int64_t> tokens;
  std::vector<double> outcome;
};
Draws draw_tokens(const torch::Tensor& probs, const std::vector<double>& u, const torch::Tensor& outcome_ids);
Draws draw_tokens(const torch::Tensor& probs, const std::vector<double>& u, const torch::Tensor& outcome_ids,
                  bool tensor_ops);

// A trajectory's own random stream: a uniform [0, 1) that depends only on (seed, prompt row,
// sample, step), so what a trajectory samples does not depend on which others share its batch.
double trajectory_uniform(uint64_t seed, int64_t row, int64_t sample, int64_t step);

// The stream key of the prompt of (subject, prediction_time): the same patient at the same time
// draws the same futures whatever else is asked with it (the label file's order or subset, the
// requests a server batches together).
int64_t prompt_stream(int64_t subject_id, int64_t prediction_time_us);

// The token of a probability row `probs` [V] (CPU float32) at uniform u: the inverse of its CDF.
int64_t draw_token(const float* probs, int64_t V, double u);

}  // namespace chart
