#include "train/distributed/grad_sync.h"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>


#include "core/error.h"

namespace chart {

struct GradSync::State {
  struct Bucket {
    torch::Tensor flat;   // reduce dtype, on the parameters' device (padded for ZeRO-1)
    torch::Tensor chunk;  // ZeRO-1: this rank's part of the sum (reduce dtype)
    size_t ready = 0;
    c10::intrusive_ptr<c10d::Work> work;
  };
  Dist* dist;
  Zero1* zero = nullptr;
  std::vector<torch::Tensor> params;
  FlatLayout layout;
  std::vector<Bucket> buckets;
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators;  // kept alive: hooks live on them
  bool sync = false;
  bool alive = true;
  size_t next = 0;  // the next bucket to start, in order
  size_t started_in_backward = 0;
  int64_t all_reduces = 0;

  void start(size_t bi) {
    const FlatBucket& fb = layout.buckets[bi];
    Bucket& b = buckets[bi];
    for (size_t i = 0; i < fb.params.size(); ++i) {
      const torch::Tensor& g = params[fb.params[i]].grad();
      auto dst = b.flat.narrow(0, fb.offsets[i], params[fb.params[i]].numel());
      if (g.defined())
        dst.copy_(g.reshape({-1}));
      else
        dst.zero_();
    }
    if (zero) {
      b.work = dist->backend()._reduce_scatter_base(b.chunk, b.flat, c10d::ReduceScatterOptions{c10d::ReduceOp::SUM});
    } else {
      std::vector<torch::Tensor> v{b.flat};
      b.work = dist->backend().allreduce(v, c10d::AllreduceOptions{c10d::ReduceOp::SUM});
    }
    ++all_reduces;
  }
  void start_ready() {
    while (next < buckets.size() && buckets[next].ready == layout.buckets[next].params.size()) start(next++);
  }
  void on_ready(size_t param) {
    if (!alive || !sync) return;
    ++buckets[layout.bucket_of[param]].ready;
    start_ready();
  }
  // The bucket's sum (or, ZeRO-1, this rank's chunk of it) to where the optimizer reads it.
  void write_back(size_t bi) {
    const FlatBucket& fb = layout.buckets[bi];
    Bucket& b = buckets[bi];
    if (zero) {
      torch::Tensor dst = zero->grad_chunk(bi);
      if (dst.data_ptr() != b.chunk.data_ptr()) dst.copy_(b.chunk);  // bf16: into the fp32 shard
      return;
    }
    for (size_t i = 0; i < fb.params.size(); ++i) {
      torch::Tensor& p = params[fb.params[i]];
      auto src = b.flat.narrow(0, fb.offsets[i], p.numel()).view(p.sizes());
      if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
      p.mutable_grad().copy_(src);
    }
  }
};

namespace {
struct ReadyHook : torch::autograd::FunctionPostHook {
  std::weak_ptr<GradSync::State> state;  // not owning: the State owns the accumulators
  size_t param;
  ReadyHook(std::weak_ptr<GradSync::State> s, size_t p) : state(std::move(s)), param(p) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list&) override {
    if (auto s = state.lock()) s->on_ready(param);
    return outputs;
  }
};
}  // namespace

GradSync::GradSync(Dist& dist, std::vector<torch::Tensor> params, const DistConfig& cfg, Zero1* zero)
    : s_(std::make_shared<State>()) {
  s_->dist = &dist;
  s_->zero = zero;
  s_->params = std::move(params);
  const auto dtype = cfg.reduce_dtype == "bf16" ? torch::kBFloat16 : torch::kFloat32;
  s_->layout = zero ? zero->layout() : make_flat_layout(s_->params, bucket_capacity(cfg), 1);
  for (size_t bi = 0; bi < s_->layout.buckets.size(); ++bi) {
    const FlatBucket& fb = s_->layout.buckets[bi];
    State::Bucket b;
    b.flat = torch::zeros({fb.padded}, s_->params[fb.params[0]].options().dtype(dtype));  // padding stays zero
    if (zero)  // fp32: reduce straight into the shard
      b.chunk = dtype == torch::kFloat32 ? zero->grad_chunk(bi) : torch::zeros({fb.chunk(s_->layout.world_size)}, b.flat.options());
    s_->buckets.push_back(std::move(b));
  }
  for (size_t k = 0; k < s_->params.size(); ++k) {
    auto acc = torch::autograd::impl::grad_accumulator(s_->params[k]);
    if (!acc) fail("gradient sync: parameter {} has no gradient accumulator (not a leaf?)", k);
    acc->add_post_hook(std::make_unique<ReadyHook>(s_, k));
    s_->accumulators.push_back(std::move(acc));
  }
}

GradSync::~GradSync() { s_->alive = false; }

size_t GradSync::bucket_count() const { return s_->buckets.size(); }
size_t GradSync::started_in_backward() const { return s_->started_in_backward; }
int64_t GradSync::all_reduces() const { return s_->all_reduces; }

void GradSync::prepare(bool sync) {
  s_->sync = sync;
  if (!sync) return;
  for (auto& b : s_->buckets) {
    b.ready = 0;
    b.work.reset();
  }
  s_->next = 0;
}

void GradSync::finish() {
  if (!s_->sync) return;
  s_->started_in_backward = s_->next;
  // Parameters that got no gradient this step never fired their hook: start the rest in order.
  while (s_->next < s_->buckets.size()) s_->start(s_->next++);
  for (size_t bi = 0; bi < s_->buckets.size(); ++bi) {
    s_->buckets[bi].work->wait();
    s_->write_back(bi);
  }
  if (s_->zero) s_->zero->attach_gradients();
  s_->sync = false;
}

}  // namespace chart
