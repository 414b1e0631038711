// ZeRO stage 1 over the flat parameter space (flat_layout.h): rank r owns the r-th chunk of every
// gradient bucket, so its AdamW moments are 1/world of the parameters whatever the tensor sizes.
// GradSync reduce-scatters each bucket into this rank's shard gradient during backward; AdamW
// steps only the pieces of parameters inside the shard (views of the parameters, so the update
// lands in place); then every bucket's chunks are all-gathered back into every rank's parameters.
#pragma once
#include <torch/torch.h>

#include <vector>

#include "core/config.h"
#include "train/distributed/dist.h"
#include "train/distributed/flat_layout.h"

namespace chart {

class Zero1 {
 public:
  Zero1(Dist& dist, std::vector<torch::Tensor> params, const DistConfig& cfg);

  const FlatLayout& layout() const { return layout_; }
  const std::vector<ShardPiece>& pieces() const { return pieces_; }  // this rank's, in shard order
  // One view per piece into its parameter: what the optimizer steps (piece_params()[k] is pieces()[k]).
  const std::vector<torch::Tensor>& piece_params() const { return piece_params_; }
  // This rank's chunk of bucket b's summed gradient (fp32, contiguous): GradSync's reduce-scatter output.
  torch::Tensor grad_chunk(size_t b);
  // Points each piece's .grad at its part of the shard gradient (zero_grad() unsets them every step).
  void attach_gradients();
  // The global gradient norm (sum of squares of every rank's shard: one all-reduce), and the shard
  // scaled as clip_grad_norm_ scales whole gradients. max_norm = infinity does not clip.
  double clip_gradients(double max_norm);
  // Every bucket's chunks are all-gathered into every rank's parameters, bucket by bucket with
  // the next one in flight.
  void gather_parameters();

 private:
  torch::Tensor owned_chunk(size_t b) const;  // this rank's updated chunk of bucket b (padding zero)

  Dist& dist_;
  std::vector<torch::Tensor> params_;
  FlatLayout layout_;
  std::vector<ShardPiece> pieces_;
  std::vector<torch::Tensor> piece_params_;
  torch::Tensor shard_grad_;  // [layout_.shard_numel], fp32; padding stays zero
  std::vector<torch::Tensor> piece_grads_;  // each piece's part of shard_grad_, its .grad
};

// Bytes of AdamW state (moments and any tensor in it) this rank's optimizer holds.
int64_t optimizer_state_bytes(const torch::optim::Optimizer& optimizer);

}  // namespace chart
