// The autograd Function around the flash attention kernels, generic over what launches them: the
// GPU (kernels/attention_cuda.cpp) or the CPU SIMT emulator on CPU tensors
// (kernels/attention_emulated.cpp), so that CI tests the very wrapper the model runs. A Launcher
// has two static functions, each launching on `on`'s device and returning an error string or null:
//   const char* forward(const AttnParams& p, bool sm90, const torch::Tensor& on);  // sm90: wgmma
//   const char* backward(const AttnParams& p, const torch::Tensor& on);
// Everything else is the same code for both (kernels/flash_launch.h).
#pragma once
#include <torch/torch.h>

#include <optional>

#include "kernels/flash_launch.h"

namespace chart::kernels {

template <typename Launcher>
class FlashAttention : public torch::autograd::Function<FlashAttention<Launcher>> {
 public:
  // ages and slopes are optional (no time bias): apply() refuses an undefined Tensor argument.
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor q, torch::Tensor k, torch::Tensor v,
                               torch::Tensor seg_start, std::optional<torch::Tensor> ages,
                               std::optional<torch::Tensor> slopes, bool sm90) {
    FlashTensors t;
    t.q = q, t.k = k, t.v = v, t.seg_start = seg_start, t.ages = ages.value_or(torch::Tensor()),
    t.slopes = slopes.value_or(torch::Tensor());
    t = flash_forward_buffers(t);
    check_launch(Launcher::forward(attention_params(t), sm90, t.q), "flash attention forward");
    ctx->save_for_backward({t.q, t.k, t.v, t.o, t.lse, t.seg_start, t.ages, t.slopes});
    return t.o;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto s = ctx->get_saved_variables();
    FlashTensors t;
    t.q = s[0], t.k = s[1], t.v = s[2], t.o = s[3], t.lse = s[4], t.seg_start = s[5], t.ages = s[6], t.slopes = s[7];
    t = flash_backward_buffers(t, grads[0]);
    check_launch(Launcher::backward(attention_params(t), t.q), "flash attention backward");
    // One gradient per forward argument: q, k, v, seg_start, ages, slopes, sm90.
    return {t.dq_accum.to(t.q.scalar_type()), t.dk, t.dv, {}, {}, t.dslopes, {}};
  }
};

// kernels::attention() on Launcher's kernels; sm90 picks the wgmma forward.
template <typename Launcher>
torch::Tensor flash_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const torch::Tensor& segments, const torch::Tensor& ages, const torch::Tensor& slopes,
                              bool sm90) {
  FlashTensors in = flash_inputs(q, k, v, segments, ages, slopes);
  if (q.numel() == 0) return torch::empty_like(q);
  auto optional = [](const torch::Tensor& t) { return t.defined() ? std::optional<torch::Tensor>(t) : std::nullopt; };
  return FlashAttention<Launcher>::apply(in.q, in.k, in.v, in.seg_start, optional(in.ages), optional(in.slopes), sm90);
}

}  // namespace chart::kernels
