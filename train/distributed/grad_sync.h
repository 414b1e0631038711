// Gradient synchronisation for data parallelism.
//
// GradSync groups the parameters, in reverse order of definition (about the order backward
// produces their gradients), into buckets of dist.bucket_mb. A hook on each parameter's gradient
// accumulator counts it ready; when a bucket is whole its gradients are copied into one flat
// buffer (fp32, or bf16 with dist.reduce_dtype=bf16) and summed across ranks asynchronously while
// backward goes on. Buckets start strictly in order so every rank issues the same sequence of
// collectives. Micro-steps of gradient accumulation (sync off) communicate nothing.
//
// The sum, not the mean: each rank's loss is already divided by the number of targets over all
// ranks and micro-batches, so the summed gradient is that of the global batch's mean loss and
// matches one rank holding the whole batch (up to the order of fp32 additions).
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "train/distributed/dist.h"
#include "train/distributed/zero.h"

namespace chart {

class GradSync {
 public:
  // zero (ZeRO-1): reduce-scatter into its shard, over its layout; it must outlive this.
  GradSync(Dist& dist, std::vector<torch::Tensor> params, const DistConfig& cfg, Zero1* zero = nullptr);
  ~GradSync();
  GradSync(const GradSync&) = delete;
  GradSync& operator=(const GradSync&) = delete;

  // Before each micro-step's backward: sync only on the last micro-step of an optimizer step.
  void prepare(bool sync);
  // After the last backward: starts what hooks did not (parameters without a gradient), waits for
  // every bucket and writes the sums back into the parameters' .grad (ZeRO-1: into the shard,
  // which the optimizer's pieces then point at).
  void finish();
  size_t bucket_count() const;
  // Of the last synchronised step's buckets, how many started during backward (the rest at finish()).
  size_t started_in_backward() const;
  int64_t all_reduces() const;  // bucket collectives (all-reduce or reduce-scatter) started so far

  struct State;  // buckets and flags, reached by the autograd hooks through a weak pointer

 private:
  std::shared_ptr<State> s_;
};

}  // namespace chart
