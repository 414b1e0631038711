// The CUDA path of kernels::attention: an autograd Function around the flash attention kernels
// (kernels/flash_attention_*.cu). Built only when nvcc was found.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/torch.h>

#include <cstdlib>
#include <string>

#include "kernels/attention.h"
#include "kernels/flash_attention.h"

namespace chart::kernels {
namespace {

void check(const char* err, const char* what) {
  TORCH_CHECK(err == nullptr, what, ": ", err);
}

AttnParams params(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                  const torch::Tensor& seg_start, const torch::Tensor& ages, const torch::Tensor& slopes) {
  AttnParams p;
  p.q = q.data_ptr();
  p.k = k.data_ptr();
  p.v = v.data_ptr();
  p.seg_start = seg_start.data_ptr<int32_t>();
  if (ages.defined()) {
    p.ages = ages.data_ptr<float>();
    p.slopes = slopes.data_ptr<float>();
  }
  p.B = static_cast<int>(q.size(0));
  p.Hq = static_cast<int>(q.size(1));
  p.Hkv = static_cast<int>(k.size(1));
  p.L = static_cast<int>(q.size(2));
  p.D = static_cast<int>(q.size(3));
  p.scale = 1.0f / std::sqrt(static_cast<float>(p.D));
  p.dtype = q.scalar_type() == torch::kBFloat16 ? AttnDtype::kBF16 : AttnDtype::kFP16;
  return p;
}

class FlashAttention : public torch::autograd::Function<FlashAttention> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor q, torch::Tensor k,
                               torch::Tensor v, torch::Tensor seg_start, torch::Tensor ages, torch::Tensor slopes) {
    c10::cuda::CUDAGuard guard(q.device());
    // The kernels read rows as 16-byte vectors: contiguous and 16-byte aligned (a view with an odd
    // storage offset is copied).
    auto aligned = [](torch::Tensor t) {
      t = t.contiguous();
      return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0 ? t : t.clone();
    };
    q = aligned(q);
    k = aligned(k);
    v = aligned(v);
    auto o = torch::empty_like(q);
    auto lse = torch::empty({q.size(0), q.size(1), q.size(2)}, q.options().dtype(torch::kFloat32));
    AttnParams p = params(q, k, v, seg_start, ages, slopes);
    p.o = o.data_ptr();
    p.lse = lse.data_ptr<float>();
    const bool hopper = std::string(cuda_forward_kernel(q)) == "sm90";
    check(hopper ? flash_attention_forward_sm90(p, at::cuda::getCurrentCUDAStream().stream())
                 : flash_attention_forward(p, at::cuda::getCurrentCUDAStream().stream()),
          "flash attention forward");
    ctx->save_for_backward({q, k, v, o, lse, seg_start, ages, slopes});
    return o;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto q = saved[0], k = saved[1], v = saved[2], o = saved[3], lse = saved[4], seg_start = saved[5];
    auto ages = saved[6], slopes = saved[7];
    c10::cuda::CUDAGuard guard(q.device());
    auto dout = grads[0].to(q.scalar_type()).contiguous();
    if (reinterpret_cast<uintptr_t>(dout.data_ptr()) % 16 != 0) dout = dout.clone();
    auto dq_accum = torch::zeros(q.sizes(), q.options().dtype(torch::kFloat32));
    auto delta = torch::empty({q.size(0), q.size(1), q.size(2)}, q.options().dtype(torch::kFloat32));
    auto dk = torch::empty_like(k), dv = torch::empty_like(v);
    torch::Tensor dslopes;
    AttnParams p = params(q, k, v, seg_start, ages, slopes);
    p.o = o.data_ptr();
    p.lse = lse.data_ptr<float>();
    p.dout = dout.data_ptr();
    p.delta = delta.data_ptr<float>();
    p.dq_accum = dq_accum.data_ptr<float>();
    p.dk = dk.data_ptr();
    p.dv = dv.data_ptr();
    if (ages.defined()) {
      dslopes = torch::zeros_like(slopes);
      p.dslopes = dslopes.data_ptr<float>();
    }
    check(flash_attention_backward(p, at::cuda::getCurrentCUDAStream().stream()), "flash attention backward");
    return {dq_accum.to(q.scalar_type()), dk, dv, torch::Tensor(), torch::Tensor(), dslopes};
  }
};

}  // namespace

bool cuda_attention_supports(const torch::Tensor& q) {
  return q.is_cuda() && (q.scalar_type() == torch::kBFloat16 || q.scalar_type() == torch::kFloat16) &&
         (q.size(3) == 64 || q.size(3) == 128);
}

const char* cuda_forward_kernel(const torch::Tensor& q) {
  if (!cuda_attention_supports(q)) return "";
  const char* opt_in = std::getenv("CHART_ATTENTION_SM90");
  if (opt_in && std::string(opt_in) == "1" && at::cuda::getDeviceProperties(q.device().index())->major == 9) return "sm90";
  return "sm80";
}

torch::Tensor attention_cuda(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             const torch::Tensor& segments, const torch::Tensor& ages, const torch::Tensor& slopes) {
  TORCH_CHECK(k.scalar_type() == q.scalar_type() && v.scalar_type() == q.scalar_type(),
              "attention: q, k, v must share a dtype");
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4 && k.sizes() == v.sizes() && q.size(0) == k.size(0) &&
                  q.size(2) == k.size(2) && q.size(3) == k.size(3),
              "attention: q [B, Hq, L, D] and k, v [B, Hkv, L, D] disagree: ", q.sizes(), " ", k.sizes(), " ", v.sizes());
  TORCH_CHECK(k.size(1) > 0 && q.size(1) % k.size(1) == 0, "attention: ", q.size(1),
              " query heads are not a multiple of ", k.size(1), " KV heads");
  TORCH_CHECK(segments.dim() == 2 && segments.size(0) == q.size(0) && segments.size(1) == q.size(2),
              "attention: segments must be [B, L]");
  TORCH_CHECK(q.size(0) * q.size(1) <= 65535, "attention: batch x heads = ", q.size(0) * q.size(1),
              " exceeds the kernels' grid limit (65535); use a smaller batch");
  if (q.numel() == 0) return torch::empty_like(q);
  auto seg_start = segment_starts(segments.to(q.device()));
  torch::Tensor a, s;
  if (ages.defined() && slopes.defined()) {
    TORCH_CHECK(ages.sizes() == segments.sizes(), "attention: ages must be [B, L]");
    a = ages.to(q.device(), torch::kFloat32).contiguous();
    s = slopes.to(q.device(), torch::kFloat32).contiguous();
  }
  return FlashAttention::apply(q, k, v, seg_start, a, s);
}

}  // namespace chart::kernels
