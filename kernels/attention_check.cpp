#include "kernels/attention_check.h"

#include <torch/torch.h>

#include <fmt/format.h>

#include <algorithm>

#include "core/error.h"
#include "kernels/attention.h"

namespace chart::kernels {
namespace {

// Relative to the reference's scale: what matters is error against the size of the values. A
// gradient that is zero in exact arithmetic (one visible key: dQ = dK = 0) is measured against
// 1e-2, not against its own rounding noise (as tests/attention_cases.h does).
double scaled_error(const torch::Tensor& got, const torch::Tensor& want) {
  const double scale = want.abs().max().item<double>();
  return (got.to(torch::kFloat32) - want).abs().max().item<double>() / std::max(scale, 1e-2);
}

// One bf16 ulp is 2^-8 of the value; the kernels' online softmax and fp32 accumulation stay
// within a few of them (the emulated tests see ~4e-3 on bf16 outputs). Gradients, which sum over
// more terms, get 4x the output's tolerance; a broken kernel (a wrong mask, a lost bias) is off
// by O(1).
double tolerance_for(torch::ScalarType t) {
  switch (t) {
    case torch::kBFloat16: return 3e-2;
    case torch::kFloat16: return 5e-3;
    default: return 1e-4;
  }
}

struct Leaves {
  torch::Tensor q, k, v, slopes;
};

Leaves leaves(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& slopes,
              torch::ScalarType dtype) {
  Leaves l{q.to(dtype).detach().clone().requires_grad_(), k.to(dtype).detach().clone().requires_grad_(),
           v.to(dtype).detach().clone().requires_grad_(), torch::Tensor()};
  if (slopes.defined()) l.slopes = slopes.to(torch::kFloat32).detach().clone().requires_grad_();
  return l;
}

}  // namespace

std::string AttentionCheck::describe() const {
  return fmt::format("output error {:.1e} (tolerance {:.1e}), gradient error {:.1e} (tolerance {:.1e})", output_error,
                     tolerance, gradient_error, gradient_tolerance);
}

AttentionCheck compare_attention(const AttentionFn& candidate, const torch::Tensor& q, const torch::Tensor& k,
                                 const torch::Tensor& v, const torch::Tensor& segments, const torch::Tensor& ages,
                                 const torch::Tensor& slopes, int64_t max_len) {
  using torch::indexing::Slice;
  const int64_t L = std::min(q.size(2), max_len);
  auto row = [&](const torch::Tensor& t, int64_t seq_dim) {
    return t.defined() ? t.slice(0, 0, 1).slice(seq_dim, 0, L).contiguous() : t;
  };
  // A causal prefix of one row is a complete input on its own (a patient cut short is a patient).
  const auto q1 = row(q, 2), k1 = row(k, 2), v1 = row(v, 2), seg1 = row(segments, 1), ages1 = row(ages, 1);
  torch::NoGradGuard outer;  // the model's own graph is not touched
  AttentionCheck out;
  out.tolerance = tolerance_for(q.scalar_type());
  out.gradient_tolerance = 4 * out.tolerance;
  Leaves cand = leaves(q1, k1, v1, slopes, q.scalar_type());
  Leaves ref = leaves(q1, k1, v1, slopes, torch::kFloat32);
  torch::Tensor y_cand, y_ref;
  {
    torch::AutoGradMode on(true);
    y_cand = candidate(cand.q, cand.k, cand.v, seg1, ages1, cand.slopes);
    y_ref = attention_reference(ref.q, ref.k, ref.v, seg1, ages1, ref.slopes);
    // Its own generator: the check must not move the run's random stream (bit-identical resume).
    auto upstream = torch::randn(y_ref.sizes(), at::detail::createCPUGenerator(20261202), torch::kFloat32)
                        .to(q.device());
    y_cand.backward(upstream.to(y_cand.dtype()));
    y_ref.backward(upstream);
  }
  out.output_error = scaled_error(y_cand.detach(), y_ref.detach());
  for (auto [a, b] : {std::pair{cand.q, ref.q}, {cand.k, ref.k}, {cand.v, ref.v}, {cand.slopes, ref.slopes}})
    if (a.defined() && a.grad().defined()) out.gradient_error = std::max(out.gradient_error, scaled_error(a.grad(), b.grad()));
  return out;
}

void require_attention_agrees(const AttentionCheck& check, const std::string& path_name) {
  if (check.ok()) return;
  throw Error(fmt::format("attention self-check failed: {} disagrees with the LibTorch reference on the first "
                          "batch: {}",
                          path_name, check.describe()),
              "this GPU, driver or build does not run the kernels correctly: report it with `chart --version`, "
              "and train with model.attention=reference meanwhile");
}

}  // namespace chart::kernels
