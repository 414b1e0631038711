#include "kernels/flash_launch.h"

#include <torch/types.h>

#include <cmath>

#include "kernels/attention.h"

namespace chart::kernels {
namespace {

torch::Tensor aligned(torch::Tensor t) {
  t = t.contiguous();
  return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0 ? t : t.clone();
}

template <typename T>
T* ptr(const torch::Tensor& t) {
  return t.defined() ? t.data_ptr<T>() : nullptr;
}
void* ptr(const torch::Tensor& t) { return t.defined() ? t.data_ptr() : nullptr; }

}  // namespace

AttnParams attention_params(const FlashTensors& t) {
  AttnParams p;
  p.q = ptr(t.q);
  p.k = ptr(t.k);
  p.v = ptr(t.v);
  p.o = ptr(t.o);
  p.lse = ptr<float>(t.lse);
  p.seg_start = ptr<int32_t>(t.seg_start);
  if (t.ages.defined()) {
    p.ages = ptr<float>(t.ages);
    p.slopes = ptr<float>(t.slopes);
  }
  p.B = static_cast<int>(t.q.size(0));
  p.Hq = static_cast<int>(t.q.size(1));
  p.Hkv = static_cast<int>(t.k.size(1));
  p.L = static_cast<int>(t.q.size(2));
  p.D = static_cast<int>(t.q.size(3));
  p.scale = 1.0f / std::sqrt(static_cast<float>(p.D));
  p.dtype = t.q.scalar_type() == torch::kBFloat16 ? AttnDtype::kBF16 : AttnDtype::kFP16;
  p.dout = ptr(t.dout);
  p.delta = ptr<float>(t.delta);
  p.dq_accum = ptr<float>(t.dq_accum);
  p.dk = ptr(t.dk);
  p.dv = ptr(t.dv);
  p.dslopes = ptr<float>(t.dslopes);
  return p;
}

FlashTensors flash_inputs(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                          const torch::Tensor& segments, const torch::Tensor& ages, const torch::Tensor& slopes) {
  TORCH_CHECK(q.scalar_type() == torch::kBFloat16 || q.scalar_type() == torch::kFloat16,
              "attention: the kernels take bf16 or fp16, not ", q.scalar_type());
  TORCH_CHECK(k.scalar_type() == q.scalar_type() && v.scalar_type() == q.scalar_type(),
              "attention: q, k, v must share a dtype");
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4 && k.sizes() == v.sizes() && q.size(0) == k.size(0) &&
                  q.size(2) == k.size(2) && q.size(3) == k.size(3),
              "attention: q [B, Hq, L, D] and k, v [B, Hkv, L, D] disagree: ", q.sizes(), " ", k.sizes(), " ", v.sizes());
  TORCH_CHECK(flash_head_dim_supported(q.size(3)), "attention: the kernels take head dim 64 or 128, not ", q.size(3));
  TORCH_CHECK(k.size(1) > 0 && q.size(1) % k.size(1) == 0, "attention: ", q.size(1),
              " query heads are not a multiple of ", k.size(1), " KV heads");
  TORCH_CHECK(segments.dim() == 2 && segments.size(0) == q.size(0) && segments.size(1) == q.size(2),
              "attention: segments must be [B, L]");
  TORCH_CHECK(q.size(0) * q.size(1) <= 65535, "attention: batch x heads = ", q.size(0) * q.size(1),
              " exceeds the kernels' grid limit (65535); use a smaller batch");
  FlashTensors t;
  t.q = q;
  t.k = k;
  t.v = v;
  if (q.numel() == 0) return t;  // nothing to launch
  t.seg_start = segment_starts(segments.to(q.device()));
  if (ages.defined() && slopes.defined()) {
    TORCH_CHECK(ages.sizes() == segments.sizes(), "attention: ages must be [B, L]");
    TORCH_CHECK(slopes.dim() == 1 && slopes.size(0) == q.size(1), "attention: slopes must be [Hq]");
    t.ages = ages.to(q.device(), torch::kFloat32).contiguous();
    t.slopes = slopes.to(q.device(), torch::kFloat32).contiguous();
  }
  return t;
}

FlashTensors flash_forward_buffers(FlashTensors t) {
  t.q = aligned(t.q);
  t.k = aligned(t.k);
  t.v = aligned(t.v);
  t.o = torch::empty_like(t.q);
  t.lse = torch::empty({t.q.size(0), t.q.size(1), t.q.size(2)}, t.q.options().dtype(torch::kFloat32));
  return t;
}

FlashTensors flash_backward_buffers(FlashTensors t, const torch::Tensor& dout) {
  t.dout = aligned(dout.to(t.q.scalar_type()));
  t.dq_accum = torch::zeros(t.q.sizes(), t.q.options().dtype(torch::kFloat32));
  t.delta = torch::empty({t.q.size(0), t.q.size(1), t.q.size(2)}, t.q.options().dtype(torch::kFloat32));
  t.dk = torch::empty_like(t.k);
  t.dv = torch::empty_like(t.v);
  if (t.ages.defined()) t.dslopes = torch::zeros_like(t.slopes);
  return t;
}

void check_launch(const char* error, const char* what) {
  TORCH_CHECK(error == nullptr, what, ": ", error);
}

}  // namespace chart::kernels
