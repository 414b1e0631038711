// torch.ops.chart: kernels::attention() behind PyTorch's dispatcher, for Python.
//
//   torch.ops.load_library("build/ops/libchart_ops.so")
//   out = torch.ops.chart.attention(q, k, v, segments, ages, slopes, mode="kernels")
//   torch.ops.chart.attention_path(q, mode="auto")  # "attention: CUDA kernels, ... for bf16 head dim 64 on cuda:0"
//
// The arguments are kernels/attention.h's (q [B,Hq,L,D], k and v [B,Hkv,L,D], segments [B,L]
// int32, ages [B,L] float32 years and slopes [Hq] float32, both None for no time bias); mode is
// model.attention's: "kernels" where they cannot run is an error, not a fallback. Registered as a
// composite kernel, so autograd reaches the kernels' own backward (kernels/flash_autograd.h)
// unchanged; a chart::Error surfaces in Python as a RuntimeError with its message.
#include <torch/library.h>

#include <optional>
#include <string>

#include "kernels/attention.h"

namespace {

using chart::kernels::attention_mode;

torch::Tensor attention_op(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                           const torch::Tensor& segments, const std::optional<torch::Tensor>& ages,
                           const std::optional<torch::Tensor>& slopes, std::string mode) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, "chart.attention: q, k, v must be [B, H, L, D], got ",
              q.sizes(), ", ", k.sizes(), ", ", v.sizes());
  TORCH_CHECK(segments.dim() == 2 && segments.size(0) == q.size(0) && segments.size(1) == q.size(2),
              "chart.attention: segments must be [B, L] = [", q.size(0), ", ", q.size(2), "], got ", segments.sizes());
  TORCH_CHECK(ages.has_value() == slopes.has_value(), "chart.attention: ages and slopes go together (both or neither)");
  return chart::kernels::attention(q, k, v, segments.to(torch::kInt32), ages.value_or(torch::Tensor()),
                                   slopes.value_or(torch::Tensor()), attention_mode(mode));
}

std::string attention_path_op(const torch::Tensor& q, std::string mode) {
  return chart::kernels::describe_attention_path(q.device(), q.scalar_type(), q.size(-1), attention_mode(mode));
}

}  // namespace

TORCH_LIBRARY(chart, m) {
  m.def("attention(Tensor q, Tensor k, Tensor v, Tensor segments, Tensor? ages=None, Tensor? slopes=None, "
        "str mode='auto') -> Tensor",
        attention_op);
  m.def("attention_path(Tensor q, str mode='auto') -> str", attention_path_op);
}
