#include "train/distributed/grad_sync.h"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <algorithm>

#include "core/error.h"

namespace chart {

struct GradSync::State {
  struct Bucket {
    std::vector<size_t> params;  // indices into State::params
    std::vector<int64_t> offsets;
    torch::Tensor flat;          // reduce dtype, on the parameters' device
    size_t ready = 0;
    c10::intrusive_ptr<c10d::Work> work;
  };
  Dist* dist;
  std::vector<torch::Tensor> params;
  std::vector<size_t> bucket_of;  // parameter index -> bucket
  std::vector<Bucket> buckets;
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators;  // kept alive: hooks live on them
  bool sync = false;
  bool alive = true;
  size_t next = 0;  // the next bucket to start, in order
  size_t started_in_backward = 0;
  int64_t all_reduces = 0;

  void start(Bucket& b) {
    for (size_t i = 0; i < b.params.size(); ++i) {
      const torch::Tensor& g = params[b.params[i]].grad();
      auto dst = b.flat.narrow(0, b.offsets[i], params[b.params[i]].numel());
      if (g.defined())
        dst.copy_(g.reshape({-1}));
      else
        dst.zero_();
    }
    std::vector<torch::Tensor> v{b.flat};
    b.work = dist->backend().allreduce(v, c10d::AllreduceOptions{c10d::ReduceOp::SUM});
    ++all_reduces;
  }
  void start_ready() {
    while (next < buckets.size() && buckets[next].ready == buckets[next].params.size()) start(buckets[next++]);
  }
  void on_ready(size_t param) {
    if (!alive || !sync) return;
    ++buckets[bucket_of[param]].ready;
    start_ready();
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

GradSync::GradSync(Dist& dist, std::vector<torch::Tensor> params, const DistConfig& cfg)
    : s_(std::make_shared<State>()) {
  s_->dist = &dist;
  s_->params = std::move(params);
  const auto dtype = cfg.reduce_dtype == "bf16" ? torch::kBFloat16 : torch::kFloat32;
  const int64_t cap = std::max<int64_t>(
      1, static_cast<int64_t>(cfg.bucket_mb * (1 << 20)) / static_cast<int64_t>(c10::elementSize(dtype)));
  s_->bucket_of.resize(s_->params.size());
  // Reverse definition order: the output layers' gradients come first in backward.
  for (size_t k = s_->params.size(); k-- > 0;) {
    const int64_t n = s_->params[k].numel();
    if (s_->buckets.empty() || (s_->buckets.back().offsets.back() + s_->params[s_->buckets.back().params.back()].numel() + n > cap))
      s_->buckets.emplace_back();
    auto& b = s_->buckets.back();
    int64_t off = b.params.empty() ? 0 : b.offsets.back() + s_->params[b.params.back()].numel();
    b.params.push_back(k);
    b.offsets.push_back(off);
    s_->bucket_of[k] = s_->buckets.size() - 1;
  }
  for (auto& b : s_->buckets) {
    const int64_t n = b.offsets.back() + s_->params[b.params.back()].numel();
    b.flat = torch::zeros({n}, s_->params[b.params[0]].options().dtype(dtype));
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
  while (s_->next < s_->buckets.size()) s_->start(s_->buckets[s_->next++]);
  for (auto& b : s_->buckets) {
    b.work->wait();
    for (size_t i = 0; i < b.params.size(); ++i) {
      torch::Tensor& p = s_->params[b.params[i]];
      auto src = b.flat.narrow(0, b.offsets[i], p.numel()).view(p.sizes());
      if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
      p.mutable_grad().copy_(src);
    }
  }
  s_->sync = false;
}

}  // namespace chart
