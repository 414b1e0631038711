// The clinical transformer: token embedding + age encoding, pre-norm blocks, a next-token head
// (tied to the embedding or not) and an optional time-to-next-event head.
//
//   h0 = E[token] + W_age sinusoidal(age)      (or no age encoding; W_age learned, so the age
//                                              features start at the embedding's scale)
//   h  = Block_n(...Block_1(h0))               (attention causal within each packed patient)
//   logits = RMSNorm(h) W_out^T                log_rate = RMSNorm(h) w_time + b_time
#pragma once
#include <torch/torch.h>

#include "core/config.h"
#include "model/layers.h"

namespace chart {

struct ModelOutput {
  torch::Tensor logits;    // [B, L, V]
  torch::Tensor log_rate;  // [B, L], only with model.time_head: log of the next event's rate (1/days)
};

struct ClinicalTransformerImpl : torch::nn::Module {
  ClinicalTransformerImpl(const ModelConfig& config, int64_t vocab_size);
  // tokens [B, L] int64, ages [B, L] float32 (years), segments [B, L] int32.
  ModelOutput forward(const torch::Tensor& tokens, const torch::Tensor& ages,
                      const torch::Tensor& segments);
  torch::Tensor hidden(const torch::Tensor& tokens, const torch::Tensor& ages,
                       const torch::Tensor& segments);  // final normalised hidden states [B, L, d]
  int64_t parameter_count() const;

  // Fine-tuning: a linear head on the hidden state of each row's last token (last_index [B]).
  void add_classifier(int64_t n_outputs);
  torch::Tensor features(const torch::Tensor& tokens, const torch::Tensor& ages, const torch::Tensor& segments,
                         const torch::Tensor& last_index);  // [B, d_model]
  torch::Tensor classify(const torch::Tensor& tokens, const torch::Tensor& ages, const torch::Tensor& segments,
                         const torch::Tensor& last_index);  // [B, n_outputs] logits
  // LoRA adapters on the named projections of every block (model/projection.h), and their merge.
  void add_lora(int64_t rank, double alpha, const std::vector<std::string>& targets);
  void merge_lora();

  // Incremental decoding (chart generate): runs `tokens` [N, T] through the model, appending
  // their keys and values to `cache`, and returns the logits of the last position [N, V].
  // `valid` [N, T] marks real tokens (left padding is not); padded keys are never attended.
  torch::Tensor decode(const torch::Tensor& tokens, const torch::Tensor& ages, const torch::Tensor& valid,
                       KVCache& cache);
  // Continuous batching (infer/): one token per row, tokens and ages [N] for the N rows of
  // `cache`, each at its own position positions[i] (its length so far; cache.length is not
  // used). Returns the logits [N, V].
  torch::Tensor decode_rows(const torch::Tensor& tokens, const torch::Tensor& ages,
                            const std::vector<int64_t>& positions, KVCache& cache);
  KVCache new_cache(int64_t rows, int64_t capacity) const;  // zeroed, on the model's device
  // A full row goes on without a new prefill: of its `length` positions the last `keep` move to
  // [0, keep), their keys rotated back by the positions dropped (rotary angles are relative, so
  // the scores among them are unchanged), and the rest of the row is freed. Their values, and
  // the keys of layers past the first, still carry what the dropped positions told them.
  void slide_cache_row(KVCache& cache, int64_t row, int64_t length, int64_t keep) const;
  // Training FLOPs per token (forward + backward): 6 N + 12 n_layers d_model L (attention scores
  // and values over an L-token context, each a multiply-add, times 3 for the backward), where N
  // counts the matrix weights that multiply each token (embeddings are looked up, not multiplied).
  double flops_per_token(int64_t context) const;
  // The next forward checks the attention kernels against the reference on a slice of its batch
  // (first layer, CUDA path only) and throws chart::Error if they disagree (model.attention_check).
  void check_attention_on_next_forward();
  // The path attention takes for inputs of this dtype on `device` (model.attention applied):
  // throws chart::Error for model.attention=kernels where the kernels cannot run.
  kernels::AttentionPath attention_path(torch::Device device, torch::ScalarType dtype) const;

  ModelConfig config;
  int64_t vocab_size;
  torch::nn::Embedding tok_emb{nullptr};
  torch::nn::Linear age_proj{nullptr};   // absent unless model.time_encoding = sinusoidal
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};
  torch::nn::Linear lm_head{nullptr};    // absent when tied
  torch::nn::Linear time_head{nullptr};  // absent unless model.time_head
  torch::nn::Linear cls_head{nullptr};   // present after add_classifier (fine-tuned models)

 private:
  void init_weights();
};
TORCH_MODULE(ClinicalTransformer);

}  // namespace chart
