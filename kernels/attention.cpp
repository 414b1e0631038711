#include "kernels/attention.h"

#include <torch/torch.h>

#include <limits>

#include "core/time.h"
#include "core/error.h"
#include "kernels/attention_dispatch.h"
#include "kernels/decode_attention.h"

namespace chart::kernels {

torch::Tensor time_decay_bias(const torch::Tensor& query_ages, const torch::Tensor& key_ages,
                              const torch::Tensor& slopes) {
  auto q_days = query_ages.to(torch::kFloat32) * kDaysPerYear;           // [B, Lq]
  auto k_days = key_ages.to(torch::kFloat32) * kDaysPerYear;             // [B, Lk]
  auto gap = (q_days.unsqueeze(2) - k_days.unsqueeze(1)).abs();          // [B, Lq, Lk]
  auto decay = torch::log1p(gap).unsqueeze(1);                          // [B, 1, Lq, Lk]
  return -slopes.to(torch::kFloat32).view({1, -1, 1, 1}) * decay;        // [B, H, Lq, Lk]
}

torch::Tensor segment_starts(const torch::Tensor& segments) {
  const int64_t B = segments.size(0), L = segments.size(1);
  auto idx = torch::arange(L, segments.options().dtype(torch::kInt64)).expand({B, L});
  auto change = torch::ones({B, L}, segments.options().dtype(torch::kBool));
  if (L > 1) change.narrow(1, 1, L - 1).copy_(segments.narrow(1, 1, L - 1) != segments.narrow(1, 0, L - 1));
  auto starts = torch::where(change, idx, torch::zeros_like(idx));
  return std::get<0>(starts.cummax(1)).to(torch::kInt32).contiguous();
}

torch::Tensor attention_reference(const torch::Tensor& q, const torch::Tensor& k,
                                  const torch::Tensor& v, const torch::Tensor& segments,
                                  const torch::Tensor& ages, const torch::Tensor& slopes) {
  const int64_t L = q.size(2), hq = q.size(1), hkv = k.size(1);
  TORCH_CHECK(hq % hkv == 0, "attention: ", hq, " query heads are not a multiple of ", hkv, " KV heads");
  auto kk = hkv == hq ? k : k.repeat_interleave(hq / hkv, 1);
  auto vv = hkv == hq ? v : v.repeat_interleave(hq / hkv, 1);
  auto causal = torch::ones({L, L}, torch::dtype(torch::kBool).device(q.device())).tril();
  auto same = segments.unsqueeze(2) == segments.unsqueeze(1);         // [B, L, L]
  auto allowed = (same & causal).unsqueeze(1);                        // [B, 1, L, L]
  torch::Tensor mask;
  if (ages.defined() && slopes.defined()) {
    auto bias = time_decay_bias(ages, ages, slopes);
    mask = bias.masked_fill(allowed.logical_not(), -std::numeric_limits<float>::infinity()).to(q.dtype());
  } else {
    mask = allowed;
  }
  return at::scaled_dot_product_attention(q, kk, vv, mask);
}

torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& segments, const torch::Tensor& ages,
                        const torch::Tensor& slopes, AttentionMode mode) {
  const AttentionPath path = attention_path(q, mode);  // in a CPU-only build too: a bad switch stops it
#ifdef CHART_HAVE_CUDA
  if (path.cuda()) return attention_cuda(q, k, v, segments, ages, slopes, path.kind);
#endif
  return attention_reference(q, k, v, segments, ages, slopes);
}

torch::Tensor decode_attention_reference(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                         const torch::Tensor& positions, int64_t end, const torch::Tensor& valid,
                                         const torch::Tensor& ages, const torch::Tensor& slopes) {
  const int64_t N = q.size(0), Hq = q.size(1), D = q.size(2), Hkv = k.size(1);
  TORCH_CHECK(Hq % Hkv == 0, "decode attention: ", Hq, " query heads are not a multiple of ", Hkv, " KV heads");
  auto keys = k.slice(2, 0, end), values = v.slice(2, 0, end);
  // The G query heads of a KV head become its G query rows, so GQA needs no copy of the cache.
  auto qg = q.reshape({N, Hkv, Hq / Hkv, D});
  auto kpos = torch::arange(0, end, positions.options()).view({1, end});
  auto allowed = kpos <= positions.view({N, 1});
  if (valid.defined()) allowed = allowed & valid.slice(1, 0, end);
  allowed = allowed.view({N, 1, 1, end});
  torch::Tensor mask = allowed;
  if (ages.defined() && slopes.defined()) {
    auto key_ages = ages.slice(1, 0, end);
    auto query_ages = ages.gather(1, positions.view({N, 1}));
    auto bias = time_decay_bias(query_ages, key_ages, slopes).reshape({N, Hkv, Hq / Hkv, end});
    mask = bias.masked_fill(allowed.logical_not(), -std::numeric_limits<float>::infinity()).to(q.dtype());
  }
  return at::scaled_dot_product_attention(qg, keys, values, mask).reshape({N, Hq, D});
}

torch::Tensor decode_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& positions, int64_t end, const torch::Tensor& valid,
                               const torch::Tensor& ages, const torch::Tensor& slopes, AttentionMode mode) {
  const AttentionPath path = decode_path(q.device(), q.scalar_type(), q.size(2), q.size(1), k.size(1), mode);
#ifdef CHART_HAVE_CUDA
  if (path.cuda()) return decode_attention_cuda(q, k, v, positions, end, valid, ages, slopes);
#endif
  return decode_attention_reference(q, k, v, positions, end, valid, ages, slopes);
}

}  // namespace chart::kernels
