// Attention for packed patient timelines: the one dispatch point the model calls.
//
//   out[b,h,i] = sum_j softmax_j( q[b,h,i].k[b,g(h),j] / sqrt(D) + bias[b,h,i,j] ) v[b,g(h),j]
//   over j <= i with segments[b,j] == segments[b,i]   (causal, never across patients)
//   bias[b,h,i,j] = -slopes[h] * log(1 + |age_i - age_j| in days)   (optional time decay)
//   g(h) = h / (Hq / Hkv)                                        (grouped-query attention)
//
// On a GPU with the custom kernels built and a supported shape, the CUDA kernels run; otherwise
// the LibTorch reference below, which is also the oracle the kernel tests compare against.
#pragma once
#include <torch/types.h>

namespace chart::kernels {

// q: [B, Hq, L, D]; k, v: [B, Hkv, L, D]; segments: [B, L] int32 (padding: -1, a segment of its
// own); ages: [B, L] float32 years, and slopes: [Hq] float32, both undefined for no time bias.
// Returns [B, Hq, L, D] in q's dtype.
torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& segments, const torch::Tensor& ages,
                        const torch::Tensor& slopes);

// The same function in plain LibTorch ops (scaled_dot_product_attention with a mask).
torch::Tensor attention_reference(const torch::Tensor& q, const torch::Tensor& k,
                                  const torch::Tensor& v, const torch::Tensor& segments,
                                  const torch::Tensor& ages, const torch::Tensor& slopes);

// [B, Hq, L, L] additive time-decay bias, float32.
torch::Tensor time_decay_bias(const torch::Tensor& ages, const torch::Tensor& slopes);

// [B, L] int32: the first position of each position's patient (patients are contiguous runs of
// equal segment ids, as the loader packs them); what the kernels take instead of segment ids.
torch::Tensor segment_starts(const torch::Tensor& segments);

// Which path attention() takes for these inputs: "cuda" or "reference".
const char* attention_path(const torch::Tensor& q);

// Which forward kernel the "cuda" path runs: "sm90" (warpgroup MMA, kernels/flash_attention_fwd_sm90.cu)
// on an sm_90 GPU when CHART_ATTENTION_SM90=1 (opt-in until it has been verified on a Hopper
// GPU), otherwise "sm80" (mma.sync); "" when the CUDA path does not apply. The backward is the
// mma.sync kernel either way.
const char* cuda_forward_kernel(const torch::Tensor& q);

}  // namespace chart::kernels
