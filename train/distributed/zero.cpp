#include "train/distributed/zero.h"

#include "core/error.h"

namespace chart {

Zero1::Zero1(Dist& dist, std::vector<torch::Tensor> params, const DistConfig& cfg)
    : dist_(dist), params_(std::move(params)) {
  layout_ = make_flat_layout(params_, bucket_capacity(cfg), dist.world_size());
  pieces_ = layout_.pieces(dist.rank());
  torch::NoGradGuard no_grad;
  for (const ShardPiece& p : pieces_)
    piece_params_.push_back(params_[p.param].detach().view({-1}).narrow(0, p.begin, p.end - p.begin));
  shard_grad_ = torch::zeros({layout_.shard_numel}, params_.at(0).options().dtype(torch::kFloat32));
  // Sharing the shard's storage without being autograd views of it: zero_grad() detaches
  // gradients in place, which views refuse.
  for (const ShardPiece& p : pieces_)
    piece_grads_.push_back(torch::empty({0}, shard_grad_.options())
                               .set_(shard_grad_.storage(), p.shard_offset, {p.end - p.begin}, {1}));
}

torch::Tensor Zero1::grad_chunk(size_t b) {
  const FlatBucket& bucket = layout_.buckets.at(b);
  return shard_grad_.narrow(0, bucket.shard_offset, bucket.chunk(layout_.world_size));
}

void Zero1::attach_gradients() {
  for (size_t k = 0; k < pieces_.size(); ++k) piece_params_[k].mutable_grad() = piece_grads_[k];
}

double Zero1::clip_gradients(double max_norm) {
  torch::NoGradGuard no_grad;
  // Padding is zero, so the shards' squares sum to the whole gradient's.
  torch::Tensor sq = shard_grad_.square().sum().reshape({1});
  dist_.all_reduce_sum(sq);
  torch::Tensor norm = sq.sqrt();
  // As clip_grad_norm_ does: the coefficient clamped to 1 and always applied.
  shard_grad_.mul_(torch::clamp(max_norm / (norm + 1e-6), std::nullopt, 1.0));
  return norm.item<double>();
}

torch::Tensor Zero1::owned_chunk(size_t b) const {
  const FlatBucket& bucket = layout_.buckets[b];
  torch::Tensor mine = torch::zeros({bucket.chunk(layout_.world_size)}, params_.at(0).options());
  for (size_t k = 0; k < pieces_.size(); ++k)
    if (pieces_[k].bucket == b)
      mine.narrow(0, pieces_[k].shard_offset - bucket.shard_offset, pieces_[k].end - pieces_[k].begin)
          .copy_(piece_params_[k]);
  return mine;
}

void Zero1::gather_parameters() {
  torch::NoGradGuard no_grad;
  const size_t n = layout_.buckets.size();
  std::vector<torch::Tensor> full(n), mine(n);  // both alive until their gather completes
  std::vector<c10::intrusive_ptr<c10d::Work>> works(n);
  auto start = [&](size_t b) {
    mine[b] = owned_chunk(b);
    full[b] = torch::empty({layout_.buckets[b].padded}, mine[b].options());
    works[b] = dist_.backend()._allgather_base(full[b], mine[b]);
  };
  // Two buckets in flight: one is copied back while the next travels, and the gathered copies
  // never take more than two buckets of memory.
  if (n > 0) start(0);
  for (size_t b = 0; b < n; ++b) {
    if (b + 1 < n) start(b + 1);
    works[b]->wait();
    const FlatBucket& bucket = layout_.buckets[b];
    for (size_t i = 0; i < bucket.params.size(); ++i) {
      torch::Tensor& p = params_[bucket.params[i]];
      p.detach().view({-1}).copy_(full[b].narrow(0, bucket.offsets[i], p.numel()));
    }
    full[b] = mine[b] = torch::Tensor();
    works[b].reset();
  }
}

int64_t optimizer_state_bytes(const torch::optim::Optimizer& optimizer) {
  int64_t bytes = 0;
  for (const auto& [key, state] : optimizer.state()) {
    const auto* s = dynamic_cast<const torch::optim::AdamWParamState*>(state.get());
    if (!s) fail("optimizer_state_bytes: not an AdamW state");
    for (const torch::Tensor& t : {s->exp_avg(), s->exp_avg_sq(), s->max_exp_avg_sq()})
      if (t.defined()) bytes += t.numel() * static_cast<int64_t>(t.element_size());
  }
  return bytes;
}

}  // namespace chart
